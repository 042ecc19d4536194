"""ConsumerGroup (src/strom/client/group.py): describe, lag, reset_offsets, delete, run.

Layout: describing a group (two consumers and their disjoint partitions, a
static member away within its session, a group that does not exist), lag
(exact numbers), reset_offsets (a table of targets, the choice of
partitions, argument errors, refusal while a consumer is attached),
delete, then run() with real worker processes: every record handled
exactly once when nothing fails, at least once around a worker killed with
SIGKILL, stop() from another thread, a handler that always fails, a
KeyboardInterrupt in a process running a group, and the arguments it
refuses.

The tests without processes run on ``strom.open(":memory:")`` and on a
directory (the ``log`` fixture).  Every wait is a polling loop with a
deadline (:func:`until`); no test sleeps and then asserts.  The run()
handlers (group_run_child.py) copy what they handle to an output topic,
which is the tests' record of what was handled.
"""

from __future__ import annotations

import json
import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import childproc  # tests/childproc.py
import pytest
from group_run_child import CopyAndDieOnce, CopyTo, FailAt

import strom
from strom import ConsumerGroup, OffsetAndMetadata, PartitionLag, TopicPartition
from strom.errors import (GroupNotEmptyError, IllegalArgumentError, InvalidConfigError,
                          StromError, UnknownTopicOrPartitionError)
from strom.group.assignors import RangeAssignor
from strom.group.offsets import offset_store

from logfixtures import consumers, log_fixture  # noqa: F401 (fixtures)

log = log_fixture(3)

TP = TopicPartition
TP0, TP1, TP2 = (TP("t", i) for i in range(3))
ALL = frozenset({TP0, TP1, TP2})
#: The longest a group may take to reach a state a test waits for.
DEADLINE_S = 10.0
#: Idle time after which run()'s workers exit in these tests: long enough for
#: a worker's spawn (a fresh interpreter importing strom) and a rebalance.
IDLE_MS = 1500
CHILD_SCRIPT = Path(__file__).resolve().parent / "group_run_child.py"

children = childproc.children_fixture(CHILD_SCRIPT)




@pytest.fixture
def dir_log(tmp_path):
    """A directory log with an input topic ``in`` of four partitions and an ``out`` topic."""
    lg = strom.open(tmp_path / "data")
    lg.create_topic("in", partitions=4)
    lg.create_topic("out", partitions=1)
    yield lg
    lg.close()




def until(consumers, condition, what, timeout_s=DEADLINE_S):
    """Poll ``consumers`` (10 ms each) until ``condition()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        for c in consumers:
            c.poll(timeout_ms=10)


def fill(lg, counts, topic="t", timestamps=None):
    """Append ``counts[i]`` records to partition i (values ``b"<i>-<n>"``)."""
    for i, n in enumerate(counts):
        if n:
            ts = None if timestamps is None else timestamps[i]
            lg.topic(topic).partitions[i].append([b"%d-%d" % (i, k) for k in range(n)],
                                                 timestamps=ts)


def commit(lg, group, offsets):
    """Commit ``{tp: offset}`` for ``group`` directly, as a consumer would."""
    offset_store(lg).commit(group, {tp: OffsetAndMetadata(o) for tp, o in offsets.items()})


def committed(lg, group):
    """The group's committed offsets, ``{tp: offset}``."""
    return {tp: o.offset for tp, o in offset_store(lg).group_offsets(group).items()}


# -- describe ------------------------------------------------------------------------------------


def test_describe_shows_two_consumers_and_their_disjoint_partitions(log, consumers):
    a = consumers(log, "t", group_id="g", client_id="alpha")
    b = consumers(log, "t", group_id="g", client_id="beta")
    group = ConsumerGroup(log, "g")

    def split():
        d = group.describe()
        return (d.state == "Stable" and len(d.members) == 2
                and all(m.assignment for m in d.members))
    until([a, b], split, "the two consumers split the partitions")
    d = group.describe()
    assert d.group_id == "g" and d.protocol == "cooperative-sticky" and d.generation >= 2
    first, second = d.members
    assert first.assignment.isdisjoint(second.assignment)
    assert first.assignment | second.assignment == ALL
    by_client = {m.client_id: m for m in d.members}
    assert by_client["alpha"].assignment == a.assignment()
    assert by_client["beta"].assignment == b.assignment()
    for m in d.members:
        assert m.owned == m.assignment and m.topics == ("t",)
        assert m.pid == os.getpid() and m.host == socket.gethostname()
        assert m.group_instance_id is None
    assert {m.member_id for m in d.members} == {first.member_id, second.member_id}

    a.close()
    until([b], lambda: group.describe().state == "Stable" and b.assignment() == ALL,
          "b takes every partition")
    (only,) = group.describe().members
    assert only.client_id == "beta" and only.assignment == ALL
    b.commit()
    b.close()
    d = group.describe()
    assert (d.state, d.members, d.protocol) == ("Empty", (), None)


