#!/usr/bin/env python3
"""Write the software bill of materials of an image from its root file system (hack/build-image).

What a platform team's scanner or auditor asks of an image: every Python distribution in the virtualenv and
every installed Debian package, with versions, package URLs and (for Python) licenses, as CycloneDX 1.5
JSON. It is read from the files themselves (the virtualenv's ``*.dist-info`` and dpkg's status file), not
from what the build meant to install, so it cannot disagree with the image. Standard library only: it runs
on the build host, outside the image.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

Component = dict[str, Any]


def _purl_version(version: str) -> str:
    return quote(version, safe=".-_~:")


def python_components(*, root: Path, venv: str) -> list[Component]:
    """The distributions installed in the virtualenv ``venv`` (an absolute path inside ``root``)."""
    site = sorted((root / venv.lstrip("/")).glob("lib/python3*/site-packages"))
    if len(site) != 1:
        raise SystemExit(f"sbom: expected one site-packages under {venv}, found {[str(s) for s in site]}")
    found: list[Component] = []
    for dist in metadata.distributions(path=[str(site[0])]):
        name = dist.metadata["Name"]
        component: Component = {
            "type": "library",
            "name": name,
            "version": dist.version,
            "purl": f"pkg:pypi/{name.lower().replace('_', '-')}@{_purl_version(dist.version)}",
        }
        expression = (dist.metadata.get_all("License-Expression") or [""])[0]
        licence = (dist.metadata.get_all("License") or [""])[0]
        if expression:
            component["licenses"] = [{"expression": expression}]
        elif licence and len(licence) <= 80 and "\n" not in licence:
            component["licenses"] = [{"license": {"name": licence}}]
        found.append(component)
    return sorted(found, key=lambda c: str(c["name"]).lower())


def _paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of a deb822 file (dpkg's status), continuation lines dropped."""
    result: list[dict[str, str]] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            result.append(fields)
    return result


def os_release(root: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in (root / "etc/os-release").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip('"')
    return fields


def debian_components(*, root: Path) -> list[Component]:
    """The packages dpkg has installed in ``root``."""
    release = os_release(root)
    distro = f"{release.get('ID', 'debian')}-{release.get('VERSION_ID', '')}"
    found: list[Component] = []
    for fields in _paragraphs((root / "var/lib/dpkg/status").read_text()):
        if fields.get("Status") != "install ok installed":
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture", "all")
        component: Component = {
            "type": "library",
            "name": name,
            "version": version,
            "purl": f"pkg:deb/debian/{name}@{_purl_version(version)}?arch={arch}&distro={distro}",
        }
        if "Source" in fields:
            component["properties"] = [{"name": "debian:source", "value": fields["Source"].split()[0]}]
        found.append(component)
    return sorted(found, key=lambda c: str(c["name"]))


def bom(*, root: Path, venv: str, name: str, version: str, revision: str) -> dict[str, Any]:
    release = os_release(root)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "ccm-lb hack/image/sbom.py"}]},
            "component": {
                "type": "container",
                "name": name,
                "version": version,
                "properties": [{"name": "org.opencontainers.image.revision", "value": revision}],
            },
        },
        "components": [
            {
                "type": "operating-system",
                "name": release.get("ID", "debian"),
                "version": release.get("VERSION_ID", ""),
                "description": release.get("PRETTY_NAME", ""),
            },
            *python_components(root=root, venv=venv),
            *debian_components(root=root),
        ],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, required=True, help="the image's root file system")
    parser.add_argument("--venv", required=True, help="the virtualenv's path inside the image")
    parser.add_argument("--name", required=True, help="the image's repository")
    parser.add_argument("--version", required=True, help="the image's tag")
    parser.add_argument("--revision", required=True, help="the git commit it was built from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    document = bom(
        root=args.root, venv=args.venv, name=args.name, version=args.version, revision=args.revision
    )
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
