"""A malformed Service is refused before anything is created, with a message that names the fix."""

from __future__ import annotations

import pytest

from ccm.cloudprovider import ImplementedElsewhere, InvalidSpec
from providers.aws.provider import AWSProvider
from tests.support.aws import RequestFactory, service_resources

P = "service.beta.kubernetes.io/aws-load-balancer-"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"

CASES: list[tuple[str, dict[str, str], dict[str, object], str]] = [
    ("non-numeric threshold", {P + "healthcheck-healthy-threshold": "many"}, {}, "many"),
    ("unknown health-check protocol", {P + "healthcheck-protocol": "ICMP"}, {}, "ICMP"),
    (
        "bad CIDR",
        {"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/33"},
        {},
        "10.0.0.0/33",
    ),
    ("EIP count differs from subnets", {P + "eip-allocations": "eipalloc-1"}, {}, "eipalloc-1"),
    ("unknown subnet", {P + "subnets": "subnet-doesnotexist"}, {}, "subnet-doesnotexist"),
    ("cert on a UDP port", {P + "ssl-cert": CERT, P + "ssl-ports": "53"}, {"ports": ((53, "UDP"),)}, "53"),
    ("ssl-ports naming an unknown port", {P + "ssl-cert": CERT, P + "ssl-ports": "https,nope"}, {}, "nope"),
    ("too many listeners", {}, {"ports": tuple((1000 + i, "TCP") for i in range(51))}, "51"),
    ("unknown load balancer type", {P + "type": "alb"}, {}, "alb"),
    ("unknown TG attribute", {P + "target-group-attributes": "bogus.key=1"}, {}, "bogus.key"),
]


@pytest.mark.parametrize(("case", "annotations", "fields", "bad"), CASES, ids=[c[0] for c in CASES])
def test_malformed_service_is_refused_and_nothing_is_created(
    provider: AWSProvider,
    make_request: RequestFactory,
    case: str,
    annotations: dict[str, str],
    fields: dict[str, object],
    bad: str,
) -> None:
    request = make_request("bad", annotations=annotations, **fields)
    with pytest.raises(InvalidSpec) as err:
        provider.ensure_load_balancer(request=request)
    message = str(err.value)
    assert bad in message, message
    assert "accepted" in message, message
    mutations = [op for op in provider.clients.snapshot() if not op.startswith(("Describe", "Get"))]
    assert mutations == [], mutations
    assert service_resources() == []


def test_a_service_for_the_aws_load_balancer_controller_is_implemented_elsewhere(
    provider: AWSProvider,
    make_request: RequestFactory,
) -> None:
    for kind in ("external", "nlb-ip"):
        with pytest.raises(ImplementedElsewhere):
            provider.ensure_load_balancer(request=make_request(annotations={P + "type": kind}))
    assert service_resources() == []