def test_a_group_that_does_not_exist_is_dead(log):
    d = ConsumerGroup(log, "nobody").describe()
    assert (d.state, d.members, d.generation, d.protocol) == ("Dead", (), 0, None)
    assert ConsumerGroup(log, "nobody").lag() == {}


def test_a_static_member_away_within_its_session_keeps_the_group_non_empty(log, consumers):
    timeout_ms = 300
    a = consumers(log, "t", group_id="g", group_instance_id="w1",
                  session_timeout_ms=timeout_ms, heartbeat_interval_ms=100)
    group = ConsumerGroup(log, "g")
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    a.close()  # a static member does not leave: its place is kept
    (m,) = group.describe().members
    assert (m.member_id, m.group_instance_id, m.pid, m.host) == ("w1", "w1", None, None)
    assert m.assignment == ALL
    with pytest.raises(GroupNotEmptyError, match="static members that left: w1"):
        group.reset_offsets("earliest", topics=["t"])
    # That refusal reconciled the group, which started the session clock; once it runs out
    # the group is empty.
    deadline = time.monotonic() + DEADLINE_S
    while group.describe().members:
        assert time.monotonic() < deadline, "the static member's place was kept for ever"
        time.sleep(0.01)
    assert group.reset_offsets("earliest", topics=["t"]) == {TP0: 0, TP1: 0, TP2: 0}
    assert group.describe().state == "Empty"


class FirstTakesAll(RangeAssignor):
    """An assignor under a name strom does not know: only its consumers can run it."""

    name = "first-takes-all"


def test_a_static_member_with_an_unknown_assignor_keeps_its_place_too(log, consumers):
    a = consumers(log, "t", group_id="g", group_instance_id="w1", session_timeout_ms=60_000,
                  partition_assignment_strategy=[FirstTakesAll()])
    until([a], lambda: a.assignment() == ALL, "a has every partition")
    a.close()
    group = ConsumerGroup(log, "g")
    # The check reconciles the group, which needs the assignor in use: not a KeyError here.
    with pytest.raises(GroupNotEmptyError, match="w1"):
        group.delete()
    (m,) = group.describe().members
    assert m.member_id == "w1" and m.owned == ALL and m.pid is None
    assert group.describe().protocol == "first-takes-all"


# -- lag -----------------------------------------------------------------------------------------


def test_lag_is_exact_per_partition(log, consumers):
    log.create_topic("u", partitions=2)
    fill(log, [5, 3, 0])
    fill(log, [4, 0], topic="u")
    commit(log, "g", {TP0: 2, TP1: 3})
    group = ConsumerGroup(log, "g")
    assert group.lag() == {TP0: PartitionLag(2, 5, 3), TP1: PartitionLag(3, 3, 0),
                           TP2: PartitionLag(None, 0, None)}
    assert group.lag(topics=["u"]) == {TP("u", 0): PartitionLag(None, 4, None),
                                       TP("u", 1): PartitionLag(None, 0, None)}
    # Topics a member subscribes to count before anything is committed for them.
    c = consumers(log, "u", group_id="g", auto_offset_reset="earliest")
    until([c], lambda: c.assignment() == {TP("u", 0), TP("u", 1)}, "c has topic u")
    assert set(group.lag()) == ALL | {TP("u", 0), TP("u", 1)}
    until([c], lambda: c.position(TP("u", 0)) == 4, "c read u")
    c.commit()
    fill(log, [1, 1, 1])  # appended after the first look: seen
    lag = group.lag()
    assert lag[TP("u", 0)] == PartitionLag(4, 4, 0)
    assert lag[TP0] == PartitionLag(2, 6, 4) and lag[TP2] == PartitionLag(None, 1, None)
    with pytest.raises(UnknownTopicOrPartitionError):
        group.lag(topics=["missing"])


