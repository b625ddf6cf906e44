"""The Helm chart, rendered by the real helm: lint, schema, and the shape of what it renders.

Assertions are on the parsed YAML, the way the apiserver and the kubelet read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccm.envtest.controlplane import ControlPlane
from tests.deploy import chart
from tests.deploy.chart import CHART, CI_VALUES, LEASE


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_passes_with_each_ci_values_file(helm: Path, values: Path) -> None:
    result = chart.run([helm, "lint", CHART, "--strict", "--values", values])
    assert result.returncode == 0, f"helm lint -f {values.name}:\n{result.stdout}{result.stderr}"


def test_there_is_a_ci_values_file_for_each_variant() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "daemonset-values.yaml",
        "servicemonitor-values.yaml",
    }


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("cloudProvider=azure", "/cloudProvider"),
        ("kind=StatefulSet", "/kind"),
        ("replicas=two", "/replicas"),
        ("replicas=0", "/replicas"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("leaderElection.leaseDuration=forever", "/leaderElection/leaseDuration"),
        ("serviceMonitor.enabled=yes", "/serviceMonitor/enabled"),
    ],
)
def test_a_bad_value_fails_rendering_and_the_message_names_the_field(
    helm: Path, setting: str, field: str
) -> None:
    result = chart.template(helm, "--set", setting)
    assert result.returncode != 0, f"--set {setting} rendered:\n{result.stdout[:500]}"
    assert "schema" in result.stderr and f"'{field}'" in result.stderr, result.stderr


@pytest.mark.parametrize(("setting", "key"), [("replica=2", "replica"), ("image.version=1", "version")])
def test_an_unknown_value_is_refused_rather_than_ignored(helm: Path, setting: str, key: str) -> None:
    result = chart.template(helm, "--set", setting)
    assert result.returncode != 0
    assert f"additional properties '{key}' not allowed" in result.stderr, result.stderr


def test_gce_without_a_cloud_config_is_refused_with_what_to_give(helm: Path) -> None:
    result = chart.template(helm, "--set", "cloudProvider=gce")
    assert result.returncode != 0
    assert "cloudProvider=gce needs cloudConfig" in result.stderr and "project-id" in result.stderr


def test_a_cluster_older_than_the_charts_kube_version_is_refused(helm: Path) -> None:
    too_old = chart.template(helm, "--kube-version", "1.28.9")
    assert too_old.returncode != 0
    assert ">=1.29.0-0" in too_old.stderr, too_old.stderr
    assert chart.template(helm, "--kube-version", "1.30.0").returncode == 0


def test_turning_leader_election_off_with_two_replicas_is_refused(helm: Path) -> None:
    result = chart.template(helm, "--set", "leaderElection.enabled=false")
    assert result.returncode != 0
    assert "replicas: 1" in result.stderr, result.stderr
    single = chart.render(helm, "--set", "leaderElection.enabled=false", "--set", "replicas=1")
    assert chart.flag(chart.args_of(single), "leader-elect") == "false"
    assert not chart.of_kind(single, "Role") and not chart.of_kind(single, "PodDisruptionBudget")


def test_the_default_release_renders_each_object_once_in_the_release_namespace(helm: Path) -> None:
    docs = chart.render(helm)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    )
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "kube-system", doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "ccm-lb"


def test_the_default_workload_is_a_deployment_of_two_leader_elected_replicas(helm: Path) -> None:
    docs = chart.render(helm)
    deployment = chart.one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    args = chart.args_of(docs)
    assert chart.flag(args, "leader-elect") == "true"
    assert chart.flag(args, "leader-elect-resource-name") == LEASE
    assert chart.flag(args, "leader-elect-resource-namespace") == "kube-system"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"].items() >= deployment["spec"]["selector"]["matchLabels"].items()
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["serviceAccountName"] == chart.one(docs, "ServiceAccount")["metadata"]["name"]


def test_the_replicas_prefer_different_nodes(helm: Path) -> None:
    docs = chart.render(helm)
    pod = chart.one(docs, "Deployment")["spec"]["template"]
    terms = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms) == 1
    term = terms[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert pod["metadata"]["labels"].items() >= term["labelSelector"]["matchLabels"].items()
    assert "topologySpreadConstraints" not in pod["spec"]


def test_topology_spread_constraints_select_the_chart_pods(helm: Path) -> None:
    docs = chart.render(helm, "--values", str(CHART / "ci" / "servicemonitor-values.yaml"))
    pod = chart.one(docs, "Deployment")["spec"]["template"]
    (constraint,) = pod["spec"]["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert (
        constraint["labelSelector"]["matchLabels"]
        == chart.one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_a_pod_disruption_budget_keeps_one_replica_through_drains(helm: Path) -> None:
    docs = chart.render(helm)
    pdb = chart.one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == chart.one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert not chart.of_kind(chart.render(helm, "--set", "replicas=1"), "PodDisruptionBudget")


def test_probes_are_healthz_and_readyz_over_https_on_the_named_port_10258(helm: Path) -> None:
    docs = chart.render(helm)
    ctr = chart.container(docs)
    assert ctr["ports"] == [{"name": "https", "containerPort": 10258, "protocol": "TCP"}]
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert chart.flag(chart.args_of(docs), "secure-port") == "10258"
    service = chart.one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 10258, "targetPort": "https", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == chart.one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


def test_the_container_runs_as_non_root_with_a_read_only_root_and_a_writable_tmp(helm: Path) -> None:
    docs = chart.render(helm)
    pod = chart.one(docs, "Deployment")["spec"]["template"]["spec"]
    ctr = chart.container(docs)
    security = ctr["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True
    tmp = next(m for m in ctr["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume
    assert ctr["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert ctr["resources"]["limits"]["memory"]


def test_the_container_runs_ccm_run_with_the_flags_from_the_values(helm: Path) -> None:
    docs = chart.render(helm)
    ctr = chart.container(docs)
    assert ctr["command"] == ["ccm", "run"]
    assert ctr["image"] == "ghcr.io/ccm-lb/ccm-lb:0.1.0"
    args = chart.args_of(docs)
    assert chart.flag(args, "cloud-provider") == "aws"
    assert chart.flag(args, "cluster-name") == "kubernetes"
    assert chart.flag(args, "v") == "2"
    assert chart.flag(args, "load-balancer-class") is None
    assert chart.flag(args, "load-balancer-resync-period") == "10m"
    assert chart.flag(args, "load-balancer-orphan-grace-period") == "10m"
    assert chart.flag(args, "cloud-config") is None
    assert "env" not in ctr

    docs = chart.render(
        helm,
        "--set",
        "clusterName=prod-eu",
        "--set",
        "loadBalancerClass=example.com/nlb",
        "--set",
        "logLevel=4",
        "--set",
        "resyncPeriod=1m",
        "--set",
        "orphanGracePeriod=1h",
        "--set",
        "image.tag=9.9.9",
        "--set",
        "extraArgs={--kube-api-qps=50}",
        "--set",
        "env[0].name=AWS_REGION",
        "--set",
        "env[0].value=eu-west-1",
    )
    args = chart.args_of(docs)
    assert chart.flag(args, "cluster-name") == "prod-eu"
    assert chart.flag(args, "load-balancer-class") == "example.com/nlb"
    assert chart.flag(args, "v") == "4"
    assert chart.flag(args, "load-balancer-resync-period") == "1m"
    assert chart.flag(args, "load-balancer-orphan-grace-period") == "1h"
    assert args[-1] == "--kube-api-qps=50"
    assert chart.container(docs)["env"] == [{"name": "AWS_REGION", "value": "eu-west-1"}]
    assert chart.container(docs)["image"] == "ghcr.io/ccm-lb/ccm-lb:9.9.9"


def test_a_cloud_config_becomes_a_configmap_mounted_read_only_and_passed_to_the_controller(
    helm: Path,
) -> None:
    docs = chart.render(helm, "--values", str(CHART / "ci" / "daemonset-values.yaml"))
    configmap = chart.one(docs, "ConfigMap")
    assert configmap["data"]["cloud.conf"].startswith("[global]\nproject-id = ci-project\n")
    path = chart.flag(chart.args_of(docs), "cloud-config")
    assert path == "/etc/ccm/cloud.conf"
    pod = chart.workload(docs)["spec"]["template"]
    mount = next(m for m in chart.container(docs)["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert pod["metadata"]["annotations"]["checksum/cloud-config"]  # a new config rolls the pods


def test_the_daemonset_runs_on_control_plane_nodes_and_has_no_pdb(helm: Path) -> None:
    docs = chart.render(helm, "--values", str(CHART / "ci" / "daemonset-values.yaml"))
    daemonset = chart.one(docs, "DaemonSet")
    assert not chart.of_kind(docs, "Deployment") and not chart.of_kind(docs, "PodDisruptionBudget")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    tolerated = {(t["key"], t.get("value"), t["effect"]) for t in pod["tolerations"]}
    assert tolerated >= {
        ("node-role.kubernetes.io/control-plane", None, "NoSchedule"),
        ("node-role.kubernetes.io/master", None, "NoSchedule"),
        ("node.cloudprovider.kubernetes.io/uninitialized", "true", "NoSchedule"),
    }
    assert "hostNetwork" not in pod and "affinity" not in pod
    assert chart.flag(chart.args_of(docs), "leader-elect") == "true"

    docs = chart.render(
        helm, "--values", str(CHART / "ci" / "daemonset-values.yaml"), "--set", "daemonSet.hostNetwork=true"
    )
    pod = chart.one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"


def test_the_cluster_role_grants_exactly_what_the_service_controller_needs(helm: Path) -> None:
    docs = chart.render(helm)
    rules = chart.one(docs, "ClusterRole")["rules"]

    def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (group, resource, verb)
            for rule in rules
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    assert all("resourceNames" not in r and "nonResourceURLs" not in r for r in rules)
    assert grants(rules) == {
        *(("", "services", v) for v in ("get", "list", "watch", "patch", "update")),
        *(("", "services/status", v) for v in ("patch", "update")),
        *(("", "nodes", v) for v in ("get", "list", "watch")),
        *((g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch", "update")),
    }
    binding = chart.one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == chart.one(docs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ccm-lb", "namespace": "kube-system"}]


def test_the_leader_election_role_is_limited_to_the_lease_the_controller_uses(helm: Path) -> None:
    docs = chart.render(helm, "--set", "leaderElection.leaseName=my-lease", namespace="lb-system")
    role = chart.one(docs, "Role")
    args = chart.args_of(docs)
    assert chart.flag(args, "leader-elect-resource-name") == "my-lease"
    assert role["metadata"]["namespace"] == chart.flag(args, "leader-elect-resource-namespace") == "lb-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["my-lease"],
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["my-lease-state"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = chart.one(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"][0]["name"] == chart.one(docs, "ServiceAccount")["metadata"]["name"]


def test_the_service_account_carries_the_cloud_identity_annotations(helm: Path) -> None:
    irsa = "arn:aws:iam::111122223333:role/ccm-lb"
    docs = chart.render(
        helm, "--set-string", f"serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn={irsa}"
    )
    assert chart.one(docs, "ServiceAccount")["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": irsa
    }
    gsa = "ccm-lb@my-project.iam.gserviceaccount.com"
    docs = chart.render(
        helm,
        "--values",
        str(CHART / "ci" / "daemonset-values.yaml"),
        "--set-string",
        f"serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account={gsa}",
    )
    assert chart.one(docs, "ServiceAccount")["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": gsa
    }


def test_the_service_monitor_scrapes_metrics_over_https_only_when_enabled(helm: Path) -> None:
    assert not chart.of_kind(chart.render(helm), "ServiceMonitor")
    docs = chart.render(helm, "--values", str(CHART / "ci" / "servicemonitor-values.yaml"))
    monitor = chart.one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "https",
            "scheme": "https",
            "path": "/metrics",
            "interval": "30s",
            "scrapeTimeout": "10s",
            "tlsConfig": {"insecureSkipVerify": True},
        }
    ]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= chart.one(docs, "Service")["metadata"]["labels"].items()
    )


def test_the_install_notes_say_how_to_find_the_leader_the_logs_and_try_a_service(
    helm: Path, control_plane: ControlPlane
) -> None:
    result = chart.run(
        [
            helm,
            "install",
            "ccm-lb",
            CHART,
            "--namespace",
            "kube-system",
            "--dry-run=client",
            "--kubeconfig",
            control_plane.kubeconfig,
        ]
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n kube-system get lease {LEASE}" in notes
    assert "kubectl -n kube-system logs deployment/ccm-lb" in notes
    assert "--type=LoadBalancer" in notes
