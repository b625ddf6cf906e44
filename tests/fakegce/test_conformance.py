"""fakegce against recorded real Compute Engine traffic (issue 12): every difference is fixed or listed.

The recordings (``conformance/recordings``, real GCE exchanges recorded by k8s-config-connector,
Apache-2.0; sources in ``recordings/SOURCE.md``) are replayed against a fresh fake each. What real GCE
answered and what the fake answers are compared where it matters to the provider: status codes, error
shapes, which fields are present (labels, fingerprints, defaults), the values of fields the provider
relies on, and the operation flow (RUNNING, then DONE). A difference is either fixed in the fake or
listed with its reason in ``conformance/differences.txt``; a new one fails here, and so does a listed
one that no longer occurs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fakegce import FakeCompute
from tests.fakegce.conformance.replay import Replay, known_differences, parse, recordings

KNOWN = Path(__file__).parent / "conformance" / "differences.txt"


def _replay(path: Path) -> Replay:
    with FakeCompute() as fake:
        replay = Replay(fake=fake, name=path.stem)
        replay.run(parse(path.read_text()))
        return replay


@pytest.fixture(scope="module")
def replays() -> list[Replay]:
    return [_replay(path) for path in recordings()]


def test_every_recording_is_parsed_and_replayed(replays: list[Replay]) -> None:
    assert len(replays) >= 6
    for replay in replays:
        assert replay.compared >= 5, f"{replay.name}: only {replay.compared} exchanges compared"


def test_every_difference_from_real_gce_is_fixed_or_listed_with_a_reason(replays: list[Replay]) -> None:
    found: dict[str, list[str]] = {}
    for replay in replays:
        for key, where in replay.differences.items():
            found.setdefault(key, []).extend(where)
    known = known_differences(KNOWN)
    new = {key: where for key, where in found.items() if key not in known}
    assert not new, "differences from recorded real GCE, not listed in differences.txt:\n" + "\n".join(
        f"  {key}  (at {', '.join(where[:3])})" for key, where in sorted(new.items())
    )
    stale = sorted(set(known) - set(found))
    assert not stale, "listed in differences.txt but no longer seen (remove them):\n" + "\n".join(stale)
    assert all(known.values()), "every listed difference needs a '# reason:' line above it"


def test_forwarding_rule_labels_behave_as_recorded(replays: list[Replay]) -> None:
    """The blocker of issue 12, shown by real traffic: labels given at insert are dropped, the rule
    still has a labelFingerprint, setLabels sets them; the replay finds no difference there."""
    (rule,) = [r for r in replays if r.name == "regionalcomputeforwardingrulefull-direct"]
    assert rule.compared >= 15
    assert not [key for key in rule.differences if key.endswith((".labels", ".labelFingerprint"))]
    assert not [key for key in rule.differences if "setLabels" in key]


def test_the_replay_tells_a_difference_when_there_is_one() -> None:
    """The comparison is not vacuous: a fake that kept the labels given at insert would be caught."""

    class KeepingInsertLabels(Replay):
        labels: dict[str, str] | None = None

        def send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
            status, answer = super().send(method, path, body)
            if method == "POST" and path.endswith("/forwardingRules") and isinstance(body, dict):
                self.labels = dict(body.get("labels") or {})
            elif method == "GET" and "/forwardingRules/" in path and isinstance(answer, dict):
                answer.setdefault("labels", self.labels)
            return status, answer

    path = next(p for p in recordings() if p.stem == "regionalcomputeforwardingrulefull-direct")
    with FakeCompute() as fake:
        replay = KeepingInsertLabels(fake=fake, name=path.stem)
        replay.run(parse(path.read_text()))
    assert "GET regions/*/forwardingRules/*: extra .labels" in replay.differences
