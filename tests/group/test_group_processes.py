"""Consumer groups across real processes: a member killed with SIGKILL, a static member restarted.

Every consumer is group_child.py in its own process with its own Log; they
meet only through the data directory.  Each child journals what it handled
(``REC``), what it committed (``COMMIT``) and its assignment changes with
CLOCK_MONOTONIC times (system-wide on Linux, so comparable across
processes); the checks run on those journals afterwards.  Meanwhile this
process samples the group's state file and checks that no partition is
ever claimed by two members.  Waits are deadlines on conditions, never
fixed sleeps.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import childproc  # tests/childproc.py
import pytest

import strom
from strom import TopicPartition
from strom.group.coordinator import GroupState, GroupStore

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "group_child.py"
#: A condition the test waits for must hold within this (the run takes a few seconds).
DEADLINE_S = 30.0
#: How often the waits look at the journals and sample the group state.
SAMPLE_S = 0.002
#: The static members' session timeout: a restart must come back within it.
SESSION_MS = 10_000

children = childproc.children_fixture(CHILD_SCRIPT)


@dataclasses.dataclass
class Journal:
    """One consumer child's journal file, read as it grows (whole lines only)."""

    path: Path
    events: list[tuple] = dataclasses.field(default_factory=list)
    seen: dict[int, set[int]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(set))
    _pos: int = 0
    _partial: bytes = b""

    def read(self) -> list[tuple]:
        """Parse what was appended since the last read; returns the new events."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self._pos += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        new = []
        for line in lines:
            kind, rest = line.decode().split(" ", 1)
            if kind == "ERROR":
                new.append((kind, rest))
                continue
            a, b = rest.split()
            event = (kind, int(a), float(b) if kind in ("ASSIGN", "REVOKE", "LOST") else int(b))
            if kind == "REC":
                self.seen[event[1]].add(event[2])
            new.append(event)
        self.events += new
        return new

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)


class Watch:
    """Waits on conditions while sampling the group state for double claims."""

    def __init__(self, log: strom.Log, group: str, journals: list[Journal]) -> None:
        self.store = GroupStore(log, group)
        self.journals = journals
        self.generations: list[int] = []
        self.double_claims: list[str] = []
        self.samples = 0

    def sample(self) -> GroupState:
        for j in self.journals:
            j.read()
        state = self.store.read()
        self.samples += 1
        if not self.generations or self.generations[-1] != state.generation:
            self.generations.append(state.generation)
        owners = collections.defaultdict(list)
        for member, tps in state.owned.items():
            for tp in tps:
                owners[tp].append(member)
        for tp, members in owners.items():
            if len(members) > 1:
                self.double_claims.append(f"{tp} claimed by {members} (generation "
                                          f"{state.generation})")
        return state

    def until(self, condition: Callable[[GroupState], bool], what: str,
              timeout: float = DEADLINE_S) -> GroupState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.sample()
            if condition(state):
                return state
            assert time.monotonic() < deadline, f"{what} within {timeout} s; state {state}"
            time.sleep(SAMPLE_S)


def balanced(n: int, per_member: int) -> Callable[[GroupState], bool]:
    """The condition: ``n`` members, each consuming exactly its ``per_member`` partitions."""
    return lambda s: (len(s.members) == n and s.settled()
                      and all(len(s.owned.get(m, ())) == per_member for m in s.members))


def ownership(events: list[tuple], end: float) -> dict[int, list[tuple[float, float]]]:
    """Per partition, a journal's [ASSIGN, REVOKE/LOST] intervals (open ones end at ``end``)."""
    out: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    start: dict[int, float] = {}
    for kind, p, x in (e for e in events if e[0] in ("ASSIGN", "REVOKE", "LOST")):
        if kind == "ASSIGN":
            assert p not in start, f"partition {p} assigned twice without a revoke"
            start[p] = x
        else:
            assert p in start, f"partition {p} revoked without being assigned"
            out[p].append((start.pop(p), x))
    for p, t in start.items():
        out[p].append((t, end))
    return out


def handled(journals: Iterable[Journal], partition: int) -> set[int]:
    """The offsets of ``partition`` that any of ``journals`` handled."""
    return set().union(*(j.seen[partition] for j in journals))


def assigned_now(events: list[tuple]) -> set[int]:
    """The partitions a journal's consumer owns after its last event."""
    owned: set[int] = set()
    for kind, p, _x in (e for e in events if e[0] in ("ASSIGN", "REVOKE", "LOST")):
        if kind == "ASSIGN":
            owned.add(p)
        else:
            owned.discard(p)
    return owned


