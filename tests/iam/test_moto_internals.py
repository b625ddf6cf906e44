"""The moto internals IAM enforcement patches: pinned in pyproject.toml, and checked before patching."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.iam import moto_internals
from tests.iam.moto_internals import TESTED, ActionAuthenticatorMixin, MotoInternalsMoved, require

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_test_extra_pins_moto_to_the_range_the_patches_are_tested_with() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    (moto,) = [d for d in project["optional-dependencies"]["test"] if d.startswith("moto")]
    assert moto == f"moto[server]{TESTED}"


def test_the_installed_moto_has_every_internal_the_patches_use() -> None:
    require()


def test_a_moto_whose_authorization_hook_changed_fails_with_one_message_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def changed(self: Any, iam_request_cls: type, resource: str = "*", *, partition: str = "") -> None:
        del self, iam_request_cls, resource, partition

    monkeypatch.setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", changed)

    with pytest.raises(MotoInternalsMoved) as moved:
        require()

    message = str(moved.value)
    assert message.startswith(f"moto {moto_internals.MOTO_VERSION}: ")
    assert "_authenticate_and_authorize_action(self, iam_request_cls, resource)" in message
    assert f"moto{TESTED} (the pin in pyproject.toml)" in message


def test_a_moto_without_a_module_the_patches_import_fails_at_import_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "moto.core.authorization", None)  # importing it now fails
    monkeypatch.delitem(sys.modules, moto_internals.__name__)

    with pytest.raises(RuntimeError, match=r"cannot import moto\.core\.authorization") as moved:
        importlib.import_module(moto_internals.__name__)

    assert type(moved.value).__name__ == "MotoInternalsMoved"  # the class of the module's second import
