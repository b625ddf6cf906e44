"""``google.cloud.compute_v1`` without importing its 129 service clients at every start.

The package's ``__init__`` imports every service client of the Compute API (129 modules, each with
its REST transport) and then binds their names and the message types. It lists all of them in
``__lazy_modules__`` for the explicit lazy imports of Python 3.15 (PEP 810); the Python we run
ignores that, so every process that imports the GCP provider paid for all of them. The provider uses
twelve clients and the message types (one module, ``types.compute``, needed whole). Measured
2026-12-04 on the 2-core machine with a fresh interpreter: ``import google.cloud.compute_v1`` costs
1.05 s of CPU and reaches 147 MiB of RSS; ``types.compute`` and the twelve clients alone 0.59 s and
105 MiB.

:func:`install` does on this Python what ``__lazy_modules__`` does on 3.15: it puts the package in
``sys.modules`` *without running its ``__init__``*, and a name asked of it is found where that
``__init__`` would have imported it from: a message type from ``types.compute``, ``<Name>Client``
from ``services.<name>`` (the ``__init__`` names every module so: ``ForwardingRulesClient`` from
``services.forwarding_rules``). Any other name (``__version__``, ``__all__``, a name that fits no
rule) runs the real ``__init__`` in the same module object first, so code elsewhere that uses the
package sees all of it. Names found are bound on the package, so each is looked up once. Nothing
changes if the package was imported before :func:`install`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import threading
import types
from importlib.machinery import ModuleSpec
from typing import Any

PACKAGE = "google.cloud.compute_v1"
TYPES_MODULE = f"{PACKAGE}.types.compute"
CLIENT_NAME = re.compile(r"(?P<service>[A-Z]\w*)Client")

_whole_lock = threading.RLock()
_whole_running: set[int] = set()  # threads running the package's __init__ now


def install() -> None:
    """Put ``google.cloud.compute_v1`` in ``sys.modules`` with its names resolved on first use."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        return  # not installed: the provider's own import says so
    module = importlib.util.module_from_spec(spec)

    def resolve(name: str) -> Any:  # PEP 562: called for a name the module does not have yet
        if _is_submodule(spec, name):
            # ``from google.cloud.compute_v1 import gapic_version`` asks first, then imports it
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        value = _message_or_client(name)
        if value is None:
            return _whole(module, spec, name)
        setattr(module, name, value)
        return value

    module.__dict__["__getattr__"] = resolve
    sys.modules[PACKAGE] = module
    vars(sys.modules["google.cloud"])["compute_v1"] = module  # as the import system binds it


def service_module_name(client_name: str) -> str | None:
    """``ForwardingRulesClient`` → ``forwarding_rules``: the module of ``services`` that defines it."""
    match = CLIENT_NAME.fullmatch(client_name)
    if match is None:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", match["service"]).lower()


def _is_submodule(spec: ModuleSpec, name: str) -> bool:
    for folder in spec.submodule_search_locations or ():
        if os.path.isfile(os.path.join(folder, f"{name}.py")) or os.path.isdir(os.path.join(folder, name)):
            return True
    return False


def _message_or_client(name: str) -> Any | None:
    if name.startswith("_"):
        return None
    compute = importlib.import_module(TYPES_MODULE)
    if name in compute.__all__:
        return getattr(compute, name)
    service = service_module_name(name)
    if service is None:
        return None
    try:
        module = importlib.import_module(f"{PACKAGE}.services.{service}")
    except ModuleNotFoundError:
        return None
    return getattr(module, name, None)


def _whole(module: types.ModuleType, spec: ModuleSpec, name: str) -> Any:
    """Run the package's real ``__init__`` once, then answer ``name`` as the package would."""
    with _whole_lock:
        if threading.get_ident() in _whole_running:
            # asked by the __init__ itself before binding it: not there yet, as without this module
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        if "__version__" not in module.__dict__:
            assert spec.loader is not None
            _whole_running.add(threading.get_ident())
            try:
                spec.loader.exec_module(module)
            finally:
                _whole_running.discard(threading.get_ident())
            module.__dict__.pop("__getattr__", None)
    return getattr(module, name)