def check_journal(name: str, events: list[tuple]) -> None:
    """Records handled only while assigned; per partition in order, without a gap."""
    assigned: set[int] = set()
    last: dict[int, int] = {}
    for event in events:
        kind, p, x = event
        if kind == "ASSIGN":
            assigned.add(p)
            last.pop(p, None)  # a new ownership starts at the committed offset
        elif kind in ("REVOKE", "LOST"):
            assigned.discard(p)
        elif kind == "REC":
            assert p in assigned, f"{name} handled partition {p} offset {x} without owning it"
            assert last.get(p, x - 1) == x - 1, \
                f"{name}: partition {p} offset {x} after {last.get(p)} (order or gap)"
            last[p] = x


def stop(consumers: list[childproc.Child]) -> None:
    for c in consumers:
        c.send("stop")
    for c in consumers:
        c.finish()


@pytest.mark.parametrize("assignor", ["cooperative-sticky", "range"])
def test_a_member_killed_mid_stream_loses_nothing_and_no_partition_has_two_owners(
        tmp_path, children, assignor):
    topic, group, partitions, members, total, rate = "events", "workers", 12, 4, 20_000, 5_000
    victim_index = 1
    path = str(tmp_path / "data")
    log = strom.open(path)
    try:
        log.create_topic(topic, partitions=partitions)
        journals = [Journal(tmp_path / f"consumer-{i}.journal") for i in range(members)]
        consumers = [children("consume", path, topic, group, j.path, "work_ms=2",
                              f"assignor={assignor}") for j in journals]
        for c in consumers:
            assert c.line() == "ready"
        watch = Watch(log, group, journals)
        watch.until(balanced(members, partitions // members), "4 members, 3 partitions each")
        producer = children("produce", path, topic, total, rate)
        assert producer.line() == "ready"
        producer.send("go")

        # Kill one member once it has handled a share of its partitions' records.
        victim, vj = consumers[victim_index], journals[victim_index]
        watch.until(lambda s: vj.count("REC") >= total // members // 4,
                    "the victim handling records")
        victim_owned = assigned_now(vj.events)
        killed_at = time.monotonic()  # before the kill: the victim is alive until after this
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=DEADLINE_S)
        assert victim.proc.returncode == -signal.SIGKILL
        watch.until(lambda s: producer.proc.poll() is not None, "the producer finishing")
        end = {int(p): n for p, n in json.loads(producer.finish()).items()}
        assert sum(end.values()) == total
        survivors = [c for i, c in enumerate(consumers) if i != victim_index]

        def all_handled(_s: GroupState) -> bool:
            return all(len(handled(journals, p)) == end[p] for p in end)
        watch.until(all_handled, "every record handled")
        stop(survivors)
        for j in journals:
            j.read()
        with strom.Consumer(log, group_id=group) as reader:
            committed_end = {p: reader.committed(TopicPartition(topic, p)) for p in end}
    finally:
        log.close()

    assert watch.double_claims == [], watch.double_claims[:10]
    errors = [e for j in journals for e in j.events if e[0] == "ERROR"]
    assert errors == []
    events = {i: j.events for i, j in enumerate(journals)}
    for i, ev in events.items():
        check_journal(f"consumer {i}", ev)

    # Every record handled; twice only if the victim handled it after its last commit.
    times = collections.Counter((p, o) for ev in events.values() for kind, p, o in ev
                                if kind == "REC")
    for p, n in end.items():
        missing = [o for o in range(n) if (p, o) not in times]
        assert not missing, f"partition {p}: {len(missing)} records never handled: {missing[:10]}"
    victim_events = events[victim_index]
    uncommitted: set[tuple[int, int]] = set()
    last_commit: dict[int, int] = {}
    for kind, p, x in victim_events:
        if kind == "COMMIT":
            last_commit[p] = x
    for kind, p, x in victim_events:  # (it commits after every poll: before, all was committed)
        if kind == "REC" and x >= last_commit.get(p, 0):
            uncommitted.add((p, x))
    twice = {k: n for k, n in times.items() if n > 1}
    assert all(n == 2 for n in twice.values()), {k: n for k, n in twice.items() if n > 2}
    outside = sorted(set(twice) - uncommitted)
    assert not outside, f"handled twice outside the victim's uncommitted range: {outside[:10]}"
    assert committed_end == end, "the survivors committed everything at close"

    # No partition owned by two members at once: ASSIGN..REVOKE intervals of one partition,
    # the victim's ending at its kill, never overlap between consumers.
    intervals: dict[int, list[tuple[float, float, int]]] = collections.defaultdict(list)
    for i, ev in events.items():
        for p, spans in ownership(ev, killed_at if i == victim_index else float("inf")).items():
            intervals[p] += [(a, b, i) for a, b in spans]
    for p, spans in intervals.items():
        spans.sort()
        for (a1, b1, i1), (a2, _b2, i2) in itertools.pairwise(spans):
            assert b1 <= a2, (f"partition {p}: consumer {i1} owned it over [{a1}, {b1}], "
                              f"consumer {i2} from {a2}")

    # The victim's partitions went to the survivors, after the kill.
    taken = {p for i, ev in events.items() if i != victim_index
             for kind, p, t in ev if kind == "ASSIGN" and t > killed_at}
    assert victim_owned and victim_owned <= taken, (victim_owned, taken)


def test_a_static_member_restarted_within_its_session_gets_its_partitions_back_without_a_rebalance(
        tmp_path, children):
    topic, group, partitions, first, more = "orders", "static", 6, 50, 30
    path = str(tmp_path / "data")
    log = strom.open(path)
    try:
        log.create_topic(topic, partitions=partitions)

        def fill(start: int, n: int) -> None:
            for p in range(partitions):
                log.partition(topic, p).append(
                    [b"%d:%d" % (p, o) for o in range(start, start + n)], acks=1)
        names = ["w0", "w1", "w2"]
        journals = {w: Journal(tmp_path / f"{w}.journal") for w in names}
        consumers = {w: children("consume", path, topic, group, journals[w].path, f"instance={w}",
                                 f"session_ms={SESSION_MS}") for w in names}
        for c in consumers.values():
            assert c.line() == "ready"
        watch = Watch(log, group, list(journals.values()))

        def all_committed(_s: GroupState) -> bool:
            last: dict[int, int] = {}
            for j in journals.values():
                for kind, p, o in j.events:
                    if kind == "COMMIT":
                        last[p] = max(o, last.get(p, o))
            return len(last) == partitions and all(o == first for o in last.values())
        watch.until(balanced(3, 2), "3 static members, 2 partitions each")
        fill(0, first)
        before = watch.until(all_committed, "the first records committed")
        assert balanced(3, 2)(before)
        assert journals["w1"].count("REC") == 2 * first  # it handled (and committed) its own
        generation = before.generation
        watch.generations = [generation]  # from here on, every generation seen is kept
        theirs = set(before.owned["w1"])
        settled_lines = {w: len(j.events) for w, j in journals.items()}

        killed_at = time.monotonic()
        consumers["w1"].proc.send_signal(signal.SIGKILL)
        consumers["w1"].proc.wait(timeout=DEADLINE_S)
        gone = watch.until(lambda s: s.members["w1"].departed_ms is not None,
                           "the others seeing w1 gone")
        assert set(gone.owned["w1"]) == theirs  # its place is kept: nobody takes its partitions
        fill(first, more)
        survivors = [w for w in names if w != "w1"]
        others = {tp.partition for w in survivors for tp in before.owned[w]}
        watch.until(lambda s: all(len(handled(journals.values(), tp.partition)) == first + more
                                  for w in survivors for tp in before.owned[w]),
                    "the survivors handling the new records")
        assert not any(journals["w1"].seen[tp.partition] - set(range(first)) for tp in theirs)

        restarted = Journal(tmp_path / "w1-restarted.journal")
        watch.journals.append(restarted)
        again = children("consume", path, topic, group, restarted.path, "instance=w1",
                         f"session_ms={SESSION_MS}")
        assert again.line() == "ready"
        watch.until(lambda s: all(len(restarted.seen[tp.partition]) == more for tp in theirs),
                    "the restarted w1 handling its partitions' new records")
        back_at = min(t for kind, _p, t in restarted.events if kind == "ASSIGN")
        stop([consumers[w] for w in survivors] + [again])
        for j in watch.journals:
            j.read()
    finally:
        log.close()

    assert back_at - killed_at < SESSION_MS / 1000, "back within its session (the test's premise)"
    assert watch.double_claims == []
    assert [e for j in watch.journals for e in j.events if e[0] == "ERROR"] == []
    assert watch.generations == [generation], "the generation moved: a rebalance happened"
    assigned = {p for kind, p, _t in restarted.events if kind == "ASSIGN"}
    assert assigned == {tp.partition for tp in theirs}, "exactly its old partitions"
    assert others.isdisjoint(assigned)
    for w in survivors:  # until they were stopped: no revoke, no assign
        after = journals[w].events[settled_lines[w]:]
        changes = [e for e in after if e[0] in ("ASSIGN", "REVOKE", "LOST")]
        assert all(e[0] == "REVOKE" for e in changes), (w, changes)  # only the revokes of close()
    # The restarted member resumes from the commit of the killed one: nothing again, nothing lost.
    for tp in theirs:
        assert sorted(o for kind, p, o in restarted.events
                      if kind == "REC" and p == tp.partition) == list(range(first, first + more))
    for name, j in [*journals.items(), ("w1 restarted", restarted)]:
        check_journal(name, j.events)
