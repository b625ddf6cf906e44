"""Limits, patterns and defaults the builder's modules share (AWS quotas and botocore's rules)."""

from __future__ import annotations

import re
from typing import Final

from providers.aws.model import (
    RESOURCE_TAG,
    SERVICE_NAME_TAG,
    SERVICE_UID_TAG,
    SPEC_HASH_TAG,
)

LISTENER_PREFIX: Final = "listener:"  # + "<port>": the ccm-lb/resource tag of a listener
TARGET_TYPE_INSTANCE: Final = "instance"
MAX_LISTENERS: Final = 50  # NLB quota: listeners per load balancer
MAX_TAGS: Final = 50  # per AWS resource
MAX_NAME: Final = 32  # LB and target-group names
MAX_SG_NAME: Final = 255

ROLE_ELB_TAG: Final = "kubernetes.io/role/elb"
ROLE_INTERNAL_ELB_TAG: Final = "kubernetes.io/role/internal-elb"
CLUSTER_TAG_PREFIX: Final = "kubernetes.io/cluster/"
LEGACY_CLUSTER_TAG: Final = "KubernetesCluster"
NAME_TAG: Final = "Name"
RESERVED_TAG_PREFIXES: Final = ("aws:", CLUSTER_TAG_PREFIX, "ccm-lb/")
RESERVED_TAG_KEYS: Final = frozenset({SERVICE_NAME_TAG, SERVICE_UID_TAG, RESOURCE_TAG, SPEC_HASH_TAG})

SCHEME_INTERNET_FACING: Final = "internet-facing"
SCHEME_INTERNAL: Final = "internal"
TCP_IDLE_TIMEOUT: Final = "tcp.idle_timeout.seconds"  # the NLB TCP listener attribute
SUCCESS_CODE_RANGE: Final = (200, 599)  # botocore elbv2 Matcher.HttpCode: NLB values 200 to 599

CLASSIC_TYPES: Final = frozenset({"classic", "clb", "elb"})
ELSEWHERE_TYPES: Final = frozenset({"external", "nlb-ip"})
INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]+")
CERT_ARN: Final = re.compile(
    r"arn:aws(?:-[a-z]+)*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+"
    r"|arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:server-certificate/[\w+=,.@/-]+"
)
SSL_POLICY: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
SG_ID: Final = re.compile(r"sg-[0-9a-f]+")
EIP_ID: Final = re.compile(r"eipalloc-[0-9a-f]+")
BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
TAG_CHARS: Final = re.compile(r"[\w\s.:/=+\-@]*")
MAX_TAG_KEY: Final = 128
MAX_TAG_VALUE: Final = 256

# Health-check defaults: (interval, healthy threshold, unhealthy threshold); the timeout follows the
# protocol (AWS's own defaults: 10 s for TCP, 6 s for HTTP(S)).
HC_CLUSTER: Final = (10, 3, 3)
HC_LOCAL: Final = (10, 2, 2)
TIMEOUT_TCP: Final = 10
TIMEOUT_HTTP: Final = 6
TRAFFIC_PORT: Final = "traffic-port"
