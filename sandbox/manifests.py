"""The user's ``-f`` manifests, read and checked before anything starts.

A typo in a manifest should cost a second, not a control-plane start: every file is read and parsed
up front, and each document must at least look like a Kubernetes object. What only the API server can
judge (a bad port, an unknown field) is reported when the document is created.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEMO_NAME = "demo"
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "PersistentVolume",
        "PriorityClass",
        "StorageClass",
    }
)


class ManifestError(ValueError):
    """A manifest cannot be used; the message names the file, the document and the fix."""


@dataclass(frozen=True)
class Document:
    """One Kubernetes object from a manifest; ``source`` says where it came from (``file#n``)."""

    source: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """The object's namespace, ``default`` when it names none (as ``kubectl apply`` does)."""
        return str(self.body["metadata"].get("namespace") or "default")

    def describe(self) -> str:
        if self.kind in CLUSTER_SCOPED:
            return f"{self.kind} {self.name}"
        return f"{self.kind} {self.namespace}/{self.name}"


def demo_service() -> Document:
    """The demo: a LoadBalancer Service with two TCP ports, as a first-time user would write it."""
    return Document(
        source="demo",
        body={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DEMO_NAME, "namespace": "default", "labels": {"app": DEMO_NAME}},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": DEMO_NAME},
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
                ],
            },
        },
    )


def _check(obj: object, *, source: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestError(
            f"{source}: expected a Kubernetes object (a mapping with apiVersion, kind and metadata), "
            f"got {type(obj).__name__}"
        )
    missing = [key for key in ("apiVersion", "kind") if not isinstance(obj.get(key), str) or not obj[key]]
    if missing:
        raise ManifestError(
            f"{source}: missing {' and '.join(missing)}; every object needs apiVersion and kind"
        )
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ManifestError(f"{source}: {obj['kind']} without metadata.name; give the object a name")
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ManifestError(f"{source}: metadata.namespace must be a non-empty string or absent")
    return obj


def _documents(text: str, *, label: str) -> list[Document]:
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{label}: not valid YAML{where}: {problem}") from None
    docs: list[Document] = []
    for index, obj in enumerate(loaded, start=1):
        if obj is None:  # an empty document, e.g. after a trailing ---
            continue
        source = f"{label}#{index}"
        if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List") and "items" in obj:
            items = obj["items"]
            if not isinstance(items, list):
                raise ManifestError(f"{source}: {obj['kind']}.items must be a list")
            docs.extend(
                Document(source=f"{source}.items[{i}]", body=_check(item, source=f"{source}.items[{i}]"))
                for i, item in enumerate(items)
            )
            continue
        docs.append(Document(source=source, body=_check(obj, source=source)))
    return docs


def load(*, paths: list[str]) -> list[Document]:
    """Every object of every file, in order; ``-`` reads standard input. Raises :class:`ManifestError`."""
    docs: list[Document] = []
    for raw in paths:
        if raw == "-":
            text, label = sys.stdin.read(), "<stdin>"
        else:
            path = Path(raw)
            label = raw
            if path.is_dir():
                raise ManifestError(f"-f {raw}: is a directory; pass the YAML files themselves")
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise ManifestError(f"-f {raw}: no such file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"-f {raw}: cannot be read ({exc})") from None
        found = _documents(text, label=label)
        if not found:
            raise ManifestError(f"-f {raw}: no Kubernetes objects in it")
        docs.extend(found)
    return docs
