"""Consumer groups in one process (src/strom/group/coordinator.py and its use by the Consumer).

Layout: the state file (a round trip over generated states; a table of
damaged files, each read as an empty group with a warning, and consumers
living through one), reconcile() as a pure function (hypothesis: safety,
who stays and who goes, when the generation moves, the protocol vote,
idempotence, and a model of members claiming until the group settles),
then consumers: splitting partitions, cooperative and eager rebalances
seen through the listener, leaving (close, unsubscribe, garbage
collection), subscription changes and new or deleted topics, consumer
threads reading while members come and go, users' assignors, commit
fencing, max_poll_interval_ms, static membership, the protocol check,
session timeouts, a log closed under its consumers, and two Log objects
on one log.

Consumer tests run on ``strom.open(":memory:")`` and on a directory (the
``log`` fixture).  Every wait is a polling loop with a deadline
(:func:`until`): the consumers poll 10 ms at a time until the condition
holds, and the test fails after ``DEADLINE_S``; no test sleeps and then
asserts.  Each loop also checks the safety property after every poll: no
two consumers of a group hold one partition.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import threading
import time

import msgpack
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strom
from strom import TopicPartition
from strom.errors import (
    CommitFailedError,
    InconsistentGroupProtocolError,
    LogClosedError,
    StromError,
)
from strom.group import coordinator
from strom.group.assignors import ASSIGNORS, Assignor, Subscription
from strom.group.coordinator import (
    GroupState,
    GroupStore,
    MemberState,
    monotonic_ms,
    reconcile,
)
from strom.group.members import GroupMembers

from logfixtures import consumers, log_fixture, two_logs_fixture  # noqa: F401 (fixtures)


TP = TopicPartition
#: The longest a group may take to reach a state a test waits for.
DEADLINE_S = 5.0
#: Partitions of topic ``t``: enough for three members to get two each.
N = 6
ALL = frozenset(TP("t", p) for p in range(N))

log = log_fixture(N)
two_logs = two_logs_fixture(N)








class Listener(strom.ConsumerRebalanceListener):
    """Records every call; ``on_revoke`` (if set) runs in on_partitions_revoked, its errors kept."""

    def __init__(self, on_revoke=None):
        self.calls: list[tuple[str, frozenset[TopicPartition]]] = []
        self.on_revoke = on_revoke
        self.errors: list[BaseException] = []

    def on_partitions_revoked(self, revoked):
        self.calls.append(("revoked", frozenset(revoked)))
        if self.on_revoke is not None:
            try:
                self.on_revoke(revoked)
            except Exception as exc:  # noqa: BLE001  (the consumer would only log it)
                self.errors.append(exc)

    def on_partitions_assigned(self, assigned):
        self.calls.append(("assigned", frozenset(assigned)))

    def since(self, i, kind):
        return [tps for k, tps in self.calls[i:] if k == kind]


class LosingListener(Listener):
    def on_partitions_lost(self, lost):
        self.calls.append(("lost", frozenset(lost)))


def until(cs, condition, what, timeout_s=DEADLINE_S, read=None):
    """Poll every consumer in ``cs`` (10 ms each) until ``condition()``; fail after ``timeout_s``.

    After every round, no two consumers may hold one partition.  ``read``
    (a dict), if given, collects the records polled: {(consumer index, tp): [values]}.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        held = [tp for c in cs if not c.closed for tp in c.assignment()]
        assert len(held) == len(set(held)), f"a partition held by two consumers: {sorted(held)}"
        if condition():
            return
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        for i, c in enumerate(cs):
            for tp, records in c.poll(timeout_ms=10).items():
                if read is not None:
                    read.setdefault((i, tp), []).extend(r.value for r in records)


def split(cs, tps=ALL):
    """A condition: the consumers' assignments are disjoint, together are ``tps``, and balanced."""
    def check():
        got = [tp for c in cs for tp in c.assignment()]
        sizes = [len(c.assignment()) for c in cs]
        return (len(got) == len(set(got)) and set(got) == set(tps)
                and max(sizes) - min(sizes) <= 1)
    return check


def settled(lg, group="g"):
    """A condition: every member of ``group`` consumes exactly its assignment."""
    return lambda: GroupStore(lg, group).read().settled()


def member_ids(lg, group="g"):
    return set(GroupStore(lg, group).read().members)


# -- the state file ------------------------------------------------------------------------------

names = st.text(max_size=12)
tps_st = st.tuples(st.sampled_from("tuv"), st.integers(0, 2**31 - 1)).map(lambda x: TP(*x))
member_states = st.builds(
    MemberState, topics=st.lists(names, max_size=3).map(tuple), incarnation=names,
    instance_id=st.none() | names, client_id=names,
    assignors=st.lists(st.sampled_from(["range", "roundrobin", "sticky", "cooperative-sticky"]),
                       min_size=1, max_size=4).map(tuple),  # a member offers one at least
    session_timeout_ms=st.integers(1, 2**31 - 1), departed_ms=st.none() | st.integers(0, 2**62))
group_states = st.builds(
    GroupState, generation=st.integers(0, 2**63 - 1), protocol=st.none() | names,
    members=st.dictionaries(names, member_states, max_size=4),
    assignment=st.dictionaries(names, st.lists(tps_st, max_size=4).map(tuple), max_size=4),
    owned=st.dictionaries(names, st.lists(tps_st, max_size=4).map(tuple), max_size=4),
    fenced=st.dictionaries(names, names, max_size=3),
    partitions=st.dictionaries(names, st.integers(0, 2**31 - 1), max_size=3))


@settings(max_examples=200, deadline=None)
@given(group_states)
def test_state_encode_decode_round_trip(state):
    assert GroupState.decode(state.encode()) == state


def _sample_state():
    me = MemberState(("t",), "inc-a", instance_id="w1", client_id="c", assignors=("range",),
                     session_timeout_ms=500, departed_ms=None)
    return GroupState(3, "range", {"w1": me}, {"w1": (TP("t", 0), TP("t", 1))},
                      {"w1": (TP("t", 0),)}, {"gone": "inc-x"})


def _checksummed(obj):
    body = msgpack.packb(obj)
    return xxhash.xxh64_digest(body) + body


_VALID_BODY = {"v": 1, "generation": 1, "protocol": "range", "members": {}, "assignment": {},
               "owned": {}, "fenced": {}, "partitions": {}}
_INF = float("inf")

def _member_entry(**changes):
    """A state body with one static member ``m`` whose fields are changed by name."""
    fields = {"topics": ["t"], "incarnation": "i", "instance_id": "m", "client_id": "",
              "assignors": ["range"], "session_timeout_ms": 500, "departed_ms": None}
    return {**_VALID_BODY, "members": {"m": list({**fields, **changes}.values())}}