def test_lag_sees_appends_and_commits_by_other_processes(tmp_path):
    path = tmp_path / "data"
    with strom.open(path) as writer, strom.open(path) as reader:
        writer.create_topic("t", partitions=3)
        group = ConsumerGroup(reader, "g")
        fill(writer, [2, 0, 0])
        commit(writer, "g", {TP0: 1})
        assert group.lag()[TP0] == PartitionLag(1, 2, 1)
        fill(writer, [3, 0, 0])
        commit(writer, "g", {TP0: 4})
        assert group.lag()[TP0] == PartitionLag(4, 5, 1)


# -- reset_offsets -------------------------------------------------------------------------------

#: Partition 0 holds 10 records stamped 1000, 1100, ... 1900; partition 1 holds 4
#: stamped 1000..1300; partition 2 is empty.  The group committed 6, 2 and 0.
RESETS = [
    # (arguments, new offsets of partitions 0, 1, 2)
    (dict(to="earliest"), (0, 0, 0)),
    (dict(to="latest"), (10, 4, 0)),
    (dict(offset=3), (3, 3, 0)),              # past the end: clamped
    (dict(offset=0), (0, 0, 0)),
    (dict(timestamp=1250), (3, 3, 0)),        # first record at or after 1250 ms
    (dict(timestamp=1000), (0, 0, 0)),
    (dict(timestamp=1900), (9, 4, 0)),        # none in partition 1: its end
    (dict(timestamp=99_999), (10, 4, 0)),
    (dict(shift_by=-2), (4, 0, 0)),           # below the start: clamped
    (dict(shift_by=3), (9, 4, 0)),            # past the end: clamped
]


@pytest.mark.parametrize("args, expected", RESETS, ids=[
    "-".join(f"{k}={v}" for k, v in a.items()) for a, _ in RESETS])
def test_reset_offsets_to_each_target(log, args, expected):
    fill(log, [10, 4, 0], timestamps=[[1000 + 100 * k for k in range(10)],
                                      [1000 + 100 * k for k in range(4)], None])
    commit(log, "g", {TP0: 6, TP1: 2, TP2: 0})
    group = ConsumerGroup(log, "g")
    want = dict(zip((TP0, TP1, TP2), expected))
    assert group.reset_offsets(**args, dry_run=True) == want
    assert committed(log, "g") == {TP0: 6, TP1: 2, TP2: 0}  # a dry run commits nothing
    assert group.reset_offsets(**args) == want
    assert committed(log, "g") == want
    assert {tp: v.committed for tp, v in group.lag().items()} == want


def test_a_new_consumer_of_the_group_starts_where_the_reset_put_it(log, consumers):
    fill(log, [5, 5, 5])
    commit(log, "g", {TP0: 5, TP1: 5, TP2: 5})
    ConsumerGroup(log, "g").reset_offsets(offset=3, partitions=[TP1])
    c = consumers(log, "t", group_id="g")
    seen = []
    until([], lambda: seen.extend(r for rs in c.poll(timeout_ms=10).values() for r in rs)
          or len(seen) == 2, "c reads partition 1 from offset 3")
    assert [(r.partition, r.offset) for r in seen] == [(1, 3), (1, 4)]


def test_reset_offsets_chooses_partitions(log):
    log.create_topic("u", partitions=2)
    fill(log, [3, 3, 3])
    fill(log, [3, 3], topic="u")
    group = ConsumerGroup(log, "g")
    assert group.reset_offsets("latest") == {}  # nothing committed: no topic of the group
    commit(log, "g", {TP0: 1})
    # By default: every partition of the topics the group committed offsets for.
    assert group.reset_offsets("latest") == {TP0: 3, TP1: 3, TP2: 3}
    assert group.reset_offsets("earliest", topics="u") == {TP("u", 0): 0, TP("u", 1): 0}
    assert group.reset_offsets(offset=2, partitions=[("u", 1), TP2]) == {TP2: 2, TP("u", 1): 2}
    assert committed(log, "g") == {TP0: 3, TP1: 3, TP2: 2, TP("u", 0): 0, TP("u", 1): 2}
    with pytest.raises(UnknownTopicOrPartitionError):
        group.reset_offsets("earliest", topics=["missing"])
    with pytest.raises(UnknownTopicOrPartitionError):
        group.reset_offsets("earliest", partitions=[TP("t", 3)])


