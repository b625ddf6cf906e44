"""The soak's GCE: :class:`fakegce.FakeCompute` in this process, its own fault hooks as the cloud's faults.

The controller reaches it over HTTP through its ``gce.conf`` ``api-endpoint``. Cloud faults use the
fake's hooks: synchronous 429/500/503 answers on a random route, asynchronous operation errors (the
operation ends DONE with an error; nothing changes), slow answers, and operations that stay RUNNING for
several polls. Foreign resources: another cluster's load balancer (rule, backend service, health check,
firewall) for a Service of one of our names, an unmarked rule with our naming, and another scope's rule
of a UID that exists nowhere. Changes by hand: a forwarding rule deleted, or its spec-hash label
changed.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from google.cloud import compute_v1

from fakegce import FakeCompute
from sandbox.cloud import without_prefixes
from tests.soak.cloud import Inventory, LoadBalancer
from tests.soak.workload import Flavour, Invalid, Machine, Spec
from tests.support.fakegce import PROJECT, REGION, Gce

ZONES = ("us-central1-a", "us-central1-b")
NETWORK, SUBNETWORK, NODE_TAG = "default", "nodes", "k8s-node"
TYPE_KEY = "networking.gke.io/load-balancer-type"
CLUSTER_KEY, UID_KEY, SERVICE_KEY, SCOPE_KEY = (
    "ccm-lb/cluster",
    "ccm-lb/service-uid",
    "kubernetes.io/service-name",
    "ccm-lb/scope",
)
CLUSTER_LABEL, UID_LABEL, HASH_LABEL, SCOPE_LABEL = (
    "ccm-lb-cluster",
    "ccm-lb-service-uid",
    "ccm-lb-spec-hash",
    "ccm-lb-scope",
)
KINDS = ("forwardingRules", "backendServices", "healthChecks", "firewalls", "instanceGroups", "addresses")
ROUTES_TO_FAIL = (
    ("POST", "regions/{region}/forwardingRules"),
    ("GET", "regions/{region}/forwardingRules"),
    ("POST", "regions/{region}/backendServices"),
    ("PATCH", "regions/{region}/backendServices/{backendService}"),
    ("POST", "regions/{region}/healthChecks"),
    ("POST", "global/firewalls"),
    ("PATCH", "global/firewalls/{firewall}"),
    ("POST", "zones/{zone}/instanceGroups/{instanceGroup}/addInstances"),
    ("POST", "zones/{zone}/instanceGroups/{instanceGroup}/removeInstances"),
    ("DELETE", "regions/{region}/forwardingRules/{forwardingRule}"),
    ("DELETE", "regions/{region}/backendServices/{backendService}"),
    ("POST", "regions/{region}/forwardingRules/{resource}/setLabels"),
)
MUTATIONS = tuple(r for r in ROUTES_TO_FAIL if r[0] != "GET")


def _annotations(service: Mapping[str, Any]) -> Mapping[str, str]:
    return (service.get("metadata") or {}).get("annotations") or {}


def _protocols(service: Mapping[str, Any]) -> set[str]:
    return {str(p.get("protocol", "TCP")) for p in (service.get("spec") or {}).get("ports") or ()}


def _replace(spec: Spec, **changes: Any) -> Spec:
    return Spec(**{**spec.__dict__, **changes})


FLAVOUR = Flavour(
    port_pool=((80, "TCP"), (443, "TCP"), (8080, "TCP"), (53, "UDP"), (5353, "UDP")),
    one_protocol=True,
    annotation_choices=(((TYPE_KEY, "Internal"),),),
    address_keys=(TYPE_KEY,),
    invalids=(
        Invalid(
            name="type-typo",
            apply=lambda s: _replace(
                s, annotations=tuple(sorted({**s.annotation_map(), TYPE_KEY: "Interna"}.items()))
            ),
            matches=lambda svc: _annotations(svc).get(TYPE_KEY) == "Interna",
        ),
        Invalid(
            name="mixed-protocols",
            apply=lambda s: _replace(s, ports=((53, "UDP"), (80, "TCP"))),
            matches=lambda svc: len(_protocols(svc)) > 1,
        ),
        Invalid(
            name="ipv6-source-range",
            apply=lambda s: _replace(s, source_ranges=("2001:db8::/32",)),
            matches=lambda svc: any(
                ":" in r for r in (svc.get("spec") or {}).get("loadBalancerSourceRanges") or ()
            ),
        ),
    ),
)


def _marker(resource: Mapping[str, Any]) -> dict[str, str]:
    try:
        data = json.loads(resource.get("description") or "")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _name(link: str) -> str:
    return link.rsplit("/", 1)[-1]


class GceCloud:
    name = "gce"
    flavour = FLAVOUR
    fault_kinds: tuple[str, ...] = ("gce-error", "gce-operation-error", "gce-slow", "gce-running")
    hand_kinds: tuple[str, ...] = ("hand-delete-rule", "hand-relabel-rule")
    shared_parts_stay = False  # the instance groups and node health check go with the last LB

    def __init__(self, *, cluster: str, seed: int) -> None:
        self.cluster = cluster  # ≤ 10 characters of a label: the provider uses it as its cluster id
        self.fake = FakeCompute(project=PROJECT, region=REGION, zones=ZONES)
        self.foreign: dict[str, str] = {}
        self._count = 0
        self._injected: dict[str, int] = {}

    def start(self) -> None:
        self.fake.start()
        self.gce = Gce.connect(self.fake)

    def stop(self) -> None:
        self.fake.stop()

    def controller_args(self, *, workdir: Path) -> list[str]:
        conf = workdir / "gce.conf"
        conf.write_text(
            f"[global]\nproject-id = {PROJECT}\nregion = {REGION}\nnetwork-name = {NETWORK}\n"
            f"subnetwork-name = {SUBNETWORK}\nnode-tags = {NODE_TAG}\napi-endpoint = {self.fake.url}\n"
            "token-url = nil\n"
        )
        return [f"--cloud-config={conf}"]

    def controller_env(self, *, base: Mapping[str, str]) -> dict[str, str]:
        return without_prefixes(base, "GOOGLE_", "CLOUDSDK_", "GCE_")

    # -- seeding ------------------------------------------------------------------------------------

    def seed(self) -> None:
        self.fake.seed_network(NETWORK)
        self.fake.seed_subnetwork(SUBNETWORK, NETWORK, "10.128.0.0/20")

    def seed_foreign(self) -> None:
        gce = self.gce
        other_uid = str(uuid.uuid4())
        marker = json.dumps({CLUSTER_KEY: "other", SERVICE_KEY: "soak-a/s00", UID_KEY: other_uid})
        check = compute_v1.HealthCheck(
            name="k8s-other-hc",
            description=marker,
            type_="HTTP",
            http_health_check=compute_v1.HTTPHealthCheck(port=10256, request_path="/healthz"),
        )
        gce.wait(gce.health_checks.insert_unary(project=PROJECT, region=REGION, health_check_resource=check))
        backend = compute_v1.BackendService(
            name="k8s-other-soaka-s00",
            description=marker,
            load_balancing_scheme="EXTERNAL",
            protocol="TCP",
            health_checks=[f"regions/{REGION}/healthChecks/k8s-other-hc"],
            session_affinity="NONE",
        )
        gce.wait(
            gce.backend_services.insert_unary(
                project=PROJECT, region=REGION, backend_service_resource=backend
            )
        )
        rules = {
            # another cluster's
            "k8s-other-soaka-s00": {CLUSTER_LABEL: "other", UID_LABEL: other_uid.replace("-", "_")},
            # our naming, no marker at all
            f"k8s-{self.cluster}-soaka-s01-0123456789": {},
            # this cluster's, another scope's, a UID that exists nowhere
            f"k8s-{self.cluster}-soakb-s01-9876543210": {
                CLUSTER_LABEL: self.cluster,
                SCOPE_LABEL: "example_com_other",
                UID_LABEL: str(uuid.uuid4()).replace("-", "_"),
            },
        }
        for name, labels in rules.items():
            rule = compute_v1.ForwardingRule(
                name=name,
                load_balancing_scheme="EXTERNAL",
                I_p_protocol="TCP",
                ports=["80"],
                backend_service=f"regions/{REGION}/backendServices/k8s-other-soaka-s00",
            )
            gce.wait(
                gce.forwarding_rules.insert_unary(
                    project=PROJECT, region=REGION, forwarding_rule_resource=rule
                )
            )
            if labels:
                current = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule=name)
                gce.wait(
                    gce.forwarding_rules.set_labels_unary(
                        project=PROJECT,
                        region=REGION,
                        resource=name,
                        region_set_labels_request_resource=compute_v1.RegionSetLabelsRequest(
                            labels=labels, label_fingerprint=current.label_fingerprint
                        ),
                    )
                )
        firewall = compute_v1.Firewall(
            name="k8s-other-soaka-s00",
            description=marker,
            network=f"global/networks/{NETWORK}",
            source_ranges=["0.0.0.0/0"],
            target_tags=[NODE_TAG],
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["80"])],
        )
        gce.wait(gce.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall))
        self.foreign = {
            "forwardingRules": ",".join(sorted(rules)),
            "backendServices": "k8s-other-soaka-s00",
            "healthChecks": "k8s-other-hc",
            "firewalls": "k8s-other-soaka-s00",
        }

    def foreign_snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind, names in self.foreign.items():
            wanted = set(names.split(","))
            found = [r for r in self.fake.resources(kind) if r["name"] in wanted]
            for resource in found:  # what the fake bumps on any change, plus the content
                resource.pop("creationTimestamp", None)
            out[kind] = sorted(json.dumps(r, sort_keys=True) for r in found)
        return out

    # -- machines -----------------------------------------------------------------------------------

    def new_machine(self, *, rng: random.Random) -> Machine:
        zone = rng.choice(ZONES)
        self._count += 1
        name = f"gke-soak-{self._count}"
        self.fake.seed_instance(zone, name, tags=(NODE_TAG,), network=NETWORK, subnetwork=SUBNETWORK)
        return Machine(node=name, provider_id=f"gce://{PROJECT}/{zone}/{name}", zone=zone, instance=name)

    def remove_machine(self, machine: Machine) -> None:
        self.fake.delete_instance(machine.zone, machine.instance)

    def instance_of(self, provider_id: str) -> str:
        return provider_id.rsplit("/", 1)[-1]

    # -- reading ------------------------------------------------------------------------------------

    def _ours(self, resource: Mapping[str, Any]) -> tuple[bool, str, str]:
        """(ours, uid, service) of a resource: its labels or its description marker name this cluster."""
        labels = resource.get("labels") or {}
        marker = _marker(resource)
        if labels.get(SCOPE_LABEL) or marker.get(SCOPE_KEY):
            return False, "", ""
        if labels.get(CLUSTER_LABEL) == self.cluster or marker.get(CLUSTER_KEY) == self.cluster:
            uid = marker.get(UID_KEY) or str(labels.get(UID_LABEL, ""))
            return True, uid, marker.get(SERVICE_KEY, "")
        if resource["name"] == f"k8s-ig--{self.cluster}":
            return True, "", ""
        return False, "", ""

    def inventory(self) -> Inventory:
        inv = Inventory()
        by_label: dict[str, str] = {}  # a label value (uid with _ for -) → the uid
        rules = []
        for kind in KINDS:
            for resource in self.fake.resources(kind):
                ours, uid, service = self._ours(resource)
                if not ours:
                    continue
                if not uid:
                    inv.shared.append(f"{kind}/{resource['name']}")
                    continue
                if "-" in uid:
                    by_label[uid.replace("-", "_")] = uid
                if kind == "forwardingRules":
                    rules.append((uid, service, resource))
                else:
                    inv.parts.setdefault(uid, []).append(f"{kind}/{resource['name']}")
        for label_uid, service, rule in rules:
            uid = by_label.get(label_uid, label_uid)
            inv.parts.setdefault(uid, []).append(f"forwardingRules/{rule['name']}")
            inv.load_balancers.setdefault(uid, []).append(
                LoadBalancer(
                    id=rule["name"],
                    scheme=str(rule.get("loadBalancingScheme", "")),
                    address=str(rule.get("IPAddress", "")),
                    service=service,
                )
            )
        return inv

    def check_service(
        self, *, service: Mapping[str, Any], inventory: Inventory, targets: Sequence[Machine]
    ) -> list[str]:
        uid = service["metadata"]["uid"]
        rules = inventory.load_balancers.get(uid, []) or inventory.load_balancers.get(
            uid.replace("-", "_"), []
        )
        if len(rules) != 1:
            return [f"{len(rules)} forwarding rules"]
        lb = rules[0]
        problems = []
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress or ingress[0].get("ip") != lb.address:
            problems.append(f"ingress {ingress} is not the rule's {lb.address}")
        want_scheme = "INTERNAL" if _annotations(service).get(TYPE_KEY) == "Internal" else "EXTERNAL"
        if lb.scheme != want_scheme:
            problems.append(f"scheme {lb.scheme}, wanted {want_scheme}")
        rule = next(r for r in self.fake.resources("forwardingRules") if r["name"] == lb.id)
        want_ports = sorted(str(p["port"]) for p in service["spec"]["ports"])
        if sorted(rule.get("ports") or ()) != want_ports:
            problems.append(f"ports {rule.get('ports')}, wanted {want_ports}")
        backend = next(
            (
                b
                for b in self.fake.resources("backendServices")
                if b["name"] == _name(rule.get("backendService", ""))
            ),
            None,
        )
        if backend is None:
            return [*problems, "no backend service"]
        members: set[str] = set()
        for entry in backend.get("backends") or ():
            zone, group = entry["group"].split("/zones/", 1)[1].split("/instanceGroups/")
            members |= {_name(link) for link in self.fake.members(zone, group)}
        expected = {m.instance for m in targets}
        if members != expected:
            problems.append(f"backends {sorted(members)}, wanted {sorted(expected)}")
        return problems

    # -- faults -------------------------------------------------------------------------------------

    def inject(self, kind: str, *, rng: random.Random) -> None:
        self._injected[kind] = self._injected.get(kind, 0) + 1
        if kind == "gce-error":
            for _ in range(rng.randint(1, 4)):
                method, template = rng.choice(ROUTES_TO_FAIL)
                self.fake.fail(method, template, status=rng.choice((429, 500, 503)), times=rng.randint(1, 3))
        elif kind == "gce-operation-error":
            for _ in range(rng.randint(1, 4)):
                method, template = rng.choice(MUTATIONS)
                self.fake.fail_operation(
                    method, template, status=rng.choice((400, 409, 500, 503)), times=rng.randint(1, 2)
                )
        elif kind == "gce-slow":
            self.fake.delay(rng.uniform(0.2, 1.5))
        elif kind == "gce-running":
            self.fake.operations_stay_running(polls=rng.randint(2, 5))

    def clear(self) -> None:
        self.fake.clear_faults()  # what was armed and not yet used is dropped with the window

    def by_hand(
        self, kind: str, *, rng: random.Random, inventory: Inventory, before: Callable[[str, str], None]
    ) -> str | None:
        candidates = sorted((uid, lbs[0]) for uid, lbs in inventory.load_balancers.items() if lbs)
        if not candidates:
            return None
        _uid, lb = rng.choice(candidates)
        service = lb.service or self._service_of(lb.id)
        before(kind, service)
        gce = self.gce
        if kind == "hand-delete-rule":
            gce.wait(gce.forwarding_rules.delete_unary(project=PROJECT, region=REGION, forwarding_rule=lb.id))
        else:
            current = gce.forwarding_rules.get(project=PROJECT, region=REGION, forwarding_rule=lb.id)
            labels = {**dict(current.labels), HASH_LABEL: "changed-by-hand"}
            gce.wait(
                gce.forwarding_rules.set_labels_unary(
                    project=PROJECT,
                    region=REGION,
                    resource=lb.id,
                    region_set_labels_request_resource=compute_v1.RegionSetLabelsRequest(
                        labels=labels, label_fingerprint=current.label_fingerprint
                    ),
                )
            )
        return service

    def _service_of(self, rule_name: str) -> str:
        for backend in self.fake.resources("backendServices"):
            if backend["name"] == rule_name:
                return _marker(backend).get(SERVICE_KEY, "")
        return ""

    def controller_calls(self) -> int:
        return self.fake.total_calls()

    def injected(self) -> dict[str, int]:
        return dict(self._injected)
