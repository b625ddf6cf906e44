"""The cluster's shared backend security group, and its rule on the nodes' security groups.

Every NLB carries the backend group; each node security group gets one rule set that lets the backend
group reach the NodePort range (TCP and UDP) and kube-proxy's health port, so a new load balancer costs
no node rule at all (the aws-load-balancer-controller's backend security group). Which of an instance's
groups gets the rule is upstream's choice: the one tagged with the cluster tag, or its only group.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from providers.aws import model
from providers.aws.client import error_code
from providers.aws.deploy.context import Context
from providers.aws.deploy.discovery import Discovery
from providers.aws.deploy.parts import tag_list

logger = logging.getLogger(__name__)

BACKEND_RULE_DESCRIPTION = "ccm-lb: NodePorts from the load balancers of cluster {cluster}"

PairRule = tuple[str, int, int, str]  # (protocol, from port, to port, source group)


class NodeSecurityGroupDenied(RuntimeError):
    """The backend rule could not be added to a node's security group: an IAM matter the user fixes."""


class BackendSecurityGroup:
    def __init__(self, ctx: Context, discovery: Discovery) -> None:
        self.ctx = ctx
        self.discovery = discovery
        self._group = ""
        self._setup_lock = threading.Lock()  # concurrent workers: one finds or creates the group
        self._nodes_lock = threading.Lock()  # learning new instances and adding node rules: one at a time
        self._node_sgs_done: set[str] = set()
        self._instance_sgs: dict[str, tuple[str, ...]] = {}
        self._sg_permissions: dict[str, list[dict[str, Any]]] = {}  # node SG → its ingress, as last read

    def ensure(self, *, instance_ids: Sequence[str]) -> str:
        """The group's ID; the rule is on the security group of every instance of ``instance_ids``."""
        backend = self._group
        if not backend:
            with self._setup_lock:
                if not self._group:
                    self._group = self._find_or_create()
                backend = self._group
        if self.ctx.config.disable_security_group_ingress:
            return backend
        if self._nodes_to_do(instance_ids):
            # One worker learns new instances and adds the node rules; the others wait for it rather
            # than describe the same instances and send the same rules (seen: 10 DescribeInstances and
            # 9 duplicate AuthorizeSecurityGroupIngress for 20 creates by 10 workers).
            with self._nodes_lock:
                unknown = [i for i in instance_ids if i not in self._instance_sgs]
                if unknown:
                    self._learn_instance_sgs(unknown)
                wanted = {sg for i in instance_ids for sg in self._instance_sgs.get(i, ())}
                for sg in sorted(wanted - self._node_sgs_done):
                    self._authorize_on_node_sg(node_sg=sg, backend_sg=backend)
                    with self.ctx.lock:
                        self._node_sgs_done.add(sg)
        return backend

    def learn(self, *, instance_ids: Sequence[str]) -> None:
        """Learn the node security groups of the instances not known yet (two calls when there are any;
        the full drift check's way to the node groups of adopted NLBs after a restart)."""
        with self._nodes_lock:
            unknown = [i for i in instance_ids if i not in self._instance_sgs]
            if unknown:
                self._learn_instance_sgs(unknown)

    def node_groups(self, instance_ids: Sequence[str]) -> list[str]:
        """The node security groups of ``instance_ids`` that get load-balancer rules (as learned by
        :meth:`ensure`, which must have seen these instances)."""
        with self.ctx.lock:
            return sorted({sg for i in instance_ids for sg in self._instance_sgs.get(i, ())})

    def _nodes_to_do(self, instance_ids: Sequence[str]) -> bool:
        """Whether an instance is new or a node security group lacks our rule (the lock-free check)."""
        with self.ctx.lock:
            if any(i not in self._instance_sgs for i in instance_ids):
                return True
            return any(sg not in self._node_sgs_done for i in instance_ids for sg in self._instance_sgs[i])

    def _find_or_create(self) -> str:
        info = self.discovery.cluster_info()
        ec2 = self.ctx.clients.ec2
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [info.vpc_id]},
                {"Name": f"tag:{self.ctx.cluster_tag}", "Values": [model.OWNED]},
                {"Name": f"tag:{model.RESOURCE_TAG}", "Values": [model.RESOURCE_BACKEND_SG]},
            ]
        )["SecurityGroups"]
        if found:
            return str(sorted(g["GroupId"] for g in found)[0])
        name = backend_group_name(cluster_name=self.ctx.cluster_name, vpc_id=info.vpc_id)
        tags = [(self.ctx.cluster_tag, model.OWNED), (model.RESOURCE_TAG, model.RESOURCE_BACKEND_SG)]
        try:
            created = ec2.create_security_group(
                GroupName=name,
                VpcId=info.vpc_id,
                Description=f"ccm-lb: shared backend security group of cluster {self.ctx.cluster_name}"[:255],
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
            )
            return str(created["GroupId"])
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
        return owned_sg_by_name(self.ctx, name=name, vpc_id=info.vpc_id, shared=True)

    def _learn_instance_sgs(self, instance_ids: Sequence[str]) -> None:
        """Which security group of each instance gets our rule (upstream's choice: the cluster-tagged one)."""
        instances = self.ctx.describe_instances(instance_ids)
        groups_of: dict[str, list[str]] = {
            iid: [g["GroupId"] for g in instance.get("SecurityGroups", [])]
            for iid, instance in instances.items()
        }
        missing = sorted(set(instance_ids) - set(instances))
        if missing:
            logger.warning(
                "instances %s of cluster nodes do not exist (terminated): they get no load balancer rule "
                "and are not registered as targets",
                ", ".join(missing),
            )
        all_groups = sorted({g for gs in groups_of.values() for g in gs})
        tagged: set[str] = set()
        if all_groups:
            for group in self.ctx.clients.ec2.describe_security_groups(GroupIds=all_groups)["SecurityGroups"]:
                keys = {t["Key"] for t in group.get("Tags", [])}
                if self.ctx.cluster_tag in keys:
                    tagged.add(group["GroupId"])
                with self.ctx.lock:  # read once here, so the backend rule is diffed without another call
                    self._sg_permissions[group["GroupId"]] = list(group.get("IpPermissions", []))
        with self.ctx.lock:
            for instance_id in missing:
                self._instance_sgs[instance_id] = ()  # a terminated instance never comes back
            for instance_id, groups in groups_of.items():
                chosen = [g for g in groups if g in tagged] or (groups if len(groups) == 1 else [])
                if not chosen:
                    logger.warning(
                        "instance %s has %d security groups and none is tagged %s: not adding the "
                        "load balancer rule to any",
                        instance_id,
                        len(groups),
                        self.ctx.cluster_tag,
                    )
                self._instance_sgs[instance_id] = tuple(chosen[:1])

    def _authorize_on_node_sg(self, *, node_sg: str, backend_sg: str) -> None:
        """Add only the backend rules the node group lacks (as upstream's ``addSecurityGroupIngress``).

        AuthorizeSecurityGroupIngress fails as a whole (``InvalidPermission.Duplicate``) when one of its
        permissions exists, so a group that has one of the three rules would never get the others if
        the duplicate were taken for success. The group's permissions come from the DescribeSecurityGroups
        that found the node groups; a duplicate (someone added a rule meanwhile) reads the group again.
        """
        ec2 = self.ctx.clients.ec2
        with self.ctx.lock:
            known = self._sg_permissions.get(node_sg)
        wanted = backend_permissions(
            backend_sg=backend_sg,
            cluster_name=self.ctx.cluster_name,
            node_port_range=self.ctx.config.node_port_range,
            probe_port=self.ctx.config.shared_probe_port,
        )
        for attempt in range(2):
            if known is None:
                group = ec2.describe_security_groups(GroupIds=[node_sg])["SecurityGroups"][0]
                known = list(group.get("IpPermissions", []))
            missing = missing_permissions(wanted=wanted, have=known)
            if not missing:
                return
            try:
                ec2.authorize_security_group_ingress(GroupId=node_sg, IpPermissions=missing)
                with self.ctx.lock:
                    self._sg_permissions[node_sg] = [*known, *missing]
                return
            except ClientError as exc:
                code = error_code(exc)
                if code == "InvalidPermission.Duplicate" and attempt == 0:
                    known = None
                    continue
                if code in ("UnauthorizedOperation", "AccessDenied"):
                    raise NodeSecurityGroupDenied(
                        f"not allowed to add the load balancer's rule to node security group {node_sg} "
                        f"({code}). The least-privilege policy (terraform/aws) allows it only on security "
                        f"groups tagged {self.ctx.cluster_tag} (owned or shared): tag the nodes' security "
                        f"group with it, or grant ec2:AuthorizeSecurityGroupIngress on {node_sg}"
                    ) from exc
                raise


