"""Equal sets of instance IDs are one object (:mod:`providers.aws.deploy.target_sets`), never confused
with unequal ones, and forgotten once nothing holds them."""

from __future__ import annotations

import gc

from providers.aws.deploy import target_sets
from providers.aws.deploy.parts import StackCache


def test_equal_sets_of_instances_are_one_object_whatever_they_are_made_from() -> None:
    first = target_sets.shared(["i-0a", "i-0b"])
    assert target_sets.shared({"i-0b", "i-0a"}) is first
    assert target_sets.shared(frozenset(("i-0a", "i-0b"))) is first


def test_unequal_sets_are_never_confused() -> None:
    assert target_sets.shared(["i-1a"]) == frozenset({"i-1a"})
    assert target_sets.shared(["i-1a", "i-1b"]) == frozenset({"i-1a", "i-1b"})
    assert target_sets.shared([]) == frozenset()


class SameHash(str):
    """An instance ID whose sets collide with another's (the hash of a frozenset of them is fixed)."""

    def __hash__(self) -> int:
        return 7


def test_two_unequal_sets_with_the_same_hash_are_both_kept_apart() -> None:
    one, other = frozenset({SameHash("i-2a")}), frozenset({SameHash("i-2b")})
    assert hash(one) == hash(other)
    assert target_sets.shared(one) is one
    assert target_sets.shared(other) is other
    assert target_sets.shared(frozenset({SameHash("i-2a")})) is one


def test_a_set_nothing_holds_any_more_is_forgotten() -> None:
    gc.collect()
    before = target_sets.remembered()
    held = target_sets.shared(["i-3a", "i-3b", "i-3c"])
    assert target_sets.remembered() == before + 1
    del held
    gc.collect()
    assert target_sets.remembered() == before


def test_two_stack_caches_remembering_the_same_targets_hold_one_set() -> None:
    one, other = StackCache(), StackCache()
    one.remember_targets(arn="arn:tg/a", instance_ids=["i-4a", "i-4b"])
    other.remember_targets(arn="arn:tg/b", instance_ids=("i-4b", "i-4a"))
    assert one.targets["arn:tg/a"] is other.targets["arn:tg/b"]