@pytest.mark.parametrize("args, message", [
    (dict(), "exactly one"),
    (dict(to="earliest", offset=1), "exactly one"),
    (dict(to="start"), "'earliest' or 'latest'"),
    (dict(to=5), "say offset=5"),
    (dict(offset=-1), "offset must be an int >= 0"),
    (dict(timestamp="yesterday"), "timestamp must be an int"),
    (dict(shift_by=1.5), "shift_by must be an int"),
    (dict(to="earliest", topics=["t"], partitions=[TP0]), "not both"),
    (dict(to="earliest", partitions=["t"]), "TopicPartition"),
    (dict(to="earliest", dry_run="yes"), "dry_run"),
])
def test_reset_offsets_refuses_bad_arguments(log, args, message):
    with pytest.raises(IllegalArgumentError, match=message):
        ConsumerGroup(log, "g").reset_offsets(**args)


def test_shift_by_needs_committed_offsets(log):
    fill(log, [3, 3, 3])
    commit(log, "g", {TP0: 1})
    with pytest.raises(IllegalArgumentError, match=r"has none for \['t-1', 't-2'\]"):
        ConsumerGroup(log, "g").reset_offsets(shift_by=1)


def test_reset_and_delete_are_refused_while_a_consumer_is_subscribed(log, consumers):
    fill(log, [3, 3, 3])
    commit(log, "g", {TP0: 1})
    group = ConsumerGroup(log, "g")
    c = consumers(log, "t", group_id="g", client_id="busy")  # subscribed: a member, unpolled
    with pytest.raises(GroupNotEmptyError, match=r"has live members: busy-\w+ \(pid"):
        group.reset_offsets("earliest")
    with pytest.raises(GroupNotEmptyError, match="live members"):
        group.delete()
    # A dry run looks without changing anything, so it is allowed.
    assert group.reset_offsets("latest", dry_run=True) == {TP0: 3, TP1: 3, TP2: 3}
    assert committed(log, "g") == {TP0: 1}
    c.close(autocommit=False)
    assert group.reset_offsets("latest") == {TP0: 3, TP1: 3, TP2: 3}
    assert isinstance(GroupNotEmptyError("x"), strom.IllegalStateError)


# -- delete --------------------------------------------------------------------------------------


def test_delete_forgets_the_offsets_and_the_state(log, consumers):
    fill(log, [2, 2, 2])
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    until([c], lambda: all(c.position(tp) == 2 for tp in ALL) if c.assignment() == ALL
          else False, "c read everything")
    c.commit()
    c.close()
    group = ConsumerGroup(log, "g")
    assert group.describe().state == "Empty" and committed(log, "g") == dict.fromkeys(ALL, 2)
    other = ConsumerGroup(log, "other")
    other.reset_offsets(offset=1, topics=["t"])
    group.delete()
    assert group.describe().state == "Dead"
    assert committed(log, "g") == {} and offset_store(log).groups() == ["other"]
    assert committed(log, "other") == dict.fromkeys(ALL, 1)  # other groups keep theirs
    assert "state" not in _group_files(log, "g-g")  # the lock files stay: others may hold them
    group.delete()  # idempotent
    # The group can be used again: a new consumer starts from auto_offset_reset.
    c2 = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    until([c2], lambda: c2.assignment() == ALL, "c2 joins the deleted group anew")
    assert all(c2.position(tp) == 0 for tp in ALL)
    assert group.describe().state == "Stable"


def _group_files(lg, name):
    """Names in one group's directory."""
    try:
        return lg.fs.listdir(os.path.join(lg.path, "~groups", name))
    except FileNotFoundError:
        return []


def test_constructor_checks_its_arguments(log):
    with pytest.raises(IllegalArgumentError):
        ConsumerGroup(log, "")
    with pytest.raises(IllegalArgumentError):
        ConsumerGroup("data", "g")
    assert repr(ConsumerGroup(log, "g")).startswith("<strom.ConsumerGroup 'g'")