#: Damaged state files: each makes the file's bytes from a valid encoding (``good``).
#: Those with a valid checksum are crafted: well-framed msgpack that is not a state.
DAMAGE = [
    pytest.param(lambda good: b"", id="empty"),
    pytest.param(lambda good: good[:7], id="shorter-than-checksum"),
    pytest.param(lambda good: good[:-1], id="truncated-by-one"),
    pytest.param(lambda good: good[: len(good) // 2], id="truncated-half"),
    pytest.param(lambda good: bytes([good[0] ^ 1]) + good[1:], id="flip-in-checksum"),
    pytest.param(lambda good: good[:20] + bytes([good[20] ^ 0x40]) + good[21:], id="flip-in-body"),
    pytest.param(lambda good: good[:-1] + bytes([good[-1] ^ 0x80]), id="flip-last-byte"),
    pytest.param(lambda good: good + b"\0", id="trailing-byte"),
    pytest.param(lambda good: bytes(range(256)) * 3, id="garbage"),
    pytest.param(lambda good: b"\0" * len(good), id="zeros"),
    pytest.param(lambda good: _checksummed([1, 2, 3]), id="valid-checksum-not-a-map"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "v": 2}), id="unknown-version"),
    pytest.param(lambda good: _checksummed({"v": 1}), id="missing-fields"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "members": {"m": 3}}),
                 id="member-not-a-list"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "owned": {"m": [["t"]]}}),
                 id="partition-without-number"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "generation": "x"}),
                 id="generation-a-string"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "generation": _INF}),
                 id="generation-infinite"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "owned": {"m": [["t", _INF]]}}),
                 id="partition-infinite"),
    pytest.param(lambda good: _checksummed(
        {**_VALID_BODY, "members": {"m": [["t"], "i", None, "", ["range"], _INF, None]}}),
        id="session-timeout-infinite"),
    pytest.param(lambda good: _checksummed({**_VALID_BODY, "partitions": {"t": _INF}}),
                 id="partition-count-infinite"),
    pytest.param(lambda good: b"\x91" * 5000 + b"\xc0", id="deep-nesting"),
    pytest.param(lambda good: _checksummed(_member_entry(departed_ms="x")),
                 id="departed-a-string"),
    pytest.param(lambda good: _checksummed(_member_entry(topics=[1, 2])),
                 id="topic-a-number"),
]


def _write_state(lg, group, data):
    store = GroupStore(lg, group)
    lg.fs.makedirs(store.path)
    lg.fs.write_atomic(store.path + "/state", data, durable=False)
    store.signal.fire()  # a memory log has no inotify: wake the group's watchers as a write would


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_state_file_reads_as_an_empty_group_with_a_warning(log, damage, caplog):
    good = _sample_state().encode()
    _write_state(log, "g", good)
    assert GroupStore(log, "g").read() == _sample_state()
    _write_state(log, "g", damage(good))
    with caplog.at_level(logging.WARNING, logger="strom.group"):
        assert GroupStore(log, "g").read() == GroupState()
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_state_file_size_limit_at_and_one_past(log, monkeypatch, caplog):
    good = _sample_state().encode()
    _write_state(log, "g", good)
    monkeypatch.setattr(coordinator, "MAX_STATE_BYTES", len(good))
    assert GroupStore(log, "g").read() == _sample_state()
    monkeypatch.setattr(coordinator, "MAX_STATE_BYTES", len(good) - 1)
    with caplog.at_level(logging.WARNING, logger="strom.group"):
        assert GroupStore(log, "g").read() == GroupState()
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_consumers_survive_a_damaged_state_file(log, consumers, caplog):
    la, lb = LosingListener(), LosingListener()
    a = consumers(log, "t", group_id="g", listener=la)
    b = consumers(log, "t", group_id="g", listener=lb)
    until([a, b], split([a, b]), "two consumers split the partitions")
    with caplog.at_level(logging.WARNING):
        _write_state(log, "g", b"\xde\xad" * 40)
        until([a, b], lambda: la.since(0, "lost") and lb.since(0, "lost"),
              "the consumers see they are out of the group")
        until([a, b], split([a, b]), "the consumers rejoin and split the partitions again")
        until([a, b], settled(log), "the group settles")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- reconcile(): the rebalance as a pure function -------------------------------------------------

NOW = 1_000_000
TOPICS = ("a", "b", "c")
IDS = tuple(f"m{i}" for i in range(6))
#: Members' assignor preferences; "mine" is a user's assignor this process does not know.
PREFERENCES = (("cooperative-sticky",), ("range",), ("roundrobin", "range"),
               ("sticky", "cooperative-sticky"), ("range", "cooperative-sticky"), ("mine", "range"),
               ("mine",))
EVERY_TP = tuple(TP(t, p) for t in TOPICS for p in range(5))


@st.composite
def groups(draw, *, claims=True):
    """(state, live, partitions): a group's state as any mix of member fates can leave it.

    Each member is alive (fresh heartbeat), stale (alive, heartbeat older than
    its session timeout), dead, or restarted (alive in a new incarnation);
    members are dynamic or static.  Claims (``owned``) are disjoint, as the
    lock keeps them; the previous assignment is arbitrary.
    """
    partitions = {t: draw(st.integers(0, 4)) for t in draw(st.sets(st.sampled_from(TOPICS)))}
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=5))
    members, live = {}, {}
    for mid in ids:
        static = draw(st.booleans())
        timeout = draw(st.sampled_from([100, 1_000]))
        members[mid] = MemberState(
            topics=tuple(sorted(draw(st.sets(st.sampled_from(TOPICS), min_size=1)))),
            incarnation="inc1", instance_id=mid if static else None,
            assignors=draw(st.sampled_from(PREFERENCES)), session_timeout_ms=timeout,
            departed_ms=draw(st.none() | st.integers(NOW - 3 * timeout, NOW)) if static else None)
        fate = draw(st.sampled_from(["alive", "stale", "dead", "restarted"]))
        if fate == "alive":
            live[mid] = {"incarnation": "inc1", "heartbeat_ms": NOW - draw(st.integers(0, timeout))}
        elif fate == "stale":
            live[mid] = {"incarnation": "inc1",
                         "heartbeat_ms": NOW - timeout - draw(st.integers(1, 5_000))}
        elif fate == "restarted":
            live[mid] = {"incarnation": "inc2", "heartbeat_ms": NOW}
    for mid in draw(st.lists(st.sampled_from(IDS), max_size=2)):  # joining: alive, not yet in
        live.setdefault(mid, {"incarnation": "inc9", "heartbeat_ms": NOW})
    owned = {}
    if claims and ids:
        owner = draw(st.lists(st.sampled_from((None, *ids)), min_size=len(EVERY_TP),
                              max_size=len(EVERY_TP)))
        owned = {mid: tuple(tp for tp, o in zip(EVERY_TP, owner) if o == mid) for mid in ids}
    assignment = {mid: tuple(draw(st.lists(st.sampled_from(EVERY_TP), unique=True, max_size=4)))
                  for mid in ids}
    protocol = draw(st.sampled_from((None, "range", "roundrobin", "sticky", "cooperative-sticky",
                                     "mine")))
    fenced = {mid: draw(st.sampled_from(["inc1", "inc2"]))
              for mid in draw(st.lists(st.sampled_from(IDS), unique=True, max_size=2))}
    subscribed = {t for ms in members.values() for t in ms.topics}
    seen = draw(st.sampled_from([  # the partition counts the last generation saw
        {t: n for t, n in partitions.items() if t in subscribed},
        draw(st.dictionaries(st.sampled_from(TOPICS), st.integers(0, 4)))]))
    state = GroupState(draw(st.integers(0, 20)), protocol, members, assignment, owned, fenced,
                       seen)
    return state, live, partitions


