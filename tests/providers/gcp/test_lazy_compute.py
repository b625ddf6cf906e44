"""The GCP provider loads only the parts of google-cloud-compute it uses (providers/gcp/lazy_compute.py).

Each check runs in a fresh interpreter: this test process may have imported the whole package already,
and then :func:`install` rightly changes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from providers.gcp.lazy_compute import service_module_name

PROBE = textwrap.dedent(
    """
    import json, sys
    from providers.gcp.client import GCEClients
    clients = GCEClients(project="p", region="r", api_endpoint="http://127.0.0.1:9", anonymous=True)
    from google.cloud import compute_v1
    rule = compute_v1.ForwardingRule(name="a", labels={"k": "v"})
    loaded = sorted(m.rsplit(".", 1)[-1] for m in sys.modules
                    if m.startswith("google.cloud.compute_v1.services.") and m.count(".") == 4)
    from google.cloud.compute_v1.types import compute
    from google.cloud.compute_v1.services.forwarding_rules import ForwardingRulesClient
    print(json.dumps({
        "loaded": loaded,
        "rule": type(rule) is compute.ForwardingRule and rule.labels["k"] == "v",
        "client": type(clients.forwarding_rules) is ForwardingRulesClient,
        "whole_before": "__version__" in vars(compute_v1),
    }))
    """
)


def _probe(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_provider_loads_only_the_twelve_service_clients_it_uses() -> None:
    result = _probe(PROBE)

    assert result["loaded"] == [
        "addresses",
        "firewalls",
        "forwarding_rules",
        "global_operations",
        "health_checks",
        "instance_groups",
        "region_backend_services",
        "region_health_checks",
        "region_operations",
        "regions",
        "target_pools",
        "zone_operations",
    ]
    assert result == {**result, "rule": True, "client": True, "whole_before": False}


def test_a_name_outside_the_rules_loads_the_whole_package_and_is_answered_as_the_package_would() -> None:
    result = _probe(
        textwrap.dedent(
            """
            import json, sys
            import providers.gcp
            from google.cloud import compute_v1
            version = compute_v1.__version__
            clients = sum(1 for m in sys.modules if m.startswith("google.cloud.compute_v1.services.")
                          and m.count(".") == 4)
            from google.cloud.compute_v1.services.zones import ZonesClient
            same = compute_v1.ZonesClient is ZonesClient
            print(json.dumps({"version": version, "clients": clients, "same": same,
                              "all": len(compute_v1.__all__)}))
            """
        )
    )

    assert isinstance(result["version"], str) and result["version"]
    assert isinstance(result["clients"], int) and result["clients"] > 100
    assert result["same"] is True
    assert isinstance(result["all"], int) and result["all"] > 1000


def test_a_name_the_package_does_not_have_is_an_attribute_error() -> None:
    result = _probe(
        textwrap.dedent(
            """
            import json
            import providers.gcp
            from google.cloud import compute_v1
            try:
                compute_v1.NoSuchThingClient
                outcome = "found"
            except AttributeError as exc:
                outcome = str(exc)
            print(json.dumps({"outcome": outcome}))
            """
        )
    )

    assert "NoSuchThingClient" in str(result["outcome"])


def test_client_names_map_to_their_service_modules_as_the_package_init_imports_them() -> None:
    assert service_module_name("ForwardingRulesClient") == "forwarding_rules"
    assert service_module_name("RegionBackendServicesClient") == "region_backend_services"
    assert service_module_name("ForwardingRule") is None
