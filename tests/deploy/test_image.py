"""The Dockerfile and the chart agree: the image is not built here (no container engine), so what the
chart relies on is checked on the file: the user it runs as, the command it calls, the packages it holds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.deploy import chart

DOCKERFILE = chart.REPO / "Dockerfile"


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
    scripts = tomllib.loads((chart.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command in scripts
    env = next(line for line in _final_stage() if line.startswith("ENV "))
    assert re.search(r"PATH=/opt/ccm/bin:", env), env
    assert any("COPY --from=build /opt/ccm /opt/ccm" in line for line in _final_stage())


def test_the_image_copies_every_package_the_project_ships() -> None:
    pyproject = tomllib.loads((chart.REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), flags=re.M))
    assert copied == packages, f"Dockerfile copies {sorted(copied)}, pyproject ships {sorted(packages)}"