def known(protocol):
    return protocol in ("range", "roundrobin", "sticky", "cooperative-sticky")


RECONCILE = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@RECONCILE
@given(groups())
def test_reconcile_gives_each_partition_to_at_most_one_member_and_never_a_claimed_one(group):
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    given_out = [tp for tps in new.assignment.values() for tp in tps]
    assert len(given_out) == len(set(given_out)), "a partition assigned to two members"
    assert set(new.assignment) <= set(new.members)
    for mid, tps in new.assignment.items():
        for tp in tps:
            assert new.owner(tp) in (None, mid), f"{tp} assigned to {mid}, claimed by another"
            if known(new.protocol):  # (an unknown assignor: each keeps what it claims)
                assert tp.topic in new.members[mid].topics and tp.partition < partitions[tp.topic]
    # Claims are never moved: a member that stays keeps exactly its claims.
    assert dict(new.owned) == {m: tps for m, tps in state.owned.items() if m in new.members}


@RECONCILE
@given(groups())
def test_reconcile_gives_the_assignors_target_less_what_others_claim(group):
    """Cooperative: each member's target less the partitions others still claim.  Eager:
    the whole target at once when all of it is free, else nothing yet (Kafka's barrier)."""
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    if not known(new.protocol):
        return
    assignor = ASSIGNORS[new.protocol]()
    subs = {m: Subscription(frozenset(ms.topics), new.owned.get(m, ()), state.generation)
            for m, ms in new.members.items()}
    target = assignor.assign(dict(new.partitions), subs)
    for mid in new.members:
        mine = tuple(sorted(target.get(mid, ())))
        free = tuple(tp for tp in mine if new.owner(tp) in (None, mid))
        if assignor.cooperative:
            assert new.assignment[mid] == free
        else:
            assert new.assignment[mid] == (mine if free == mine else ())


@RECONCILE
@given(groups())
def test_reconcile_decides_who_stays(group):
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    assert set(new.members) <= set(state.members), "reconcile never adds a member"
    for mid, ms in state.members.items():
        info = live.get(mid)
        alive = info is not None and info["incarnation"] == ms.incarnation
        if alive and NOW - info["heartbeat_ms"] > ms.session_timeout_ms:
            assert mid not in new.members and mid not in new.owned, "a stale member stays"
            assert new.fenced.get(mid) == ms.incarnation, "a stale member is not fenced"
        elif alive:
            assert new.members[mid] == dataclasses.replace(ms, departed_ms=None)
        elif ms.instance_id is None:
            assert mid not in new.members and mid not in new.owned, "a dead member stays"
        elif info is not None:  # restarted static member: its entry waits for the new one
            assert new.members[mid] == ms
            assert new.owned.get(mid) == state.owned.get(mid)
        elif ms.departed_ms is None:  # static member just gone: its place is kept from now
            assert new.members[mid] == dataclasses.replace(ms, departed_ms=NOW)
            assert new.owned.get(mid) == state.owned.get(mid)
        elif NOW - ms.departed_ms <= ms.session_timeout_ms:
            assert new.members[mid] == ms
            assert new.owned.get(mid) == state.owned.get(mid)
        else:
            assert mid not in new.members and mid not in new.owned, "static member kept too long"
    for mid, inc in new.fenced.items():  # a fence lasts while that incarnation lives
        assert live.get(mid, {}).get("incarnation") == inc


@RECONCILE
@given(groups())
def test_reconcile_moves_the_generation_exactly_when_a_rebalance_starts(group):
    """A rebalance starts when the members, their subscriptions, the protocol or the partition
    counts change; claims handed over within it keep the generation."""
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    subscribed = {t for ms in new.members.values() for t in ms.topics}
    assert dict(new.partitions) == {t: n for t, n in partitions.items() if t in subscribed}
    starts = (new.protocol != state.protocol
              or dict(new.partitions) != dict(state.partitions)
              or {m: ms.topics for m, ms in new.members.items()}
              != {m: ms.topics for m, ms in state.members.items()})
    assert new.generation == state.generation + starts
    if new == state:
        assert new is state


@RECONCILE
@given(groups())
def test_reconcile_picks_a_protocol_every_member_supports(group):
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    shared = set.intersection(*(set(ms.assignors) for ms in new.members.values())) \
        if new.members else set()
    assert (new.protocol is None) == (not shared)
    if shared:
        assert new.protocol in shared
        firsts = [next(a for a in ms.assignors if a in shared) for ms in new.members.values()]
        assert firsts.count(new.protocol) == max(firsts.count(a) for a in shared), "not the vote"


@RECONCILE
@given(groups())
def test_reconcile_is_idempotent(group):
    state, live, partitions = group
    once = reconcile(state, live, partitions, NOW)
    assert reconcile(once, live, partitions, NOW) is once


@RECONCILE
@given(groups(claims=False))
def test_reconcile_without_claims_assigns_every_subscribed_partition(group):
    state, live, partitions = group
    new = reconcile(state, live, partitions, NOW)
    if not known(new.protocol):
        assert not any(new.assignment.values())  # no claims to keep
        return
    wanted = {TP(t, p) for ms in new.members.values() for t in ms.topics if t in partitions
              for p in range(partitions[t])}
    assert {tp for tps in new.assignment.values() for tp in tps} == wanted


