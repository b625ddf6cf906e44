"""The soak's AWS fault proxy: the faults reach botocore as AWS's own, and creates are AWS-idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.soak.awsproxy import FaultProxy, Faults
from tests.support.aws import Network, seed_network


@pytest.fixture
def proxy(aws: str) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(upstream=aws, seed=1)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.stop()


def elbv2(proxy: FaultProxy, attempts: int = 1) -> Any:
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": attempts})
    return boto3.client("elbv2", endpoint_url=proxy.url, config=config)


def create(client: Any, network: Network, scheme: str = "internet-facing") -> str:
    return str(
        client.create_load_balancer(
            Name="k8s-soak-web", Type="network", Scheme=scheme, Subnets=sorted(network.subnets.values())
        )["LoadBalancers"][0]["LoadBalancerArn"]
    )


def test_a_load_balancer_created_twice_with_the_same_settings_is_one_as_on_aws(proxy: FaultProxy) -> None:
    network = seed_network()
    client = elbv2(proxy)
    assert create(client, network) == create(client, network)
    assert len(boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]) == 1
    with pytest.raises(ClientError) as err:
        create(client, network, scheme="internal")
    assert err.value.response["Error"]["Code"] == "DuplicateLoadBalancerName"


def test_a_second_listener_on_a_port_is_a_duplicate_listener(proxy: FaultProxy) -> None:
    network = seed_network()
    client = elbv2(proxy)
    arn = create(client, network)
    group = client.create_target_group(Name="tg", Protocol="TCP", Port=30080, VpcId=network.vpc_id)
    action = [{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}]
    client.create_listener(LoadBalancerArn=arn, Protocol="TCP", Port=80, DefaultActions=action)
    with pytest.raises(ClientError) as err:
        client.create_listener(LoadBalancerArn=arn, Protocol="TCP", Port=80, DefaultActions=action)
    assert err.value.response["Error"]["Code"] == "DuplicateListener"


@pytest.mark.parametrize(
    ("faults", "code"),
    [(Faults(throttle=1.0), "Throttling"), (Faults(server_error=1.0), "ServiceUnavailable")],
)
def test_throttling_and_5xx_arrive_as_the_api_s_own_errors(
    proxy: FaultProxy, faults: Faults, code: str
) -> None:
    proxy.set(faults)
    with pytest.raises(ClientError) as err:
        elbv2(proxy).describe_load_balancers()
    assert err.value.response["Error"]["Code"] == code
    proxy.clear()
    assert elbv2(proxy).describe_load_balancers()["LoadBalancers"] == []


def test_a_create_whose_answers_are_lost_makes_one_load_balancer_however_often_it_is_retried(
    proxy: FaultProxy,
) -> None:
    network = seed_network()
    proxy.set(Faults(reset_after=1.0))
    with pytest.raises(ConnectionClosedError):
        create(elbv2(proxy, attempts=3), network)  # done by moto, never heard, retried
    assert proxy.injected["reset-after"] >= 3
    proxy.clear()
    arn = create(elbv2(proxy), network)  # the next sync finds it
    assert [
        lb["LoadBalancerArn"] for lb in boto3.client("elbv2").describe_load_balancers()["LoadBalancers"]
    ] == [arn]
