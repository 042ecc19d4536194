"""Tests for the Consumer (src/strom/client/consumer.py).

Layout: construction and configuration, subscribe/assign, poll (timeouts,
record caps, fairness, update_offsets), iteration, positions and seeks
(with the reset policy at out-of-range positions), committed offsets (sync,
async, automatic, durable, shared between Log objects), offsets by time and
the log's extent, pause/resume, metadata and metrics, close and wakeup,
deserializers and record fields, the rebalance listener, pattern
subscriptions, retention under a consumer, and poll_columns.

Most tests run twice, on ``strom.open(":memory:")`` and on a directory
(the ``log`` fixture).  Waits for records are bounded (``TIMEOUT_MS``): a
consumer that misses an append fails its test instead of hanging the run.
Waits for another thread to block watch the log's append signal, never
the clock.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import pytest

import strom
from strom import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition
from strom.errors import (
    IllegalArgumentError,
    IllegalStateError,
    InvalidConfigError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    StromError,
    UnknownTopicOrPartitionError,
)

from logfixtures import consumers, log_fixture, two_logs_fixture  # noqa: F401 (fixtures)

log = log_fixture(3)
two_logs = two_logs_fixture(3)

#: The longest any wait for records may take before the test fails.
TIMEOUT_MS = 10_000
#: A blocked poll must return this soon after the event that should end it.
WAKE_S = 2.0
OFFSETS_TOPIC = "__consumer_offsets"

TP0, TP1, TP2 = (TopicPartition("t", i) for i in range(3))
ALL = {TP0, TP1, TP2}








def fill(lg, partition, n, *, topic="t", start=0, **kw):
    """Append ``n`` records (one batch) to a partition; returns their values."""
    values = [b"%s-%d-%d" % (topic.encode(), partition, i) for i in range(start, start + n)]
    lg.partition(topic, partition).append(values, acks=1, **kw)
    return values


def fill_batches(lg, partition, batches, per_batch, *, topic="t"):
    """Append ``batches`` batches of ``per_batch`` records; returns every value."""
    out = []
    for b in range(batches):
        out += fill(lg, partition, per_batch, topic=topic, start=b * per_batch)
    return out


def drain(consumer, **kw):
    """Every record poll() hands out until it hands out none: {tp: [records]}."""
    out: dict[TopicPartition, list] = {}
    while True:
        got = consumer.poll(timeout_ms=0, **kw)
        if not got:
            return out
        for tp, records in got.items():
            out.setdefault(tp, []).extend(records)


def drain_after(consumer, first):
    """``first`` (a poll result) merged with everything polled after it."""
    out = {tp: list(rs) for tp, rs in first.items()}
    for tp, rs in drain(consumer).items():
        out.setdefault(tp, []).extend(rs)
    return out


def values_of(records_by_tp):
    return {tp: [r.value for r in records] for tp, records in records_by_tp.items()}


def offsets_of(records_by_tp):
    return {tp: [r.offset for r in records] for tp, records in records_by_tp.items()}


def wait_for_waiter(consumer, timeout_s=TIMEOUT_MS / 1000):
    """Return once ``consumer`` is blocked in a wait (a poll or an iteration with nothing to read)."""
    deadline = time.monotonic() + timeout_s
    while consumer._waiter.waiting == 0:
        assert time.monotonic() < deadline, "the consumer never blocked"
        time.sleep(0.001)


def run_in_thread(fn):
    """Start ``fn`` in a thread; returns a Future of its result."""
    future = concurrent.futures.Future()

    def target():
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001  (handed to the test through the future)
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


class Listener(strom.ConsumerRebalanceListener):
    def __init__(self):
        self.calls = []

    def on_partitions_revoked(self, revoked):
        self.calls.append(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned):
        self.calls.append(("assigned", set(assigned)))


# -- construction and configuration -------------------------------------------------


def test_topics_given_to_the_constructor_are_subscribed(log, consumers):
    c = consumers(log, "t")
    assert c.subscription() == {"t"}
    assert c.assignment() == ALL


def test_constructor_without_topics_has_no_subscription(log, consumers):
    c = consumers(log)
    assert c.subscription() is None
    assert c.assignment() == set()
    assert c.poll() == {}


def test_constructor_needs_a_log(tmp_path):
    with pytest.raises(InvalidConfigError):
        strom.Consumer(str(tmp_path), "t")
    with pytest.raises(InvalidConfigError):
        strom.Consumer(None)


def test_unknown_config_is_rejected_by_name(log):
    with pytest.raises(InvalidConfigError, match="auto_ofset_reset"):
        strom.Consumer(log, "t", auto_ofset_reset="earliest")


def test_network_configs_are_accepted(log, consumers):
    c = consumers(log, "t", bootstrap_servers="localhost:9092", security_protocol="SSL",
                  check_crcs=False,
                  auto_offset_reset="earliest")
    fill(log, 0, 2)
    assert values_of(drain(c)) == {TP0: [b"t-0-0", b"t-0-1"]}


@pytest.mark.parametrize("config", [
    {"session_timeout_ms": 0},
    {"heartbeat_interval_ms": "3000"},
    {"max_poll_interval_ms": -1},
    {"session_timeout_ms": 1000, "heartbeat_interval_ms": 1000},
    {"partition_assignment_strategy": ()},
    {"partition_assignment_strategy": ["nearest"]},
    {"group_instance_id": ""},
    {"group_id": ""},
    {"group_id": 5},
    {"group_id": b"g"},
    {"auto_offset_reset": "sideways"},
    {"auto_offset_reset": None},
    {"isolation_level": "serializable"},
    {"auto_commit_interval_ms": 0},
    {"auto_commit_interval_ms": -5},
    {"auto_commit_interval_ms": "5000"},
    {"auto_commit_interval_ms": 1.5},
    {"max_poll_records": 0},
    {"max_poll_records": -1},
    {"max_poll_records": "500"},
    {"max_poll_records": True},
    {"fetch_max_wait_ms": -1},
    {"max_partition_fetch_bytes": 0},
    {"fetch_max_bytes": 0},
    {"consumer_timeout_ms": -1},
    {"consumer_timeout_ms": "1000"},
    {"consumer_timeout_ms": True},
    {"commit_acks": 2},
    {"commit_acks": "some"},
    {"key_deserializer": 5},
    {"value_deserializer": "json"},
], ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items()))
def test_bad_config_values_are_rejected(log, config):
    with pytest.raises(InvalidConfigError):
        strom.Consumer(log, "t", **config)


@pytest.mark.parametrize("alias, expected", [("smallest", "earliest"), ("largest", "latest"),
                                             ("earliest", "earliest"), ("latest", "latest")])
def test_auto_offset_reset_and_its_aliases(log, consumers, alias, expected):
    fill(log, 1, 4)
    c = consumers(log, auto_offset_reset=alias)
    c.assign([TP1])
    assert c.position(TP1) == (0 if expected == "earliest" else 4)


def test_default_reset_is_latest(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t")
    assert c.poll(timeout_ms=0) == {}
    assert c.position(TP0) == 3
    fill(log, 0, 1, start=3)
    assert values_of(c.poll(timeout_ms=TIMEOUT_MS)) == {TP0: [b"t-0-3"]}


@pytest.mark.parametrize("acks", [0, 1, "all", -1])
def test_commit_acks_values(log, consumers, acks):
    fill(log, 0, 2)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", commit_acks=acks,
                  enable_auto_commit=False)
    drain(c)
    c.commit()
    assert c.committed(TP0) == 2


def test_a_tiny_fetch_size_still_makes_progress(log, consumers):
    values = fill_batches(log, 0, 5, 3)
    c = consumers(log, "t", auto_offset_reset="earliest", max_partition_fetch_bytes=1,
                  fetch_max_bytes=1)
    assert values_of(drain(c)) == {TP0: values}


# -- subscribe, assign, unsubscribe ---------------------------------------------------


def test_subscribe_assigns_every_partition_of_the_topics(log, consumers):
    log.create_topic("u", partitions=2)
    c = consumers(log)
    c.subscribe(["t", "u"])
    assert c.subscription() == {"t", "u"}
    assert c.assignment() == ALL | {TopicPartition("u", 0), TopicPartition("u", 1)}


def test_subscribe_takes_a_single_topic_name(log, consumers):
    c = consumers(log)
    c.subscribe("t")
    assert c.subscription() == {"t"}
    assert c.assignment() == ALL


def test_subscribe_replaces_the_subscription(log, consumers):
    log.create_topic("u")
    c = consumers(log, "t")
    c.subscribe(["u"])
    assert c.subscription() == {"u"}
    assert c.assignment() == {TopicPartition("u", 0)}


def test_subscription_returns_a_copy(log, consumers):
    c = consumers(log, "t")
    c.subscription().add("other")
    assert c.subscription() == {"t"}
    c.assignment().clear()
    assert c.assignment() == ALL


def test_subscribing_to_a_missing_topic_assigns_it_once_created(log, consumers):
    c = consumers(log, auto_offset_reset="earliest")
    c.subscribe(["later"])
    assert c.subscription() == {"later"}
    assert c.assignment() == set()
    assert c.poll(timeout_ms=0) == {}
    log.create_topic("later", partitions=2)
    fill(log, 1, 2, topic="later")
    got = c.poll(timeout_ms=TIMEOUT_MS)
    assert values_of(got) == {TopicPartition("later", 1): [b"later-1-0", b"later-1-1"]}
    assert c.assignment() == {TopicPartition("later", 0), TopicPartition("later", 1)}


@pytest.mark.parametrize("args", [{}, {"topics": []}, {"topics": ()}])
def test_subscribe_needs_topics_or_a_pattern(log, consumers, args):
    c = consumers(log)
    with pytest.raises(IllegalArgumentError):
        c.subscribe(**args)


def test_subscribe_rejects_topics_and_pattern_together(log, consumers):
    with pytest.raises(IllegalArgumentError):
        consumers(log).subscribe(["t"], pattern="t.*")


@pytest.mark.parametrize("topics", [[1], [b"t"], [None], ["t", 2]])
def test_subscribe_rejects_non_str_topics(log, consumers, topics):
    c = consumers(log)
    with pytest.raises(IllegalArgumentError):
        c.subscribe(topics)
    assert c.subscription() is None


@pytest.mark.parametrize("name", ["bad/name", "", "..", "x" * 250],
                         ids=["slash", "empty", "dot-dot", "too-long"])
def test_subscribe_rejects_an_illegal_topic_name_and_changes_nothing(log, consumers, name):
    fill(log, 0, 1)
    c = consumers(log, "t", auto_offset_reset="earliest")
    with pytest.raises(ValueError):
        c.subscribe(["t", name])
    assert c.subscription() == {"t"}
    assert c.assignment() == ALL
    fresh = consumers(log)
    with pytest.raises(ValueError):
        fresh.subscribe([name])
    assert fresh.subscription() is None
    # A later poll (after a metadata refresh is due) does not fail on the rejected name.
    assert values_of(c.poll(timeout_ms=150)) == {TP0: [b"t-0-0"]}
    assert c.poll(timeout_ms=150) == {}
    assert fresh.poll(timeout_ms=150) == {}


def test_subscribe_rejects_a_bad_pattern(log, consumers):
    with pytest.raises(IllegalArgumentError):
        consumers(log).subscribe(pattern="(unclosed")


def test_subscribe_rejects_a_listener_of_the_wrong_type(log, consumers):
    class NotAListener:
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            pass

    c = consumers(log)
    with pytest.raises(TypeError):
        c.subscribe(["t"], listener=NotAListener())
    with pytest.raises(IllegalArgumentError):
        c.subscribe(["t"], listener=lambda *a: None)


def test_subscribe_after_assign_is_illegal(log, consumers):
    c = consumers(log)
    c.assign([TP0])
    with pytest.raises(IllegalStateError):
        c.subscribe(["t"])
    assert c.assignment() == {TP0}


def test_assign_after_subscribe_is_illegal(log, consumers):
    c = consumers(log, "t")
    with pytest.raises(IllegalStateError):
        c.assign([TP0])
    assert c.assignment() == ALL


def test_unsubscribe_allows_the_other_mode(log, consumers):
    c = consumers(log, "t")
    c.unsubscribe()
    assert c.subscription() is None
    assert c.assignment() == set()
    c.assign([TP2])
    assert c.assignment() == {TP2}
    c.unsubscribe()
    c.subscribe(["t"])
    assert c.assignment() == ALL


def test_assign_empty_list_unassigns(log, consumers):
    c = consumers(log)
    c.assign([TP0, TP1])
    c.assign([])
    assert c.assignment() == set()
    c.subscribe(["t"])  # assign([]) is an unsubscribe
    assert c.assignment() == ALL


def test_assign_replaces_and_accepts_plain_tuples(log, consumers):
    fill(log, 1, 2)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    c.assign([("t", 1)])
    assert c.assignment() == {TP1}
    assert all(type(tp) is TopicPartition for tp in c.assignment())
    assert c.subscription() is None
    got = drain(c)
    assert values_of(got) == {TP1: [b"t-1-0", b"t-1-1"]}
    assert all(type(tp) is TopicPartition for tp in got)


def test_assign_keeps_the_position_of_partitions_kept(log, consumers):
    fill(log, 0, 5)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    c.poll(timeout_ms=0, max_records=2)
    c.assign([TP0, TP1])
    assert c.position(TP0) == 2


@pytest.mark.parametrize("partitions, error", [
    ([TopicPartition("missing", 0)], UnknownTopicOrPartitionError),
    ([TopicPartition("t", 3)], UnknownTopicOrPartitionError),
    ([TopicPartition("t", -1)], UnknownTopicOrPartitionError),
    (["t"], IllegalArgumentError),
    ([("t", "0")], IllegalArgumentError),
    ([("t", 0, 1)], IllegalArgumentError),
    ([(0, "t")], IllegalArgumentError),
    ([TopicPartition("t", True)], IllegalArgumentError),
    ([None], IllegalArgumentError),
])
def test_assign_rejects_bad_partitions(log, consumers, partitions, error):
    c = consumers(log)
    with pytest.raises(error):
        c.assign(partitions)
    assert c.assignment() == set()


def test_assign_does_not_call_the_listener_or_subscribe(log, consumers):
    c = consumers(log)
    c.assign([TP0])
    assert c.subscription() is None


# -- poll ---------------------------------------------------------------------------------


def test_poll_returns_records_of_every_partition_in_offset_order(log, consumers):
    expected = {TopicPartition("t", p): fill_batches(log, p, 3, 4) for p in range(3)}
    c = consumers(log, "t", auto_offset_reset="earliest")
    got = drain(c)
    assert values_of(got) == expected
    for tp, records in got.items():
        assert [r.offset for r in records] == list(range(12))
        assert all(isinstance(r, strom.ConsumerRecord) for r in records)
        assert {(r.topic, r.partition) for r in records} == {tp}


def test_poll_on_nothing_returns_empty_dict(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")
    assert c.poll() == {}
    assert c.poll(timeout_ms=0) == {}


def test_poll_waits_for_its_timeout(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")
    t0 = time.monotonic()
    assert c.poll(timeout_ms=100) == {}
    assert time.monotonic() - t0 >= 0.09


def test_poll_accepts_a_float_timeout(log, consumers):
    fill(log, 0, 1)
    c = consumers(log, "t", auto_offset_reset="earliest")
    assert values_of(c.poll(timeout_ms=0.5)) == {TP0: [b"t-0-0"]}


@pytest.mark.parametrize("timeout", [-1, -0.5, "100", None, True, [1]])
def test_poll_rejects_bad_timeouts(log, consumers, timeout):
    c = consumers(log, "t")
    with pytest.raises(IllegalArgumentError):
        c.poll(timeout_ms=timeout)


def test_negative_poll_timeout_is_a_value_error(log, consumers):
    with pytest.raises(ValueError):
        consumers(log, "t").poll(timeout_ms=-1)


@pytest.mark.parametrize("max_records", [0, -1, 1.5, "5", True])
def test_poll_rejects_bad_max_records(log, consumers, max_records):
    c = consumers(log, "t")
    with pytest.raises(IllegalArgumentError):
        c.poll(max_records=max_records)


def test_poll_max_records_caps_the_total(log, consumers):
    for p in range(3):
        fill(log, p, 10)
    c = consumers(log, "t", auto_offset_reset="earliest")
    seen = 0
    while seen < 30:
        got = c.poll(timeout_ms=0, max_records=4)
        n = sum(map(len, got.values()))
        assert 1 <= n <= 4
        seen += n
    assert seen == 30 and c.poll(timeout_ms=0) == {}


def test_max_poll_records_caps_poll_and_max_records_overrides_it(log, consumers):
    fill(log, 0, 20)
    c = consumers(log, "t", auto_offset_reset="earliest", max_poll_records=3)
    got = c.poll(timeout_ms=0)
    assert offsets_of(got) == {TP0: [0, 1, 2]}
    got = c.poll(timeout_ms=0, max_records=10)
    assert offsets_of(got) == {TP0: list(range(3, 13))}
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [13, 14, 15]}


def test_poll_serves_partitions_in_turn(log, consumers):
    for p in range(3):
        fill(log, p, 30)
    c = consumers(log, "t", auto_offset_reset="earliest")
    order = []
    for _ in range(9):
        got = c.poll(timeout_ms=0, max_records=2)
        assert sum(map(len, got.values())) == 2
        order.append(sorted(tp.partition for tp in got))
    served = [p for ps in order for p in ps]
    # No partition is starved: every window of three polls reaches all three.
    for i in range(len(order) - 2):
        assert {p for ps in order[i:i + 3] for p in ps} == {0, 1, 2}, order
    assert abs(served.count(0) - served.count(1)) <= 2 and abs(served.count(1) - served.count(2)) <= 2


def test_poll_without_update_offsets_returns_the_same_records_again(log, consumers):
    fill(log, 0, 5)
    fill(log, 1, 3)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.poll(timeout_ms=0, max_records=1)
    positions = {tp: c.position(tp) for tp in ALL}
    first = c.poll(timeout_ms=0, max_records=4, update_offsets=False)
    assert {tp: c.position(tp) for tp in ALL} == positions
    assert sum(map(len, first.values())) == 4
    again = c.poll(timeout_ms=0, max_records=4, update_offsets=False)
    assert offsets_of(again) == offsets_of(first)
    rest = drain(c)
    all_offsets = {tp: [r.offset for r in rs] for tp, rs in rest.items()}
    first_poll = offsets_of(first)
    for tp, offs in first_poll.items():
        assert all_offsets[tp][:len(offs)] == offs
    assert sum(map(len, rest.values())) == 7


def test_poll_wakes_when_another_thread_appends(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")
    assert c.poll(timeout_ms=0) == {}

    def append_when_blocked():
        wait_for_waiter(c)
        fill(log, 2, 1)
        return time.monotonic()

    helper = run_in_thread(append_when_blocked)
    got = c.poll(timeout_ms=TIMEOUT_MS)
    returned = time.monotonic()
    appended = helper.result(timeout=TIMEOUT_MS / 1000)
    assert values_of(got) == {TP2: [b"t-2-0"]}
    assert returned - appended < WAKE_S


def test_poll_wakes_for_an_append_through_another_log_object(two_logs, consumers):
    a, b = two_logs
    c = consumers(b, "t", auto_offset_reset="earliest")
    assert c.poll(timeout_ms=0) == {}

    def append_when_blocked():
        wait_for_waiter(c)
        fill(a, 1, 2)
        return time.monotonic()

    helper = run_in_thread(append_when_blocked)
    t0 = time.monotonic()
    got = c.poll(timeout_ms=TIMEOUT_MS)
    returned = time.monotonic()
    appended = helper.result(timeout=TIMEOUT_MS / 1000)
    assert got, f"poll returned nothing after {returned - t0:.1f} s"
    assert values_of(drain_after(c, got)) == {TP1: [b"t-1-0", b"t-1-1"]}
    assert returned - appended < WAKE_S


def test_poll_sees_records_appended_through_another_log_object(two_logs, consumers):
    a, b = two_logs
    c = consumers(b, "t", auto_offset_reset="earliest")
    fill(a, 0, 3)
    assert values_of(drain(c)) == {TP0: [b"t-0-0", b"t-0-1", b"t-0-2"]}
    assert c.end_offsets([TP0]) == {TP0: 3}


# -- iteration ---------------------------------------------------------------------------


def test_iteration_yields_every_record_then_stops_after_consumer_timeout(log, consumers):
    expected = {TopicPartition("t", p): fill_batches(log, p, 2, 5) for p in range(3)}
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=50)
    got: dict[TopicPartition, list] = {}
    for r in c:
        got.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
    assert values_of(got) == expected
    assert all([r.offset for r in rs] == list(range(10)) for rs in got.values())
    assert list(c) == []  # timed out again: nothing new


def test_consumer_timeout_zero_stops_at_once(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    assert list(c) == []
    fill(log, 0, 2)
    assert [r.value for r in c] == [b"t-0-0", b"t-0-1"]


def test_iteration_waits_out_its_consumer_timeout(log, consumers):
    c = consumers(log, "t", consumer_timeout_ms=100)
    t0 = time.monotonic()
    assert list(c) == []
    assert time.monotonic() - t0 >= 0.09


def test_next_returns_one_record_and_advances_the_position(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    r = next(c)
    assert (r.partition, r.offset, r.value) == (0, 0, b"t-0-0")
    assert c.position(TP0) == 1
    assert next(c).offset == 1
    assert c.position(TP0) == 2
    assert next(c).offset == 2
    assert c.position(TP0) == 3
    with pytest.raises(StopIteration):
        next(c)
    fill(log, 0, 1, start=3)
    assert next(c).value == b"t-0-3"


def test_iteration_continues_after_appends(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    seen = []
    for round_ in range(3):
        fill(log, round_ % 3, 2, start=round_)
        seen += [(r.partition, r.value) for r in c]
    assert seen == [(0, b"t-0-0"), (0, b"t-0-1"), (1, b"t-1-1"), (1, b"t-1-2"),
                    (2, b"t-2-2"), (2, b"t-2-3")]


def test_iteration_waits_for_an_append(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=TIMEOUT_MS)

    def append_when_blocked():
        wait_for_waiter(c)
        fill(log, 1, 1)
        return time.monotonic()

    helper = run_in_thread(append_when_blocked)
    r = next(c)
    returned = time.monotonic()
    appended = helper.result(timeout=TIMEOUT_MS / 1000)
    assert r.value == b"t-1-0"
    assert returned - appended < WAKE_S


def test_poll_after_partial_iteration_loses_and_repeats_nothing(log, consumers):
    expected = {TopicPartition("t", p): fill(log, p, 6) for p in range(3)}
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    got: dict[TopicPartition, list] = {}
    for _ in range(4):
        r = next(c)
        got.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
    for tp, rs in drain(c).items():
        got.setdefault(tp, []).extend(rs)
    assert values_of(got) == expected


def test_commit_during_iteration_commits_the_live_position(log, consumers):
    fill(log, 0, 10)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", consumer_timeout_ms=0,
                  enable_auto_commit=False)
    for _ in range(4):
        next(c)
    c.commit()
    assert c.committed(TP0) == 4
    assert next(c).offset == 4


# -- positions and seeks ------------------------------------------------------------------


def test_position_of_a_fresh_assignment_follows_the_reset_policy(log, consumers):
    fill(log, 0, 4)
    early = consumers(log, auto_offset_reset="earliest")
    early.assign([TP0])
    late = consumers(log, auto_offset_reset="latest")
    late.assign([TP0])
    assert early.position(TP0) == 0
    assert late.position(TP0) == 4


def test_position_of_an_unassigned_partition_is_illegal(log, consumers):
    c = consumers(log)
    c.assign([TP0])
    with pytest.raises(IllegalStateError):
        c.position(TP1)
    with pytest.raises(IllegalArgumentError):
        c.position("t")


def test_position_with_none_policy_and_no_commit_raises(log, consumers):
    fill(log, 0, 2)
    c = consumers(log, group_id="g", auto_offset_reset="none")
    c.assign([TP0])
    with pytest.raises(NoOffsetForPartitionError) as info:
        c.position(TP0)
    assert TP0 in info.value.partitions
    with pytest.raises(NoOffsetForPartitionError):
        c.poll(timeout_ms=0)


def test_none_policy_without_group_raises_at_poll(log, consumers):
    fill(log, 0, 2)
    c = consumers(log, "t", auto_offset_reset="none")
    with pytest.raises(NoOffsetForPartitionError):
        c.poll(timeout_ms=0)


def test_none_policy_starts_from_the_committed_offset(log, consumers):
    fill(log, 0, 5)
    setup = consumers(log, group_id="g")
    setup.commit({TP0: 3})
    c = consumers(log, group_id="g", auto_offset_reset="none")
    c.assign([TP0])
    assert c.position(TP0) == 3
    assert offsets_of(drain(c)) == {TP0: [3, 4]}


def test_seek_moves_the_next_record(log, consumers):
    fill(log, 0, 10)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.poll(timeout_ms=0, max_records=5)
    c.seek(TP0, 2)
    assert c.position(TP0) == 2
    assert offsets_of(c.poll(timeout_ms=0, max_records=3)) == {TP0: [2, 3, 4]}
    c.seek(TP0, 8)
    assert offsets_of(drain(c)) == {TP0: [8, 9]}
    c.seek(TP0, 0)
    assert offsets_of(drain(c)) == {TP0: list(range(10))}


def test_seek_during_iteration(log, consumers):
    fill(log, 0, 10)
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    assert next(c).offset == 0
    c.seek(TP0, 7)
    assert [r.offset for r in c] == [7, 8, 9]


@pytest.mark.parametrize("offset", [-1, "3", 2.0, None, True])
def test_seek_rejects_bad_offsets(log, consumers, offset):
    c = consumers(log, "t")
    with pytest.raises(IllegalArgumentError):
        c.seek(TP0, offset)


def test_seek_on_an_unassigned_partition_is_illegal(log, consumers):
    c = consumers(log)
    c.assign([TP0])
    with pytest.raises(IllegalStateError):
        c.seek(TP1, 0)
    with pytest.raises(IllegalArgumentError):
        c.seek(("t",), 0)


def test_seek_to_the_end_exactly_waits_for_new_records(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.seek(TP0, 3)
    assert c.poll(timeout_ms=0) == {}
    assert c.position(TP0) == 3
    fill(log, 0, 1, start=3)
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [3]}


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_seek_past_the_end_is_reset_at_the_next_fetch(log, consumers, reset):
    fill(log, 0, 5)
    c = consumers(log, auto_offset_reset=reset)
    c.assign([TP0])
    c.seek(TP0, 100)
    assert c.position(TP0) == 100  # checked at the fetch, as in Kafka
    got = drain(c)
    if reset == "earliest":
        assert offsets_of(got) == {TP0: [0, 1, 2, 3, 4]}
    else:
        assert got == {}
        assert c.position(TP0) == 5
        fill(log, 0, 1, start=5)
        assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [5]}


def test_seek_past_the_end_with_none_policy_raises_out_of_range(log, consumers):
    fill(log, 0, 5)
    c = consumers(log, auto_offset_reset="none")
    c.assign([TP0])
    c.seek(TP0, 6)
    with pytest.raises(OffsetOutOfRangeError):
        c.poll(timeout_ms=0)
    c.seek(TP0, 4)  # a seek back into range recovers
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [4]}


def test_seek_past_the_end_then_records_arrive_up_to_it(log, consumers):
    fill(log, 0, 2)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    c.seek(TP0, 4)
    fill(log, 0, 3, start=2)  # the log end is now 5: offset 4 exists
    assert offsets_of(drain(c)) == {TP0: [4]}


def test_seek_to_beginning_and_end(log, consumers):
    for p in range(3):
        fill(log, p, 4)
    c = consumers(log, "t", auto_offset_reset="earliest")
    drain(c)
    c.seek_to_beginning()
    assert {tp: c.position(tp) for tp in ALL} == dict.fromkeys(ALL, 0)
    assert sum(map(len, drain(c).values())) == 12
    c.seek_to_beginning(TP1)
    assert offsets_of(drain(c)) == {TP1: [0, 1, 2, 3]}
    c.seek_to_beginning(TP0, TP2)
    c.seek_to_end(TP2)
    assert offsets_of(drain(c)) == {TP0: [0, 1, 2, 3]}
    c.seek_to_beginning()
    c.seek_to_end()
    assert drain(c) == {}
    assert {tp: c.position(tp) for tp in ALL} == dict.fromkeys(ALL, 4)


def test_seek_to_end_is_the_end_when_the_position_is_resolved(log, consumers):
    fill(log, 0, 2)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    c.seek_to_end(TP0)
    fill(log, 0, 2, start=2)
    assert c.position(TP0) == 4  # lazily, as in Kafka: the end when asked
    assert drain(c) == {}


def test_seek_to_with_nothing_assigned_or_unassigned_partitions(log, consumers):
    c = consumers(log)
    with pytest.raises(IllegalStateError):
        c.seek_to_beginning()
    with pytest.raises(IllegalStateError):
        c.seek_to_end()
    c.assign([TP0])
    with pytest.raises(IllegalStateError):
        c.seek_to_beginning(TP1)
    with pytest.raises(IllegalStateError):
        c.seek_to_end(TP0, TP1)
    with pytest.raises(IllegalArgumentError):
        c.seek_to_end("t")


# -- committed offsets -----------------------------------------------------------------------


def test_commit_and_committed_need_a_group_id(log, consumers):
    fill(log, 0, 2)
    c = consumers(log, "t", auto_offset_reset="earliest")
    drain(c)
    with pytest.raises(IllegalStateError):
        c.commit()
    with pytest.raises(IllegalStateError):
        c.commit({TP0: 1})
    with pytest.raises(IllegalStateError):
        c.committed(TP0)
    assert OFFSETS_TOPIC not in log.topics()


def test_commit_commits_the_positions(log, consumers):
    fill(log, 0, 5)
    fill(log, 1, 2)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    c.poll(timeout_ms=0, max_records=3)
    positions = {tp: c.position(tp) for tp in ALL}
    c.commit()
    assert {tp: c.committed(tp) for tp in ALL} == positions
    assert c.committed(TP0, metadata=True) == OffsetAndMetadata(positions[TP0], "", -1)


def test_committed_is_none_before_any_commit(log, consumers):
    c = consumers(log, "t", group_id="g")
    assert c.committed(TP0) is None
    assert c.committed(TP0, metadata=True) is None


def test_commit_before_any_position_commits_nothing(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    c.commit()
    assert {tp: c.committed(tp) for tp in ALL} == dict.fromkeys(ALL)


def test_commit_given_offsets(log, consumers):
    c = consumers(log, "t", group_id="g")
    c.commit({TP0: OffsetAndMetadata(5, "five", -1), TP1: 7, ("t", 2): OffsetAndMetadata(0)})
    assert c.committed(TP0) == 5
    assert c.committed(TP0, metadata=True) == OffsetAndMetadata(5, "five", -1)
    assert c.committed(TP1, metadata=True) == OffsetAndMetadata(7, "", -1)
    assert c.committed(TP2) == 0
    c.commit({TP0: 2})  # offsets may go back: the latest commit counts
    assert c.committed(TP0) == 2


def test_commit_of_a_partition_not_assigned(log, consumers):
    c = consumers(log, group_id="g")
    c.assign([TP0])
    c.commit({TP2: 4})
    assert c.committed(TP2) == 4


@pytest.mark.parametrize("offsets", [
    {TP0: -1},
    {TP0: "3"},
    {TP0: 3.0},
    {TP0: True},
    {TP0: None},
    {TP0: OffsetAndMetadata(-2)},
    {"t": 3},
    {("t", "0"): 3},
])
def test_commit_rejects_bad_offsets(log, consumers, offsets):
    c = consumers(log, "t", group_id="g")
    with pytest.raises(IllegalArgumentError):
        c.commit(offsets)
    assert c.committed(TP0) is None


def test_committed_rejects_a_bad_partition(log, consumers):
    c = consumers(log, "t", group_id="g")
    with pytest.raises(IllegalArgumentError):
        c.committed("t")


def test_a_new_consumer_of_the_group_resumes_from_the_commit(log, consumers):
    fill(log, 0, 6)
    fill(log, 2, 3)
    a = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    a.poll(timeout_ms=0, max_records=4)
    a.commit()
    positions = {tp: a.position(tp) for tp in ALL}
    a.close()
    b = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    assert {tp: b.position(tp) for tp in ALL} == positions
    got = drain(b)
    for tp, rs in got.items():
        assert [r.offset for r in rs] == list(range(positions[tp], rs[-1].offset + 1))
    other = consumers(log, "t", group_id="other", auto_offset_reset="earliest")
    assert sum(map(len, drain(other).values())) == 9  # groups are independent


def test_commit_async_returns_a_done_future_and_calls_back(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    drain(c)
    calls = []
    future = c.commit_async(callback=lambda offsets, result: calls.append((offsets, result)))
    assert future.done() and future.result() is None
    assert c.committed(TP0) == 3
    assert len(calls) == 1
    offsets, result = calls[0]
    assert result is None
    # kafka-python hands the callback the offsets it committed.
    assert offsets is not None and TP0 in offsets
    committed = offsets[TP0]
    assert (committed if type(committed) is int else committed.offset) == 3


def test_commit_async_with_given_offsets(log, consumers):
    c = consumers(log, "t", group_id="g")
    calls = []
    c.commit_async({TP1: 9}, callback=lambda o, r: calls.append((o, r)))
    assert calls == [({TP1: 9}, None)]
    assert c.committed(TP1) == 9


def test_commit_async_failure_goes_to_the_future_and_callback(log, consumers):
    c = consumers(log, "t")
    calls = []
    future = c.commit_async({TP0: 1}, callback=lambda o, r: calls.append(r))
    assert isinstance(future.exception(timeout=0), IllegalStateError)
    assert len(calls) == 1 and isinstance(calls[0], IllegalStateError)


def test_commit_async_uses_the_default_callback(log, consumers):
    calls = []
    c = consumers(log, "t", group_id="g",
                  default_offset_commit_callback=lambda o, r: calls.append((o, r)))
    c.commit_async({TP0: 2}).result(timeout=0)
    assert calls == [({TP0: 2}, None)]


def test_auto_commit_commits_every_interval_at_poll(log, consumers):
    fill(log, 0, 5)
    callbacks = []
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=True,
                  auto_commit_interval_ms=20,
                  default_offset_commit_callback=lambda o, r: callbacks.append((o, r)))
    c.poll(timeout_ms=0, max_records=3)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while c.committed(TP0) != 3:
        assert time.monotonic() < deadline, "no auto-commit within the timeout"
        c.poll(timeout_ms=50, max_records=1, update_offsets=False)
    assert callbacks and callbacks[-1][1] is None
    assert callbacks[-1][0][TP0].offset == 3


def test_auto_commit_at_iteration_boundaries(log, consumers):
    fill(log, 0, 5)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=True,
                  auto_commit_interval_ms=20, consumer_timeout_ms=200)
    assert len(list(c)) == 5
    # The iteration waited 200 ms with nothing to read: an auto-commit was due in there.
    assert c.committed(TP0) == 5


def test_auto_commit_on_close(log, consumers):
    fill(log, 0, 4)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest",
                  auto_commit_interval_ms=3_600_000)
    c.poll(timeout_ms=0, max_records=3)
    c.close()
    reader = consumers(log, group_id="g")
    assert reader.committed(TP0) == 3


def test_auto_commit_on_close_during_iteration(log, consumers):
    fill(log, 0, 6)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", consumer_timeout_ms=0,
                  auto_commit_interval_ms=3_600_000)
    next(c)
    next(c)
    c.close()
    assert consumers(log, group_id="g").committed(TP0) == 2


def test_close_without_autocommit_commits_nothing(log, consumers):
    fill(log, 0, 4)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest",
                  auto_commit_interval_ms=3_600_000)
    c.poll(timeout_ms=0)
    c.close(autocommit=False)
    assert consumers(log, group_id="g").committed(TP0) is None


def test_auto_commit_disabled_commits_nothing_on_close(log, consumers):
    fill(log, 0, 4)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    c.poll(timeout_ms=0)
    c.close()
    assert consumers(log, group_id="g").committed(TP0) is None


def test_auto_commit_on_unsubscribe(log, consumers):
    fill(log, 1, 4)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest",
                  auto_commit_interval_ms=3_600_000)
    drain(c)
    c.unsubscribe()
    assert c.committed(TP1) == 4


def test_committed_offsets_survive_reopening_the_directory(tmp_path):
    path = tmp_path / "data"
    with strom.open(path) as lg:
        lg.create_topic("t", partitions=3)
        fill(lg, 0, 5)
        c = strom.Consumer(lg, "t", group_id="g", auto_offset_reset="earliest",
                           enable_auto_commit=False)
        c.poll(timeout_ms=0, max_records=2)
        c.commit()
        c.commit({TP2: OffsetAndMetadata(1, "meta")})
        c.close()
    with strom.open(path) as lg:
        c = strom.Consumer(lg, "t", group_id="g", auto_offset_reset="earliest")
        assert c.committed(TP0) == 2
        assert c.committed(TP2, metadata=True) == OffsetAndMetadata(1, "meta", -1)
        assert c.position(TP0) == 2
        assert offsets_of(drain(c)) == {TP0: [2, 3, 4]}
        c.close()


def test_commits_are_seen_by_another_log_object(two_logs, consumers):
    a, b = two_logs
    fill(a, 0, 5)
    ca = consumers(a, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    cb = consumers(b, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    ca.assign([TP0, TP1])
    cb.assign([TP0, TP1])
    assert cb.committed(TP0) is None
    ca.commit({TP0: 3})
    assert cb.committed(TP0) == 3
    cb.commit({TP0: 4, TP1: 0})
    assert ca.committed(TP0) == 4 and ca.committed(TP1) == 0
    assert cb.position(TP0) == 4


# -- offsets by time, log extent --------------------------------------------------------------


def test_offsets_for_times(log, consumers):
    base = 1_600_000_000_000
    log.partition("t", 0).append([b"a", b"b", b"c", b"d"], timestamps=[base, base + 10, base + 10,
                                                                        base + 30], acks=1)
    c = consumers(log)  # no assignment needed
    got = c.offsets_for_times({TP0: base + 5, TP1: base, ("t", 2): 0})
    assert got[TP0] == OffsetAndTimestamp(1, base + 10)
    assert got[TP1] is None
    assert got[TopicPartition("t", 2)] is None
    assert c.offsets_for_times({TP0: 0}) == {TP0: OffsetAndTimestamp(0, base)}
    assert c.offsets_for_times({TP0: base + 30}) == {TP0: OffsetAndTimestamp(3, base + 30)}
    assert c.offsets_for_times({TP0: base + 31}) == {TP0: None}
    assert c.offsets_for_times({}) == {}


@pytest.mark.parametrize("timestamps, error", [
    ({TP0: -1}, IllegalArgumentError),
    ({TP0: "1"}, IllegalArgumentError),
    ({TP0: 1.5}, IllegalArgumentError),
    ({TP0: None}, IllegalArgumentError),
    ({TopicPartition("t", 9): 0}, UnknownTopicOrPartitionError),
    ({TopicPartition("missing", 0): 0}, UnknownTopicOrPartitionError),
    ({"t": 0}, IllegalArgumentError),
])
def test_offsets_for_times_rejects_bad_input(log, consumers, timestamps, error):
    with pytest.raises(error):
        consumers(log).offsets_for_times(timestamps)


def test_negative_timestamp_is_a_value_error(log, consumers):
    with pytest.raises(ValueError):
        consumers(log).offsets_for_times({TP0: -5})


def test_beginning_and_end_offsets_and_highwater(log, consumers):
    fill(log, 0, 4)
    fill(log, 1, 1)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    assert c.beginning_offsets([TP0, TP1, TP2]) == dict.fromkeys(ALL, 0)
    assert c.end_offsets([TP0, TP1, TP2]) == {TP0: 4, TP1: 1, TP2: 0}
    assert c.position(TP0) == 0  # not moved by either
    assert c.highwater(TP0) == 4
    assert c.highwater(TP1) is None  # not assigned
    fill(log, 0, 2, start=4)
    assert c.end_offsets([TP0]) == {TP0: 6}
    c.poll(timeout_ms=0)
    assert c.highwater(TP0) == 6
    assert c.beginning_offsets([]) == {} and c.end_offsets([]) == {}


@pytest.mark.parametrize("call", ["beginning_offsets", "end_offsets"])
@pytest.mark.parametrize("partitions, error", [
    ([TopicPartition("t", 3)], UnknownTopicOrPartitionError),
    ([TopicPartition("missing", 0)], UnknownTopicOrPartitionError),
    (["t"], IllegalArgumentError),
    ([("t", "0")], IllegalArgumentError),
])
def test_extent_rejects_bad_partitions(log, consumers, call, partitions, error):
    with pytest.raises(error):
        getattr(consumers(log), call)(partitions)


def test_highwater_rejects_a_bad_partition(log, consumers):
    with pytest.raises(IllegalArgumentError):
        consumers(log).highwater("t")


# -- pause and resume ---------------------------------------------------------------------------


def test_paused_partitions_hand_out_nothing_until_resumed(log, consumers):
    for p in range(3):
        fill(log, p, 3)
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    c.pause(TP0, TP2)
    assert c.paused() == {TP0, TP2}
    assert set(drain(c)) == {TP1}
    assert list(c) == []
    assert c.position(TP0) == 0
    c.resume(TP0)
    assert c.paused() == {TP2}
    assert [(r.partition, r.offset) for r in c] == [(0, 0), (0, 1), (0, 2)]
    c.resume(TP2)
    assert offsets_of(drain(c)) == {TP2: [0, 1, 2]}
    assert c.paused() == set()


def test_pause_during_iteration_stops_that_partition(log, consumers):
    fill(log, 0, 5)
    fill(log, 1, 5)
    c = consumers(log, "t", auto_offset_reset="earliest", consumer_timeout_ms=0)
    first = next(c)
    tp = TopicPartition("t", first.partition)
    c.pause(tp)
    rest = list(c)
    assert all(r.partition != first.partition for r in rest)
    assert len(rest) == 5
    assert c.position(tp) == 1
    c.resume(tp)
    assert [r.offset for r in c] == [1, 2, 3, 4]


def test_pause_keeps_buffered_records_for_later(log, consumers):
    fill(log, 0, 6)
    c = consumers(log, "t", auto_offset_reset="earliest")
    assert offsets_of(c.poll(timeout_ms=0, max_records=2)) == {TP0: [0, 1]}
    c.pause(TP0)
    assert c.poll(timeout_ms=0) == {}
    c.resume(TP0)
    assert offsets_of(drain(c)) == {TP0: [2, 3, 4, 5]}


def test_pause_and_resume_of_unassigned_partitions_are_illegal(log, consumers):
    c = consumers(log)
    c.assign([TP0])
    with pytest.raises(IllegalStateError):
        c.pause(TP1)
    with pytest.raises(IllegalStateError):
        c.resume(TP1)
    with pytest.raises(IllegalArgumentError):
        c.pause("t")
    assert c.paused() == set()


def test_pause_with_no_arguments_pauses_nothing(log, consumers):
    fill(log, 0, 1)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.pause()
    assert c.paused() == set()
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [0]}


def test_paused_partition_does_not_end_a_wait(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.pause(TP0)
    fill(log, 0, 1)
    assert c.poll(timeout_ms=50) == {}
    fill(log, 1, 1)
    assert offsets_of(c.poll(timeout_ms=TIMEOUT_MS)) == {TP1: [0]}


# -- topics, metrics ------------------------------------------------------------------------------


def test_topics_hide_the_offsets_topic(log, consumers):
    log.create_topic("u", partitions=2)
    c = consumers(log, "t", group_id="g")
    c.commit({TP0: 1})
    assert OFFSETS_TOPIC in log.topics()
    assert c.topics() == {"t", "u"}
    shown = consumers(log, exclude_internal_topics=False)
    assert shown.topics() == {"t", "u", OFFSETS_TOPIC}


def test_partitions_for_topic(log, consumers):
    log.create_topic("u", partitions=5)
    c = consumers(log)
    assert c.partitions_for_topic("t") == {0, 1, 2}
    assert c.partitions_for_topic("u") == {0, 1, 2, 3, 4}
    assert c.partitions_for_topic("missing") is None


def test_metrics_report_lag_per_partition(log, consumers):
    fill(log, 0, 5)
    fill(log, 1, 2)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.poll(timeout_ms=0, max_records=1)
    for tp in ALL:
        c.position(tp)
    lag = c.metrics()["records-lag"]
    assert sum(lag.values()) == 6
    assert lag["t-2"] == 0
    drain(c)
    assert c.metrics()["records-lag"] == {"t-0": 0, "t-1": 0, "t-2": 0}
    fill(log, 2, 4)
    assert c.metrics()["records-lag"]["t-2"] == 4
    consumed = c.metrics()["consumer-fetch-manager-metrics"]["records-consumed-total"]
    assert consumed == 7


def test_metrics_is_a_snapshot(log, consumers):
    c = consumers(log, "t")
    m = c.metrics()
    m["records-lag"]["t-0"] = 99
    m["consumer-fetch-manager-metrics"]["records-consumed-total"] = 99
    assert c.metrics()["consumer-fetch-manager-metrics"]["records-consumed-total"] == 0


# -- close and wakeup ---------------------------------------------------------------------------


def test_close_is_idempotent_and_ends_everything(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, "t", group_id="g", auto_offset_reset="earliest")
    c.close()
    c.close()
    assert c.closed
    assert list(c) == []
    for call in (lambda: c.poll(), lambda: c.poll_columns(), lambda: c.position(TP0),
                 lambda: c.commit(), lambda: c.committed(TP0), lambda: c.seek(TP0, 0),
                 lambda: c.subscribe(["t"]), lambda: c.assign([TP0]), lambda: c.unsubscribe(),
                 lambda: c.seek_to_beginning(), lambda: c.pause(TP0), lambda: c.topics(),
                 lambda: c.end_offsets([TP0])):
        with pytest.raises(IllegalStateError):
            call()
    assert c.assignment() == set()


def test_close_ends_a_running_iteration(log, consumers):
    fill(log, 0, 5)
    c = consumers(log, "t", auto_offset_reset="earliest")
    it = iter(c)
    assert next(it).offset == 0
    c.close()
    assert list(it) == []


def test_small_accessors(log, consumers):
    c = consumers(log, "t", group_id="g")
    assert c.bootstrap_connected() is True
    assert not c.closed
    assert "g" in repr(c)
    c.close()
    assert c.closed


def test_context_manager_closes_and_commits(log):
    fill(log, 0, 2)
    with strom.Consumer(log, "t", group_id="g", auto_offset_reset="earliest") as c:
        drain(c)
    assert c.closed
    with strom.Consumer(log, group_id="g") as other:
        assert other.committed(TP0) == 2


def test_close_from_another_thread_ends_a_blocked_iteration(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")  # consumer_timeout_ms: forever
    fill(log, 0, 2)

    def close_when_blocked():
        wait_for_waiter(c)
        c.close()
        return time.monotonic()

    helper = run_in_thread(close_when_blocked)
    got = [r.offset for r in c]
    ended = time.monotonic()
    closed_at = helper.result(timeout=TIMEOUT_MS / 1000)
    assert got == [0, 1]
    assert ended - closed_at < WAKE_S


@pytest.mark.parametrize("update_offsets", [True, False])
def test_close_from_another_thread_ends_a_blocked_poll(log, consumers, update_offsets):
    c = consumers(log, "t", auto_offset_reset="earliest")

    def close_when_blocked():
        wait_for_waiter(c)
        c.close()
        return time.monotonic()

    helper = run_in_thread(close_when_blocked)
    try:
        got = c.poll(timeout_ms=TIMEOUT_MS, update_offsets=update_offsets)
    except IllegalStateError:  # closed: as good an answer as nothing
        got = {}
    returned = time.monotonic()
    closed_at = helper.result(timeout=TIMEOUT_MS / 1000)
    assert got == {}
    assert returned - closed_at < WAKE_S
    assert c.closed


def test_wakeup_ends_a_blocked_poll(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")

    def wake_when_blocked():
        wait_for_waiter(c)
        c.wakeup()
        return time.monotonic()

    helper = run_in_thread(wake_when_blocked)
    assert c.poll(timeout_ms=TIMEOUT_MS) == {}
    returned = time.monotonic()
    woken_at = helper.result(timeout=TIMEOUT_MS / 1000)
    assert returned - woken_at < WAKE_S
    fill(log, 0, 1)
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [0]}  # the consumer still works


def test_wakeup_ends_a_blocked_iteration(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")
    fill(log, 1, 3)

    def wake_when_blocked():
        wait_for_waiter(c)
        c.wakeup()
        return time.monotonic()

    helper = run_in_thread(wake_when_blocked)
    got = [r.offset for r in c]
    ended = time.monotonic()
    woken_at = helper.result(timeout=TIMEOUT_MS / 1000)
    assert got == [0, 1, 2]
    assert ended - woken_at < WAKE_S
    assert not c.closed
    fill(log, 1, 1, start=3)
    assert offsets_of(c.poll(timeout_ms=0)) == {TP1: [3]}


# -- deserializers and record fields --------------------------------------------------------------


def test_deserializers_are_applied_and_not_called_for_none(log, consumers):
    calls = []

    def vd(data):
        calls.append(data)
        return json.loads(data)

    log.partition("t", 0).append([b'{"a": 1}', None, b"[2]"], keys=[b"k1", b"k2", None], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=vd,
                  key_deserializer=bytes.decode)
    records = drain(c)[TP0]
    assert [(r.key, r.value) for r in records] == [("k1", {"a": 1}), ("k2", None), (None, [2])]
    assert None not in calls and len(calls) == 2


def test_a_deserializer_object_is_used(log, consumers):
    class Upper:
        def deserialize(self, topic, headers, data):
            return data.upper()

    log.partition("t", 0).append([b"abc", None], keys=[b"k", b"k"], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=Upper(),
                  key_deserializer=Upper())
    records = drain(c)[TP0]
    assert [(r.key, r.value) for r in records] == [(b"K", b"ABC"), (b"K", None)]


def test_a_deserializer_object_gets_the_topic_and_the_headers(log, consumers):
    """kafka-python 3.x calls ``deserialize(topic, headers, data)``: a schema may depend on them."""
    seen = []

    class Recorder:
        def deserialize(self, topic, headers, data):
            seen.append((topic, headers, data))
            return data

    log.partition("t", 0).append([b"a", b"b", b"c"], headers=[[("h", b"1")], None, [("x", b"")]],
                                 acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=Recorder())
    assert [r.value for r in drain(c)[TP0]] == [b"a", b"b", b"c"]
    assert seen == [("t", [("h", b"1")], b"a"), ("t", [], b"b"), ("t", [("x", b"")], b"c")]
    seen.clear()
    c.seek_to_beginning()
    cols = c.poll_columns(timeout_ms=TIMEOUT_MS)[TP0]
    assert cols.values == [b"a", b"b", b"c"]
    assert seen == [("t", [("h", b"1")], b"a"), ("t", [], b"b"), ("t", [("x", b"")], b"c")]


def strict_int(data):
    if not data.isdigit():
        raise ValueError(f"not a number: {data!r}")
    return int(data)


def test_a_failing_deserializer_stops_at_the_bad_record(log, consumers):
    log.partition("t", 0).append([b"1", b"2", b"bad", b"4"], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=strict_int)
    assert [r.value for r in c.poll(timeout_ms=0)[TP0]] == [1, 2]  # those before it first
    for _ in range(2):  # the position stays on the bad record: nothing skipped silently
        with pytest.raises(strom.RecordDeserializationError) as info:
            c.poll(timeout_ms=0)
        assert info.value.offset == 2 and info.value.topic_partition == TP0
        assert isinstance(info.value.__cause__, ValueError)
        assert c.position(TP0) == 2
    c.seek(TP0, info.value.offset + 1)
    assert [r.value for r in drain(c)[TP0]] == [4]


def test_a_failing_deserializer_in_iteration_and_poll_columns(log, consumers):
    log.partition("t", 0).append([b"1", b"x", b"3"], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=strict_int,
                  consumer_timeout_ms=0)
    got = []
    with pytest.raises(strom.RecordDeserializationError) as info:
        for r in c:
            got.append(r.value)
    assert got == [1] and info.value.offset == 1 and c.position(TP0) == 1
    c.seek(TP0, 0)
    assert list(c.poll_columns(timeout_ms=0)[TP0].values) == [1]
    with pytest.raises(strom.RecordDeserializationError):
        c.poll_columns(timeout_ms=0)
    c.seek(TP0, 2)
    assert [r.value for r in c] == [3]


def test_a_failing_key_deserializer_after_a_failing_value_one(log, consumers):
    """The first bad record counts, whichever deserializer fails on it."""
    log.partition("t", 0).append([b"1", b"bad", b"3", b"4"], keys=[b"k", b"k", b"bad", b"k"],
                                 acks=1)

    def key(data):
        if data != b"k":
            raise ValueError("bad key")
        return data.decode()

    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=strict_int,
                  key_deserializer=key)
    handed_out = []
    errors = []
    for _ in range(10):
        try:
            got = c.poll(timeout_ms=0)
        except strom.RecordDeserializationError as exc:
            errors.append(exc.offset)
            c.seek(TP0, exc.offset + 1)  # what the error says to do
            continue
        if not got:
            break
        handed_out += [(r.offset, r.key, r.value) for r in got[TP0]]
    assert errors == [1, 2]
    assert handed_out == [(0, "k", 1), (3, "k", 4)]


@pytest.mark.parametrize("api", ["poll", "poll_columns"])
@pytest.mark.parametrize("failure", ["deserializer", "out-of-range", "no-committed-offset"])
def test_an_error_on_one_partition_loses_no_record_of_another(log, consumers, failure, api):
    """As Kafka's fetcher: records already taken are returned; the error comes at the next poll."""
    good = fill_batches(log, 0, 2, 3)
    log.partition("t", 1).append([b"bad"], acks=1)
    config = {"auto_offset_reset": "earliest"}
    if failure == "deserializer":
        config["value_deserializer"] = lambda v: v if v != b"bad" else strict_int(v)
    else:
        config["auto_offset_reset"] = "none"
        config["group_id"] = "g"
    c = consumers(log, **config)
    c.assign([TP0, TP1])
    if failure == "deserializer":
        c.seek(TP0, 0)
        c.seek(TP1, 0)
    elif failure == "out-of-range":
        c.seek(TP0, 0)
        c.seek(TP1, 7)
    else:
        c.commit({TP0: 0})
    seen = []
    errors = 0
    for _ in range(10):
        try:
            got = getattr(c, api)(timeout_ms=0)
        except StromError:
            errors += 1
            c.seek(TP1, 1)  # past the bad spot
            continue
        if not got:
            break
        if TP0 in got:
            seen += [r.value for r in got[TP0]] if api == "poll" else list(got[TP0].values)
    assert errors == 1
    assert seen == good


