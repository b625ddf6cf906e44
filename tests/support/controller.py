"""What the controller tests share: the type of their ``make_controller`` fixture (tests/controller)."""

from __future__ import annotations

from collections.abc import Callable

from ccm.controllers.service import ServiceController

ControllerFactory = Callable[..., ServiceController]
"""``make_controller(**overrides)``: a started, synced ServiceController on the session's API server."""