@RECONCILE
@given(groups())
def test_members_claiming_their_assignment_settle_the_group(group):
    """A model of consumers: each in turn releases what it is not assigned and claims the rest.

    Claims stay disjoint at every step, and the group settles, every
    subscribed partition consumed, within a few rounds.
    """
    state, live, partitions = group
    live = {m: {**info, "heartbeat_ms": NOW} for m, info in live.items()}  # no one goes stale
    state = reconcile(state, live, partitions, NOW)
    generation = state.generation
    for _ in range(3 * len(IDS)):
        if state.settled():
            break
        for mid in list(state.members):
            if mid not in state.members or live.get(mid, {}).get("incarnation") != "inc1":
                continue  # absent static members neither release nor claim
            target = set(state.assignment.get(mid, ()))
            others = {tp for m, tps in state.owned.items() if m != mid for tp in tps}
            mine = (set(state.owned.get(mid, ())) & target) | (target - others)
            state = reconcile(dataclasses.replace(
                state, owned={**state.owned, mid: tuple(sorted(mine))}), live, partitions, NOW)
            claimed = [tp for tps in state.owned.values() for tp in tps]
            assert len(claimed) == len(set(claimed)), "two members claim one partition"
            assert state.generation == generation, "a hand-over started a new rebalance"
        if all(live.get(m, {}).get("incarnation") != "inc1" for m in state.members):
            return  # only absent static members: nobody acts
    active = [m for m in state.members if live.get(m, {}).get("incarnation") == "inc1"]
    if len(active) < len(state.members):
        return  # absent static members hold their claims: the rest cannot settle fully
    assert state.settled(), state
    if known(state.protocol):
        wanted = {TP(t, p) for ms in state.members.values() for t in ms.topics
                  if t in partitions for p in range(partitions[t])}
        assert {tp for tps in state.owned.values() for tp in tps} >= wanted


def test_a_static_member_keeps_its_place_for_its_session_timeout():
    me = MemberState(("t",), "inc1", instance_id="w1", session_timeout_ms=500)
    other = MemberState(("t",), "inc1")
    state = GroupState(4, "cooperative-sticky", {"w1": me, "x": other},
                       {"w1": (TP("t", 0),), "x": (TP("t", 1),)},
                       {"w1": (TP("t", 0),), "x": (TP("t", 1),)}, {}, {"t": 2})
    alive = {"x": {"incarnation": "inc1", "heartbeat_ms": NOW}}
    gone = reconcile(state, alive, {"t": 2}, NOW)
    assert gone.members["w1"].departed_ms == NOW and gone.owned["w1"] == (TP("t", 0),)
    assert gone.generation == 4
    assert reconcile(gone, alive, {"t": 2}, NOW + 500) is gone  # at the limit: kept
    out = reconcile(gone, alive, {"t": 2}, NOW + 501)  # one past it: out, claims freed
    assert set(out.members) == {"x"} and out.generation == 5
    assert out.assignment == {"x": (TP("t", 0), TP("t", 1))}
    back = reconcile(gone, {**alive, "w1": {"incarnation": "inc1", "heartbeat_ms": NOW + 400}},
                     {"t": 2}, NOW + 400)
    assert back.members["w1"].departed_ms is None and back.generation == 4


def test_heartbeat_at_and_one_past_the_session_timeout():
    me = MemberState(("t",), "inc1", assignors=("range",), session_timeout_ms=300)
    state = GroupState(1, "range", {"m": me}, {"m": (TP("t", 0),)}, {"m": (TP("t", 0),)}, {},
                       {"t": 1})
    at = {"m": {"incarnation": "inc1", "heartbeat_ms": NOW - 300}}
    assert reconcile(state, at, {"t": 1}, NOW) is state
    past = {"m": {"incarnation": "inc1", "heartbeat_ms": NOW - 301}}
    out = reconcile(state, past, {"t": 1}, NOW)
    assert out.members == {} and out.owned == {} and out.fenced == {"m": "inc1"}
    assert out.generation == 2


def test_a_join_starts_a_rebalance_and_the_hand_over_completes_it():
    x = MemberState(("t",), "inc1", assignors=("range",))
    y = MemberState(("t",), "inc1", assignors=("range",))
    alive = {m: {"incarnation": "inc1", "heartbeat_ms": NOW} for m in ("x", "y")}
    t0, t1 = TP("t", 0), TP("t", 1)
    base = GroupState(3, "range", {"x": x}, {"x": (t0, t1)}, {"x": (t0, t1)}, {}, {"t": 2})
    entered = dataclasses.replace(base, members={"x": x, "y": y})
    assert reconcile(entered, alive, {"t": 2}, NOW).generation == 3  # compared with itself
    joined = reconcile(entered, alive, {"t": 2}, NOW, since=base)
    assert joined.generation == 4
    assert joined.assignment == {"x": (t0,), "y": ()}, "t-1 is given to y while x claims it"
    released = reconcile(dataclasses.replace(joined, owned={"x": (t0,)}), alive, {"t": 2}, NOW)
    assert released.assignment == {"x": (t0,), "y": (t1,)} and released.generation == 4


def test_a_member_that_never_beats_after_joining_is_fenced(log):
    """The heartbeat written at join is on the group clock (it once was wall-clock time,
    which reconcile could never find stale)."""
    members = GroupMembers(log, "g")
    joined = members.join({"incarnation": "inc1"})
    try:
        me = MemberState(("t",), "inc1", session_timeout_ms=100)
        state = GroupState(1, "range", {joined.member_id: me})
        later = monotonic_ms() + 10_000  # ten seconds without a heartbeat
        out = reconcile(state, members.live(), {"t": N}, later)
        assert joined.member_id in out.fenced
    finally:
        joined.leave()


# -- consumers sharing partitions ------------------------------------------------------------------

