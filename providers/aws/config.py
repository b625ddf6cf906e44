"""The AWS provider's ``--cloud-config``: upstream's gcfg INI ``[Global]`` keys, where they apply.

Only what this provider uses is read; an unknown key in ``[Global]`` is reported (it is most often
a typo) rather than silently ignored. Credentials never come from here: boto3's standard chain
(environment, IRSA web identity, instance profile) and ``AWS_ENDPOINT_URL*`` apply.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass

from providers.common.errors import ConfigError

# Keys of upstream's [Global] section that we accept and ignore (they concern other controllers).
_IGNORED = {
    "zone",
    "kubernetesclustertag",
    "disablesecuritygroupingress",
    "elbsecuritygroup",
    "roleaarn",
    "rolearn",
    "sourcearn",
    "disablestrictzonecheck",
    "nodeipfamilies",
    "routetableid",
    "tagnameprefix",
}


# [Global] DefaultLoadBalancerType: what a Service without aws-load-balancer-type gets
LOAD_BALANCER_TYPES = ("nlb", "classic")


@dataclass(frozen=True)
class AWSConfig:
    region: str = ""  # empty: boto3's own resolution (AWS_REGION, profile, IMDS)
    vpc: str = ""  # empty: the VPC of the subnets tagged for the cluster
    subnet_id: str = ""  # a subnet in the VPC, as upstream (used to find the VPC when VPC is empty)
    cluster_id: str = ""  # KubernetesClusterID: overrides --cluster-name in tags
    nlb_security_group_mode: str = "Managed"  # we always give NLBs security groups
    health_probe_mode: str = ""  # "" or "Shared": kube-proxy's /healthz for eTP=Cluster
    shared_probe_port: int = 10256
    shared_probe_path: str = "/healthz"
    node_port_range: tuple[int, int] = (30000, 32767)
    disable_security_group_ingress: bool = False  # do not add node security-group rules
    # what a Service without aws-load-balancer-type gets: "nlb" (ours) or "classic" (upstream's default)
    default_load_balancer_type: str = "nlb"


def _bool(path: str, key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{path}: [Global] {key} = {value!r}: accepted: true or false")


def load(path: str | None) -> AWSConfig:
    """Read ``path`` (None or empty: all defaults)."""
    if not path:
        return AWSConfig()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"{path}: cannot read the cloud config: {exc}") from exc
    section = next((s for s in parser.sections() if s.lower() == "global"), None)
    if section is None:
        return AWSConfig()
    values: dict[str, object] = {}
    for key, value in parser.items(section):
        low = key.lower()
        if low == "region":
            values["region"] = value.strip()
        elif low == "vpc":
            values["vpc"] = value.strip()
        elif low == "subnetid":
            values["subnet_id"] = value.strip()
        elif low == "kubernetesclusterid":
            values["cluster_id"] = value.strip()
        elif low == "nlbsecuritygroupmode":
            if value.strip() not in ("Managed", ""):
                raise ConfigError(
                    f"{path}: [Global] {key} = {value!r}: accepted: Managed (NLBs always get "
                    "security groups here)"
                )
        elif low == "clusterserviceloadbalancerhealthprobemode":
            if value.strip() not in ("", "Shared", "ServiceNodePort"):
                raise ConfigError(f"{path}: [Global] {key} = {value!r}: accepted: Shared or ServiceNodePort")
            values["health_probe_mode"] = "Shared" if value.strip() == "Shared" else ""
        elif low == "clusterservicesharedloadbalancerhealthprobeport":
            try:
                port = int(value)
            except ValueError:
                port = 0
            if not 1 <= port <= 65535:
                raise ConfigError(f"{path}: [Global] {key} = {value!r}: accepted: a port from 1 to 65535")
            values["shared_probe_port"] = port
        elif low == "clusterservicesharedloadbalancerhealthprobepath":
            if not value.startswith("/"):
                raise ConfigError(f"{path}: [Global] {key} = {value!r}: accepted: a path starting with /")
            values["shared_probe_path"] = value
        elif low == "nodeportrange":
            try:
                lo, hi = (int(v) for v in value.split("-", 1))
            except ValueError:
                lo, hi = 0, -1
            if not 1 <= lo <= hi <= 65535:
                raise ConfigError(f"{path}: [Global] {key} = {value!r}: accepted: FROM-TO, e.g. 30000-32767")
            values["node_port_range"] = (lo, hi)
        elif low == "disablesecuritygroupingress":
            values["disable_security_group_ingress"] = _bool(path, key, value)
        elif low == "defaultloadbalancertype":
            # our own key: upstream always builds a Classic ELB for a Service without the type annotation
            kind = value.strip().lower()
            if kind not in LOAD_BALANCER_TYPES:
                raise ConfigError(
                    f"{path}: [Global] {key} = {value!r}: accepted: nlb or classic (case-insensitive)"
                )
            values["default_load_balancer_type"] = kind
        elif low in _IGNORED:
            continue
        else:
            raise ConfigError(
                f"{path}: [Global] {key}: unknown key; accepted: Region, VPC, SubnetID, "
                "KubernetesClusterID, NLBSecurityGroupMode, "
                "ClusterServiceLoadBalancerHealthProbeMode, "
                "ClusterServiceSharedLoadBalancerHealthProbePort, "
                "ClusterServiceSharedLoadBalancerHealthProbePath, NodePortRange, "
                "DisableSecurityGroupIngress, DefaultLoadBalancerType"
            )
    return AWSConfig(**values)  # type: ignore[arg-type]
