"""End to end against what the real upstream provider builds: the upstream ``aws-cloud-controller-manager``
v1.37.1 serves an NLB Service and two Classic ELB Services on moto, is stopped, and this controller takes
over (``ccm migrate``, then ``ccm run``): the NLB and one Classic ELB in place, the other Classic ELB
replaced because its Service asks for a new address.

This checks our reading of upstream's names, tags and node rules against upstream's own output, not
against our model of it (``tests/support/upstream_aws.py`` is that model; this test is its check).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client

from ccm.cloudprovider import REPLACE_FOREIGN_ANNOTATION
from ccm.envtest.controlplane import ControlPlane
from tests.support import kube
from tests.support.aws import CLUSTER, Network, ccm_flags, ccm_migrate, register_node, seed_network
from tests.support.ccm_run import CcmProcesses
from tests.support.upstream_aws import clb_exists, nlb_exists, upstream_name
from tests.support.upstream_ccm import UpstreamCcm, corrected_moto, upstream_binary

NLB_TYPE = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}


@pytest.fixture
def upstream_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A corrected moto of this test's own; boto3 in the test and ``ccm`` reach it by the environment."""
    upstream_binary()  # fail first, and clearly, when it is not built
    with corrected_moto(tmp_path / "moto.log") as endpoint:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield endpoint


def _node_rule_descriptions(network: Network) -> set[str]:
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    return {r.get("Description", "") for p in group["IpPermissions"] for r in p.get("IpRanges", [])}


def _node_group_sources(network: Network) -> set[str]:
    group = boto3.client("ec2").describe_security_groups(GroupIds=[network.node_sg])["SecurityGroups"][0]
    return {g["GroupId"] for p in group["IpPermissions"] for g in p.get("UserIdGroupPairs", [])}


