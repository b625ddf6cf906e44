"""The image the chart runs, as ``hack/build-image`` ships it: built once per session, read from the file.

``built_image`` builds it (cheap when the Debian base and the wheels are cached: about a minute) unless
``CCM_IMAGE_ARCHIVE`` names an archive already built. A build that fails is a test failure with the end of
the build's log, never a skip: CI must not pass by not having an image. Everything else here reads the
archive itself (its index, manifest, config and layers) with the standard library, as a loader would.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shlex
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import chart

BUILD = chart.REPO / "hack" / "build-image"
DOCKERFILE = chart.REPO / "Dockerfile"
# A cold build (debootstrap and the wheels from nothing) takes minutes; the tests building it get this long.
BUILD_TIMEOUT = 1800


@dataclass(frozen=True)
class Image:
    """An OCI archive written by hack/build-image and the SBOM next to it."""

    archive: Path
    build_log: str

    @property
    def sbom_path(self) -> Path:
        return self.archive.with_name(self.archive.name.removesuffix(".oci.tar") + ".sbom.cdx.json")

    @cached_property
    def sbom(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.sbom_path.read_text())
        return result

    def read(self, name: str) -> bytes:
        with tarfile.open(self.archive) as tar:
            member = tar.extractfile(name)
            assert member is not None, f"{name} is not a file in {self.archive.name}"
            return member.read()

    def blob(self, digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        return self.read(f"blobs/{algorithm}/{hexdigest}")

    @cached_property
    def index(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.read("index.json"))
        return result

    @cached_property
    def manifest(self) -> dict[str, Any]:
        (descriptor,) = self.index["manifests"]
        result: dict[str, Any] = json.loads(self.blob(descriptor["digest"]))
        return result

    @cached_property
    def config(self) -> dict[str, Any]:
        """The image configuration (``config`` holds User, Env, Entrypoint, Cmd, Labels)."""
        result: dict[str, Any] = json.loads(self.blob(self.manifest["config"]["digest"]))
        return result

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config["config"].get("Labels") or {})

    def files(self, pattern: str) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
        """The members of every layer whose path (without a leading ``./`` or ``/``) matches ``pattern``."""
        wanted = re.compile(pattern)
        for layer in self.manifest["layers"]:
            data = self.blob(layer["digest"])
            if layer["mediaType"].endswith("gzip"):
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar:
                    path = member.name.removeprefix("./").lstrip("/")
                    if wanted.fullmatch(path):
                        content = tar.extractfile(member) if member.isfile() else None
                        yield member, content.read() if content else None


def build() -> Image:
    """Run hack/build-image, or take ``CCM_IMAGE_ARCHIVE``; fail (never skip) when there is no image."""
    given = os.environ.get("CCM_IMAGE_ARCHIVE")
    if given:
        path = Path(given)
        if not path.is_file():
            pytest.fail(
                f"CCM_IMAGE_ARCHIVE={given} is not a file; unset it to build the image", pytrace=False
            )
        return Image(archive=path, build_log="")
    try:
        result = subprocess.run(
            [str(BUILD)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, cwd=chart.REPO
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"hack/build-image did not finish in {BUILD_TIMEOUT} s:\n{stderr}", pytrace=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-40:])
        pytest.fail(f"hack/build-image failed (exit {result.returncode}):\n{tail}", pytrace=False)
    archive = Path(result.stdout.splitlines()[-1])
    assert archive.is_file(), f"hack/build-image printed {archive}, which is not a file"
    return Image(archive=archive, build_log=result.stderr)


BUILT: list[Image] = []  # the session's build, for the terminal summary


@pytest.fixture(scope="session")
def built_image() -> Image:
    image = build()
    BUILT.append(image)
    return image


def summary() -> list[str]:
    """What hack/build-image reported (time, size against the budget, SBOM), for the end of the run."""
    return [line for image in BUILT for line in image.build_log.splitlines() if line.startswith("[image] ")]


def dockerfile_final_stage() -> dict[str, str]:
    """Instruction → its argument text in the Dockerfile's last stage (the last of each instruction)."""
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    found: dict[str, str] = {}
    for line in lines[last_from:]:
        if line and not line.startswith("#"):
            instruction, _, argument = line.partition(" ")
            found[instruction] = argument
    return found


def dockerfile_env() -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(dockerfile_final_stage()["ENV"]))


def script_value(name: str) -> str:
    """A ``NAME=value`` assignment of hack/build-image (its constants), without a trailing comment."""
    match = re.search(rf"^{name}=(\S+)", BUILD.read_text(), flags=re.M)
    assert match, f"hack/build-image assigns no {name}"
    return match.group(1)


def script_array(name: str) -> list[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", BUILD.read_text(), flags=re.M)
    assert match, f"hack/build-image assigns no array {name}"
    return match.group(1).split()
