"""Hypothesis strategies and values shared by the property tests and the generated end-to-end batch."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from providers.aws import annotations as aws_ann

# Values that are valid for some annotation, invalid for others, or odd: each annotation gets them all.
ODD_VALUES = (
    "",
    " ",
    "true",
    "false",
    "True",
    "yes",
    "0",
    "5",
    "10",
    "60",
    "350",
    "6001",
    "-1",
    "300",
    "internal",
    "internet-facing",
    "Internal",
    "External",
    "Premium",
    "Standard",
    "enabled",
    "*",
    "TCP",
    "HTTP",
    "HTTPS",
    "traffic-port",
    "/healthz",
    "/santé",
    "200-399",
    "200,202",
    "600",
    "a=b,c=d",
    "k=v,k=w",
    "=v",
    "aws:x=1",
    "deletion_protection.enabled=true",
    "load_balancing.cross_zone.enabled=false,access_logs.s3.enabled=true",
    "access_logs.s3.enabled=true,access_logs.s3.bucket=my-logs",
    "deregistration_delay.timeout_seconds=30,preserve_client_ip.enabled=false",
    "stickiness.enabled=true,stickiness.type=source_ip",
    "subnet-0a0public,subnet-0b0public",
    "public-a",
    "eipalloc-0123456789abcdef0",
    "eipalloc-01,eipalloc-02",
    "10.0.0.10,10.0.16.10",
    "sg-0123456789abcdef0",
    "10.0.0.0/8",
    "10.0.0.0/33",
    "2001:db8::/32",
    "arn:aws:acm:us-east-1:123456789012:certificate/0f6d1c5e-2a3b-4c5d-8e9f-0a1b2c3d4e5f",
    "arn:aws:iam::123456789012:server-certificate/x",
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ssl",
    "nlb",
    "external",
    "classic",
    "pool=web",
    "ünïcødé",
    "x" * 300,
)


AWS_KEYS = (*(a.key for a in aws_ann.REGISTRY), aws_ann.PREFIX + "nlb-target-type")


def mostly(common: Any, *rare: Any) -> st.SearchStrategy[Any]:
    """``common`` about four times in five, else one of ``rare``: most Services valid, some not."""
    return st.sampled_from((common, common, common, common, *rare))