STRATEGIES = ["cooperative-sticky", "sticky", "range", "roundrobin"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_three_consumers_split_the_partitions(log, consumers, strategy):
    cs = []
    for n in (1, 2, 3):
        cs.append(consumers(log, "t", group_id="g", partition_assignment_strategy=strategy))
        until(cs, split(cs), f"{n} consumers split the partitions")
        until(cs, settled(log), "the group settles")
    state = GroupStore(log, "g").read()
    assert state.protocol == strategy and len(state.members) == 3


def test_consumers_read_every_record_once_between_them(log, consumers):
    cs = [consumers(log, "t", group_id="g", auto_offset_reset="earliest") for _ in range(3)]
    until(cs, split(cs), "three consumers split the partitions")
    for p in range(N):
        log.partition("t", p).append([b"%d-%d" % (p, i) for i in range(5)], acks=1)
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < 5 * N:
        assert time.monotonic() < deadline, f"read {len(seen)} of {5 * N}"
        for c in cs:
            for records in c.poll(timeout_ms=10).values():
                seen += [r.value for r in records]
    assert sorted(seen) == sorted(b"%d-%d" % (p, i) for p in range(N) for i in range(5))


def test_cooperative_join_revokes_only_the_partitions_that_move(log, consumers):
    la, lb, lc = Listener(), Listener(), Listener()
    a = consumers(log, "t", group_id="g", listener=la)
    until([a], lambda: a.assignment() == ALL, "a alone has every partition")
    mark_a = len(la.calls)
    b = consumers(log, "t", group_id="g", listener=lb)
    until([a, b], split([a, b]), "a and b split the partitions")
    until([a, b], settled(log), "the group settles")
    assert la.since(mark_a, "revoked") == [frozenset(ALL - a.assignment())]
    assert lb.since(0, "revoked") == []

    before = {"a": a.assignment(), "b": b.assignment()}
    mark = {"a": len(la.calls), "b": len(lb.calls)}
    c = consumers(log, "t", group_id="g", listener=lc)
    cs = [a, b, c]
    until(cs, split(cs), "three consumers split the partitions")
    until(cs, settled(log), "the group settles")
    for name, consumer, listener in (("a", a, la), ("b", b, lb)):
        revoked = listener.since(mark[name], "revoked")
        moved = before[name] - consumer.assignment()
        assert frozenset().union(*revoked) == moved, (name, revoked, moved)
        assert all(r <= moved for r in revoked), "a partition that stays was revoked"
        assert consumer.assignment() <= before[name], "an old member was given a partition"
    assert lc.since(0, "revoked") == []
    assert frozenset().union(*lc.since(0, "assigned")) == c.assignment()


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_eager_rebalance_revokes_every_partition_of_every_member_once(log, consumers, strategy):
    """One revoke of everything per member per rebalance (handing partitions over within it
    once moved the generation, and each new generation revoked everything again)."""
    la, lb, lc = Listener(), Listener(), Listener()
    a = consumers(log, "t", group_id="g", listener=la, partition_assignment_strategy=strategy)
    b = consumers(log, "t", group_id="g", listener=lb, partition_assignment_strategy=strategy)
    until([a, b], split([a, b]), "a and b split the partitions")
    until([a, b], settled(log), "the group settles")
    before = {"a": a.assignment(), "b": b.assignment()}
    mark = {"a": len(la.calls), "b": len(lb.calls)}
    c = consumers(log, "t", group_id="g", listener=lc, partition_assignment_strategy=strategy)
    until([a, b, c], split([a, b, c]), "three consumers split the partitions")
    until([a, b, c], settled(log), "the group settles")
    for name, consumer, listener in (("a", a, la), ("b", b, lb)):
        assert listener.since(mark[name], "revoked") == [before[name]], name
        assert frozenset().union(*listener.since(mark[name], "assigned")) == consumer.assignment()


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_eager_rebalance_assigns_once(log, consumers, strategy):
    """As Kafka's eager protocol: one on_partitions_assigned, with the whole assignment (it
    once came a partition at a time, as each old owner freed it)."""
    # Static ids fix the order the assignors see; polling b before c makes b's new
    # assignment include a partition c has not freed yet.
    lb = Listener()
    config = {"group_id": "g", "partition_assignment_strategy": strategy}
    b = consumers(log, "t", listener=lb, group_instance_id="b", **config)
    c = consumers(log, "t", group_instance_id="c", **config)
    until([b, c], split([b, c]), "b and c split the partitions")
    until([b, c], settled(log), "the group settles")
    mark = len(lb.calls)
    a = consumers(log, "t", group_instance_id="a", **config)
    until([b, c, a], split([b, c, a]), "three consumers split the partitions")
    until([b, c, a], settled(log), "the group settles")
    assert [k for k, _ in lb.calls[mark:]] == ["revoked", "assigned"], lb.calls[mark:]
    assert lb.calls[-1] == ("assigned", b.assignment())


def test_close_hands_the_partitions_to_the_others(log, consumers):
    cs = [consumers(log, "t", group_id="g") for _ in range(3)]
    until(cs, split(cs), "three consumers split the partitions")
    gone = cs[0]
    gone.close()
    assert gone.assignment() == set()
    until(cs[1:], split(cs[1:]), "the two left take every partition")
    assert len(member_ids(log)) == 2
    for c in cs[1:]:
        c.close()
    assert member_ids(log) == set() and GroupMembers(log, "g").live() == {}
    assert log.fs.listdir(GroupStore(log, "g").members_path) == [], "a member file was left"
    assert not [t for t in threading.enumerate() if t.name == "strom-group-g"], "a watcher lives on"


def test_unsubscribe_leaves_the_group_and_subscribe_joins_again(log, consumers):
    a = consumers(log, "t", group_id="g")
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    b.unsubscribe()
    assert b.assignment() == set()
    until([a, b], lambda: a.assignment() == ALL, "a takes every partition")
    assert len(member_ids(log)) == 1
    b.subscribe(["t"])
    until([a, b], split([a, b]), "b rejoins and they split again")
    assert len(member_ids(log)) == 2


def test_a_subscription_change_rebalances(log, consumers):
    log.create_topic("u", partitions=2)
    all_u = {TP("u", 0), TP("u", 1)}
    a = consumers(log, "t", group_id="g")
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split t")
    b.subscribe(["u"])
    until([a, b], lambda: a.assignment() == ALL and b.assignment() == all_u,
          "a takes all of t, b all of u")
    b.subscribe(["t", "u"])
    until([a, b], split([a, b], ALL | all_u), "a and b split t and u")
    assert not (a.assignment() & all_u), "u given to a member not subscribed to it"


def test_a_pattern_subscription_picking_up_a_new_topic_rebalances(log, consumers):
    log.create_topic("p-1", partitions=2)
    first = {TP("p-1", 0), TP("p-1", 1)}
    a, b = consumers(log, group_id="g"), consumers(log, group_id="g")
    a.subscribe(pattern="p-")
    b.subscribe(pattern="p-")
    until([a, b], split([a, b], first), "a and b split p-1")
    log.create_topic("p-2", partitions=4)
    more = first | {TP("p-2", p) for p in range(4)}
    until([a, b], split([a, b], more), "a and b split p-1 and p-2")
    sizes = sorted(len(c.assignment()) for c in (a, b))
    assert sizes == [3, 3]


def test_consumers_on_two_log_objects_share_the_partitions(two_logs, consumers):
    la, lb = two_logs
    a = consumers(la, "t", group_id="g")
    b = consumers(lb, "t", group_id="g")
    until([a, b], split([a, b]), "consumers on two Log objects split the partitions")
    until([a, b], settled(la), "the group settles")
    b.close()
    until([a], lambda: a.assignment() == ALL, "a takes b's partitions when b closes")


def test_a_settled_group_stays_put(log, consumers):
    """No rebalance, no state write, while nobody comes or goes (heartbeats go to member files)."""
    listeners = [Listener() for _ in range(3)]
    cs = [consumers(log, "t", group_id="g", listener=lst, heartbeat_interval_ms=20)
          for lst in listeners]
    until(cs, split(cs), "three consumers split the partitions")
    until(cs, settled(log), "the group settles")
    store = GroupStore(log, "g")
    store.read()
    stamp, marks = store._stamp(), [len(lst.calls) for lst in listeners]
    end = time.monotonic() + 0.3  # fifteen heartbeats each
    while time.monotonic() < end:
        for c in cs:
            c.poll(timeout_ms=10)
    assert store._stamp() == stamp, "the state file was rewritten by an idle group"
    assert [lst.calls[m:] for lst, m in zip(listeners, marks)] == [[], [], []]


def test_cooperative_rebalance_keeps_positions_and_pauses_of_partitions_that_stay(log, consumers):
    a = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    for p in range(N):
        log.partition("t", p).append([b"x"] * 3, acks=1)
    got = 0
    deadline = time.monotonic() + DEADLINE_S
    while got < 3 * N:
        assert time.monotonic() < deadline
        got += sum(len(rs) for rs in a.poll(timeout_ms=10).values())
    a.pause(*ALL)
    b = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    read = {}
    until([a, b], split([a, b]), "a and b split the partitions", read=read)
    until([a, b], lambda: {tp for _, tp in read} == b.assignment(),
          "b reads its partitions from the start (nothing was committed)", read=read)
    assert a.paused() == a.assignment() and b.paused() == set()
    assert {a.position(tp) for tp in a.assignment()} == {3}
    assert {i for i, _ in read} == {1} and all(len(vs) == 3 for vs in read.values())


def test_topics_created_and_deleted_under_a_group(log, consumers):
    a = consumers(log, "t", "later", group_id="g")
    b = consumers(log, "t", "later", group_id="g")
    until([a, b], split([a, b]), "a and b split t (later does not exist yet)")
    log.create_topic("later", partitions=2)
    with_later = ALL | {TP("later", 0), TP("later", 1)}
    until([a, b], split([a, b], with_later), "a and b split t and the new topic")
    log.delete_topic("later")
    until([a, b], split([a, b]), "the deleted topic's partitions are gone from the group")


def test_a_consumer_dropped_without_close_leaves_the_group(log, consumers):
    a = consumers(log, "t", group_id="g")
    b = strom.Consumer(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    del b
    gc.collect()
    until([a], lambda: a.assignment() == ALL, "a takes the dropped consumer's partitions")
    assert len(member_ids(log)) == 1


def test_a_failing_listener_does_not_stop_a_rebalance(log, consumers, caplog):
    class Broken(strom.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            raise RuntimeError("revoked")

        def on_partitions_assigned(self, assigned):
            raise RuntimeError("assigned")

    a = consumers(log, "t", group_id="g", listener=Broken())
    b = consumers(log, "t", group_id="g", listener=Broken())
    with caplog.at_level(logging.ERROR):
        until([a, b], split([a, b]), "a and b split the partitions despite their listeners")
        until([a, b], settled(log), "the group settles")
    assert any("listener" in r.getMessage() for r in caplog.records)


def test_consumers_in_threads_read_every_record_while_members_come_and_go(log):
    """Three consumer threads, and a fourth member joining and leaving, while records arrive.

    Each thread checks, after every poll, that the group state lists it as
    the claimant of every partition it holds; together they read every record.
    """
    total = 40 * N
    seen: set[bytes] = set()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run():
        try:
            c = strom.Consumer(log, "t", group_id="g", auto_offset_reset="earliest",
                               auto_commit_interval_ms=50)
            try:
                m = c._membership
                while not stop.is_set():
                    for records in c.poll(timeout_ms=10).values():
                        with lock:
                            seen.update(r.value for r in records)
                    held = c.assignment()
                    owned = set(GroupStore(log, "g").read().owned.get(m.member_id, ()))
                    assert held <= owned, f"holds {held - owned} unclaimed"
            finally:
                c.close()
        except BaseException as exc:  # noqa: BLE001  (reported by the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    extra = strom.Consumer(log, "t", group_id="g", auto_offset_reset="earliest")
    try:
        for i in range(40):
            for p in range(N):
                log.partition("t", p).append([b"%d-%d" % (p, i)], acks=1)
            if i == 10:
                extra.close()  # its partitions go back to the threads
            for records in ({} if extra.closed else extra.poll(timeout_ms=0)).values():
                with lock:
                    seen.update(r.value for r in records)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with lock:
                if len(seen) == total or errors:
                    break
            assert time.monotonic() < deadline, f"read {len(seen)} of {total}"
            time.sleep(0.01)
    finally:
        extra.close()
        stop.set()
        for t in threads:
            t.join(DEADLINE_S)
    assert errors == []
    assert seen == {b"%d-%d" % (p, i) for p in range(N) for i in range(40)}


class FirstTakesAll(Assignor):
    """A user's assignor: every partition to the member with the lowest id."""

    name = "first-takes-all"

    def assign(self, partitions, subscriptions):
        first = min(subscriptions)
        every = [TP(t, p) for t in sorted(partitions) for p in range(partitions[t])]
        return {m: every if m == first else [] for m in subscriptions}


def test_a_users_assignor_decides_the_assignment(log, consumers):
    config = {"group_id": "g", "partition_assignment_strategy": [FirstTakesAll()]}
    a = consumers(log, "t", client_id="a", **config)
    b = consumers(log, "t", client_id="b", **config)
    until([a, b], lambda: a.assignment() == ALL and settled(log)(), "a (the lower id) takes all")
    assert b.assignment() == set() and GroupStore(log, "g").read().protocol == "first-takes-all"
    a.close()
    until([b], lambda: b.assignment() == ALL, "b takes all when a leaves")


def test_a_rolling_restart_to_a_new_first_choice_moves_the_protocol(log, consumers):
    old, new = ["range", "roundrobin"], ["roundrobin", "range"]
    a = consumers(log, "t", group_id="g", partition_assignment_strategy=old)
    b = consumers(log, "t", group_id="g", partition_assignment_strategy=old)
    until([a, b], split([a, b]), "a and b split the partitions")
    assert GroupStore(log, "g").read().protocol == "range"
    a.close()
    a = consumers(log, "t", group_id="g", partition_assignment_strategy=new)
    until([a, b], split([a, b]), "the restarted a rejoins")
    assert GroupStore(log, "g").read().protocol == "range", "a tie keeps the current protocol"
    b.close()
    b = consumers(log, "t", group_id="g", partition_assignment_strategy=new)
    until([a, b], split([a, b]), "the restarted b rejoins")
    assert GroupStore(log, "g").read().protocol == "roundrobin"


# -- commits are fenced by ownership ------------------------------------------------------------


def test_a_commit_of_a_revoked_partition_fails_and_of_owned_ones_works(log, consumers):
    a = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    a.commit({tp: 1 for tp in ALL})
    b = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a, b], split([a, b]), "a and b split the partitions")
    kept, moved = sorted(a.assignment()), sorted(b.assignment())
    with pytest.raises(CommitFailedError):
        a.commit({moved[0]: 2})
    with pytest.raises(CommitFailedError):
        a.commit({kept[0]: 2, moved[0]: 2})  # all or nothing
    assert b.committed(kept[0]) == 1 and b.committed(moved[0]) == 1
    a.commit({kept[0]: 3})
    b.commit({moved[0]: 4})
    assert a.committed(kept[0]) == 3 and a.committed(moved[0]) == 4


def test_commit_async_of_a_revoked_partition_reports_the_failure(log, consumers):
    a = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    b = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a, b], split([a, b]), "a and b split the partitions")
    results = []
    future = a.commit_async({next(iter(b.assignment())): 1},
                            callback=lambda offsets, exc: results.append(exc))
    assert isinstance(future.exception(), CommitFailedError)
    assert len(results) == 1 and isinstance(results[0], CommitFailedError)


