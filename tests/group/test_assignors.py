"""Partition assignors: every partition owned once, balance, stickiness, cooperative two-step moves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom import InvalidConfigError, TopicPartition
from strom.group.assignors import (ASSIGNORS, CooperativeStickyAssignor, RangeAssignor,
                                   RoundRobinAssignor, StickyAssignor, Subscription,
                                   resolve_assignor)

TP = TopicPartition
EAGER = [RangeAssignor(), RoundRobinAssignor(), StickyAssignor()]


@st.composite
def groups(draw, same_topics: bool = False):
    """(partitions per topic, subscriptions with random current ownership)."""
    topics = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=4, unique=True))
    partitions = {t: draw(st.integers(0, 12)) for t in topics}
    members = draw(st.lists(st.sampled_from([f"m{i}" for i in range(8)]), min_size=1, max_size=6,
                            unique=True))
    all_tps = [TP(t, p) for t in topics for p in range(partitions[t] + 1)]  # one that does not exist
    subs = {}
    for m in members:
        wants = (frozenset(topics) if same_topics
                 else frozenset(draw(st.lists(st.sampled_from(topics + ["zz"]), min_size=1, unique=True))))
        owned = tuple(draw(st.lists(st.sampled_from(all_tps), unique=True, max_size=8))) if all_tps else ()
        subs[m] = Subscription(wants, owned, draw(st.integers(-1, 3)))
    return partitions, subs


def wanted(partitions, subs):
    return {TP(t, p) for s in subs.values() for t in s.topics if t in partitions
            for p in range(partitions[t])}


def check_valid(partitions, subs, out, *, complete: bool):
    assert set(out) == set(subs)
    seen = [tp for tps in out.values() for tp in tps]
    assert len(seen) == len(set(seen)), "a partition given to two members"
    for member, tps in out.items():
        for tp in tps:
            assert tp.topic in subs[member].topics and 0 <= tp.partition < partitions[tp.topic]
    if complete:
        assert set(seen) == wanted(partitions, subs)


@settings(max_examples=300, deadline=None)
@given(groups())
def test_eager_assignors_give_every_partition_to_exactly_one_subscriber(group):
    partitions, subs = group
    for assignor in EAGER:
        check_valid(partitions, subs, assignor.assign(partitions, subs), complete=True)


@settings(max_examples=300, deadline=None)
@given(groups(same_topics=True))
def test_roundrobin_and_sticky_are_balanced_when_all_subscribe_alike(group):
    partitions, subs = group
    for assignor in (RoundRobinAssignor(), StickyAssignor()):
        sizes = [len(tps) for tps in assignor.assign(partitions, subs).values()]
        assert max(sizes) - min(sizes) <= 1, (assignor, sizes)


@settings(max_examples=300, deadline=None)
@given(groups())
def test_sticky_leaves_no_move_that_would_even_out_the_load(group):
    partitions, subs = group
    out = StickyAssignor().assign(partitions, subs)
    for giver, tps in out.items():
        for tp in tps:
            for taker, sub in subs.items():
                if taker != giver and tp.topic in sub.topics:
                    assert len(out[taker]) + 1 >= len(tps)


@settings(max_examples=300, deadline=None)
@given(groups(same_topics=True), st.sampled_from([f"m{i}" for i in range(8, 11)]))
def test_sticky_moves_only_what_a_join_needs(group, newcomer):
    """After a balanced round, a new member takes partitions; nobody else trades any."""
    partitions, subs = group
    first = StickyAssignor().assign(partitions, {m: Subscription(s.topics) for m, s in subs.items()})
    settled = {m: Subscription(s.topics, tuple(first[m]), 1) for m, s in subs.items()}
    settled[newcomer] = Subscription(next(iter(subs.values())).topics)
    second = StickyAssignor().assign(partitions, settled)
    for member, tps in first.items():
        assert set(second[member]) <= set(tps), "a member gained a partition another had"
    total = sum(len(t) for t in first.values())
    quota = total // len(settled)
    assert len(second[newcomer]) >= quota  # the newcomer gets its share...
    moved = sum(len(set(first[m]) - set(second[m])) for m in first)
    assert moved == len(second[newcomer])  # ...and exactly that much moved


@settings(max_examples=300, deadline=None)
@given(groups())
def test_cooperative_never_gives_a_partition_its_owner_still_holds(group):
    partitions, subs = group
    coop = CooperativeStickyAssignor()
    first = coop.assign(partitions, subs)
    check_valid(partitions, subs, first, complete=False)
    target = StickyAssignor().assign(partitions, subs)
    # Owners (newest generation) keep what the target leaves them; moving partitions go nowhere yet.
    claims: dict = {}
    for m, s in sorted(subs.items()):
        for tp in s.owned:
            if tp.topic in s.topics and tp.partition < partitions.get(tp.topic, 0):
                if tp not in claims or s.generation > subs[claims[tp]].generation:
                    claims[tp] = m
    for member, tps in first.items():
        for tp in tps:
            assert claims.get(tp, member) == member
        assert set(tps) <= set(target[member])
    # Follow-up rounds, each after the revocations of the one before, settle on a complete
    # assignment (Kafka rebalances again while partitions are withheld).
    current = first
    for generation in range(10, 20):
        settled = {m: Subscription(s.topics, tuple(current[m]), generation) for m, s in subs.items()}
        nxt = coop.assign(partitions, settled)
        check_valid(partitions, settled, nxt, complete=False)
        for member, tps in nxt.items():  # nothing is taken from an owner and given away at once
            assert all(tp in current[member] or all(tp not in c for c in current.values())
                       for tp in tps)
        if nxt == current:
            break
        current = nxt
    else:
        raise AssertionError("cooperative rounds did not settle in 10 rebalances")
    check_valid(partitions, subs, current, complete=True)


def test_range_matches_kafkas_documented_example():
    """Kafka's RangeAssignor javadoc: two consumers, two topics of three partitions each."""
    subs = {"C0": Subscription(frozenset({"t0", "t1"})), "C1": Subscription(frozenset({"t0", "t1"}))}
    out = RangeAssignor().assign({"t0": 3, "t1": 3}, subs)
    assert out == {"C0": [TP("t0", 0), TP("t0", 1), TP("t1", 0), TP("t1", 1)],
                   "C1": [TP("t0", 2), TP("t1", 2)]}


