"""Which kind of load balancer a Service gets (providers/aws/kind.py): the annotation, else the kind
its status hostname shows (upstream's suffix rule), else the cloud config's default."""

from __future__ import annotations

import pytest

from providers.aws import annotations as ann
from providers.aws.config import AWSConfig
from providers.aws.kind import served_kind, wants_classic

# AWS's DNS names: the Classic ELB API reference's CreateLoadBalancer example, and the AWS CLI's
# create-load-balancer --type network example (aws/aws-cli awscli/examples/elbv2/create-load-balancer.rst)
CLB_HOST = "my-loadbalancer-1234567890.us-west-2.elb.amazonaws.com"
INTERNAL_CLB_HOST = "internal-my-loadbalancer-1234567890.us-west-2.elb.amazonaws.com"
NLB_HOST = "my-network-load-balancer-5d1b75f4f1cee11e.elb.us-west-2.amazonaws.com"
CN_CLB_HOST = "my-loadbalancer-1234567890.cn-north-1.elb.amazonaws.com.cn"
CN_NLB_HOST = "my-nlb-5d1b75f4f1cee11e.elb.cn-north-1.amazonaws.com.cn"


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        ((CLB_HOST,), "classic"),
        ((INTERNAL_CLB_HOST,), "classic"),
        ((CN_CLB_HOST,), "classic"),
        ((NLB_HOST, "10.0.1.5"), "nlb"),
        ((CN_NLB_HOST,), "nlb"),
        (("10.0.1.5",), ""),
        (("example.com",), ""),
        ((), ""),
    ],
)
def test_the_status_hostname_tells_a_classic_elb_from_an_nlb_as_upstream_does(
    addresses: tuple[str, ...], expected: str
) -> None:
    assert served_kind(addresses) == expected


def test_a_served_service_without_the_annotation_keeps_its_kind_whatever_the_default() -> None:
    classic_default = AWSConfig(default_load_balancer_type="classic")

    assert not wants_classic(annotations={}, config=classic_default, status_addresses=(NLB_HOST,))
    assert wants_classic(annotations={}, config=AWSConfig(), status_addresses=(CLB_HOST,))


def test_a_new_service_follows_the_default_and_one_replacing_upstreams_load_balancer_is_new() -> None:
    assert wants_classic(annotations={}, config=AWSConfig(default_load_balancer_type="classic"))
    assert not wants_classic(annotations={}, config=AWSConfig())
    assert not wants_classic(annotations={}, config=AWSConfig(), status_addresses=(CLB_HOST,), replacing=True)


@pytest.mark.parametrize(
    ("value", "expected"), [("classic", True), ("CLB", True), ("elb", True), ("nlb", False)]
)
def test_the_annotation_decides_before_anything_else(value: str, expected: bool) -> None:
    hosts = (NLB_HOST,) if expected else (CLB_HOST,)
    config = AWSConfig(default_load_balancer_type="nlb" if expected else "classic")

    assert wants_classic(annotations={ann.TYPE: value}, config=config, status_addresses=hosts) is expected