def test_record_fields(log, consumers):
    ts = 1_650_000_000_123
    log.partition("t", 1).append([b"value", None], keys=[b"key", b"gone"], timestamps=[ts, ts + 1],
                                 headers=[[("h1", b"one"), ("h\u00e9", b"")], None], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest")
    r, tomb = drain(c)[TP1]
    assert (r.topic, r.partition, r.offset, r.timestamp, r.timestamp_type) == ("t", 1, 0, ts, 0)
    assert (r.key, r.value) == (b"key", b"value")
    assert r.headers == [("h1", b"one"), ("h\u00e9", b"")]
    assert all(type(h) is tuple and type(h[0]) is str and type(h[1]) is bytes for h in r.headers)
    assert r.leader_epoch == 0 and r.checksum is None
    assert (r.serialized_key_size, r.serialized_value_size) == (3, 5)
    assert r.serialized_header_size == len("h1") + 3 + len("h\u00e9".encode()) + 0
    assert (tomb.key, tomb.value, tomb.timestamp) == (b"gone", None, ts + 1)
    assert (tomb.serialized_key_size, tomb.serialized_value_size) == (4, -1)
    assert tomb.serialized_header_size == -1
    assert tomb.headers == ()  # one shared empty tuple: no object per record


def test_headers_round_trip_through_the_producer(log, consumers):
    headers = [("trace", b"\x00\x01"), ("empty", b""), ("trace", b"again")]
    with strom.Producer(log, acks=1) as p:
        p.send("t", b"v", partition=2, headers=headers).get(timeout=TIMEOUT_MS / 1000)
        p.send("t", b"w", key=b"k", partition=2).get(timeout=TIMEOUT_MS / 1000)
    c = consumers(log, "t", auto_offset_reset="earliest")
    with_headers, without = drain(c)[TP2]
    assert with_headers.headers == headers
    assert list(without.headers) == []
    assert with_headers.serialized_header_size == sum(len(k) + len(v) for k, v in headers)
    assert without.serialized_key_size == 1 and without.serialized_header_size == -1


def test_log_append_time_topic_gives_timestamp_type_1(log, consumers):
    log.create_topic("lat", config={"message.timestamp.type": "LogAppendTime"})
    before = log.clock.time_ms()
    log.partition("lat", 0).append([b"x"], timestamps=[5], acks=1)
    after = log.clock.time_ms()
    log.partition("t", 0).append([b"y"], timestamps=[5], acks=1)
    c = consumers(log, "lat", "t", auto_offset_reset="earliest")
    got = drain(c)
    (lat,) = got[TopicPartition("lat", 0)]
    (create,) = got[TP0]
    assert lat.timestamp_type == 1 and before <= lat.timestamp <= after
    assert create.timestamp_type == 0 and create.timestamp == 5


# -- the rebalance listener ---------------------------------------------------------------------


def test_listener_is_called_on_subscribe_unsubscribe_and_close(log, consumers):
    log.create_topic("u")
    U0 = TopicPartition("u", 0)
    listener = Listener()
    c = consumers(log)
    c.subscribe(["t"], listener=listener)
    assert listener.calls == [("assigned", ALL)]
    c.subscribe(["u", "t"], listener=listener)
    assert listener.calls[1:] == [("assigned", {U0})]
    c.subscribe(["u"], listener=listener)
    assert listener.calls[2:] == [("revoked", ALL)]
    c.unsubscribe()
    assert listener.calls[3:] == [("revoked", {U0})]
    c.subscribe(["t"], listener=listener)
    c.close()
    assert listener.calls[4:] == [("assigned", ALL), ("revoked", ALL)]


def test_auto_commit_comes_before_the_revoke_callback(log, consumers):
    """As kafka-python: the listener sees the positions committed already."""
    fill(log, 0, 5)
    seen = []

    class Check(Listener):
        def on_partitions_revoked(self, revoked):
            seen.append({tp: c.committed(tp) for tp in revoked})

    c = consumers(log, group_id="g", auto_offset_reset="earliest",
                  auto_commit_interval_ms=3_600_000)
    c.subscribe(["t"], listener=Check())
    c.poll(timeout_ms=0, max_records=2)
    for tp in ALL:
        c.position(tp)
    c.unsubscribe()
    assert seen == [{TP0: 2, TP1: 0, TP2: 0}]


def test_listener_can_commit_on_revoke(log, consumers):
    fill(log, 0, 5)

    class CommitOnRevoke(Listener):
        def __init__(self, consumer_ref):
            super().__init__()
            self.consumer_ref = consumer_ref

        def on_partitions_revoked(self, revoked):
            super().on_partitions_revoked(revoked)
            self.consumer_ref[0].commit()

    ref = []
    c = consumers(log, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    ref.append(c)
    c.subscribe(["t"], listener=CommitOnRevoke(ref))
    c.poll(timeout_ms=0, max_records=3)
    c.close()
    assert consumers(log, group_id="g").committed(TP0) == 3


def test_a_failing_listener_does_not_break_the_consumer(log, consumers):
    class Broken(strom.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            raise RuntimeError("revoked")

        def on_partitions_assigned(self, assigned):
            raise RuntimeError("assigned")

    fill(log, 0, 1)
    c = consumers(log, auto_offset_reset="earliest")
    c.subscribe(["t"], listener=Broken())
    assert offsets_of(c.poll(timeout_ms=0)) == {TP0: [0]}
    c.close()
    assert c.closed


def test_listener_is_told_of_partitions_of_a_topic_created_later(log, consumers):
    listener = Listener()
    c = consumers(log, auto_offset_reset="earliest")
    c.subscribe(["later"], listener=listener)
    assert listener.calls == []
    log.create_topic("later", partitions=2)
    fill(log, 0, 1, topic="later")
    assert c.poll(timeout_ms=TIMEOUT_MS)
    assert listener.calls == [("assigned", {TopicPartition("later", 0), TopicPartition("later", 1)})]


def test_listener_abstract_methods_are_required():
    class Half(strom.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

    with pytest.raises(TypeError):
        Half()


def test_on_partitions_lost_defaults_to_revoked():
    listener = Listener()
    listener.on_partitions_lost({TP0})
    assert listener.calls == [("revoked", {TP0})]


# -- pattern subscriptions ----------------------------------------------------------------------


def test_pattern_subscription_picks_up_topics_created_later(log, consumers):
    log.create_topic("ev.a")
    log.create_topic("other")
    fill(log, 0, 1, topic="ev.a")
    c = consumers(log, auto_offset_reset="earliest")
    c.subscribe(pattern=r"ev\..*")
    assert c.subscription() == {"ev.a"}
    assert c.assignment() == {TopicPartition("ev.a", 0)}
    assert values_of(drain(c)) == {TopicPartition("ev.a", 0): [b"ev.a-0-0"]}
    log.create_topic("ev.b", partitions=2)
    fill(log, 1, 2, topic="ev.b")
    got = c.poll(timeout_ms=TIMEOUT_MS)
    assert values_of(drain_after(c, got)) == {TopicPartition("ev.b", 1): [b"ev.b-1-0", b"ev.b-1-1"]}
    assert c.subscription() == {"ev.a", "ev.b"}


def test_pattern_matches_from_the_start_of_a_name(log, consumers):
    """As kafka-python's (re.match): anchored at the start, not at the end."""
    log.create_topic("ev")
    log.create_topic("events")
    log.create_topic("prev")
    c = consumers(log)
    c.subscribe(pattern="ev")
    assert c.subscription() == {"ev", "events"}
    c.subscribe(pattern="ev$")
    assert c.subscription() == {"ev"}


def test_pattern_subscription_drops_a_deleted_topic(log, consumers):
    log.create_topic("ev.a")
    log.create_topic("ev.b")
    c = consumers(log, auto_offset_reset="earliest")
    c.subscribe(pattern=r"ev\..*")
    log.delete_topic("ev.a")
    fill(log, 0, 1, topic="ev.b")
    assert values_of(c.poll(timeout_ms=TIMEOUT_MS)) == {TopicPartition("ev.b", 0): [b"ev.b-0-0"]}
    assert c.subscription() == {"ev.b"}
    assert c.assignment() == {TopicPartition("ev.b", 0)}


def test_subscription_survives_the_deletion_of_a_topic(log, consumers):
    log.create_topic("gone")
    fill(log, 0, 1, topic="gone")
    c = consumers(log, "gone", "t", auto_offset_reset="earliest")
    assert values_of(drain(c)) == {TopicPartition("gone", 0): [b"gone-0-0"]}
    log.delete_topic("gone")
    fill(log, 0, 1)
    assert values_of(c.poll(timeout_ms=TIMEOUT_MS)) == {TP0: [b"t-0-0"]}


def test_an_assigned_partition_of_a_deleted_topic_raises(log, consumers):
    log.create_topic("gone")
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TopicPartition("gone", 0), TP0])
    assert c.poll(timeout_ms=0) == {}
    log.delete_topic("gone")
    with pytest.raises(UnknownTopicOrPartitionError):
        c.poll(timeout_ms=0)


def test_pattern_subscription_excludes_the_offsets_topic(log, consumers):
    fill(log, 0, 1)
    c = consumers(log, group_id="g", auto_offset_reset="earliest", enable_auto_commit=False)
    c.subscribe(pattern=".*")
    drain(c)
    c.commit()
    assert OFFSETS_TOPIC in log.topics()
    c.poll(timeout_ms=300)  # long enough for the pattern to be matched again
    assert c.subscription() == {"t"}
    assert {tp.topic for tp in c.assignment()} == {"t"}


# -- retention under a consumer ---------------------------------------------------------------


RETAINED = {"segment.bytes": 512, "retention.ms": -1, "retention.bytes": -1}


def retention_topic(lg, batches=20):
    lg.create_topic("r", config=RETAINED)
    for i in range(batches):
        lg.partition("r", 0).append([b"r-%d-%d" % (i, j) + b"." * 40 for j in range(4)], acks=1)
    assert len(lg.partition("r", 0).segments) > 3


def apply_retention(lg):
    lg.alter_topic("r", {"retention.bytes": 0})
    assert lg.enforce_retention() > 0
    start = lg.partition("r", 0).log_start_offset
    assert start > 0
    return start


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_retention_below_the_position_resets_it(log, consumers, reset):
    retention_topic(log)
    R0 = TopicPartition("r", 0)
    c = consumers(log, auto_offset_reset=reset)
    c.assign([R0])
    c.seek(R0, 2)
    start = apply_retention(log)
    end = log.partition("r", 0).log_end_offset
    got = drain(c)
    if reset == "earliest":
        assert offsets_of(got) == {R0: list(range(start, end))}
    else:
        assert got == {}
        assert c.position(R0) == end


def test_retention_below_the_position_with_none_policy_raises(log, consumers):
    retention_topic(log)
    R0 = TopicPartition("r", 0)
    c = consumers(log, auto_offset_reset="none")
    c.assign([R0])
    c.seek(R0, 0)
    apply_retention(log)
    with pytest.raises(OffsetOutOfRangeError):
        c.poll(timeout_ms=0)


def test_committed_offset_below_the_log_start_resets(log, consumers):
    retention_topic(log)
    R0 = TopicPartition("r", 0)
    consumers(log, group_id="g").commit({R0: 1})
    start = apply_retention(log)
    c = consumers(log, "r", group_id="g", auto_offset_reset="earliest")
    got = drain(c)
    assert got[R0][0].offset == start
    assert got[R0][-1].offset == log.partition("r", 0).log_end_offset - 1
    assert c.beginning_offsets([R0]) == {R0: start}


def test_seek_to_beginning_after_retention(log, consumers):
    retention_topic(log)
    R0 = TopicPartition("r", 0)
    c = consumers(log, "r", auto_offset_reset="earliest")
    drain(c)
    start = apply_retention(log)
    c.seek_to_beginning()
    assert c.position(R0) == start
    assert drain(c)[R0][0].offset == start


# -- poll_columns ---------------------------------------------------------------------------------


def mixed_records(lg):
    """Several batches per partition: with and without keys, headers, tombstones."""
    ts = 1_700_000_000_000
    for p in range(3):
        part = lg.partition("t", p)
        part.append([b"a%d" % p, b"b", b"c"], timestamps=ts, acks=1)
        part.append([b"d", None, b"f"], keys=[b"k1", b"k2", None], timestamps=[ts, ts + 1, ts + 2],
                    acks=1)
        part.append([b"g", b"h"], headers=[[("x", b"1")], None], acks=1, compression="zstd")
        part.append([b"i%d" % j for j in range(p * 7)] or [b"i"], acks=1)


def columns_as_rows(cols_by_tp):
    out = {}
    for tp, cols in cols_by_tp.items():
        n = len(cols.values)
        assert len(cols.offsets) == len(cols.timestamps) == n
        keys = cols.keys if cols.keys is not None else [None] * n
        headers = cols.headers if cols.headers is not None else [None] * n
        assert len(keys) == len(headers) == n
        out[tp] = [(o, t, k, v, list(h or ())) for o, t, k, v, h in
                   zip(cols.offsets, cols.timestamps, keys, cols.values, headers)]
    return out


def drain_columns(consumer, **kw):
    out: dict[TopicPartition, list] = {}
    while True:
        got = consumer.poll_columns(timeout_ms=0, **kw)
        if not got:
            return out
        for tp, rows in columns_as_rows(got).items():
            out.setdefault(tp, []).extend(rows)


def records_as_rows(records_by_tp):
    return {tp: [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in rs]
            for tp, rs in records_by_tp.items()}


def test_poll_columns_gives_the_records_poll_gives(log, consumers):
    mixed_records(log)
    by_poll = records_as_rows(drain(consumers(log, "t", auto_offset_reset="earliest")))
    c = consumers(log, "t", auto_offset_reset="earliest")
    by_columns = drain_columns(c)
    assert {tp: [row[:4] for row in rows] for tp, rows in by_columns.items()} == {
        tp: [row[:4] for row in rows] for tp, rows in by_poll.items()}
    assert {tp: c.position(tp) for tp in ALL} == {
        tp: log.partition("t", tp.partition).log_end_offset for tp in ALL}


def test_poll_columns_headers_are_tuples_as_in_poll(log, consumers):
    mixed_records(log)
    by_poll = records_as_rows(drain(consumers(log, "t", auto_offset_reset="earliest")))
    by_columns = drain_columns(consumers(log, "t", auto_offset_reset="earliest"))
    assert by_columns == by_poll


def test_poll_columns_record_types(log, consumers):
    log.partition("t", 0).append([b"x"], acks=1)
    log.create_topic("lat", config={"message.timestamp.type": "LogAppendTime"})
    log.partition("lat", 0).append([b"y"], acks=1)
    c = consumers(log, "t", "lat", auto_offset_reset="earliest")
    got = c.poll_columns(timeout_ms=0)
    assert isinstance(got[TP0], strom.RecordColumns)
    assert got[TP0].timestamp_type == 0
    assert got[TopicPartition("lat", 0)].timestamp_type == 1
    assert got[TP0].keys is None and got[TP0].headers is None


def test_poll_columns_timestamp_type_per_record_when_batches_differ(log, consumers):
    now = log.clock.time_ms()
    log.partition("t", 0).append([b"a", b"b"], timestamps=now, acks=1)
    log.alter_topic("t", {"message.timestamp.type": "LogAppendTime"})
    log.partition("t", 0).append([b"c"], timestamps=now, acks=1)
    by_poll = [r.timestamp_type for r in drain(consumers(log, "t", auto_offset_reset="earliest"))[TP0]]
    assert by_poll == [0, 0, 1]
    cols = consumers(log, "t", auto_offset_reset="earliest").poll_columns(timeout_ms=0)[TP0]
    assert list(cols.values) == [b"a", b"b", b"c"]
    assert list(cols.timestamp_type) == by_poll
    cut = consumers(log, "t", auto_offset_reset="earliest").poll_columns(timeout_ms=0, max_records=2)
    assert cut[TP0].timestamp_type in (0, [0, 0])


def test_poll_columns_max_records(log, consumers):
    for p in range(3):
        fill_batches(log, p, 3, 5)
    c = consumers(log, "t", auto_offset_reset="earliest")
    seen: dict[TopicPartition, list[int]] = {}
    while True:
        got = c.poll_columns(timeout_ms=0, max_records=4)
        if not got:
            break
        assert 1 <= sum(len(cols.values) for cols in got.values()) <= 4
        for tp, cols in got.items():
            seen.setdefault(tp, []).extend(cols.offsets)
            assert c.position(tp) == cols.offsets[-1] + 1
    assert seen == {tp: list(range(15)) for tp in ALL}


def test_poll_columns_serves_partitions_in_turn(log, consumers):
    for p in range(3):
        fill(log, p, 30)
    c = consumers(log, "t", auto_offset_reset="earliest")
    served = set()
    for _ in range(3):
        served |= {tp.partition for tp in c.poll_columns(timeout_ms=0, max_records=2)}
    assert served == {0, 1, 2}


def test_poll_columns_after_poll_hands_out_the_rest(log, consumers):
    values = fill_batches(log, 0, 2, 5)
    c = consumers(log, "t", auto_offset_reset="earliest")
    first = c.poll(timeout_ms=0, max_records=3)[TP0]
    rest = drain_columns(c)[TP0]
    assert [r.value for r in first] + [row[3] for row in rest] == values
    assert [row[0] for row in rest] == list(range(3, 10))


def test_poll_columns_applies_deserializers_and_skips_none(log, consumers):
    log.partition("t", 0).append([b"1", None, b"3"], keys=[b"a", None, b"c"], acks=1)
    c = consumers(log, "t", auto_offset_reset="earliest", value_deserializer=int,
                  key_deserializer=bytes.decode)
    (cols,) = c.poll_columns(timeout_ms=0).values()
    assert list(cols.values) == [1, None, 3]
    assert list(cols.keys) == ["a", None, "c"]


def test_poll_columns_skips_paused_partitions(log, consumers):
    fill(log, 0, 2)
    fill(log, 1, 2)
    c = consumers(log, "t", auto_offset_reset="earliest")
    c.pause(TP0)
    assert set(c.poll_columns(timeout_ms=0)) == {TP1}
    assert c.poll_columns(timeout_ms=0) == {}


def test_poll_columns_waits_for_an_append(log, consumers):
    c = consumers(log, "t", auto_offset_reset="earliest")

    def append_when_blocked():
        wait_for_waiter(c)
        fill(log, 0, 3)
        return time.monotonic()

    helper = run_in_thread(append_when_blocked)
    got = c.poll_columns(timeout_ms=TIMEOUT_MS)
    returned = time.monotonic()
    appended = helper.result(timeout=TIMEOUT_MS / 1000)
    assert list(got[TP0].values) == [b"t-0-0", b"t-0-1", b"t-0-2"]
    assert returned - appended < WAKE_S


def test_poll_columns_resets_an_out_of_range_position(log, consumers):
    fill(log, 0, 3)
    c = consumers(log, auto_offset_reset="earliest")
    c.assign([TP0])
    c.seek(TP0, 50)
    assert list(c.poll_columns(timeout_ms=0)[TP0].offsets) == [0, 1, 2]
    strict = consumers(log, auto_offset_reset="none")
    strict.assign([TP0])
    strict.seek(TP0, 50)
    with pytest.raises(OffsetOutOfRangeError):
        strict.poll_columns(timeout_ms=0)


@pytest.mark.parametrize("max_records", [0, -1, "2", 1.5])
def test_poll_columns_rejects_bad_max_records(log, consumers, max_records):
    with pytest.raises(IllegalArgumentError):
        consumers(log, "t").poll_columns(max_records=max_records)


@pytest.mark.parametrize("timeout", [-1, "100", None])
def test_poll_columns_rejects_bad_timeouts(log, consumers, timeout):
    with pytest.raises(IllegalArgumentError):
        consumers(log, "t").poll_columns(timeout_ms=timeout)