def owned_sg_by_name(ctx: Context, *, name: str, vpc_id: str, shared: bool = False) -> str:
    """The ID of the group ``name`` in ``vpc_id`` that this cluster owns (``shared``: of any scope)."""
    groups = ctx.clients.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    )["SecurityGroups"]
    for group in groups:
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        if tags.get(ctx.cluster_tag) == model.OWNED and (shared or ctx.owns(tags)):
            return str(group["GroupId"])
    raise ctx.not_owned(f"security group {name} in {vpc_id}", use="use it")


# -- pure ------------------------------------------------------------------------------------------------


def backend_group_name(*, cluster_name: str, vpc_id: str) -> str:
    digest = hashlib.sha256(f"{cluster_name}/{vpc_id}".encode()).hexdigest()[:10]
    return f"k8s-traffic-{cluster_name[:200]}-{digest}"


def backend_permissions(
    *, backend_sg: str, cluster_name: str, node_port_range: tuple[int, int], probe_port: int
) -> list[dict[str, Any]]:
    """The ingress a node group needs: the NodePort range over TCP and UDP from the backend group, and
    kube-proxy's health port (shared probe mode, UDP target groups) when it is outside that range."""
    lo, hi = node_port_range
    description = BACKEND_RULE_DESCRIPTION.format(cluster=cluster_name)[:255]
    pair = [{"GroupId": backend_sg, "Description": description}]
    perms = [
        {"IpProtocol": proto, "FromPort": lo, "ToPort": hi, "UserIdGroupPairs": pair}
        for proto in ("tcp", "udp")
    ]
    if not lo <= probe_port <= hi:
        perms.append(
            {"IpProtocol": "tcp", "FromPort": probe_port, "ToPort": probe_port, "UserIdGroupPairs": pair}
        )
    return perms


def pair_rules(permissions: Iterable[Mapping[str, Any]]) -> set[PairRule]:
    """Security-group-sourced rules of a group's permissions: (protocol, from, to, source group)."""
    return {
        (str(p.get("IpProtocol")), int(p.get("FromPort", -1)), int(p.get("ToPort", -1)), g["GroupId"])
        for p in permissions
        for g in p.get("UserIdGroupPairs", [])
    }


def missing_permissions(
    *, wanted: Sequence[Mapping[str, Any]], have: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The permissions of ``wanted`` a group with ``have`` lacks (one it has in part is sent whole)."""
    present = pair_rules(have)
    return [dict(p) for p in wanted if not pair_rules([p]) <= present]
