"""Commands other packages add to ``ccm`` through entry points: ``ccm sandbox``, and broken plugins."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from ccm import cli, commands, flags
from sandbox import command as sandbox_command


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *values: tuple[str, str]) -> None:
    """The ``ccm.commands`` group holds only these (name, value) entry points."""
    points = [metadata.EntryPoint(name, value, commands.ENTRY_POINT_GROUP) for name, value in values]

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        assert group == commands.ENTRY_POINT_GROUP
        return points

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_the_sandbox_is_an_installed_command_of_ccm() -> None:
    found = commands.installed()
    assert found.commands["sandbox"] is sandbox_command.COMMAND
    assert found.broken == {}


def test_building_the_parser_of_ccm_run_loads_no_part_of_the_sandbox_but_its_command() -> None:
    code = (
        "import sys\n"
        "from ccm import commands, flags\n"
        "parser = flags.new_parser(commands=commands.installed().commands)\n"
        "parser.parse_args(['run', '--cloud-provider=fake'])\n"
        "roots = {'sandbox', 'fakegce', 'moto', 'boto3'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in roots))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['sandbox', 'sandbox.command']"


def test_a_command_that_cannot_be_loaded_is_not_offered_and_a_warning_names_its_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_entry_points(monkeypatch, ("broken", "no_such_package.command:COMMAND"))

    with pytest.raises(SystemExit) as exit_:
        cli.main(["broken", "--once"])

    assert exit_.value.code == cli.EXIT_USAGE
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith(
        "ccm: warning: command 'broken' cannot be loaded and is not offered: "
        "entry point broken = no_such_package.command:COMMAND: ModuleNotFoundError:"
    )
    assert error.startswith("ccm: error: argument command: invalid choice: 'broken'")


def test_an_entry_point_that_names_something_else_than_a_command_is_not_offered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(monkeypatch, ("odd", "sandbox.command:add_arguments"))

    found = commands.installed()

    assert found.commands == {}
    assert found.broken == {
        "odd": "entry point odd = sandbox.command:add_arguments: a function, not a ccm.commands.Command"
    }


def test_a_broken_command_does_not_stop_ccm_run_from_parsing_its_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(monkeypatch, ("broken", "no_such_package.command:COMMAND"))

    args = flags.new_parser(commands=commands.installed().commands).parse_args(
        ["run", "--cloud-provider=fake"]
    )

    assert args.command == "run" and args.cloud_provider == "fake"