def test_a_non_member_cannot_commit_for_an_active_group(log, consumers):
    """As Kafka (UNKNOWN_MEMBER_ID): a consumer outside the group, with its group_id and
    assign(), cannot overwrite a member's progress; once the group is empty it can."""
    a = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    a.commit({TP("t", 0): 5})
    outsider = consumers(log, group_id="g", enable_auto_commit=False)
    outsider.assign([TP("t", 0)])
    with pytest.raises(CommitFailedError):
        outsider.commit({TP("t", 0): 99})
    assert a.committed(TP("t", 0)) == 5
    a.close()
    outsider.commit({TP("t", 0): 99})
    assert outsider.committed(TP("t", 0)) == 99


def test_a_non_member_cannot_commit_while_a_static_member_is_away(log, consumers):
    static = consumers(log, "t", group_id="g", group_instance_id="w1", session_timeout_ms=5_000,
                       enable_auto_commit=False)
    until([static], lambda: static.assignment() == ALL, "the static member has every partition")
    static.commit({TP("t", 0): 5})
    static.close()
    assert "w1" in member_ids(log), "the static member keeps its place"
    outsider = consumers(log, group_id="g", enable_auto_commit=False)
    outsider.assign([TP("t", 0)])
    with pytest.raises(CommitFailedError):
        outsider.commit({TP("t", 0): 99})


