"""The GCP provider's ``--cloud-config``: upstream's gce.conf (gcfg INI, section ``[global]``).

Why our own reader: the file is gcfg, not quite Python INI. ``node-tags`` and ``alpha-features`` are
multi-valued (one line per value), values may be double-quoted, and ``;``/``#`` start comments. So a
``gce.conf`` written for the upstream cloud-controller-manager (or by GKE/kOps tooling) is read
unchanged. Unlike upstream (``gcfg.FatalOnly`` ignores unknown keys), an unknown key is an error naming
the file, the key and the accepted keys: it is almost always a typo, and a silently ignored
``node-tags`` typo would mean firewalls that match no node.

Upstream discovers the project, the zone and the network from the metadata server when the file does
not name them; this controller makes no network calls to configure itself, so ``project-id`` and the
region (``region``, our addition, or upstream's ``local-zone`` minus its zone suffix) are required.
Credentials never come from here: Application Default Credentials apply, and ``token-url = nil``
(upstream's spelling for "no token source") means anonymous requests, for a local fake. Any other
``token-url`` (upstream's alternative token source) is refused rather than silently replaced by ADC.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from providers.common.errors import ConfigError
from providers.gcp.model import ClusterNetwork

SECTION: Final = "global"
DEFAULT_NETWORK: Final = "default"
NO_TOKEN: Final = "nil"

# Keys we read (our ``region`` included), and the multi-valued ones among them.
_READ: Final = (
    "project-id",
    "region",
    "local-zone",
    "network-name",
    "network-project-id",
    "subnetwork-name",
    "node-tags",
    "api-endpoint",
    "token-url",
    "upstream-cluster-id",
)
# Keys of upstream's ConfigGlobal that concern other controllers or other parts of upstream's provider:
# accepted and ignored so an upstream gce.conf works unchanged.
_IGNORED: Final = (
    "token-body",  # upstream's AltTokenSource body; only token-url = nil is meaningful here
    "secondary-range-name",
    "stack-type",
    "node-instance-prefix",  # upstream finds node tags through it; we need node-tags
    "regional",
    "multizone",
    "container-api-endpoint",
    "alpha-features",
)
_MULTI: Final = frozenset({"node-tags", "alpha-features"})
ACCEPTED_KEYS: Final = _READ + _IGNORED

_LABEL: Final = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1035, GCE resource names and tags
_PROJECT: Final = re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]|[0-9]{1,20}")
_REGION: Final = re.compile(r"[a-z]+(?:-[a-z]+)*[0-9]+")
_ZONE: Final = re.compile(r"(?P<region>[a-z]+(?:-[a-z]+)*[0-9]+)-[a-z0-9]+")
_NETWORK_URL: Final = re.compile(r"(?:.*/)?projects/(?P<project>[^/]+)/global/networks/(?P<name>[^/]+)")
_SUBNETWORK_URL: Final = re.compile(
    r"(?:.*/)?projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)/subnetworks/(?P<name>[^/]+)"
)
_ENDPOINT: Final = re.compile(r"(?P<scheme>https?://)?(?P<host>[A-Za-z0-9.\-\[\]:]+)(?P<path>/.*)?")
_VARIABLE: Final = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(?P<value>.*))?")
_SECTION_LINE: Final = re.compile(r"\[\s*(?P<name>[A-Za-z][A-Za-z0-9.-]*)\s*(?:\"(?P<sub>[^\"]*)\")?\s*\]")
CLUSTER_ID_LENGTH: Final = 10
# k8s-ig--<id> is a GCE name (≤ 63): the id is what ingress-gce and upstream accept in it.
_UPSTREAM_ID: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,53}[a-z0-9])?")


@dataclass(frozen=True)
class GCEConfig:
    """What the GCP provider reads from gce.conf."""

    project_id: str
    region: str
    network_name: str = DEFAULT_NETWORK
    network_project_id: str = ""  # shared-VPC host project; ``load`` fills in project_id when unset
    subnetwork_name: str = ""  # default subnetwork of internal load balancers
    node_tags: tuple[str, ...] = ()  # target tags of the firewall rules
    api_endpoint: str = ""  # scheme://host[:port] for google-cloud-compute; "" for the public endpoint
    token_url: str = ""  # "" (Application Default Credentials) or "nil" (no auth); nothing else
    # The upstream GCP provider's cluster id (ConfigMap kube-system/ingress-uid, key uid): the cluster's
    # instance groups are then upstream's k8s-ig--<id>, shared with upstream's (and ingress-gce's) LBs.
    upstream_cluster_id: str = ""

    @property
    def anonymous(self) -> bool:
        """``token-url = nil``: send requests without credentials (a local fake compute server)."""
        return self.token_url == NO_TOKEN


# -- the gcfg reader -------------------------------------------------------------------------------


def _unquote(raw: str, *, where: str) -> str:
    """A gcfg value: comments stripped outside quotes, quotes removed, ``\\"``, ``\\\\``, ``\\n``, ``\\t``."""
    out: list[str] = []
    quoted = False
    chars = iter(raw.strip())
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            mapped = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}.get(escaped)
            if mapped is None:
                raise ConfigError(f"{where}: invalid escape \\{escaped} in {raw.strip()!r}")
            out.append(mapped)
        elif char == '"':
            quoted = not quoted
        elif char in ";#" and not quoted:
            break
        else:
            out.append(char)
    if quoted:
        raise ConfigError(f"{where}: unterminated quote in {raw.strip()!r}")
    return "".join(out).strip()


