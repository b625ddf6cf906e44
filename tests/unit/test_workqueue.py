"""ccm.k8s.workqueue: client-go workqueue semantics (dedupe, one worker per key, delays, backoff)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ccm.k8s.workqueue import ExponentialBackoff, ShutDown, WorkQueue

# Real waiting in these tests uses delays of a few hundredths of a second; the get() timeouts are
# generous upper bounds that are only reached when something is wrong.
WAIT = 1.0


@pytest.fixture
def queue() -> Iterator[WorkQueue[str]]:
    q: WorkQueue[str] = WorkQueue(name="unit-test", backoff=ExponentialBackoff(base=0.01, cap=0.08))
    yield q
    q.shut_down()


def until(predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """Wait for a state of the queue's threads (not for time to pass)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the queue never reached the state"
        time.sleep(0.001)


def drain(q: WorkQueue[str]) -> list[str]:
    """Every key that is ready now, marking each done."""
    out: list[str] = []
    while len(q):
        key = q.get(timeout=WAIT)
        q.done(key)
        out.append(key)
    return out


# -- dedupe and processing --------------------------------------------------------------------------


def test_a_key_added_many_times_before_a_worker_takes_it_is_handed_out_once(queue: WorkQueue[str]) -> None:
    for _ in range(5):
        queue.add("default/a")
    queue.add("default/b")
    queue.add("default/a")

    assert len(queue) == 2
    assert drain(queue) == ["default/a", "default/b"]
    assert queue.pending() == 0


def test_keys_are_handed_out_in_the_order_they_were_first_added(queue: WorkQueue[str]) -> None:
    for key in ("c", "a", "b", "a", "c"):
        queue.add(key)

    assert drain(queue) == ["c", "a", "b"]


def test_a_key_added_while_it_is_processed_is_handed_out_again_only_after_done(queue: WorkQueue[str]) -> None:
    queue.add("k")
    key = queue.get(timeout=WAIT)

    queue.add("k")
    queue.add("k")

    assert len(queue) == 0, "the key is being processed, so it must not be ready"
    with pytest.raises(ShutDown):
        queue.get(timeout=0.02)  # times out: nothing else to hand out

    queue.done(key)

    assert len(queue) == 1
    assert queue.get(timeout=WAIT) == "k"
    queue.done("k")
    assert len(queue) == 0


def test_done_without_a_new_add_does_not_requeue_the_key(queue: WorkQueue[str]) -> None:
    queue.add("k")
    queue.done(queue.get(timeout=WAIT))

    assert len(queue) == 0
    assert queue.pending() == 0


def test_get_with_a_timeout_on_an_empty_queue_raises_shut_down(queue: WorkQueue[str]) -> None:
    with pytest.raises(ShutDown):
        queue.get(timeout=0.01)


def test_two_workers_never_process_one_key_at_the_same_time(queue: WorkQueue[str]) -> None:
    keys = ["default/a", "default/b", "default/c"]
    active: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                key = queue.get(timeout=0.02)
            except ShutDown:
                if queue.shutting_down:
                    return
                continue
            try:
                with lock:
                    if key in active:
                        overlaps.append(key)
                    active.add(key)
                time.sleep(0.002)
                with lock:
                    active.discard(key)
                    processed.append(key)
            finally:
                queue.done(key)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(40):
        for key in keys:
            queue.add(key)
        time.sleep(0.001)
    until(lambda: queue.pending() == 0, timeout=5)
    queue.shut_down()
    for thread in threads:
        thread.join(timeout=2)

    assert overlaps == []
    assert set(processed) == set(keys)
    assert queue.pending() == 0


# -- lost wake-ups ----------------------------------------------------------------------------------


def test_add_wakes_a_worker_blocked_in_get_without_a_timeout(queue: WorkQueue[str]) -> None:
    # The service workers call get() with no timeout, so a missed notification leaves a ready key
    # unprocessed until some unrelated add happens.
    until(lambda: queue.waiting()[1])  # the queue's delay thread is waiting on the same lock
    got: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            got.append(queue.get())
        except ShutDown as err:
            errors.append(err)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    until(lambda: queue.waiting()[0] == 1)  # the worker is blocked in get()

    queue.add("default/a")
    thread.join(timeout=0.5)

    assert got == ["default/a"], "the blocked worker was not woken by add()"


def test_done_wakes_a_worker_blocked_in_get_when_the_key_was_added_meanwhile(queue: WorkQueue[str]) -> None:
    queue.add("k")
    key = queue.get(timeout=WAIT)
    queue.add("k")  # re-added while processing: waits for done()
    got: list[str] = []

    def worker() -> None:
        with contextlib.suppress(ShutDown):
            got.append(queue.get())

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    until(lambda: queue.waiting()[0] == 1)  # the second worker is blocked in get()

    queue.done(key)
    thread.join(timeout=0.5)

    assert got == ["k"], "the blocked worker was not woken by done()"


# -- delays -----------------------------------------------------------------------------------------


def test_add_after_hands_keys_out_in_due_order_not_add_order(queue: WorkQueue[str]) -> None:
    queue.add_after("late", 0.06)
    queue.add_after("early", 0.02)

    assert len(queue) == 0, "nothing is ready before its delay"
    assert queue.pending() == 2
    first = queue.get(timeout=WAIT)
    queue.done(first)
    second = queue.get(timeout=WAIT)
    queue.done(second)

    assert [first, second] == ["early", "late"]
    assert queue.pending() == 0