def test_committing_in_on_partitions_revoked_at_close_works(log, consumers):
    holder = {}
    la = Listener(on_revoke=lambda revoked: holder["a"].commit({tp: 9 for tp in revoked}))
    a = consumers(log, "t", group_id="g", listener=la, enable_auto_commit=False)
    holder["a"] = a
    b = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a, b], split([a, b]), "a and b split the partitions")
    held = a.assignment()
    a.close()
    assert la.errors == [] and la.calls[-1] == ("revoked", held)
    until([b], lambda: b.assignment() == ALL, "b takes a's partitions")
    assert {b.committed(tp) for tp in held} == {9}


def test_committing_in_on_partitions_revoked_works(log, consumers):
    holder = {}
    la = Listener(on_revoke=lambda revoked: holder["a"].commit({tp: 7 for tp in revoked}))
    a = consumers(log, "t", group_id="g", listener=la, enable_auto_commit=False)
    holder["a"] = a
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    b = consumers(log, "t", group_id="g", enable_auto_commit=False)
    until([a, b], split([a, b]), "a and b split the partitions")
    assert la.errors == []
    assert la.since(0, "revoked") == [frozenset(b.assignment())]
    assert all(b.committed(tp) == 7 for tp in b.assignment())
    assert all(a.committed(tp) is None for tp in a.assignment())


def test_auto_commit_on_revoke_reaches_the_next_owner(log, consumers):
    a = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    for p in range(N):
        log.partition("t", p).append([b"x"] * 3, acks=1)
    read = {}
    until([a], lambda: sum(map(len, read.values())) == 3 * N, "a reads every record", read=read)
    b = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    read.clear()
    until([a, b], split([a, b]), "a and b split the partitions", read=read)
    assert read == {}, "a record was read twice"
    for tp in b.assignment():
        assert b.committed(tp) == 3 and b.position(tp) == 3


@pytest.mark.parametrize("listener_class", [LosingListener, Listener])
def test_a_consumer_that_stops_polling_is_put_out_and_rejoins(log, consumers, listener_class):
    la = listener_class()
    a = consumers(log, "t", group_id="g", listener=la, max_poll_interval_ms=200,
                  enable_auto_commit=False)
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    held = a.assignment()
    mark = len(la.calls)
    until([b], lambda: b.assignment() == ALL, "b takes a's partitions while a does not poll")
    with pytest.raises(CommitFailedError):
        a.commit({next(iter(held)): 1})
    a.poll(timeout_ms=0)
    kind = "lost" if listener_class is LosingListener else "revoked"
    assert la.calls[mark] == (kind, held)
    until([a, b], split([a, b]), "a rejoins and they split again")
    assert a.assignment()
    a.commit({tp: 1 for tp in a.assignment()})


def test_a_consumer_waiting_inside_poll_is_not_put_out(log, consumers):
    """Waiting inside poll() longer than max_poll_interval_ms (each wait is up to
    fetch_max_wait_ms, 500 ms) is polling, not being stuck."""
    la = LosingListener()
    a = consumers(log, "t", group_id="g", listener=la, max_poll_interval_ms=200)
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    mark = len(la.calls)
    a.poll(timeout_ms=1_000)  # nothing to read: it waits inside poll() for a second
    assert la.calls[mark:] == []


# -- static membership ---------------------------------------------------------------------------


def test_a_static_member_restarted_in_time_gets_its_partitions_back_without_a_rebalance(
        log, consumers):
    static = {"group_id": "g", "group_instance_id": "w1", "session_timeout_ms": 2_000,
              "heartbeat_interval_ms": 100}
    lb = Listener()
    a = consumers(log, "t", **static)
    b = consumers(log, "t", group_id="g", listener=lb)
    until([a, b], split([a, b]), "a and b split the partitions")
    until([a, b], settled(log), "the group settles")
    held, generation, mark = a.assignment(), GroupStore(log, "g").read().generation, len(lb.calls)
    a.close()
    a2 = consumers(log, "t", **static)
    until([a2, b], lambda: a2.assignment() == held, "the restarted member gets its partitions")
    until([a2, b], settled(log), "the group settles")
    assert GroupStore(log, "g").read().generation == generation
    assert lb.calls[mark:] == [], "the other member saw a rebalance"
    assert "w1" in member_ids(log) and len(member_ids(log)) == 2


def test_a_static_member_gone_past_its_session_timeout_loses_its_partitions(log, consumers):
    timeout_ms = 500
    a = consumers(log, "t", group_id="g", group_instance_id="w1", session_timeout_ms=timeout_ms,
                  heartbeat_interval_ms=100)
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    held = b.assignment()
    closed_at = time.monotonic()
    a.close()
    while time.monotonic() - closed_at < timeout_ms / 2000:  # well inside the timeout: kept
        b.poll(timeout_ms=10)
        assert b.assignment() == held, "a static member's partitions moved before its timeout"
    until([b], lambda: b.assignment() == ALL, "b takes the static member's partitions")
    assert "w1" not in member_ids(log)