def _read(path: str) -> dict[str, list[str]]:
    """``[global]`` variables of ``path``, keys lower-cased, values in file order."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the cloud config: {exc}") from exc
    values: dict[str, list[str]] = {}
    section: str | None = None
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if stripped.startswith("["):
            match = _SECTION_LINE.fullmatch(_strip_comment(stripped))
            if match is None:
                raise ConfigError(f"{where}: cannot parse the section header {stripped!r}")
            if match["name"].lower() != SECTION or match["sub"] is not None:
                raise ConfigError(
                    f"{where}: unknown section {stripped!r}; accepted: [{SECTION}] (case-insensitive)"
                )
            section = SECTION
            continue
        match = _VARIABLE.fullmatch(stripped)
        if match is None:
            raise ConfigError(f"{where}: cannot parse {stripped!r}; accepted: key = value")
        if section is None:
            raise ConfigError(f"{where}: {match['key']} is outside a section; put it under [{SECTION}]")
        key = match["key"].lower()
        # gcfg: a variable without "=" is a boolean true (only meaningful for ignored keys here)
        value = "true" if match["value"] is None else _unquote(match["value"], where=f"{where}: {key}")
        if key not in ACCEPTED_KEYS:
            raise ConfigError(
                f"{where}: [{SECTION}] {match['key']}: unknown key; accepted: {', '.join(ACCEPTED_KEYS)}"
            )
        if key in values and key not in _MULTI:
            raise ConfigError(f"{where}: [{SECTION}] {key} is set twice; it takes one value")
        values.setdefault(key, []).append(value)
    return values


def _strip_comment(text: str) -> str:
    return re.split(r"\s[;#]", text, maxsplit=1)[0].strip()


# -- values ----------------------------------------------------------------------------------------


def _bad(path: str, key: str, value: str, accepted: str) -> ConfigError:
    return ConfigError(f"{path}: [{SECTION}] {key} = {value!r}: accepted: {accepted}")


def _one(values: dict[str, list[str]], key: str) -> str:
    return values.get(key, [""])[-1]


def _region(path: str, values: dict[str, list[str]]) -> str:
    region, zone = _one(values, "region"), _one(values, "local-zone")
    if region and not _REGION.fullmatch(region):
        raise _bad(path, "region", region, "a GCE region such as us-central1")
    zone_region = ""
    if zone:
        match = _ZONE.fullmatch(zone)
        if match is None:
            raise _bad(path, "local-zone", zone, "a GCE zone such as us-central1-a")
        zone_region = match["region"]
    if region and zone_region and region != zone_region:
        raise ConfigError(
            f"{path}: [{SECTION}] region = {region!r} but local-zone = {zone!r} is in {zone_region}; "
            "accepted: a local-zone inside region, or only one of the two"
        )
    if not (region or zone_region):
        raise ConfigError(
            f"{path}: [{SECTION}] region is missing; accepted: region = <region> (e.g. us-central1) or "
            "upstream's local-zone = <zone> (the region is the zone without its last suffix)"
        )
    return region or zone_region


def _network(path: str, values: dict[str, list[str]], project: str) -> tuple[str, str]:
    """(network name, network project): a name, or a network URL as upstream allows."""
    raw = _one(values, "network-name") or DEFAULT_NETWORK
    explicit = _one(values, "network-project-id")
    if explicit and not _PROJECT.fullmatch(explicit):
        raise _bad(path, "network-project-id", explicit, "a project ID (the shared VPC host project)")
    if "/" in raw:
        match = _NETWORK_URL.fullmatch(raw.rstrip("/"))
        if match is None or not _LABEL.fullmatch(match["name"]):
            raise _bad(path, "network-name", raw, "a network name, or projects/<p>/global/networks/<name>")
        if explicit and explicit != match["project"]:
            raise ConfigError(
                f"{path}: [{SECTION}] network-name = {raw!r} is in project {match['project']} but "
                f"network-project-id = {explicit!r}; accepted: the same project in both, or only one"
            )
        return match["name"], match["project"]
    if not _LABEL.fullmatch(raw):
        raise _bad(path, "network-name", raw, "a network name: lower-case letters, digits and hyphens")
    return raw, explicit or project


def _subnetwork(path: str, values: dict[str, list[str]], region: str) -> str:
    raw = _one(values, "subnetwork-name")
    if not raw:
        return ""
    if "/" in raw:
        match = _SUBNETWORK_URL.fullmatch(raw.rstrip("/"))
        if match is None or not _LABEL.fullmatch(match["name"]):
            raise _bad(
                path,
                "subnetwork-name",
                raw,
                "a subnetwork name, or projects/<p>/regions/<region>/subnetworks/<name>",
            )
        if match["region"] != region:
            raise _bad(path, "subnetwork-name", raw, f"a subnetwork of the cluster's region {region}")
        return match["name"]
    if not _LABEL.fullmatch(raw):
        raise _bad(path, "subnetwork-name", raw, "a subnetwork name: lower-case letters, digits and hyphens")
    return raw


def _node_tags(path: str, values: dict[str, list[str]]) -> tuple[str, ...]:
    """Every ``node-tags`` line; one line may also list several tags separated by commas or spaces."""
    tags: list[str] = []
    for line in values.get("node-tags", []):
        for tag in re.split(r"[\s,]+", line):
            if not tag:
                continue
            if not _LABEL.fullmatch(tag):
                raise _bad(path, "node-tags", tag, "network tags: lower-case letters, digits and hyphens")
            tags.append(tag)
    return tuple(dict.fromkeys(tags))


def _api_endpoint(path: str, values: dict[str, list[str]]) -> str:
    """``scheme://host[:port]``: upstream's values carry the ``/compute/v1/`` base path, which
    google-cloud-compute adds itself, so it is stripped here."""
    raw = _one(values, "api-endpoint")
    if not raw:
        return ""
    match = _ENDPOINT.fullmatch(raw)
    rest = (match["path"] or "").rstrip("/") if match else ""
    for suffix in ("/projects", "/compute/v1", "/compute/beta", "/compute/alpha"):
        rest = rest.removesuffix(suffix)
    if match is None or rest:
        raise _bad(
            path,
            "api-endpoint",
            raw,
            "http(s)://host[:port], optionally followed by /compute/v1/ (e.g. http://127.0.0.1:8080)",
        )
    return f"{match['scheme'] or 'https://'}{match['host']}"


def _upstream_cluster_id(path: str, values: dict[str, list[str]]) -> str:
    raw = _one(values, "upstream-cluster-id")
    if raw and not _UPSTREAM_ID.fullmatch(raw):
        raise _bad(
            path,
            "upstream-cluster-id",
            raw,
            "the uid of ConfigMap kube-system/ingress-uid (lower-case letters, digits, hyphens; ≤ 55)",
        )
    return raw


def load(path: str | None) -> GCEConfig:
    """Read the gce.conf at ``path``; raise :class:`ConfigError` naming file, key and value."""
    if not path:
        raise ConfigError(
            "the GCE provider needs --cloud-config: a gce.conf with [global] project-id and region "
            "(or local-zone); the metadata server is not consulted"
        )
    values = _read(path)
    project = _one(values, "project-id")
    if not project:
        raise ConfigError(f"{path}: [{SECTION}] project-id is missing; accepted: project-id = <project ID>")
    if not _PROJECT.fullmatch(project):
        raise _bad(path, "project-id", project, "a GCE project ID (6-30 lower-case letters, digits, hyphens)")
    region = _region(path, values)
    network, network_project = _network(path, values, project)
    token_url = _one(values, "token-url")
    if token_url not in ("", NO_TOKEN):
        raise _bad(
            path,
            "token-url",
            token_url,
            f"{NO_TOKEN} (no authentication, for a local fake) or unset (Application Default Credentials); "
            "upstream's alternative token source is not supported",
        )
    return GCEConfig(
        project_id=project,
        region=region,
        network_name=network,
        network_project_id=network_project,
        subnetwork_name=_subnetwork(path, values, region),
        node_tags=_node_tags(path, values),
        api_endpoint=_api_endpoint(path, values),
        token_url=token_url,
        upstream_cluster_id=_upstream_cluster_id(path, values),
    )


# -- the builder's view ----------------------------------------------------------------------------


def cluster_id(*, cluster_name: str) -> str:
    """A short, stable id for shared resource names: the cluster name when it is a label of at most
    10 characters (``kubernetes``, ``prod-eu``), otherwise 10 hex digits of its SHA-256."""
    if len(cluster_name) <= CLUSTER_ID_LENGTH and _LABEL.fullmatch(cluster_name):
        return cluster_name
    return hashlib.sha256(cluster_name.encode()).hexdigest()[:CLUSTER_ID_LENGTH]


def cluster_network(*, config: GCEConfig, cluster_name: str) -> ClusterNetwork:
    """The project facts the builder needs, for ``--cluster-name`` ``cluster_name``."""
    return ClusterNetwork(
        project=config.project_id,
        region=config.region,
        network=config.network_name,
        network_project=config.network_project_id or config.project_id,
        subnetwork=config.subnetwork_name,
        node_tags=config.node_tags,
        cluster_id=cluster_id(cluster_name=cluster_name),
        upstream_cluster_id=config.upstream_cluster_id,
    )
