"""Commands that other packages add to ``ccm``, found through the ``ccm.commands`` entry points.

``ccm sandbox`` needs boto3, moto and a fake Compute Engine API, which the controller core must never
import (import-linter: the core never imports the sandbox). So the sandbox package declares its
command as an entry point (pyproject.toml)::

    [project.entry-points."ccm.commands"]
    sandbox = "sandbox.command:COMMAND"

and ``ccm`` loads it by that name, as it loads cloud providers (``ccm.providers``). The object named
is a :class:`Command`; its module should import little, since ``ccm run`` builds the same parser.
An entry point that cannot be loaded costs its command, with a warning naming it and the error;
it never stops ``ccm run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

ENTRY_POINT_GROUP = "ccm.commands"


@dataclass(frozen=True)
class Command:
    """One ``ccm <name>`` subcommand: its help texts, its flags and what it runs (an exit code)."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Installed:
    """The commands found, by name, and the entry points that could not be loaded (name → why)."""

    commands: dict[str, Command]
    broken: dict[str, str]


def installed() -> Installed:
    """Every command of the ``ccm.commands`` group; one that cannot be loaded is left out, with why."""
    found: dict[str, Command] = {}
    broken: dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value}"
        try:
            command = ep.load()
        except Exception as exc:  # an ImportError, or any error its module raises on import
            broken[ep.name] = f"{where}: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(command, Command):
            broken[ep.name] = f"{where}: a {type(command).__name__}, not a ccm.commands.Command"
            continue
        found[ep.name] = command
    return Installed(commands=found, broken=broken)