def test_a_static_members_partitions_move_soon_after_its_session_timeout(log, consumers):
    """The others learn of the departure at once (inotify, or the in-process signal), not at
    their next heartbeat (3 s by default)."""
    timeout_ms = 300
    a = consumers(log, "t", group_id="g", group_instance_id="w1", session_timeout_ms=timeout_ms,
                  heartbeat_interval_ms=100)
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    a.close()
    until([b], lambda: b.assignment() == ALL, "b takes the static member's partitions",
          timeout_s=timeout_ms / 1000 + 1.0)


def test_a_second_live_consumer_with_the_same_instance_id_is_refused(log, consumers):
    a = consumers(log, "t", group_id="g", group_instance_id="w1")
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    with pytest.raises(StromError, match="w1"):
        strom.Consumer(log, "t", group_id="g", group_instance_id="w1")
    assert GroupMembers(log, "g").live().keys() == {"w1"}
    members_dir = GroupStore(log, "g").members_path
    assert log.fs.listdir(members_dir) == ["w1.member"], "the refused join left a file"
    until([a], lambda: a.assignment() == ALL and GroupStore(log, "g").read().settled(),
          "a keeps every partition")
    other = consumers(log, "t", group_id="other", group_instance_id="w1")  # another group: fine
    until([other], lambda: other.assignment() == ALL, "the same id in another group joins")


def test_a_consumer_offering_no_assignor_the_group_uses_is_refused(log, consumers):
    a = consumers(log, "t", group_id="g", partition_assignment_strategy="range")
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    with pytest.raises(InconsistentGroupProtocolError, match="range"):
        strom.Consumer(log, "t", group_id="g", partition_assignment_strategy="roundrobin")
    assert len(GroupMembers(log, "g").live()) == 1, "the refused consumer left a member file"
    assert len(member_ids(log)) == 1
    b = consumers(log, "t", group_id="g", partition_assignment_strategy=["roundrobin", "range"])
    until([a, b], split([a, b]), "a consumer that also offers range joins")
    assert GroupStore(log, "g").read().protocol == "range"


# -- timeouts and failures -----------------------------------------------------------------------


def test_a_member_whose_heartbeat_stops_is_fenced_and_its_partitions_move(log, consumers):
    la = LosingListener()
    a = consumers(log, "t", group_id="g", listener=la, session_timeout_ms=300,
                  heartbeat_interval_ms=50)
    b = consumers(log, "t", group_id="g")
    until([a, b], split([a, b]), "a and b split the partitions")
    held = a.assignment()
    member = a._membership._member
    member.heartbeat(monotonic_ms())
    member.heartbeat = lambda now_ms: None  # its watcher goes on; its heartbeats stop
    until([b], lambda: b.assignment() == ALL, "b takes the silent member's partitions")
    assert a._membership.member_id in GroupStore(log, "g").read().fenced
    with pytest.raises(CommitFailedError):
        a.commit({next(iter(held)): 1})
    mark = len(la.calls)
    a.poll(timeout_ms=0)
    assert la.calls[mark] == ("lost", held)
    until([a, b], split([a, b]), "a rejoins (with a new member file) and they split again")


def test_a_stopped_member_is_fenced_soon_after_its_session_timeout(log, consumers):
    timeout_ms = 300
    a = consumers(log, "t", group_id="g")  # heartbeat_interval_ms: the default, 3 s
    b = consumers(log, "t", group_id="g", session_timeout_ms=timeout_ms, heartbeat_interval_ms=50)
    until([a, b], split([a, b]), "a and b split the partitions")
    watcher = b._membership
    watcher._stop.set()  # as if b's process stopped: no heartbeat, no reconcile, file still held
    watcher._waiter.wake()
    watcher._thread.join()
    until([a], lambda: a.assignment() == ALL, "a takes the stopped member's partitions",
          timeout_s=timeout_ms / 1000 + 1.0)


def test_a_stopped_holder_of_the_group_lock_gets_no_healthy_member_fenced(log, consumers):
    """While the lock is held (by a stopped process, say), watchers go on beating: when it is
    free again, the dead member is removed and no live one is fenced."""
    config = {"group_id": "g", "session_timeout_ms": 300, "heartbeat_interval_ms": 50}
    a, b, c = (consumers(log, "t", **config) for _ in range(3))
    until([a, b, c], split([a, b, c]), "three consumers split the partitions")
    dying = b._membership
    dying._stop.set()
    dying._waiter.wake()
    dying._thread.join()
    with GroupStore(log, "g").locked():
        dying._member.leave()  # b dies (its file goes) while the lock is held
        time.sleep(1.0)  # the holder is stopped for three session timeouts
    until([a, c], split([a, c]), "a and c take the dead member's partitions")
    state = GroupStore(log, "g").read()
    assert state.fenced == {} and len(state.members) == 2


def _open_descriptors():
    """How many file descriptors this process has open (/proc/self/fd, or /dev/fd on BSDs)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


def test_closed_group_consumers_leave_no_descriptor_open(tmp_path):
    lg = strom.open(tmp_path / "data")
    try:
        lg.create_topic("t", partitions=2)
        strom.Consumer(lg, "t", group_id="g").close()  # the log's own files are open now
        before = _open_descriptors()
        for _ in range(20):
            strom.Consumer(lg, "t", group_id="g").close()
        assert _open_descriptors() - before < 5
    finally:
        lg.close()


def test_commits_outside_a_group_leave_no_descriptor_open(tmp_path):
    lg = strom.open(tmp_path / "data")
    try:
        lg.create_topic("t", partitions=1)
        c = strom.Consumer(lg, group_id="g", enable_auto_commit=False)
        c.assign([TP("t", 0)])
        c.commit({TP("t", 0): 0})  # the offsets topic's files are open now
        before = _open_descriptors()
        for i in range(20):
            c.commit({TP("t", 0): i})
        assert _open_descriptors() - before < 5
        c.close()
    finally:
        lg.close()


def test_closing_the_log_under_its_consumers(log, consumers, caplog):
    cs = [consumers(log, "t", group_id="g", heartbeat_interval_ms=50) for _ in range(2)]
    until(cs, split(cs), "two consumers split the partitions")
    watchers = [c._membership._thread for c in cs]
    with caplog.at_level(logging.WARNING):
        log.close()
        deadline = time.monotonic() + DEADLINE_S
        while any(t.is_alive() for t in watchers):  # each stops at its next tick
            assert time.monotonic() < deadline, "a group watcher outlived its log"
            time.sleep(0.01)
        for c in cs:
            try:
                assert c.poll(timeout_ms=10) == {}
            except LogClosedError:
                pass
            c.close()
            assert c.closed
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert len(caplog.records) <= 2 * len(cs), [r.getMessage() for r in caplog.records]
    assert not [t for t in threading.enumerate() if t in watchers]