def test_roundrobin_matches_kafkas_documented_example():
    """Kafka's RoundRobinAssignor javadoc: C0 subscribes t0; C1 t0, t1; C2 t0, t1, t2."""
    subs = {"C0": Subscription(frozenset({"t0"})), "C1": Subscription(frozenset({"t0", "t1"})),
            "C2": Subscription(frozenset({"t0", "t1", "t2"}))}
    out = RoundRobinAssignor().assign({"t0": 1, "t1": 2, "t2": 3}, subs)
    assert out == {"C0": [TP("t0", 0)], "C1": [TP("t1", 0)],
                   "C2": [TP("t1", 1), TP("t2", 0), TP("t2", 1), TP("t2", 2)]}


def test_a_stale_claim_loses_to_the_newer_generation():
    subs = {"a": Subscription(frozenset({"t"}), (TP("t", 0),), 1),
            "b": Subscription(frozenset({"t"}), (TP("t", 0),), 2)}
    assert StickyAssignor().assign({"t": 2}, subs) == {"a": [TP("t", 1)], "b": [TP("t", 0)]}


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_resolve_by_name_class_and_instance(name):
    cls = ASSIGNORS[name]
    assert type(resolve_assignor(name)) is cls
    assert type(resolve_assignor(cls)) is cls
    instance = cls()
    assert resolve_assignor(instance) is instance
    assert instance.cooperative == (name == "cooperative-sticky")


@pytest.mark.parametrize("bad", ["fair", None, 3, object, RangeAssignor.assign])
def test_resolve_refuses_anything_else(bad):
    with pytest.raises(InvalidConfigError):
        resolve_assignor(bad)
