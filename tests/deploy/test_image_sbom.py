"""The image's software bill of materials (next to the archive) against pyproject.toml and the image itself.

Every runtime dependency is listed with the version the image holds, which satisfies pyproject's range; the
Python packages are exactly the runtime closure of the project (no pip, no test tools, no sandbox extra);
the Debian packages are listed too, and hold no compiler.
"""

from __future__ import annotations

import re
import tomllib
from email.parser import HeaderParser

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy import chart
from tests.deploy.image import BUILD_TIMEOUT, Image

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 120)

PROJECT = tomllib.loads((chart.REPO / "pyproject.toml").read_text())["project"]


def _components(image: Image, purl_type: str) -> dict[str, str]:
    """Canonical name → version, for the SBOM's components of one package type (``pypi``, ``deb``)."""
    found: dict[str, str] = {}
    for component in image.sbom["components"]:
        if component.get("purl", "").startswith(f"pkg:{purl_type}/"):
            name = component["name"]
            found[canonicalize_name(name) if purl_type == "pypi" else name] = component["version"]
    return found


def _image_requirements(image: Image) -> tuple[str, dict[str, list[Requirement]]]:
    """The virtualenv's Python version, and each distribution in it → its Requires-Dist, from the image."""
    python = ""
    result: dict[str, list[Requirement]] = {}
    for member, data in image.files(r"opt/ccm/lib/python3[.\d]*/site-packages/[^/]+\.dist-info/METADATA"):
        assert data is not None
        python = member.name.split("/lib/python", 1)[1].split("/", 1)[0]
        metadata = HeaderParser().parsestr(data.decode())
        result[canonicalize_name(metadata["Name"])] = [
            Requirement(r) for r in metadata.get_all("Requires-Dist") or []
        ]
    return python, result


def _closure(requirements: dict[str, list[Requirement]], python: str) -> set[str]:
    """The distributions ccm-lb needs at run time: Requires-Dist, with the extras each one asks for."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment |= {"python_version": python, "python_full_version": f"{python}.0"}
    seen: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(PROJECT["name"]), "")]  # (distribution, extra or "" for its base requirements)
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for requirement in requirements.get(name, []):
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": extra}):
                dependency = canonicalize_name(requirement.name)
                todo += [(dependency, ""), *((dependency, e) for e in requirement.extras)]
    return {name for name, _ in seen}


def test_the_sbom_lists_every_runtime_dependency_at_a_version_pyproject_accepts(built_image: Image) -> None:
    python = _components(built_image, "pypi")
    for spec in PROJECT["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in python, f"{requirement.name} (a runtime dependency) is not in the SBOM"
        assert Version(python[name]) in requirement.specifier, (
            name,
            python[name],
            str(requirement.specifier),
        )
    assert python[canonicalize_name(PROJECT["name"])] == PROJECT["version"]


def test_the_images_python_packages_are_exactly_the_runtime_closure_of_the_project(
    built_image: Image,
) -> None:
    python = _components(built_image, "pypi")
    version, requirements = _image_requirements(built_image)
    assert set(requirements) == set(python), "the SBOM and the image's virtualenv disagree"
    closure = _closure(requirements, version)
    assert set(python) == closure, (
        f"not needed at run time: {sorted(set(python) - closure)}; missing: {sorted(closure - set(python))}"
    )
    for tool in ("pip", "setuptools", "wheel", "pytest", "moto", "mypy", "ruff"):
        assert tool not in python


def test_the_sbom_lists_the_debian_packages_and_no_compiler(built_image: Image) -> None:
    debian = _components(built_image, "deb")
    for package in ("python3", "python3.11", "libc6", "ca-certificates", "libssl3"):
        assert package in debian, f"{package} is not in the SBOM's Debian packages"
    compilers = [  # gcc-12-base, libgcc-s1's documentation, is no compiler
        p for p in debian if re.fullmatch(r"(gcc|g\+\+|cpp)(-\d+)?|clang.*|build-essential|make|.*-dev", p)
    ]
    assert compilers == []
    operating_system = next(c for c in built_image.sbom["components"] if c["type"] == "operating-system")
    assert (operating_system["name"], operating_system["version"]) == ("debian", "12")
    metadata = built_image.sbom["metadata"]["component"]
    assert metadata["version"] == built_image.labels["org.opencontainers.image.version"]
    revision = {p["name"]: p["value"] for p in metadata["properties"]}["org.opencontainers.image.revision"]
    assert revision == built_image.labels["org.opencontainers.image.revision"]
