"""The image: the Dockerfile, hack/build-image and the chart agree, and the archive the script writes is
what it says it is (named and labelled with the version and commit, loadable, within its size budget).

The Dockerfile is for users with Docker; these machines have none, so the image the tests run is built by
hack/build-image (tests/deploy/image.py). The Dockerfile is checked against the chart on the file, and the
built image against the Dockerfile: user, entrypoint, command, environment, the virtualenv's place.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.deploy import chart
from tests.deploy.image import (
    BUILD_TIMEOUT,
    DOCKERFILE,
    Image,
    dockerfile_env,
    dockerfile_final_stage,
    script_array,
    script_value,
)

PYPROJECT = tomllib.loads((chart.REPO / "pyproject.toml").read_text())


def _final_stage() -> list[str]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return [line for line in lines[last_from:] if line and not line.startswith("#")]


def test_the_image_runs_as_the_user_the_chart_requires(helm: Path) -> None:
    user = next(line.split()[1] for line in _final_stage() if line.startswith("USER "))
    security = chart.container(chart.render(helm))["securityContext"]
    assert user == f"{security['runAsUser']}:{security['runAsUser']}"


def test_the_image_puts_the_ccm_command_the_chart_calls_on_path(helm: Path) -> None:
    command = chart.container(chart.render(helm))["command"][0]
    scripts = PYPROJECT["project"]["scripts"]
    assert command in scripts
    env = next(line for line in _final_stage() if line.startswith("ENV "))
    assert re.search(r"PATH=/opt/ccm/bin:", env), env
    assert any("COPY --from=build /opt/ccm /opt/ccm" in line for line in _final_stage())


def test_the_image_copies_every_package_the_project_ships() -> None:
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), flags=re.M))
    assert copied == packages, f"Dockerfile copies {sorted(copied)}, pyproject ships {sorted(packages)}"


def test_the_build_script_installs_from_what_the_dockerfile_copies_into_the_same_virtualenv() -> None:
    text = DOCKERFILE.read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M))
    copied |= set(re.findall(r"^COPY ((?:\S+ )+)\./$", text, flags=re.M)[0].split())
    assert set(script_array("inputs")) == copied
    venv = re.search(r"^COPY --from=build (\S+) \1$", text, flags=re.M)
    assert venv and script_value("VENV") == venv.group(1)


def test_the_build_scripts_repository_is_the_charts_default(helm: Path) -> None:
    image = chart.container(chart.render(helm))["image"]
    assert image == f"{script_value('REPOSITORY')}:{PYPROJECT['project']['version']}"


# The built image. A cold build takes minutes (then about one): the first of these tests pays for it.
built = pytest.mark.timeout(BUILD_TIMEOUT + 120)


@built
def test_the_built_image_has_the_dockerfiles_user_entrypoint_command_and_environment(
    built_image: Image,
) -> None:
    stage = dockerfile_final_stage()
    config = built_image.config["config"]
    assert config["User"] == stage["USER"]
    assert config["Entrypoint"] == json.loads(stage["ENTRYPOINT"])
    assert config["Cmd"] == json.loads(stage["CMD"])
    env = dict(item.split("=", 1) for item in config["Env"])
    for key, value in dockerfile_env().items():
        if value.endswith(":$PATH"):  # prepended to the base image's PATH
            assert env[key].startswith(value.removesuffix("$PATH")), (key, env[key])
        else:
            assert env[key] == value, key


@built
def test_the_built_image_has_the_ccm_command_in_its_virtualenv_and_nothing_of_pip(built_image: Image) -> None:
    venv = script_value("VENV")
    found = {member.name.removeprefix("./"): data for member, data in built_image.files(r"opt/ccm/bin/.*")}
    ccm = found[f"{venv.lstrip('/')}/bin/ccm"]
    assert ccm is not None and ccm.startswith(f"#!{venv}/bin/python".encode()), ccm[:60]
    assert not [name for name in found if re.search(r"/(pip|pip3|easy_install)[\d.]*$", name)], sorted(found)


@built
def test_the_archive_is_named_and_labelled_with_the_version_and_the_commit(built_image: Image) -> None:
    version = PYPROJECT["project"]["version"]
    head = subprocess.run(
        ["git", "-C", str(chart.REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    labels = built_image.labels
    assert labels["org.opencontainers.image.version"] == version
    revision = labels["org.opencontainers.image.revision"]
    assert revision in (head, f"{head}-dirty")
    assert built_image.archive.name == f"ccm-lb-{version}-{head[:12]}{revision[len(head) :]}.oci.tar"
    assert built_image.archive.parent == chart.REPO / "dist" / "image"
    ignored = subprocess.run(
        ["git", "-C", str(chart.REPO), "check-ignore", "-q", str(built_image.archive)], check=False
    )
    assert ignored.returncode == 0, "the archive's folder is not git-ignored"


@built
def test_the_archive_loads_as_an_oci_image_and_as_a_docker_archive_under_the_charts_image_name(
    built_image: Image, helm: Path
) -> None:
    name = chart.container(chart.render(helm))["image"]
    (descriptor,) = built_image.index["manifests"]
    assert descriptor["annotations"]["io.containerd.image.name"] == name
    (docker,) = json.loads(built_image.read("manifest.json"))
    assert docker["RepoTags"] == [name]
    # skopeo reads both, as podman load (the OCI layout) and docker load (manifest.json) do.
    for transport in ("oci-archive", "docker-archive"):
        inspected = subprocess.run(
            ["skopeo", "inspect", "--config", f"{transport}:{built_image.archive}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert inspected.returncode == 0, f"skopeo inspect {transport}: {inspected.stderr}"
        assert json.loads(inspected.stdout)["config"]["User"] == "65532:65532"


@built
def test_the_archive_stays_within_its_size_budget(built_image: Image) -> None:
    budget = int(script_value("BUDGET_MIB"))
    size = built_image.archive.stat().st_size / 2**20
    assert size <= budget, f"the archive is {size:.1f} MiB, over its budget of {budget} MiB"
