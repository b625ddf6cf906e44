"""Logging set-up: ``--v`` to levels and ``--logging-format=text|json``, as upstream components do.

boto3, google-cloud and kubernetes log through the standard library, so one handler covers all.
Their chatter is kept at WARNING unless ``--v`` is 6 or more. No credential is logged by us; the
SDK loggers that can print request bodies stay quiet below ``--v=8``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import Any, NoReturn

_STD = set(vars(logging.makeLogRecord({})))


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(*, verbosity: int, fmt: str) -> None:
    level = logging.DEBUG if verbosity >= 4 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname).1s %(name)s] %(message)s")
        formatter.converter = __import__("time").gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    noisy_level = logging.DEBUG if verbosity >= 8 else (logging.INFO if verbosity >= 6 else logging.WARNING)
    for name in ("botocore", "boto3", "urllib3", "google", "kubernetes", "leaderelection", "werkzeug"):
        logging.getLogger(name).setLevel(noisy_level)


def exit_at_once(code: int) -> NoReturn:
    """Flush the logs and standard streams, then end the process without interpreter finalization.

    For a command that started daemon threads it cannot stop (the leader election library's loop, the
    API clients' watches): once its own work is stopped, flushed and released, tearing those threads
    down at interpreter exit has been seen to abort the process (SIGABRT, exit -6, about once in thirty
    stops under load; the cause inside the interpreter was not found). A Go controller exits this way.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing to keep
            stream.flush()
    os._exit(code)
