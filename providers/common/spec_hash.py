"""The short digest written on cloud resources (``ccm-lb/spec-hash`` tag in AWS, a description field in
GCE) that says whether a part needs attention at all.

Both providers hash the same way, so the values already written by earlier releases stay valid: SHA-256
of the part's fields as sorted JSON, cut to 16 hex digits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

LENGTH = 16


def digest(data: Any) -> str:
    """The 16-hex-digit hash of JSON-serialisable ``data`` (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:LENGTH]


def spec_hash(part: Any) -> str:
    """The hash of one dataclass part of a model (a target group, a firewall, ...)."""
    return digest(asdict(part))