# -- run() ---------------------------------------------------------------------------------------


def produce(lg, total, topic="in"):
    """Send ``total`` keyed records (values ``b"0"``, ``b"1"``, ...) to ``topic``."""
    with strom.Producer(lg, acks=1) as producer:
        for i in range(total):
            producer.send(topic, str(i).encode(), key=str(i).encode())


def outputs(path, topic="out"):
    """The values in ``topic``, read by a fresh Log (what the workers wrote)."""
    with strom.open(path) as lg:
        return [r[3] for p in lg.topic(topic).partitions
                for r in (p.read_records(0, max_bytes=1 << 30) if p.log_end_offset else [])]


def all_committed(lg, group, topic="in"):
    """True when ``group`` has committed the end of every partition of ``topic``."""
    return all(v.lag == 0 for tp, v in ConsumerGroup(lg, group).lag([topic]).items())


def test_run_handles_every_record_exactly_once_in_two_processes(dir_log):
    total = 3000
    produce(dir_log, total)
    group = ConsumerGroup(dir_log, "copy")
    result = group.run("in", CopyTo(dir_log.path, "out"), 2, batch=True, idle_timeout_ms=IDLE_MS)
    assert len(result.records) == 2 and result.total == total and result.restarts == 0
    assert sorted(outputs(dir_log.path)) == sorted(str(i).encode() for i in range(total))
    assert all_committed(dir_log, "copy")
    assert group.describe().state == "Empty"


def test_run_restarts_a_worker_killed_with_sigkill_and_every_record_is_handled(dir_log, tmp_path):
    total = 2000
    produce(dir_log, total)
    marker = tmp_path / "died"
    group = ConsumerGroup(dir_log, "copy")
    handler = CopyAndDieOnce(dir_log.path, "out", str(marker), b"777")
    result = group.run(["in"], handler, 2, idle_timeout_ms=IDLE_MS)
    assert marker.exists() and result.restarts == 1
    counts = Counter(outputs(dir_log.path))
    assert set(counts) == {str(i).encode() for i in range(total)}  # at least once each
    assert counts[b"777"] >= 2  # handled before the kill, and again after it
    # Every record's last handling was committed and reported; the dead worker's last batch
    # was handled (written out) but not reported.
    assert total <= result.total < sum(counts.values())
    assert all_committed(dir_log, "copy")


@contextlib.contextmanager
def running(group, lg):
    """``group.run()`` copying ``in`` to ``out`` with 2 workers, in a thread; stopped at exit.

    Yields the list that gets run()'s result once it has returned.
    """
    results = []
    runner = threading.Thread(target=lambda: results.append(
        group.run("in", CopyTo(lg.path, "out"), 2, batch=True)))
    runner.start()
    try:
        yield results
    finally:
        group.stop()
        runner.join(DEADLINE_S)
        assert not runner.is_alive(), "run() did not return after stop()"


def test_stop_from_another_thread_stops_the_workers_gracefully(dir_log):
    total = 1000
    produce(dir_log, total)
    group = ConsumerGroup(dir_log, "copy")
    with running(group, dir_log) as results:
        deadline = time.monotonic() + DEADLINE_S
        while len(outputs(dir_log.path)) < total or not all_committed(dir_log, "copy"):
            assert time.monotonic() < deadline, "the workers did not handle every record"
            time.sleep(0.05)
        with pytest.raises(strom.IllegalStateError, match="running already"):
            group.run("in", CopyTo(dir_log.path, "out"), 1)
    (result,) = results
    assert result.total == total and result.restarts == 0
    assert group.describe().state == "Empty"
    group.stop()  # nothing running: nothing happens


def test_run_gives_up_after_max_restarts_when_the_handler_keeps_failing(tmp_path):
    with strom.open(tmp_path / "data") as lg:
        lg.create_topic("in", partitions=1)
        lg.create_topic("out", partitions=1)
        lg.topic("in").partitions[0].append([str(i).encode() for i in range(10)])
        group = ConsumerGroup(lg, "copy")
        with pytest.raises(StromError, match=r"ValueError: cannot handle b'5'.*giving up after 1 "
                                             r"restart\(s\) \(max_restarts=1\)"):
            group.run("in", FailAt(lg.path, "out", b"5"), 1, max_restarts=1)
        # Records before the failing one were handled once and committed; the restarted
        # worker began at the failing one.
        assert outputs(lg.path) == [str(i).encode() for i in range(5)]
        assert group.lag()[TP("in", 0)] == PartitionLag(5, 10, 5)
        assert group.describe().state == "Empty"


