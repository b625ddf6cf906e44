"""The GCE client's pure pieces."""

from __future__ import annotations

from providers.gcp.client import operation_project


def test_an_operation_is_polled_in_the_project_its_self_link_names() -> None:
    link = "https://compute.googleapis.com/compute/v1/projects/host-vpc/global/operations/operation-1"
    assert operation_project(link, default="service-project") == "host-vpc"


def test_an_operation_without_a_self_link_is_polled_in_the_providers_project() -> None:
    assert operation_project("", default="service-project") == "service-project"
