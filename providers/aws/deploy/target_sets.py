"""One object per distinct set of instance IDs, however many target groups and Classic ELBs hold it.

Each Service's target groups (and each Classic ELB) remember what they hold, so that a node sync that
changes nothing costs no call. Nearly all of them hold the same nodes, and stored per target group the
same M instance IDs were kept twice per two-port Service: 4.3 KB per Service at 20 nodes, 31 KB at 200
(150 MiB at 5,000 Services; ``bench/memory_per_service.py``). :func:`shared` hands back the set already
remembered when an equal one is, and the instance ID strings with it. A set no cache holds any more is
forgotten (weak values), so a node that left costs nothing once every Service has moved on.

Nothing here calls AWS.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable

_by_hash: weakref.WeakValueDictionary[int, frozenset[str]] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def shared(instance_ids: Iterable[str]) -> frozenset[str]:
    """The remembered set equal to ``instance_ids``, or ``instance_ids`` as a frozenset, remembered.

    Two different sets with the same hash cannot both be remembered: the second is returned as it is
    (equal sets are shared, unequal ones never confused).
    """
    wanted = instance_ids if isinstance(instance_ids, frozenset) else frozenset(instance_ids)
    key = hash(wanted)
    with _lock:
        known = _by_hash.get(key)
        if known is None:
            _by_hash[key] = wanted
            return wanted
    return known if known == wanted else wanted


def remembered() -> int:
    """How many distinct sets are remembered now (for tests and benchmarks)."""
    with _lock:
        return len(_by_hash)
