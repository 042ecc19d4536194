"""A stateful model of a consumer group: join / leave / crash / poll / commit, in any order.

Hypothesis drives several consumers of one group over one topic, in one
process.  A crash drops a member as a dead process would: its watcher
stops and its liveness lock is released, with no leave and no commit.
After each step the group is let settle (every live consumer polls until
the state is stable), and then:

* each partition has exactly one live owner, and the consumers' own
  assignments agree with the group state;
* committed offsets never move backwards;
* per partition, each consumer saw offsets in increasing order;
* at the end, every appended record was consumed at least once, and a
  record consumed twice lies at or after the committed offset its
  partition had when its previous consumer left.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import strom
from strom.group.coordinator import GroupStore

TOPIC = "events"
PARTITIONS = 6
GROUP = "model"
SETTLE_S = 10.0


def crash(consumer: strom.Consumer) -> None:
    """What the OS does to a killed member: its locks go, nothing else happens."""
    m = consumer._membership
    assert m is not None
    m._stop.set()
    if m._waiter is not None:
        m._waiter.wake()
    m._thread.join()
    m._member._lock.close()  # the liveness lock, released as at process death
    m.store.signal.fire()  # what inotify reports of that close (a memory log has no inotify)
    consumer._membership = None  # the dead process's consumer is never used again
    consumer._leave_at_gc.detach()
    consumer._states.clear()
    consumer.close(autocommit=False)


class _Restart(strom.ConsumerRebalanceListener):
    """A partition assigned again starts a new run of increasing offsets."""

    def __init__(self, last: dict[tuple[int, int], int], model_id: int) -> None:
        self.last = last
        self.model_id = model_id

    def on_partitions_revoked(self, revoked: set) -> None:
        pass

    def on_partitions_assigned(self, assigned: set) -> None:
        for tp in assigned:
            self.last.pop((self.model_id, tp.partition), None)


class GroupModel(RuleBasedStateMachine):
    """Consumers joining, leaving, crashing, polling and committing in one group."""

    path = ":memory:"

    def __init__(self) -> None:
        super().__init__()
        self.log = strom.Log(self.path if self.path == ":memory:" else self.make_dir())
        self.log.create_topic(TOPIC, PARTITIONS)
        self.live: list[strom.Consumer] = []
        self.appended = [0] * PARTITIONS
        self.seen: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
        self.last: dict[tuple[int, int], int] = {}  # (consumer id, partition) -> last offset
        self.committed_max = [0] * PARTITIONS
        self.dup_floor: dict[int, int] = {}
        self.ids = 0

    def make_dir(self) -> str:
        import tempfile
        self._tmp = tempfile.TemporaryDirectory()
        return self._tmp.name

    @initialize()
    def first_member(self) -> None:
        self.join()

    # -- rules -----------------------------------------------------------------------

    @precondition(lambda self: len(self.live) < 4)
    @rule()
    def join(self) -> None:
        c = strom.Consumer(self.log, group_id=GROUP, auto_offset_reset="earliest",
                           enable_auto_commit=False, client_id=f"c{self.ids}")
        c.model_id = self.ids
        self.ids += 1
        c.subscribe([TOPIC], listener=_Restart(self.last, c.model_id))
        self.live.append(c)
        self.settle()

    @precondition(lambda self: len(self.live) > 1)
    @rule(i=st.integers(0, 3), commit_first=st.booleans())
    def leave(self, i: int, commit_first: bool) -> None:
        c = self.live.pop(i % len(self.live))
        if commit_first:
            self.commit_of(c)
        c.close(autocommit=False)
        self.settle()

    @precondition(lambda self: len(self.live) > 1)
    @rule(i=st.integers(0, 3))
    def crash(self, i: int) -> None:
        c = self.live.pop(i % len(self.live))
        crash(c)
        self.settle()

    @rule(p=st.integers(0, PARTITIONS - 1), n=st.integers(1, 30))
    def append(self, p: int, n: int) -> None:
        self.log.partition(TOPIC, p).append([b"%d-%d" % (p, self.appended[p] + i)
                                             for i in range(n)], acks=1)
        self.appended[p] += n

    @rule(i=st.integers(0, 3), max_records=st.integers(1, 50))
    def poll(self, i: int, max_records: int) -> None:
        c = self.live[i % len(self.live)]
        self.take(c, c.poll(timeout_ms=0, max_records=max_records))

    @rule(i=st.integers(0, 3))
    def commit(self, i: int) -> None:
        self.commit_of(self.live[i % len(self.live)])

    # -- helpers ---------------------------------------------------------------------

    def take(self, c: strom.Consumer, got: dict) -> None:
        for tp, records in got.items():
            for r in records:
                key = (c.model_id, tp.partition)
                assert r.offset > self.last.get(key, -1), "offsets out of order"
                self.last[key] = r.offset
                if r.offset in self.seen[tp.partition]:
                    assert r.offset >= self.dup_floor.get(tp.partition, 0), \
                        f"partition {tp.partition} offset {r.offset} consumed twice"
                self.seen[tp.partition].add(r.offset)
                assert r.value == b"%d-%d" % (tp.partition, r.offset)

    def commit_of(self, c: strom.Consumer) -> None:
        c.commit()  # owns everything it has: a refusal here is a bug
        for tp in c.assignment():
            got = c.committed(tp)
            if got is not None:
                assert got >= self.committed_max[tp.partition], "a commit moved backwards"
                self.committed_max[tp.partition] = got
        # Anything consumed before a commit and read again later is a bug; re-reads
        # may only start at the committed offset.
        for p in range(PARTITIONS):
            self.dup_floor[p] = max(self.dup_floor.get(p, 0), self.committed_max[p])

    def settle(self) -> None:
        store = GroupStore(self.log, GROUP)
        deadline = time.monotonic() + SETTLE_S
        while True:
            for c in self.live:
                self.take(c, c.poll(timeout_ms=0, max_records=1))
            state = store.read()
            owners = [c.assignment() for c in self.live]
            every = set().union(*owners)
            members = {c._membership.member_id for c in self.live}
            if (state.settled() and set(state.members) == members
                    and len(every) == PARTITIONS == sum(len(o) for o in owners)):
                for c in self.live:
                    assert c.assignment() == set(state.owned[c._membership.member_id])
                return
            assert time.monotonic() < deadline, (
                f"group did not settle: state {state}, consumers {owners}")
            time.sleep(0.001)

    @invariant()
    def one_live_owner_per_partition(self) -> None:
        owners = [c.assignment() for c in self.live]
        for i, a in enumerate(owners):
            for b in owners[i + 1:]:
                assert not a & b, "a partition owned by two live members"

    def teardown(self) -> None:
        self.settle()
        # Drain: every record appended is consumed by someone.
        deadline = time.monotonic() + SETTLE_S
        while any(len(self.seen[p]) < self.appended[p] for p in range(PARTITIONS)):
            for c in self.live:
                self.take(c, c.poll(timeout_ms=0))
            assert time.monotonic() < deadline, "records never consumed"
        for p in range(PARTITIONS):
            assert self.seen[p] == set(range(self.appended[p]))
        for c in self.live:
            c.close(autocommit=False)
        self.log.close()
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()


class DirGroupModel(GroupModel):
    path = "dir"


TestGroupModelInMemory = GroupModel.TestCase
TestGroupModelInMemory.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestGroupModelOnDisk = DirGroupModel.TestCase
TestGroupModelOnDisk.settings = settings(max_examples=50, stateful_step_count=25, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("path", [":memory:", "dir"])
def test_crash_hands_partitions_over(path, tmp_path):
    """The crash helper really is a death to the group: its partitions move, unrevoked."""
    log = strom.Log(path if path == ":memory:" else str(tmp_path))
    log.create_topic(TOPIC, PARTITIONS)
    a = strom.Consumer(log, TOPIC, group_id=GROUP, enable_auto_commit=False)
    b = strom.Consumer(log, TOPIC, group_id=GROUP, enable_auto_commit=False)
    deadline = time.monotonic() + SETTLE_S
    while not (a.assignment() and b.assignment()):
        a.poll(timeout_ms=1)
        b.poll(timeout_ms=1)
        assert time.monotonic() < deadline
    crash(a)
    while len(b.assignment()) < PARTITIONS:
        b.poll(timeout_ms=1)
        assert time.monotonic() < deadline
    b.close()
    log.close()
