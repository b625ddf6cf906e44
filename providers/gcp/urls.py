"""The compute v1 URLs by which GCE resources name each other (a backend's group, a rule's network)."""

from __future__ import annotations

from dataclasses import dataclass

from providers.gcp import builder

API = "https://www.googleapis.com/compute/v1"


@dataclass(frozen=True)
class Urls:
    project: str
    region: str
    network_project: str
    network: str
    cluster_id: str
    upstream_cluster_id: str = ""  # the upstream provider's, when its instance groups are the cluster's

    @property
    def instance_group_name(self) -> str:
        return builder.instance_group_name(
            cluster_id=self.cluster_id, upstream_cluster_id=self.upstream_cluster_id
        )

    def regional(self, kind: str, name: str) -> str:
        return f"{API}/projects/{self.project}/regions/{self.region}/{kind}/{name}"

    def instance_group(self, zone: str) -> str:
        return f"{API}/projects/{self.project}/zones/{zone}/instanceGroups/{self.instance_group_name}"

    def instance(self, zone: str, name: str) -> str:
        return f"{API}/projects/{self.project}/zones/{zone}/instances/{name}"

    def network_url(self) -> str:
        return f"{API}/projects/{self.network_project}/global/networks/{self.network}"

    def subnetwork(self, name: str) -> str:
        return f"{API}/projects/{self.network_project}/regions/{self.region}/subnetworks/{name}"
