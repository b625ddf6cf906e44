"""pytest plugin: ``ccm_run``, the ``ccm run`` processes of one test, all stopped at its end.

``ccm_run.start(*flags)`` starts one (:class:`tests.support.ccm_run.CcmProcesses`); whatever the test
did, every process is terminated, then killed, and its log printed (pytest shows it when the test
fails). The flags for a cloud come from :mod:`tests.support.ccm_run`, ``.aws`` or ``.gcp``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ccm_run import CcmProcesses


@pytest.fixture
def ccm_run(tmp_path: Path) -> Iterator[CcmProcesses]:
    processes = CcmProcesses(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()