def test_an_interrupted_run_stops_its_workers_after_they_commit(tmp_path, children):
    path = str(tmp_path / "data")
    total = 1000
    with strom.open(path) as lg:
        lg.create_topic("in", partitions=4)
        lg.create_topic("out", partitions=1)
        produce(lg, total)
        child = children(path, "copy", "in", "out", "2")
        assert child.line() == "running"
        deadline = time.monotonic() + DEADLINE_S
        while len(outputs(path)) < total:
            assert time.monotonic() < deadline, "the workers did not handle every record"
            time.sleep(0.05)
        child.proc.send_signal(signal.SIGINT)
        done = json.loads(child.finish())
    assert done["state"] == "Empty"
    assert sorted(done["lag"]) == [f"in-{i}" for i in range(4)]
    assert all(c == end for c, end in done["lag"].values())  # everything handled is committed
    assert sum(end for _c, end in done["lag"].values()) == total
    assert sorted(outputs(path)) == sorted(str(i).encode() for i in range(total))


def test_workers_stop_when_the_process_running_the_group_dies(tmp_path, children):
    path = str(tmp_path / "data")
    with strom.open(path) as lg:
        lg.create_topic("in", partitions=4)
        lg.create_topic("out", partitions=1)
        group = ConsumerGroup(lg, "copy")
        child = children(path, "copy", "in", "out", "2")
        assert child.line() == "running"
        deadline = time.monotonic() + DEADLINE_S
        while len(group.describe().members) < 2:
            assert time.monotonic() < deadline, "the workers did not join"
            time.sleep(0.01)
        child.proc.kill()
        while group.describe().members:  # the orphans saw it and left
            assert time.monotonic() < deadline, "the workers outlived their supervisor"
            time.sleep(0.01)


def test_a_worker_given_sigterm_stops_cleanly_and_is_not_restarted(dir_log):
    total = 500
    produce(dir_log, total)
    group = ConsumerGroup(dir_log, "copy")
    with running(group, dir_log) as results:
        deadline = time.monotonic() + DEADLINE_S
        while not (len(group.describe().members) == 2 and all_committed(dir_log, "copy")):
            assert time.monotonic() < deadline, "the workers did not join and finish"
            time.sleep(0.01)
        os.kill(group.describe().members[0].pid, signal.SIGTERM)
        while len(group.describe().members) != 1:
            assert time.monotonic() < deadline, "the worker did not stop on SIGTERM"
            time.sleep(0.01)
    (result,) = results
    assert result.restarts == 0 and result.total == total


def test_run_refuses_what_it_cannot_run(log, dir_log):
    handler = CopyTo(dir_log.path, "out")
    if log.path == "/:memory:":
        with pytest.raises(IllegalArgumentError, match="memory"):
            ConsumerGroup(log, "g").run("t", handler)
    group = ConsumerGroup(dir_log, "g")
    with pytest.raises(IllegalArgumentError, match="pickl"):
        group.run("in", lambda record: None)
    with pytest.raises(IllegalArgumentError, match="callable"):
        group.run("in", "handler")
    with pytest.raises(IllegalArgumentError, match="processes"):
        group.run("in", handler, 0)
    with pytest.raises(IllegalArgumentError, match="group_id"):
        group.run("in", handler, group_id="other")
    with pytest.raises(InvalidConfigError, match="Unrecognized"):
        group.run("in", handler, no_such_option=1)
    with pytest.raises(UnknownTopicOrPartitionError):
        group.run("missing", handler)
    with pytest.raises(IllegalArgumentError, match="at least one topic"):
        group.run([], handler)
    with pytest.raises(IllegalArgumentError, match="idle_timeout_ms"):
        group.run("in", handler, idle_timeout_ms=-1)
    assert group.describe().state == "Dead"  # nothing was started
