"""Golden files: JSON that pins a whole built object (a provider's stack, a load-balancer request).

``UPDATE_GOLDEN=1`` rewrites the files from what the code builds now, after an intended change;
review the diff of the files like code. Without it, a missing file or any difference fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def assert_golden(path: Path, value: Any) -> None:
    """``value`` (anything ``json.dumps`` takes) equals the JSON in ``path``."""
    actual = json.loads(json.dumps(value))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"{path} is missing: run the tests with UPDATE_GOLDEN=1"
    assert actual == json.loads(path.read_text()), f"{path} differs (UPDATE_GOLDEN=1 rewrites it)"
