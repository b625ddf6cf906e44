"""Replay recorded real Compute Engine exchanges against ``fakegce`` and name every difference.

A recording (``recordings/*.log``, k8s-config-connector's ``_http.log`` format) is a list of exchanges
separated by ``---``: a request line, headers, an optional JSON body, then a status line, headers and
a JSON body. Each exchange is sent to the fake in order; what the recording shows of real GCE is then
compared with the fake's answer where it matters to us:

* the status code, and for errors the error's ``code`` and first ``reason``;
* which fields are present or absent (recursively): labels, fingerprints, the defaults GCE fills in;
* the values of the fields whose meaning we rely on (:data:`VALUE_FIELDS`), such as ``kind``,
  ``status`` of an operation, ``labels``, the scheme and protocol.

Only the resources the GCP provider uses are compared (:data:`IN_SCOPE`). Networks, subnetworks and
instances the recording makes are seeded into the fake instead (the fake models them as given);
other resources (images, templates, …) are skipped. Differences are reported as stable keys such as
``GET regions/*/forwardingRules/*: missing .labelFingerprint`` so that a list of accepted ones can be
kept (``differences.txt``).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakegce import FakeCompute

RECORDINGS = Path(__file__).parent / "recordings"
BASE = re.compile(r"https://(?:compute|www)\.googleapis\.com/compute/v1/")
STATUS_LINE = re.compile(r"^(\d{3}) [A-Za-z]")
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
NORMALISED_IP = "8.8.8.8"  # the recorder writes every IP address as this
NORMALISED_FINGERPRINT = "abcdef0123A="  # and every fingerprint as this

# Path templates (after ``projects/<p>/``) of the resources the provider uses.
IN_SCOPE = re.compile(
    r"^(regions/\*/(addresses|forwardingRules|backendServices|healthChecks|operations)"
    r"|global/(healthChecks|firewalls|operations)"
    r"|zones/\*/(instanceGroups|operations))(/|$)"
)
# instanceGroups methods the provider never calls (the fake does not model them).
NOT_USED = re.compile(r"/(setNamedPorts)$")
# Fields whose value the provider relies on, compared as values (others only for presence).
VALUE_FIELDS = frozenset(
    {
        "kind",
        "status",
        "operationType",
        "labels",
        "loadBalancingScheme",
        "IPProtocol",
        "networkTier",
        "protocol",
        "allowGlobalAccess",
        "sessionAffinity",
        "direction",
        "priority",
        "type",
        "checkIntervalSec",
        "timeoutSec",
        "healthyThreshold",
        "unhealthyThreshold",
        "addressType",
        "purpose",
        "ipVersion",
        "allPorts",
        "ports",
        "reason",
        "code",
    }
)


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str  # without the API base: projects/${projectId}/regions/...?query
    request: Any  # the JSON body, or None
    status: int
    response: Any  # the JSON body, or None


def parse(text: str) -> list[Exchange]:
    """The exchanges of one ``_http.log``."""
    out = []
    for block in text.split("\n---\n"):
        lines = block.strip("\n").split("\n")
        if not lines or " " not in lines[0]:
            continue
        method, url = lines[0].split(" ", 1)
        index = 1
        while index < len(lines) and lines[index].strip():
            index += 1  # request headers
        body: list[str] = []
        index += 1
        while index < len(lines) and not STATUS_LINE.match(lines[index]):
            body.append(lines[index])
            index += 1
        if index >= len(lines):
            continue
        matched = STATUS_LINE.match(lines[index])
        assert matched is not None
        status = int(matched.group(1))
        index += 1
        while index < len(lines) and lines[index].strip():
            index += 1  # response headers
        response = "\n".join(lines[index + 1 :]).strip()
        out.append(
            Exchange(
                method=method,
                url=BASE.sub("", url),
                request=json.loads("\n".join(body)) if "".join(body).strip() else None,
                status=status,
                response=json.loads(response) if response.startswith("{") else None,
            )
        )
    return out


def template(path: str) -> str:
    """``projects/p/regions/r/forwardingRules/x/setLabels`` → ``regions/*/forwardingRules/*/setLabels``."""
    segments = path.split("?", maxsplit=1)[0].split("/")[2:]
    if segments and segments[0] in ("regions", "zones"):
        for position in (1, 3):
            if position < len(segments):
                segments[position] = "*"
    elif segments and segments[0] == "global" and len(segments) > 2:
        segments[2] = "*"
    return "/".join(segments)


@dataclass
class Replay:
    """One recording replayed against one fake; ``differences`` maps a key to the exchanges showing it."""

    fake: FakeCompute
    name: str
    values: dict[str, str] = field(default_factory=dict)
    differences: dict[str, list[str]] = field(default_factory=dict)
    compared: int = 0
    last_operation: str = ""
    operation_in_scope: bool = False

    def value_of(self, placeholder: str) -> str:
        if placeholder == "projectId":
            return self.fake.project
        if placeholder == "operationID":
            return self.last_operation or "no-operation"
        return self.values.setdefault(placeholder, f"{placeholder.lower()}-r{len(self.values)}")

    def substitute(self, data: Any) -> Any:
        """The recording's placeholders and links in the fake's terms."""
        if isinstance(data, str):
            return PLACEHOLDER.sub(lambda m: self.value_of(m.group(1)), data)
        if isinstance(data, list):
            return [self.substitute(item) for item in data]
        if isinstance(data, dict):
            return {k: self.substitute(v) for k, v in data.items()}
        return data

    def run(self, exchanges: list[Exchange]) -> None:
        self.fake.compute.drop_unmodelled = True  # GCE accepts fields the fake does not model
        skip = self.conflated(exchanges)
        for number, exchange in enumerate(exchanges, 1):
            if number - 1 in skip:
                self.operation_in_scope = False
                continue
            self.step(f"{self.name}#{number}", exchange)

    def conflated(self, exchanges: list[Exchange]) -> set[int]:
        """Exchanges of a second resource the recorder gave the same placeholder as a first one.

        The recorder writes every instance of a kind as ``${backendServiceID}`` (say), so a recording
        that makes two backend services shows the second one's 404 read, insert, reads and delete under
        the first one's name. The replay cannot tell them apart; those exchanges are skipped: the
        second insert, the 404 read before it, and the reads and deletes of "that" name after the fake's
        one is gone while the recording's other one still lives.
        """
        skip: set[int] = set()
        made: dict[str, int] = {}  # "collection/name" → how many the recording made
        live: dict[str, int] = {}
        for index, exchange in enumerate(exchanges):
            path = self.substitute(exchange.url).split("?")[0]
            shape = template(path)
            body = exchange.request if isinstance(exchange.request, dict) else {}
            if (
                exchange.method == "POST"
                and exchange.status == 200
                and "name" in body
                and shape.count("/") <= 2
            ):
                key = f"{shape.rsplit('/', 1)[-1]}/{self.substitute(body['name'])}"
                made[key] = made.get(key, 0) + 1
                live[key] = live.get(key, 0) + 1
                if made[key] > 1:
                    skip.add(index)
                    if index and exchanges[index - 1].method == "GET" and exchanges[index - 1].status == 404:
                        skip.add(index - 1)
            elif exchange.method == "DELETE" and exchange.status == 200:
                segments = path.split("/")
                key = f"{segments[-2]}/{segments[-1]}"
                if live.get(key, 0) > 0:
                    live[key] -= 1
                    if made.get(key, 0) > 1 and live[key] < made[key] - 1:
                        pass  # the first delete: the fake's one goes
                    if made.get(key, 0) > 1 and live[key] == 0:
                        skip.add(index)  # the recording's second one: the fake has none left
        # reads of a conflated name between the fake's delete and the recording's last one
        gone: set[str] = set()
        for index, exchange in enumerate(exchanges):
            path = self.substitute(exchange.url).split("?")[0]
            segments = path.split("/")
            key = f"{segments[-2]}/{segments[-1]}" if len(segments) >= 2 else ""
            if made.get(key, 0) <= 1:
                continue
            if exchange.method == "DELETE" and exchange.status == 200 and index not in skip:
                gone.add(key)
            elif exchange.method == "GET" and exchange.status == 200 and key in gone:
                skip.add(index)
        return skip

    def step(self, where: str, exchange: Exchange) -> None:
        path = self.substitute(exchange.url)
        shape = template(path)
        if shape.split("/")[-2:-1] == ["operations"] or shape.endswith("/operations/*"):
            if not self.operation_in_scope:
                return  # the operation of a dependency the fake was seeded with instead
        elif not IN_SCOPE.match(shape) or NOT_USED.search(shape):
            self.operation_in_scope = False
            self.seed(exchange, path)
            return
        body = self.substitute(exchange.request)
        if isinstance(body, dict) and body.get("IPAddress") == NORMALISED_IP:
            del body["IPAddress"]  # the recorder wrote the real address as 8.8.8.8: let the fake pick one
        if isinstance(body, dict):
            self.current_fingerprints(body, path)
        status, answer = self.send(exchange.method, path, body)
        if (
            exchange.method != "GET"
            and isinstance(answer, dict)
            and answer.get("kind") == "compute#operation"
        ):
            self.last_operation = str(answer.get("name", ""))
            self.operation_in_scope = True
        self.compared += 1
        key = f"{exchange.method} {shape}"
        if status != exchange.status:
            self.note(f"{key}: status {exchange.status} answered {status}", where)
            return
        for difference in compare(self.substitute(exchange.response), answer):
            self.note(f"{key}: {difference}", where)

    def current_fingerprints(self, body: dict[str, Any], path: str) -> None:
        """A recorded fingerprint is the recorder's placeholder: send the fake's current one, as a
        client that read the resource first does."""
        names = [k for k in ("fingerprint", "labelFingerprint") if body.get(k) == NORMALISED_FINGERPRINT]
        if not names:
            return
        resource = path.split("?", maxsplit=1)[0]
        if resource.endswith("/setLabels"):
            resource = resource.removesuffix("/setLabels")
        status, current = self.send("GET", resource, None)
        if status == 200 and isinstance(current, dict):
            for name in names:
                body[name] = current.get(name, body[name])

    def note(self, key: str, where: str) -> None:
        self.differences.setdefault(key, []).append(where)

    def send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.fake.url}/compute/v1/{path}",
            data=data if data is not None else (b"" if method in ("POST", "PUT", "PATCH") else None),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, json.loads(text) if text.strip().startswith("{") else None

    def seed(self, exchange: Exchange, path: str) -> None:
        """What the recording makes or reads that the fake only models as given: networks, subnetworks,
        VMs. A network or subnetwork the recording reads (an existing one, such as ``default``) is
        seeded from the recorded answer."""
        shape = template(path)
        if exchange.method == "DELETE" and shape == "zones/*/instances/*" and exchange.status == 200:
            zone, name = path.split("/")[3], path.split("/")[5].split("?", maxsplit=1)[0]
            if name in {i["name"] for i in self.fake.resources("instances")}:  # the recorder gives two
                self.fake.delete_instance(zone, name)  # VMs one placeholder: the second is gone already
            return
        if exchange.status != 200:
            return
        if exchange.method == "GET" and isinstance(exchange.response, dict):
            found = self.substitute(exchange.response)
            if shape == "global/networks/*":
                self._network(found["name"])
            elif shape == "regions/*/subnetworks/*":
                self._subnetwork(found["name"], found["network"], found["ipCidrRange"])
            return
        if exchange.method != "POST" or not isinstance(exchange.request, dict):
            return
        body = self.substitute(exchange.request)
        if shape == "global/networks":
            self._network(body["name"])
        elif shape == "regions/*/subnetworks":
            self._subnetwork(body["name"], body["network"], body["ipCidrRange"])
        elif shape == "zones/*/instances":
            interface = (body.get("networkInterfaces") or [{}])[0]
            network = str(interface.get("network") or "default").rsplit("/", 1)[-1]
            subnetwork = interface.get("subnetwork")
            self._network(network)
            if not subnetwork:  # an auto-mode network's subnetwork in the region, as GCE's default has
                self._subnetwork(network, network, "10.128.0.0/20")
            if body["name"] in {i["name"] for i in self.fake.resources("instances")}:
                return
            self.fake.seed_instance(
                path.split("/")[3],
                body["name"],
                network=network,
                subnetwork=str(subnetwork).rsplit("/", 1)[-1] if subnetwork else None,
            )

    def _network(self, name: str) -> None:
        if name not in {n["name"] for n in self.fake.resources("networks")}:
            self.fake.seed_network(name)

    def _subnetwork(self, name: str, network: str, cidr: str) -> None:
        network = network.rsplit("/", 1)[-1]
        self._network(network)
        if name not in {s["name"] for s in self.fake.resources("subnetworks")}:
            self.fake.seed_subnetwork(name, network, cidr)


def compare(recorded: Any, fake: Any, at: str = "") -> Iterator[str]:
    """Presence of fields (recursively) and the values of :data:`VALUE_FIELDS`."""
    if isinstance(recorded, Mapping) and isinstance(fake, Mapping):
        for key in sorted(set(recorded) | set(fake)):
            where = f"{at}.{key}"
            if key not in fake:
                yield f"missing {where}"
            elif key not in recorded:
                yield f"extra {where}"
            elif key in VALUE_FIELDS and _normal(recorded[key]) != _normal(fake[key]):
                yield f"value {where} {_short(recorded[key])} answered {_short(fake[key])}"
            else:
                yield from compare(recorded[key], fake[key], where)
    elif isinstance(recorded, list) and isinstance(fake, list):
        if len(recorded) != len(fake):
            yield f"length {at or '.'} {len(recorded)} answered {len(fake)}"
        for item_recorded, item_fake in zip(recorded, fake, strict=False):
            yield from compare(item_recorded, item_fake, f"{at}[]")
    elif recorded is None and fake is not None:
        yield f"body {at or '.'} none answered one"
    elif recorded is not None and fake is None:
        yield f"body {at or '.'} one answered none"


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return BASE.sub("", value)
    if isinstance(value, list):
        return sorted((_normal(v) for v in value), key=json.dumps)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _short(value: Any) -> str:
    text = json.dumps(_normal(value), sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def recordings() -> list[Path]:
    return sorted(RECORDINGS.glob("*.log"))


def known_differences(path: Path) -> dict[str, str]:
    """``differences.txt``: each key line takes the reason of the ``# reason:`` line above it."""
    known: dict[str, str] = {}
    reason = ""
    for line in path.read_text().splitlines():
        if line.startswith("# reason:"):
            reason = line.removeprefix("# reason:").strip()
        elif line.strip() and not line.startswith("#"):
            known[line.strip()] = reason
    return known
