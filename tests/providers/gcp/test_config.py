"""providers.gcp.config: an upstream gce.conf is read unchanged; mistakes name the file, key and value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from providers.common.errors import ConfigError
from providers.gcp import config
from providers.gcp.config import GCEConfig

GKE_STYLE = """\
# written by the cluster's provisioning
[Global]
project-id = my-project
network-name = prod-vpc
subnetwork-name = nodes
node-tags = gke-prod-1234-node
node-tags = "gke-prod-extra" ; a second tag
node-instance-prefix = gke-prod
multizone = true
regional = true
local-zone = us-central1-a
token-url = nil
api-endpoint = http://127.0.0.1:8089/compute/v1/
alpha-features = Foo
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gce.conf"
    path.write_text(text)
    return str(path)


def test_an_upstream_gce_conf_is_read(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, GKE_STYLE))

    assert loaded == GCEConfig(
        project_id="my-project",
        region="us-central1",
        network_name="prod-vpc",
        network_project_id="my-project",
        subnetwork_name="nodes",
        node_tags=("gke-prod-1234-node", "gke-prod-extra"),
        api_endpoint="http://127.0.0.1:8089",
        token_url="nil",
    )
    assert loaded.anonymous


def test_defaults_are_the_default_network_and_application_default_credentials(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, "[global]\nproject-id = my-project\nregion = europe-west4\n"))

    assert loaded.network_name == "default"
    assert loaded.network_project_id == "my-project"
    assert (loaded.subnetwork_name, loaded.node_tags, loaded.api_endpoint) == ("", (), "")
    assert not loaded.anonymous


def test_the_region_comes_from_local_zone_as_upstream(tmp_path: Path) -> None:
    text = "[global]\nproject-id = my-project\nlocal-zone = northamerica-northeast1-b\n"

    assert config.load(write(tmp_path, text)).region == "northamerica-northeast1"


def test_region_and_a_matching_local_zone_agree(tmp_path: Path) -> None:
    text = "[global]\nproject-id = my-project\nregion = us-east1\nlocal-zone = us-east1-c\n"

    assert config.load(write(tmp_path, text)).region == "us-east1"


def test_node_tags_may_be_listed_on_one_line(tmp_path: Path) -> None:
    text = "[global]\nproject-id = my-project\nregion = us-east1\nnode-tags = a-node, b-node c-node\n"

    assert config.load(write(tmp_path, text)).node_tags == ("a-node", "b-node", "c-node")


def test_a_shared_vpc_network_project_is_kept(tmp_path: Path) -> None:
    text = "[global]\nproject-id = svc-project\nregion = us-east1\nnetwork-project-id = host-project\n"

    loaded = config.load(write(tmp_path, text))

    assert (loaded.project_id, loaded.network_project_id) == ("svc-project", "host-project")


def test_network_and_subnetwork_urls_are_accepted_as_upstream(tmp_path: Path) -> None:
    text = (
        "[global]\nproject-id = svc-project\nregion = us-east1\n"
        "network-name = https://www.googleapis.com/compute/v1/projects/host-project/global/networks/vpc\n"
        "subnetwork-name = projects/host-project/regions/us-east1/subnetworks/nodes\n"
    )

    loaded = config.load(write(tmp_path, text))

    assert (loaded.network_name, loaded.network_project_id, loaded.subnetwork_name) == (
        "vpc",
        "host-project",
        "nodes",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("https://www.googleapis.com/compute/v1/", "https://www.googleapis.com"),
        ("https://compute.example.com/compute/v1/projects/", "https://compute.example.com"),
        ("compute.example.com", "https://compute.example.com"),
    ],
)
def test_api_endpoints_are_reduced_to_what_google_cloud_compute_takes(
    tmp_path: Path, raw: str, expected: str
) -> None:
    text = f"[global]\nproject-id = my-project\nregion = us-east1\napi-endpoint = {raw}\n"

    assert config.load(write(tmp_path, text)).api_endpoint == expected


def test_comments_quotes_and_case_are_handled_like_gcfg(tmp_path: Path) -> None:
    text = (
        "; leading comment\n[GLOBAL] # section comment\n"
        'Project-ID = "my-project" ; trailing\nregion=us-east1 # trailing\n'
    )

    loaded = config.load(write(tmp_path, text))

    assert (loaded.project_id, loaded.region) == ("my-project", "us-east1")


