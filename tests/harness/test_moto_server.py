"""moto runs as an HTTP server that real boto3 reaches through the standard AWS_ENDPOINT_URL."""

from __future__ import annotations

import boto3


def test_boto3_reaches_moto_through_the_standard_endpoint_variable(aws: str) -> None:
    ec2 = boto3.client("ec2")
    assert ec2.meta.endpoint_url == aws
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]
    assert vpc["VpcId"] in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]


def test_each_test_starts_from_an_empty_account(aws: str) -> None:
    elbv2 = boto3.client("elbv2")
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    ec2 = boto3.client("ec2")
    assert all(v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"])
