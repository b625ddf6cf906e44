"""What the reflectors keep of each object: no managed fields, no Node image lists, and strings shared
between objects decoded apart (ccm/k8s/reflector.py: the transform, then ``share_strings``)."""

from __future__ import annotations

import json

from ccm.k8s.reflector import Reflector, share_strings, strip_managed_fields, strip_node

SERVICE = {
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
    },
    "spec": {"type": "LoadBalancer", "ports": [{"protocol": "TCP", "port": 80, "nodePort": 30080}]},
    "status": {"loadBalancer": {"ingress": [{"hostname": f"k8s-shop-web-{'0' * 40}.elb.amazonaws.com"}]}},
}


def decoded_apart() -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Two Services as two watch events give them: each decoded on its own."""
    return json.loads(json.dumps(SERVICE)), json.loads(json.dumps(SERVICE))


def test_a_stored_service_has_no_managed_fields_and_keeps_everything_else() -> None:
    one, _ = decoded_apart()

    stored = strip_managed_fields(one)

    expected = json.loads(json.dumps(SERVICE))
    del expected["metadata"]["managedFields"]
    assert stored == expected


def test_services_decoded_apart_share_their_keys_and_short_values_once_stored() -> None:
    one, other = decoded_apart()
    assert next(iter(one["spec"])) is not next(iter(other["spec"]))  # what json gives each event

    a, b = share_strings(strip_managed_fields(one)), share_strings(strip_managed_fields(other))

    assert next(iter(a["spec"])) is next(iter(b["spec"]))
    assert a["spec"]["ports"][0]["protocol"] is b["spec"]["ports"][0]["protocol"]
    annotation = "service.beta.kubernetes.io/aws-load-balancer-type"
    assert next(iter(a["metadata"]["annotations"])) is next(iter(b["metadata"]["annotations"]))
    assert a["metadata"]["annotations"][annotation] is b["metadata"]["annotations"][annotation]


def test_long_values_are_kept_as_decoded() -> None:
    one, other = decoded_apart()

    a, b = share_strings(strip_managed_fields(one)), share_strings(strip_managed_fields(other))

    hostname_a = a["status"]["loadBalancer"]["ingress"][0]["hostname"]
    hostname_b = b["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert hostname_a == hostname_b and hostname_a is not hostname_b


def test_a_stored_node_has_no_images_volumes_or_managed_fields() -> None:
    node = {
        "metadata": {"name": "n1", "managedFields": [{"manager": "kubelet"}], "labels": {"zone": "a"}},
        "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
        "status": {
            "images": [{"names": ["registry/x@sha256:" + "0" * 64], "sizeBytes": 1}],
            "volumesInUse": ["v"],
            "volumesAttached": [{"name": "v", "devicePath": "/dev/x"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        },
    }

    stored = strip_node(node)

    assert stored == {
        "metadata": {"name": "n1", "labels": {"zone": "a"}},
        "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
    }


class _Ignore:
    def on_add(self, obj: dict) -> None: ...  # type: ignore[type-arg]
    def on_update(self, old: dict, new: dict) -> None: ...  # type: ignore[type-arg]
    def on_delete(self, obj: dict) -> None: ...  # type: ignore[type-arg]


def test_a_reflector_stores_watch_events_with_the_transform_applied_and_strings_shared() -> None:
    reflector = Reflector(name="services", list_func=lambda **_: None, handler=_Ignore())
    one, other = decoded_apart()
    other["metadata"]["name"] = "api"

    for obj in (one, other):
        reflector._apply({"type": "ADDED", "object": obj})  # as the watch loop hands each event over

    a, b = reflector.store.get("shop/web"), reflector.store.get("shop/api")
    assert a is not None and b is not None
    assert "managedFields" not in a["metadata"]
    assert next(iter(a["spec"])) is next(iter(b["spec"]))
