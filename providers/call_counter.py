"""Counting cloud API calls by operation: what the call budgets in the tests and the benchmarks read."""

from __future__ import annotations

import threading
from collections import Counter


class CallCounter:
    """Thread-safe counts of calls by operation name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    def count_call(self, operation: str) -> None:
        with self._calls_lock:
            self.calls[operation] += 1

    def total_calls(self) -> int:
        with self._calls_lock:
            return sum(self.calls.values())

    def snapshot(self) -> dict[str, int]:
        with self._calls_lock:
            return dict(self.calls)

    def reset_counts(self) -> None:
        with self._calls_lock:
            self.calls.clear()