def test_add_after_with_a_non_positive_delay_adds_immediately(queue: WorkQueue[str]) -> None:
    queue.add_after("now", 0)
    queue.add_after("also-now", -1)

    assert len(queue) == 2


def test_an_earlier_due_time_replaces_a_later_pending_one(queue: WorkQueue[str]) -> None:
    queue.add_after("k", 30)
    queue.add_after("k", 0.02)

    assert queue.pending() == 1
    assert queue.get(timeout=WAIT) == "k"
    queue.done("k")
    assert queue.pending() == 0, "the later due time is dropped, not kept as a second delayed entry"


def test_a_later_due_time_does_not_postpone_an_earlier_pending_one(queue: WorkQueue[str]) -> None:
    queue.add_after("k", 0.02)
    queue.add_after("k", 30)

    assert queue.pending() == 1
    assert queue.get(timeout=WAIT) == "k"
    queue.done("k")
    assert queue.pending() == 0


def test_a_delayed_key_that_is_already_queued_is_not_handed_out_twice_at_once(queue: WorkQueue[str]) -> None:
    queue.add("k")
    queue.add_after("k", 0.01)
    until(lambda: queue.due("k") is None)  # the delayed add has fired into a key that is still waiting

    assert len(queue) == 1


# -- rate limiting ----------------------------------------------------------------------------------


def test_add_rate_limited_delays_5_10_20_and_so_on_up_to_300_seconds() -> None:
    q: WorkQueue[str] = WorkQueue(name="unit-test-default-backoff")
    try:
        delays = [q.add_rate_limited("k") for _ in range(9)]
        assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
        assert q.num_requeues("k") == 9
        assert len(q) == 0, "a rate-limited key is delayed, not ready"
    finally:
        q.shut_down()


def test_forget_resets_the_backoff_of_a_key() -> None:
    q: WorkQueue[str] = WorkQueue(name="unit-test-default-backoff")
    try:
        q.add_rate_limited("k")
        q.add_rate_limited("k")
        q.forget("k")

        assert q.num_requeues("k") == 0
        assert q.add_rate_limited("k") == 5
    finally:
        q.shut_down()


def test_backoff_is_tracked_per_key() -> None:
    q: WorkQueue[str] = WorkQueue(name="unit-test-default-backoff")
    try:
        assert q.add_rate_limited("a") == 5
        assert q.add_rate_limited("a") == 10
        assert q.add_rate_limited("b") == 5
        q.forget("a")
        assert q.add_rate_limited("b") == 10
    finally:
        q.shut_down()


def test_a_rate_limited_key_is_handed_out_after_its_backoff(queue: WorkQueue[str]) -> None:
    assert queue.add_rate_limited("k") == pytest.approx(0.01)

    assert queue.get(timeout=WAIT) == "k"
    queue.done("k")
    assert queue.num_requeues("k") == 1, "getting the key does not forget its failures"


def test_exponential_backoff_doubles_from_its_base_and_stops_at_its_cap() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base=0.01, cap=0.08)

    assert [backoff.when("k") for _ in range(6)] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08, 0.08])
    assert backoff.failures("k") == 6


def test_exponential_backoff_does_not_overflow_after_many_failures() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff()
    for _ in range(2000):
        delay = backoff.when("k")

    assert delay == 300


def test_forgetting_an_unknown_key_is_harmless() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff()
    backoff.forget("never-failed")

    assert backoff.failures("never-failed") == 0


# -- shutdown and state -----------------------------------------------------------------------------


def test_shut_down_makes_a_blocked_get_raise_shut_down(queue: WorkQueue[str]) -> None:
    outcome: list[BaseException | str] = []

    def worker() -> None:
        try:
            outcome.append(queue.get())
        except ShutDown as err:
            outcome.append(err)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    until(lambda: queue.waiting()[0] == 1)  # the worker is blocked in get()

    queue.shut_down()
    thread.join(timeout=WAIT)

    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ShutDown)
    assert queue.shutting_down


def test_get_on_an_empty_shut_down_queue_raises_shut_down(queue: WorkQueue[str]) -> None:
    queue.shut_down()

    with pytest.raises(ShutDown):
        queue.get()


def test_adds_after_shut_down_are_ignored(queue: WorkQueue[str]) -> None:
    queue.shut_down()
    queue.add("a")
    queue.add_after("b", 0.01)
    queue.add_rate_limited("c")

    assert len(queue) == 0
    assert queue.pending() == 0
    with pytest.raises(ShutDown):
        queue.get()


def test_pending_counts_ready_delayed_and_in_progress_keys(queue: WorkQueue[str]) -> None:
    assert queue.pending() == 0
    queue.add("ready-1")
    queue.add("ready-2")
    queue.add_after("delayed", 30)
    assert queue.pending() == 3

    key = queue.get(timeout=WAIT)
    assert queue.pending() == 3, "a key being processed is still pending"
    assert len(queue) == 1

    queue.done(key)
    assert queue.pending() == 2


def test_len_counts_only_keys_ready_now(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add_after("b", 30)

    assert len(queue) == 1