def _migrate(control_plane: ControlPlane) -> dict[str, Any]:
    done = ccm_migrate(control_plane, "-o", "json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_upstreams_own_nlb_and_classic_elb_are_taken_over_in_place_and_one_replaced_on_request(
    upstream_account: str,
    tmp_path: Path,
    kube_api: client.ApiClient,
    namespace: str,
    control_plane: ControlPlane,
    ccm_run: CcmProcesses,
    node_names: list[str],
) -> None:
    network = seed_network(instances=2)
    # upstream uses only instances tagged with the cluster tag (a real cluster's nodes are)
    boto3.client("ec2").create_tags(
        Resources=[iid for iid, _ in network.instances],
        Tags=[{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}],
    )
    node_names.extend(register_node(kube_api, instance) for instance in network.instances)
    nlb_uid = kube.create_service(kube_api, namespace, "web", annotations=NLB_TYPE)["metadata"]["uid"]
    clb_uid = kube.create_service(kube_api, namespace, "legacy")["metadata"]["uid"]
    kept_uid = kube.create_service(kube_api, namespace, "kept")["metadata"]["uid"]

    # 1. upstream serves both, then is stopped (as when its service controller is disabled)
    upstream = UpstreamCcm(
        control_plane=control_plane, network=network, endpoint=upstream_account, workdir=tmp_path
    )
    upstream.start()
    try:
        web_host = kube.eventually(
            lambda: kube.lb_hostname(kube_api, namespace, "web"), timeout=120, message=upstream.log.name
        )
        legacy_host = kube.eventually(
            lambda: kube.lb_hostname(kube_api, namespace, "legacy"), timeout=120, message=upstream.log.name
        )
        kept_host = kube.eventually(
            lambda: kube.lb_hostname(kube_api, namespace, "kept"), timeout=120, message=upstream.log.name
        )
    finally:
        upstream.stop()
    assert nlb_exists(upstream_name(nlb_uid)) and clb_exists(upstream_name(clb_uid))
    assert f"kubernetes.io/rule/nlb/client={upstream_name(nlb_uid)}" in _node_rule_descriptions(network)
    clb_groups = boto3.client("elb").describe_load_balancers(LoadBalancerNames=[upstream_name(clb_uid)])[
        "LoadBalancerDescriptions"
    ][0]["SecurityGroups"]
    assert set(clb_groups) <= _node_group_sources(network)

    kept_groups = boto3.client("elb").describe_load_balancers(LoadBalancerNames=[upstream_name(kept_uid)])[
        "LoadBalancerDescriptions"
    ][0]["SecurityGroups"]
    assert set(kept_groups) <= _node_group_sources(network)

    # 2. the review: the NLB and the Classic ELBs are taken over in place
    rows = {r["service"]: r for r in _migrate(control_plane)["services"]}
    web, legacy, kept = rows[f"{namespace}/web"], rows[f"{namespace}/legacy"], rows[f"{namespace}/kept"]
    assert (web["action"], web["address"], web["addressChanges"]) == ("adopt", web_host, False), web["reason"]
    assert web["foreign"][0] == {"kind": "NLB", "name": upstream_name(nlb_uid), "detail": web_host}
    assert any(p["kind"] == "target group" for p in web["foreign"])
    assert any(
        upstream_name(nlb_uid) in p["detail"] for p in web["foreign"] if p["kind"] == "security group rule"
    )
    assert (legacy["action"], legacy["foreign"][0]["kind"]) == ("adopt", "Classic ELB")
    assert (kept["action"], kept["address"], kept["addressChanges"]) == ("adopt", kept_host, False), kept
    assert {p["name"] for p in kept["foreign"] if p["kind"] == "security group"} == set(kept_groups)

    # 3. this controller takes over: the NLB and "kept" keep their addresses, "legacy" asked to move
    kube.patch_service(
        kube_api, namespace, "legacy", {"metadata": {"annotations": {REPLACE_FOREIGN_ANNOTATION: "true"}}}
    )
    ccm_run.start(*ccm_flags(control_plane))
    moved = kube.eventually(
        lambda: (h := kube.lb_hostname(kube_api, namespace, "legacy")) != legacy_host and h, timeout=90
    )
    assert moved and not clb_exists(upstream_name(clb_uid))
    assert not set(clb_groups) & _node_group_sources(network)
    assert (
        boto3.client("ec2").describe_security_groups(Filters=[{"Name": "group-id", "Values": clb_groups}])[
            "SecurityGroups"
        ]
        == []
    )
    kube.eventually(lambda: "EnsuredLoadBalancer" in kube.reasons(kube_api, namespace, "web"), timeout=90)
    kube.eventually(lambda: "LoadBalancerTakenOver" in kube.reasons(kube_api, namespace, "kept"), timeout=90)
    assert kube.lb_hostname(kube_api, namespace, "kept") == kept_host and clb_exists(upstream_name(kept_uid))
    # upstream's rule from the Classic ELB's group is gone: the cluster's backend group lets it in
    assert not set(kept_groups) & _node_group_sources(network)
    assert kube.lb_hostname(kube_api, namespace, "web") == web_host and nlb_exists(upstream_name(nlb_uid))
    rules = _node_rule_descriptions(network)
    assert f"kubernetes.io/rule/nlb/client={upstream_name(nlb_uid)}" in rules  # upstream's rule, kept

    # 4. a node added afterwards reaches both load balancers
    added = boto3.client("ec2").run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        SubnetId=network.subnets["us-east-1a"],
        SecurityGroupIds=[network.node_sg],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    node_names.append(register_node(kube_api, (added, "us-east-1a")))
    elbv2 = boto3.client("elbv2")

    def registered_everywhere() -> bool:
        groups = elbv2.describe_target_groups()["TargetGroups"]
        return bool(groups) and all(
            added
            in {
                h["Target"]["Id"]
                for h in elbv2.describe_target_health(TargetGroupArn=g["TargetGroupArn"])[
                    "TargetHealthDescriptions"
                ]
            }
            for g in groups
        )

    kube.eventually(registered_everywhere, timeout=90, message="the new node in every target group")

    def in_the_classic_elb() -> bool:
        described = boto3.client("elb").describe_load_balancers(LoadBalancerNames=[upstream_name(kept_uid)])
        return added in {i["InstanceId"] for i in described["LoadBalancerDescriptions"][0]["Instances"]}

    kube.eventually(in_the_classic_elb, timeout=90, message="the new node in the taken-over Classic ELB")

    # 5. the adopted Service is deleted: its NLB, target groups and upstream's node rules go with it
    kube.delete_service(kube_api, namespace, "web")
    kube.eventually(lambda: kube.get_service(kube_api, namespace, "web") is None, timeout=90)
    assert not nlb_exists(upstream_name(nlb_uid))
    assert not any(d.startswith("kubernetes.io/rule/nlb/") for d in _node_rule_descriptions(network))
    groups = elbv2.describe_target_groups()["TargetGroups"]
    tags = (
        elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in groups])["TagDescriptions"]
        if groups
        else []
    )
    assert all(d["Tags"] and not any(t["Key"] == "ccm-lb/adopted-as" for t in d["Tags"]) for d in tags)