def test_the_cluster_network_carries_a_short_stable_cluster_id(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, GKE_STYLE))

    short = config.cluster_network(config=loaded, cluster_name="prod")
    long = config.cluster_network(config=loaded, cluster_name="my-Very-Long_cluster.name")

    assert short.cluster_id == "prod"
    assert re.fullmatch(r"[0-9a-f]{10}", long.cluster_id)
    assert long == config.cluster_network(config=loaded, cluster_name="my-Very-Long_cluster.name")
    assert (short.project, short.region, short.network, short.network_project) == (
        "my-project",
        "us-central1",
        "prod-vpc",
        "my-project",
    )
    assert (short.subnetwork, short.node_tags) == ("nodes", ("gke-prod-1234-node", "gke-prod-extra"))


def test_similar_cluster_names_get_different_ids() -> None:
    ids = {config.cluster_id(cluster_name=n) for n in ("kubernetes", "kubernetes-1", "kubernetes-2", "Prod")}

    assert len(ids) == 4


# -- errors ---------------------------------------------------------------------------------------------


def test_an_unknown_key_names_file_key_and_the_accepted_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[global]\nproject-id = my-project\nregion = us-east1\nnode-tag = x\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    message = str(caught.value)
    assert path in message
    assert "node-tag:" in message
    assert "node-tags" in message and "project-id" in message
    assert isinstance(caught.value, ValueError)


def test_a_missing_project_id_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[global]\nregion = us-east1\n")

    with pytest.raises(ConfigError, match=r"gce\.conf: \[global\] project-id is missing"):
        config.load(path)


def test_a_missing_region_names_both_ways_to_give_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"region.*local-zone"):
        config.load(write(tmp_path, "[global]\nproject-id = my-project\n"))


def test_no_cloud_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match="--cloud-config"):
        config.load(None)


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.conf"))


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("project-id = My_Project", "project-id", "My_Project"),
        ("local-zone = moon", "local-zone", "moon"),
        ("region = Central", "region", "Central"),
        ("network-name = Bad_Network", "network-name", "Bad_Network"),
        (
            "subnetwork-name = projects/p/regions/europe-west1/subnetworks/s",
            "subnetwork-name",
            "europe-west1",
        ),
        ("node-tags = Bad_Tag", "node-tags", "Bad_Tag"),
        ("api-endpoint = ftp://host/x", "api-endpoint", "ftp://host/x"),
        ("token-url = https://oauth.example.com/token", "token-url", "https://oauth.example.com/token"),
        ("network-project-id = Host!", "network-project-id", "Host!"),
    ],
)
def test_a_bad_value_names_file_key_and_value(tmp_path: Path, line: str, key: str, value: str) -> None:
    base = {"project-id": "project-id = my-project", "region": "region = us-east1"}
    base[line.split(maxsplit=1)[0]] = line
    path = write(tmp_path, "[global]\n" + "\n".join(base.values()) + "\n")

    with pytest.raises(ConfigError) as caught:
        config.load(path)

    message = str(caught.value)
    assert path in message
    assert key in message
    assert value in message
    assert "accepted" in message


def test_a_region_contradicting_local_zone_is_an_error(tmp_path: Path) -> None:
    text = "[global]\nproject-id = my-project\nregion = us-east1\nlocal-zone = europe-west1-b\n"

    with pytest.raises(ConfigError, match="europe-west1"):
        config.load(write(tmp_path, text))


def test_a_single_valued_key_given_twice_is_an_error(tmp_path: Path) -> None:
    text = "[global]\nproject-id = my-project\nproject-id = other-project\nregion = us-east1\n"

    with pytest.raises(ConfigError, match=r"gce\.conf:3: \[global\] project-id is set twice"):
        config.load(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[Globl]\nproject-id = my-project\n", "unknown section"),
        ("project-id = my-project\n", "outside a section"),
        ("[global]\nthis is not ini\n", "cannot parse"),
        ('[global]\nproject-id = "my-project\n', "unterminated quote"),
    ],
)
def test_malformed_files_are_errors_with_the_line(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        config.load(write(tmp_path, text))

    assert re.search(r"gce\.conf:\d+", str(caught.value))


def test_upstream_cluster_id_names_the_instance_groups_and_nothing_else(tmp_path: Path) -> None:
    text = GKE_STYLE + "upstream-cluster-id = 0123456789abcdef\n"
    loaded = config.load(write(tmp_path, text))

    network = config.cluster_network(config=loaded, cluster_name="prod")

    assert (network.upstream_cluster_id, network.cluster_id) == ("0123456789abcdef", "prod")
    assert config.load(write(tmp_path, GKE_STYLE)).upstream_cluster_id == ""


def test_an_upstream_cluster_id_gce_would_not_take_in_a_name_is_refused_naming_it(tmp_path: Path) -> None:
    text = GKE_STYLE + "upstream-cluster-id = Not_An_ID\n"

    with pytest.raises(ConfigError, match=r"upstream-cluster-id = 'Not_An_ID': accepted: the uid of"):
        config.load(write(tmp_path, text))
