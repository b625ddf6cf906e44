"""providers.aws.config: the cloud config's [Global] DefaultLoadBalancerType (our own key) and the
message an unknown key gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.aws import config
from providers.aws.config import AWSConfig
from providers.common.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cloud.conf"
    path.write_text(text)
    return str(path)


def test_without_the_key_services_without_a_type_get_nlbs(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "[Global]\nRegion = us-east-1\n")).default_load_balancer_type == "nlb"
    assert AWSConfig().default_load_balancer_type == "nlb"
    assert config.load(None).default_load_balancer_type == "nlb"


@pytest.mark.parametrize(
    ("value", "expected"), [("classic", "classic"), ("Classic", "classic"), (" NLB ", "nlb"), ("nlb", "nlb")]
)
def test_the_default_load_balancer_type_is_read_in_any_case(
    tmp_path: Path, value: str, expected: str
) -> None:
    loaded = config.load(write(tmp_path, f"[Global]\nDefaultLoadBalancerType = {value}\n"))

    assert loaded.default_load_balancer_type == expected


@pytest.mark.parametrize("value", ["clb", "elb", "alb", "external", ""])
def test_another_default_load_balancer_type_names_the_key_the_value_and_what_is_accepted(
    tmp_path: Path, value: str
) -> None:
    path = write(tmp_path, f"[Global]\nDefaultLoadBalancerType = {value}\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    message = str(caught.value)
    assert path in message
    assert f"defaultloadbalancertype = {value!r}" in message.lower()  # configparser lower-cases keys
    assert "accepted: nlb or classic" in message


def test_an_unknown_key_lists_default_load_balancer_type_among_the_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, "[Global]\nDefaultLoadBalancerKind = classic\n"))

    assert "DefaultLoadBalancerType" in str(caught.value)
    assert "NLBSecurityGroupMode" in str(caught.value)
