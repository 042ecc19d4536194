"""Tests for the Producer (src/strom/client/producer.py).

Layout: futures and RecordMetadata, partitioning (keyed, keyless sticky,
explicit), serializers and tombstones, record validation, callbacks and
errbacks, linger/flush/close, acks (in memory and on disk), compression and
configuration, backpressure, send_batch, topic metadata, threads, a
hypothesis model of the per-partition contents, and send()'s fast path held
to the general path's decisions (hypothesis), under many threads, and at
the buffer and close() edges.

Most tests use ``strom.open(":memory:")``; the durability tests use a
directory under ``tmp_path``.  Waits are bounded (``TIMEOUT``) so a hung
sender fails a test instead of hanging the run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strom
from strom.client import partitioner as part_mod
from strom.client import producer as prod_mod
from strom.client.partitioner import Murmur2Partitioner, XxhashPartitioner
from strom.codec.batch import COMPRESSION_NONE, COMPRESSION_ZSTD
from strom.errors import (IllegalStateError, InvalidConfigError, InvalidRecordError,
                          InvalidTopicError, LogClosedError, RecordTooLargeError, StromError,
                          StromTimeoutError, UnknownTopicOrPartitionError)

SRC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")

TIMEOUT = 10  # seconds: the longest any single wait may take before the test fails
T0 = 1_700_000_000_000


@pytest.fixture
def clock():
    return strom.ManualClock(T0)


@pytest.fixture
def log(clock):
    lg = strom.open(":memory:", clock=clock)
    lg.create_topic("t", partitions=3)
    yield lg
    lg.close()


@pytest.fixture
def producers():
    """Producers made by a test are closed at its end (their sender threads stop)."""
    made = []

    def make(lg, **config):
        p = strom.Producer(lg, **config)
        made.append(p)
        return p

    yield make
    for p in made:
        try:
            p.close(timeout=TIMEOUT)
        except StromError:
            pass


def records(lg, topic, partition):
    """(offset, timestamp, key, value, headers) of every record of a partition."""
    return lg.partition(topic, partition).read_records(0)


def kv(lg, topic, partition):
    return [(r[2], r[3]) for r in records(lg, topic, partition)]


def norm_headers(headers):
    return None if headers is None else [tuple(h) for h in headers]


# -- send(), futures, RecordMetadata ---------------------------------------------


def test_send_returns_future_with_metadata(log, producers, clock):
    p = producers(log)
    fut = p.send("t", b"value", key=b"key", partition=1, timestamp_ms=T0 - 12345)
    assert isinstance(fut, strom.FutureRecordMetadata)
    md = fut.get(timeout=TIMEOUT)
    assert isinstance(md, strom.RecordMetadata)
    assert md.topic == "t" and md.partition == 1
    assert md.topic_partition == strom.TopicPartition("t", 1)
    assert md.offset == 0
    assert md.timestamp == T0 - 12345
    assert md.checksum is None
    assert md.serialized_key_size == 3
    assert md.serialized_value_size == 5
    assert md.serialized_header_size == -1
    assert fut.is_done and fut.succeeded() and not fut.failed()
    assert fut.exception is None
    assert fut.value == md
    md2 = p.send("t", b"second", partition=1).get(timeout=TIMEOUT)
    assert md2.offset == 1
    assert md2.serialized_key_size == -1
    assert records(log, "t", 1) == [(0, T0 - 12345, b"key", b"value", None),
                                    (1, T0, None, b"second", None)]


def test_timestamp_comes_from_the_logs_clock(log, producers, clock):
    p = producers(log)
    md = p.send("t", b"a", partition=0).get(timeout=TIMEOUT)
    assert md.timestamp == T0
    clock.advance(5_000)
    md = p.send("t", b"b", partition=0).get(timeout=TIMEOUT)
    assert md.timestamp == T0 + 5_000
    assert [r[1] for r in records(log, "t", 0)] == [T0, T0 + 5_000]


def test_explicit_and_implicit_timestamps_in_one_batch(log, producers, clock):
    p = producers(log, linger_ms=60_000)
    f1 = p.send("t", b"a", partition=0, timestamp_ms=T0 - 42)
    f2 = p.send("t", b"b", partition=0)
    f3 = p.send("t", b"c", partition=0, timestamp_ms=T0 + 7)
    p.flush(timeout=TIMEOUT)
    assert [f.get(0).timestamp for f in (f1, f2, f3)] == [T0 - 42, T0, T0 + 7]
    assert [r[1] for r in records(log, "t", 0)] == [T0 - 42, T0, T0 + 7]


def test_value_and_key_sizes_and_headers_size(log, producers):
    p = producers(log)
    md = p.send("t", b"", key=b"", partition=0, headers=[("hé", b"xyz")]).get(timeout=TIMEOUT)
    assert md.serialized_key_size == 0
    assert md.serialized_value_size == 0
    assert md.serialized_header_size == len("hé".encode()) + 3


def test_tombstone_has_value_size_minus_one(log, producers):
    p = producers(log)
    md = p.send("t", key=b"k").get(timeout=TIMEOUT)
    assert md.serialized_value_size == -1
    assert md.serialized_key_size == 1


def test_records_readable_in_send_order_per_partition(log, producers):
    p = producers(log)
    sent = defaultdict(list)
    futures = []
    for i in range(300):
        key = None if i % 3 == 0 else f"key-{i % 11}".encode()
        headers = [("i", str(i).encode())] if i % 4 == 0 else None
        value = f"value-{i}".encode()
        futures.append((p.send("t", value, key=key, headers=headers), key, value, headers))
    p.flush(timeout=TIMEOUT)
    for fut, key, value, headers in futures:
        md = fut.get(0)
        sent[md.partition].append((md.offset, key, value, headers))
    for partition in range(3):
        got = [(r[0], r[2], r[3], norm_headers(r[4])) for r in records(log, "t", partition)]
        assert got == sent[partition]


def test_bytes_like_values_and_keys(log, producers):
    p = producers(log)
    p.send("t", bytearray(b"ba"), key=memoryview(b"mv"), partition=2).get(timeout=TIMEOUT)
    p.send("t", memoryview(b"abc"), partition=2).get(timeout=TIMEOUT)
    assert kv(log, "t", 2) == [(b"mv", b"ba"), (None, b"abc")]


def test_get_times_out_while_pending(log, producers):
    p = producers(log, linger_ms=60_000)
    fut = p.send("t", b"x", partition=0)
    with pytest.raises(StromTimeoutError):
        fut.get(timeout=0.05)
    with pytest.raises(TimeoutError):
        fut.get(timeout=0.01)
    assert not fut.is_done and fut.value is None and fut.exception is None
    assert "pending" in repr(fut)
    p.flush(timeout=TIMEOUT)
    assert fut.get(0).offset == 0
    assert "done" in repr(fut)


# -- partitioning ---------------------------------------------------------------------


def test_same_key_same_partition_default_is_xxhash(log, producers):
    p = producers(log)
    xx = XxhashPartitioner()
    seen = defaultdict(set)
    for i in range(200):
        key = f"user-{i % 40}".encode()
        md = p.send("t", b"v", key=key).get(timeout=TIMEOUT)
        seen[key].add(md.partition)
        assert md.partition == xx(key, [0, 1, 2], [0, 1, 2])
    assert all(len(s) == 1 for s in seen.values())
    assert len({next(iter(s)) for s in seen.values()}) == 3  # 40 keys reach every partition


@pytest.mark.parametrize("name", ["default", "xxhash"])
def test_named_xxhash_partitioner(log, producers, name):
    p = producers(log, partitioner=name)
    for i in range(30):
        key = b"k%d" % i
        assert p.send("t", b"v", key=key).get(timeout=TIMEOUT).partition == \
            XxhashPartitioner()(key, range(3), range(3))


def test_murmur2_partitioner_matches(log, producers):
    p = producers(log, partitioner="murmur2")
    m2 = Murmur2Partitioner()
    for i in range(60):
        key = f"order-{i}".encode()
        assert p.send("t", b"v", key=key).get(timeout=TIMEOUT).partition == m2(key, [0, 1, 2], [])


def test_custom_callable_partitioner_gets_kafka_python_arguments(log, producers):
    calls = []

    def last(key_bytes, all_partitions, available):
        calls.append((key_bytes, list(all_partitions), list(available)))
        return all_partitions[-1]

    p = producers(log, partitioner=last, key_serializer=str.encode)
    assert p.send("t", b"v", key="k").get(timeout=TIMEOUT).partition == 2
    assert p.send("t", b"v").get(timeout=TIMEOUT).partition == 2  # keyless too
    assert calls == [(b"k", [0, 1, 2], [0, 1, 2]), (None, [0, 1, 2], [0, 1, 2])]


def test_explicit_partition_wins_over_key(log, producers):
    p = producers(log)
    key = b"some-key"
    natural = XxhashPartitioner()(key, [0, 1, 2], [])
    other = (natural + 1) % 3
    assert p.send("t", b"v", key=key, partition=other).get(timeout=TIMEOUT).partition == other


@pytest.mark.parametrize("bad", [3, -1, 100, True, "0", 1.0])
def test_bad_partition(log, producers, bad):
    p = producers(log)
    with pytest.raises(UnknownTopicOrPartitionError):
        p.send("t", b"v", partition=bad)
    assert all(log.partition("t", i).log_end_offset == 0 for i in range(3))


def test_keyless_records_stick_to_one_partition_per_batch(log, producers):
    # batch_size 100 and 10-byte values: a batch is complete at its 10th record;
    # linger is long so only batch_size ends a batch.
    p = producers(log, linger_ms=60_000, batch_size=100)
    futures = [p.send("t", b"%010d" % i) for i in range(30)]
    p.flush(timeout=TIMEOUT)
    parts = [f.get(0).partition for f in futures]
    groups = [parts[0:10], parts[10:20], parts[20:30]]
    for g in groups:
        assert len(set(g)) == 1, parts
    assert groups[0][0] != groups[1][0] and groups[1][0] != groups[2][0], parts


def test_keyless_records_spread_over_batches(log, producers):
    p = producers(log, batch_size=64)
    futures = [p.send("t", b"x" * 16) for _ in range(600)]
    p.flush(timeout=TIMEOUT)
    counts = defaultdict(int)
    for f in futures:
        counts[f.get(0).partition] += 1
    assert set(counts) == {0, 1, 2}
    assert min(counts.values()) >= 50, counts


# -- serializers and tombstones ----------------------------------------------------


def test_tombstone_with_value_serializer(log, producers):
    calls = []

    def vser(v):
        calls.append(v)
        return json.dumps(v).encode()

    p = producers(log, value_serializer=vser, key_serializer=str.encode)
    p.send("t", {"a": 1}, key="k1", partition=0).get(timeout=TIMEOUT)
    md = p.send("t", None, key="k1", partition=0).get(timeout=TIMEOUT)
    assert md.serialized_value_size == -1
    assert calls == [{"a": 1}]
    assert kv(log, "t", 0) == [(b"k1", b'{"a": 1}'), (b"k1", None)]


def test_key_serializer_not_called_for_none_key(log, producers):
    calls = []

    def kser(k):
        calls.append(k)
        return k.encode()

    p = producers(log, key_serializer=kser)
    p.send("t", b"v", partition=0).get(timeout=TIMEOUT)
    p.send("t", b"w", key="k", partition=0).get(timeout=TIMEOUT)
    assert calls == ["k"]
    assert kv(log, "t", 0) == [(None, b"v"), (b"k", b"w")]


def test_kafka_python_3_serializer_objects(log, producers):
    class Ser:
        def serialize(self, topic, headers, data):
            return data.upper().encode()

    p = producers(log, key_serializer=Ser(), value_serializer=Ser())
    p.send("t", "value", key="key", partition=0).get(timeout=TIMEOUT)
    assert kv(log, "t", 0) == [(b"KEY", b"VALUE")]


def test_log_append_time_topics_report_the_time_the_log_stamped(log, producers, clock):
    """On a LogAppendTime topic the metadata's timestamp is the log's, as a Kafka broker returns."""
    log.create_topic("stamped", config={"message.timestamp.type": "LogAppendTime"})
    clock.advance(5_000)
    p = producers(log)
    meta = [p.send("stamped", b"v%d" % i, timestamp_ms=1_000 + i).get(timeout=TIMEOUT)
            for i in range(3)]
    stored = log.partition("stamped", 0).read_records(0)
    assert [m.timestamp for m in meta] == [r[1] for r in stored] == [T0 + 5_000] * 3
    c = strom.Consumer(log, "stamped", auto_offset_reset="earliest")
    records = c.poll(timeout_ms=TIMEOUT * 1000)[strom.TopicPartition("stamped", 0)]
    assert {(r.timestamp, r.timestamp_type) for r in records} == {(T0 + 5_000, 1)}
    c.close()
    # A CreateTime topic keeps the producer's timestamps.
    m = p.send("t", b"x", partition=0, timestamp_ms=1_234).get(timeout=TIMEOUT)
    assert m.timestamp == 1_234 == log.partition("t", 0).read_records(m.offset)[0][1]


def test_serializer_objects_get_the_topic_and_the_headers(log, producers):
    """kafka-python 3.x calls ``serialize(topic, headers, data)``: a schema may depend on them."""
    seen = []

    class Recorder:
        def serialize(self, topic, headers, data):
            seen.append((topic, headers, data))
            return data.encode()

    p = producers(log, key_serializer=Recorder(), value_serializer=Recorder())
    p.send("t", "v", key="k", headers=[("h", b"1")], partition=0).get(timeout=TIMEOUT)
    p.send("t", "w", partition=0).get(timeout=TIMEOUT)
    assert seen == [("t", [("h", b"1")], "k"), ("t", [("h", b"1")], "v"), ("t", [], "w")]
    seen.clear()
    p.send_batch("t", ["x"], keys=["y"], partition=1)
    assert seen == [("t", [], "x"), ("t", [], "y")]


def test_no_key_and_no_value(log, producers):
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send("t")
    with pytest.raises(InvalidRecordError):
        p.send("t", None, key=None, partition=0)


@pytest.mark.parametrize("kwargs", [
    {"value": "text"}, {"value": 5}, {"value": ["b"]}, {"key": "k", "value": b"v"},
    {"key": 1, "value": b"v"}, {"key": "k"},
])
def test_wrong_types_are_invalid_records(log, producers, kwargs):
    p = producers(log)
    with pytest.raises(InvalidRecordError) as info:
        p.send("t", **kwargs)
    assert isinstance(info.value, TypeError) and isinstance(info.value, StromError)


def test_serializer_returning_non_bytes(log, producers):
    p = producers(log, value_serializer=lambda v: v)  # forgets to encode
    with pytest.raises(InvalidRecordError):
        p.send("t", "text")


@pytest.mark.parametrize("ts", ["1", 1.5, True])
def test_bad_timestamp(log, producers, ts):
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send("t", b"v", timestamp_ms=ts)


def test_topic_must_be_a_str(log, producers):
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send(b"t", b"v")
    p.send("t", b"v")  # the topic is known: later sends of plain records take the fast path
    for bad in (["t"], {"t": 1}, None):
        with pytest.raises(InvalidRecordError):
            p.send(bad, b"v")


def test_invalid_topic_name(log, producers):
    p = producers(log)
    with pytest.raises(InvalidTopicError):
        p.send("no spaces allowed", b"v")


# -- headers ------------------------------------------------------------------------


def test_headers_round_trip(log, producers):
    p = producers(log)
    headers = [("trace", b"abc"), ("empty", b""), ("dup", b"1"), ("dup", b"2"), ("ünï", b"\x00\xff")]
    md = p.send("t", b"v", partition=0, headers=headers).get(timeout=TIMEOUT)
    assert md.serialized_header_size == sum(len(k.encode()) + len(v) for k, v in headers)
    p.send("t", b"w", partition=0, headers=[]).get(timeout=TIMEOUT)
    p.send("t", b"x", partition=0, headers=(h for h in [("g", b"gen")])).get(timeout=TIMEOUT)
    got = records(log, "t", 0)
    assert norm_headers(got[0][4]) == headers
    assert not got[1][4]
    assert norm_headers(got[2][4]) == [("g", b"gen")]


def test_header_with_none_value(log, producers):
    p = producers(log)
    p.send("t", b"v", partition=0, headers=[("h", None)]).get(timeout=TIMEOUT)
    assert norm_headers(records(log, "t", 0)[0][4]) == [("h", None)]


@pytest.mark.parametrize("headers", [
    [("h", "str value")], [(b"bytes-name", b"v")], [("h",)], [("h", b"v", b"extra")],
    ["h"], [["h", b"v"]], "hv", {"h": b"v"}, [("h", 5)],
])
def test_bad_headers(log, producers, headers):
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send("t", b"v", headers=headers)


def test_non_iterable_headers(log, producers):
    # send() validates headers with list(headers): an int must still be an InvalidRecordError.
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send("t", b"v", headers=5)


# -- max_request_size -----------------------------------------------------------------


def test_record_above_max_request_size(log, producers):
    p = producers(log, max_request_size=1000)
    with pytest.raises(RecordTooLargeError) as info:
        p.send("t", b"x" * 2000)
    assert isinstance(info.value, ValueError)
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x" * 10, key=b"k" * 2000)
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x", headers=[("h", b"y" * 2000)])
    assert p.send("t", b"x" * 100, partition=0).get(timeout=TIMEOUT).offset == 0
    assert kv(log, "t", 0) == [(None, b"x" * 100)]


# -- callbacks and errbacks ----------------------------------------------------------


def test_callback_gets_metadata(log, producers):
    p = producers(log, linger_ms=60_000)
    got = []
    errs = []
    fut = p.send("t", b"v", partition=2)
    assert fut.add_callback(got.append) is fut
    fut.add_callback(lambda extra, md: got.append((extra, md.offset)), "extra")
    fut.add_errback(errs.append)
    p.flush(timeout=TIMEOUT)
    md = fut.get(0)
    assert got == [md, ("extra", 0)]
    assert errs == []


def test_callback_added_after_done_runs_at_once(log, producers):
    p = producers(log)
    fut = p.send("t", b"v", partition=0)
    md = fut.get(timeout=TIMEOUT)
    got = []
    fut.add_callback(got.append)
    assert got == [md]
    fut.add_errback(got.append)  # succeeded: an errback never runs
    assert got == [md]
    both = []
    fut.add_both(both.append)
    assert both == [md]


def test_raising_callback_does_not_break_the_producer(log, producers):
    p = producers(log)
    fut = p.send("t", b"a", partition=0)
    fut.add_callback(lambda md: 1 / 0)
    assert fut.get(timeout=TIMEOUT).offset == 0
    fut.add_callback(lambda md: 1 / 0)  # runs at once in this thread, swallowed
    later = []
    for i in range(20):
        f = p.send("t", b"%d" % i, partition=0)
        f.add_callback(lambda md: 1 / 0)
        f.add_callback(later.append)
    p.flush(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while len(later) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)  # do not rely on flush() waiting for callbacks: tested below
    assert [m.offset for m in later] == list(range(1, 21))
    assert log.partition("t", 0).log_end_offset == 21


def test_callbacks_have_run_when_flush_returns(log, producers):
    # Kafka's producer fires a batch's callbacks before flush() (and the future) count
    # the batch as complete; here the sender is kept busy by a slow callback so that
    # the next batch is written after flush() started waiting.
    p = producers(log)
    first = p.send("t", b"a", partition=0)
    first.add_callback(lambda md: time.sleep(0.05))
    ran = []
    for i in range(20):
        p.send("t", b"%d" % i, partition=0).add_callback(ran.append)
    p.flush(timeout=TIMEOUT)
    assert len(ran) == 20, "flush() returned before the records' callbacks ran"


def test_errback_gets_the_error_when_the_log_is_closed(clock, producers):
    lg = strom.open(":memory:", clock=clock)
    lg.create_topic("t", partitions=1)
    p = producers(lg, linger_ms=60_000)
    errs, oks = [], []
    fut = p.send("t", b"v")
    fut.add_errback(errs.append)
    fut.add_callback(oks.append)
    lg.close()  # the batch is still lingering
    p.flush(timeout=TIMEOUT)
    assert fut.is_done and fut.failed() and not fut.succeeded()
    assert isinstance(fut.exception, LogClosedError)
    assert fut.value is None
    with pytest.raises(LogClosedError):
        fut.get(timeout=TIMEOUT)
    assert len(errs) == 1 and errs[0] is fut.exception
    assert oks == []
    late = []
    fut.add_errback(late.append)  # after done: at once
    fut.add_both(late.append)
    assert late == [fut.exception, fut.exception]
    assert p.metrics()["producer-metrics"]["record-error-total"] == 1
    # a send to the cached topic of the closed log fails in its future, not in send()
    fut2 = p.send("t", b"w")
    p.flush(timeout=TIMEOUT)
    with pytest.raises(LogClosedError):
        fut2.get(timeout=TIMEOUT)


def test_a_record_above_the_topics_max_message_bytes_is_refused_at_send(log, producers):
    # Refused at send(), not in the batch: a record that no batch can hold must not
    # sink the records that share its batch.
    log.create_topic("small", partitions=1, config={"max.message.bytes": 1000})
    p = producers(log, linger_ms=100)
    neighbour = p.send("small", b"a" * 10)
    with pytest.raises(RecordTooLargeError):
        p.send("small", b"x" * 5000)  # within max_request_size, above the topic's limit
    p.flush(timeout=TIMEOUT)
    assert neighbour.get(timeout=TIMEOUT).offset == 0
    assert p.send("small", b"ok").get(timeout=TIMEOUT).offset == 1  # the producer goes on


def test_flush_waits_for_every_future(log, producers):
    # Two batches written in one sender pass: while the first batch's callback
    # runs, flush() must still wait for the second batch's future.
    p = producers(log, linger_ms=50)
    started, release = threading.Event(), threading.Event()

    def slow(md):
        started.set()
        release.wait(TIMEOUT)

    f1 = p.send("t", b"a", partition=0)
    f1.add_callback(slow)
    f2 = p.send("t", b"b", partition=1)
    assert started.wait(TIMEOUT)
    try:
        done = threading.Event()
        t = threading.Thread(target=lambda: (p.flush(timeout=TIMEOUT), done.set()))
        t.start()
        done.wait(0.3)
        flushed_before_f2 = done.is_set() and not f2.is_done
    finally:
        release.set()
        t.join(TIMEOUT)
    assert not flushed_before_f2, "flush() returned while a sent record's future was not done"
    assert f2.get(timeout=TIMEOUT).partition == 1


# -- linger, flush, close ------------------------------------------------------------


def test_linger_delays_the_write(log, producers):
    p = producers(log, linger_ms=300)
    start = time.monotonic()
    fut = p.send("t", b"v", partition=0)
    time.sleep(0.05)
    assert log.partition("t", 0).log_end_offset == 0
    assert not fut.is_done
    md = fut.get(timeout=TIMEOUT)
    assert time.monotonic() - start >= 0.29
    assert md.offset == 0
    assert kv(log, "t", 0) == [(None, b"v")]


def test_full_batch_is_written_before_linger(log, producers):
    p = producers(log, linger_ms=60_000, batch_size=100)
    f1 = p.send("t", b"a" * 60, partition=0)
    f2 = p.send("t", b"b" * 60, partition=0)  # 120 bytes >= batch_size: complete
    f3 = p.send("t", b"c" * 10, partition=0)  # opens the next batch, which lingers
    assert f2.get(timeout=TIMEOUT).offset == 1
    assert f1.get(0).offset == 0
    time.sleep(0.05)
    assert not f3.is_done
    assert log.partition("t", 0).log_end_offset == 2
    p.flush(timeout=TIMEOUT)
    assert f3.get(0).offset == 2


def test_flush_writes_everything(log, producers):
    p = producers(log, linger_ms=60_000)
    futures = [p.send("t", b"%d" % i, key=b"k%d" % (i % 5)) for i in range(100)]
    assert sum(log.partition("t", i).log_end_offset for i in range(3)) == 0
    p.flush(timeout=TIMEOUT)
    assert all(f.is_done for f in futures)
    assert sum(log.partition("t", i).log_end_offset for i in range(3)) == 100
    p.flush(timeout=TIMEOUT)  # nothing pending: returns at once


def test_flush_timeout(log, producers):
    p = producers(log)
    started, release = threading.Event(), threading.Event()
    p.send("t", b"a", partition=0).add_callback(lambda md: (started.set(), release.wait(TIMEOUT)))
    assert started.wait(TIMEOUT)  # the sender is now stuck in the callback
    p.send("t", b"b", partition=0)
    try:
        with pytest.raises(StromTimeoutError):
            p.flush(timeout=0.1)
    finally:
        release.set()
    p.flush(timeout=TIMEOUT)
    assert kv(log, "t", 0) == [(None, b"a"), (None, b"b")]


def test_close_writes_pending_then_send_is_illegal(log, producers):
    p = producers(log, linger_ms=60_000)
    futures = [p.send("t", b"%d" % i, partition=i % 3) for i in range(9)]
    start = time.monotonic()
    p.close(timeout=TIMEOUT)
    assert time.monotonic() - start < 5  # close does not wait for linger
    assert all(f.succeeded() for f in futures)
    assert [len(records(log, "t", i)) for i in range(3)] == [3, 3, 3]
    with pytest.raises(IllegalStateError):
        p.send("t", b"late")
    with pytest.raises(IllegalStateError):
        p.send_batch("t", [b"late"])
    p.close()  # idempotent
    assert [len(records(log, "t", i)) for i in range(3)] == [3, 3, 3]


def test_context_manager_closes(log):
    with strom.Producer(log, linger_ms=60_000) as p:
        fut = p.send("t", b"v", partition=1)
    assert fut.succeeded()
    assert kv(log, "t", 1) == [(None, b"v")]
    with pytest.raises(IllegalStateError):
        p.send("t", b"v")


# -- acks ----------------------------------------------------------------------------------


def test_acks_0_future_done_at_once(log, producers):
    p = producers(log, acks=0, linger_ms=60_000)
    fut = p.send("t", b"v", partition=1)
    assert fut.is_done and fut.succeeded()
    md = fut.get(timeout=0)
    assert md.offset == -1
    assert md.topic == "t" and md.partition == 1
    got = []
    fut.add_callback(got.append)
    assert got == [md]
    assert log.partition("t", 1).log_end_offset == 0  # lingering still
    p.flush(timeout=TIMEOUT)
    assert kv(log, "t", 1) == [(None, b"v")]
    p.send("t", b"w", partition=1)
    p.close(timeout=TIMEOUT)
    assert kv(log, "t", 1) == [(None, b"v"), (None, b"w")]


def test_acks_0_metadata_keeps_sizes_and_timestamp(log, producers):
    # RecordMetadata's contract: sizes are -1 only for a None key/value; kafka-python
    # fills them (and the record's timestamp) for acks=0 too, with offset -1.
    p = producers(log, acks=0)
    md = p.send("t", b"value", key=b"key", partition=0, timestamp_ms=1234).get(timeout=0)
    assert md.offset == -1
    assert md.serialized_key_size == 3
    assert md.serialized_value_size == 5
    assert md.timestamp == 1234


def test_acks_0_write_error_is_counted(clock, producers):
    lg = strom.open(":memory:", clock=clock)
    lg.create_topic("t", partitions=1)
    p = producers(lg, acks=0, linger_ms=60_000)
    p.send("t", b"v")
    lg.close()
    p.flush(timeout=TIMEOUT)
    assert p.metrics()["producer-metrics"]["record-error-total"] == 1


@pytest.mark.parametrize("acks", [1, -1, "all"])
def test_acks_1_and_all(log, producers, acks):
    p = producers(log, acks=acks)
    assert p.send("t", b"v", partition=0).get(timeout=TIMEOUT).offset == 0
    assert kv(log, "t", 0) == [(None, b"v")]


@pytest.mark.parametrize("acks", [1, "all"])
def test_on_disk_record_visible_to_a_fresh_open(tmp_path, acks):
    path = tmp_path / "data"
    lg = strom.open(path)
    lg.create_topic("t", partitions=2)
    p = strom.Producer(lg, acks=acks)
    try:
        md = p.send("t", b"durable", key=b"k", partition=1, headers=[("h", b"1")]).get(TIMEOUT)
        other = strom.open(path)
        try:
            got = other.partition("t", 1).read_records(0)
            assert [(r[0], r[2], r[3], norm_headers(r[4])) for r in got] == \
                [(md.offset, b"k", b"durable", [("h", b"1")])]
        finally:
            other.close()
    finally:
        p.close(timeout=TIMEOUT)
        lg.close()


def test_on_disk_close_then_reopen(tmp_path):
    path = tmp_path / "data"
    lg = strom.open(path)
    p = strom.Producer(lg, linger_ms=60_000, compression_type="zstd")
    for i in range(50):
        p.send("auto", b"%d" % i, key=b"k%d" % (i % 4))
    p.close(timeout=TIMEOUT)
    lg.close()
    with strom.open(path) as again:
        assert again.topics()["auto"].partitions == 1
        assert sorted(int(r[3]) for r in again.partition("auto", 0).read_records(0)) == \
            list(range(50))
        assert [int(r[3]) for r in again.partition("auto", 0).read_records(0)] == list(range(50))


# -- compression and configuration -----------------------------------------------------------


@pytest.mark.parametrize("compression, code", [("zstd", COMPRESSION_ZSTD), (None, COMPRESSION_NONE),
                                                ("none", COMPRESSION_NONE)])
def test_compression_round_trip(log, producers, compression, code):
    p = producers(log, compression_type=compression, linger_ms=60_000)
    values = [(b"%05d" % i) * 20 for i in range(200)]
    for i, v in enumerate(values):
        p.send("t", v, key=b"k%d" % i, partition=0, headers=[("i", b"%d" % i)])
    p.flush(timeout=TIMEOUT)
    batches = log.partition("t", 0).read(0)
    assert batches and all(b.compression == code for b in batches)
    got = records(log, "t", 0)
    assert [r[3] for r in got] == values
    assert [r[2] for r in got] == [b"k%d" % i for i in range(200)]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "ZSTD", 1])
def test_unsupported_compression(log, compression):
    with pytest.raises(InvalidConfigError):
        strom.Producer(log, compression_type=compression)


def test_unknown_config_key(log):
    with pytest.raises(InvalidConfigError, match="Unrecognized configs") as info:
        strom.Producer(log, lingerms=5)
    assert "lingerms" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_network_options_are_accepted(log):
    p = strom.Producer(log, bootstrap_servers="localhost:9092", retries=5,
                       security_protocol="SSL", sasl_mechanism="PLAIN", request_timeout_ms=1000,
                       enable_idempotence=True, max_in_flight_requests_per_connection=1,
                       api_version=(2, 5, 0), delivery_timeout_ms=5000, client_id="me",
                       transactional_id=None)
    try:
        assert p.bootstrap_connected() is True
        assert p.send("t", b"v", partition=0).get(timeout=TIMEOUT).offset == 0
    finally:
        p.close(timeout=TIMEOUT)


def test_transactions_are_rejected(log):
    with pytest.raises(strom.UnsupportedError, match="transactions"):
        strom.Producer(log, transactional_id="tx-1")
    with pytest.raises(NotImplementedError):
        strom.Producer(log, transactional_id="tx-1")
    # kafka-python's default transaction_timeout_ms alone is harmless: accepted, ignored.
    p = strom.Producer(log, transaction_timeout_ms=60000)
    p.close(timeout=TIMEOUT)


def test_the_offsets_topic_is_not_for_producers(log):
    consumer = strom.Consumer(log, "t", group_id="g")
    consumer.commit({strom.TopicPartition("t", 0): 1})
    with strom.Producer(log) as p:
        with pytest.raises(strom.InvalidTopicError, match="internal"):
            p.send("__consumer_offsets", b"oops", key=b"k")
        with pytest.raises(strom.InvalidTopicError):
            p.send_batch("__consumer_offsets", [b"oops"])
    assert consumer.committed(strom.TopicPartition("t", 0)) == 1
    consumer.close()


def test_unflushed_records_are_written_at_exit(tmp_path):
    code = ("import strom\n"
            f"log = strom.open({str(tmp_path)!r})\n"
            "p = strom.Producer(log, acks=1, linger_ms=60000)\n"
            "for i in range(100):\n"
            "    p.send('t', b'%d' % i)\n")  # no flush, no close: the exit hook writes them
    env = {**os.environ, "PYTHONPATH": SRC_DIR}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    with strom.open(tmp_path) as log:
        assert log.partition("t", 0).log_end_offset == 100


@pytest.mark.parametrize("config", [
    {"acks": 2}, {"acks": True}, {"acks": "1"}, {"linger_ms": -1}, {"linger_ms": 1.5},
    {"batch_size": 0}, {"max_request_size": 0}, {"buffer_memory": 0}, {"max_block_ms": -1},
    {"key_serializer": "json"}, {"value_serializer": 5}, {"partitioner": "random"},
])
def test_bad_config_values(log, config):
    with pytest.raises(InvalidConfigError):
        strom.Producer(log, **config)


def test_producer_needs_a_log():
    with pytest.raises(InvalidConfigError):
        strom.Producer(":memory:")


# -- backpressure -------------------------------------------------------------------------


def test_tiny_buffer_memory_still_delivers_everything(log, producers):
    p = producers(log, buffer_memory=500, linger_ms=5)
    futures = [p.send("t", b"%099d" % i, partition=i % 3) for i in range(1500)]
    p.flush(timeout=TIMEOUT)
    assert all(f.succeeded() for f in futures)
    for part in range(3):
        assert [int(r[3]) for r in records(log, "t", part)] == list(range(part, 1500, 3))
    assert p.metrics()["producer-metrics"]["buffer-pending-bytes"] == 0


def test_record_larger_than_buffer_memory_is_accepted_when_empty(log, producers):
    p = producers(log, buffer_memory=10)
    assert p.send("t", b"x" * 100, partition=0).get(timeout=TIMEOUT).offset == 0


def test_full_buffer_times_out_when_the_sender_cannot_drain(log, producers):
    # The sender thread runs callbacks; one that blocks keeps it from writing, so
    # the buffer cannot drain and send() must give up after max_block_ms.
    p = producers(log, buffer_memory=100, max_block_ms=100)
    started, release = threading.Event(), threading.Event()

    def block(md):
        started.set()
        release.wait(TIMEOUT)

    p.send("t", b"a", partition=0).add_callback(block)
    assert started.wait(TIMEOUT)
    try:
        queued = p.send("t", b"b" * 90, partition=0)  # fits: the buffer is empty
        start = time.monotonic()
        with pytest.raises(StromTimeoutError):
            p.send("t", b"c" * 90, partition=0)
        assert time.monotonic() - start >= 0.09
    finally:
        release.set()
    assert queued.get(timeout=TIMEOUT).offset == 1
    assert p.send("t", b"d", partition=0).get(timeout=TIMEOUT).offset == 2
    assert kv(log, "t", 0) == [(None, b"a"), (None, b"b" * 90), (None, b"d")]


# -- send_batch ---------------------------------------------------------------------------


def test_send_batch_to_a_partition(log, producers, clock):
    p = producers(log)
    firsts = p.send_batch("t", [b"a", b"b", b"c"], partition=2)
    assert firsts == {2: 0}
    firsts = p.send_batch("t", [b"d"], keys=[b"kd"], partition=2, timestamp_ms=T0 - 99)
    assert firsts == {2: 3}
    got = records(log, "t", 2)
    assert [(r[0], r[2], r[3]) for r in got] == [(0, None, b"a"), (1, None, b"b"), (2, None, b"c"),
                                                 (3, b"kd", b"d")]
    assert [r[1] for r in got] == [T0, T0, T0, T0 - 99]


def test_send_batch_keyed_goes_by_key(log, producers):
    p = producers(log, key_serializer=str.encode, value_serializer=str.encode)
    keys = [f"k{i % 10}" for i in range(100)]
    values = [f"v{i}" for i in range(100)]
    firsts = p.send_batch("t", values, keys=keys)
    xx = XxhashPartitioner()
    expected = defaultdict(list)
    for k, v in zip(keys, values):
        expected[xx(k.encode(), [0, 1, 2], [])].append((k.encode(), v.encode()))
    assert firsts == {part: 0 for part in expected}
    for part in range(3):
        assert kv(log, "t", part) == expected[part]


def test_send_batch_after_earlier_sends(log, producers):
    p = producers(log, linger_ms=60_000)
    futures = [p.send("t", b"s%d" % i, partition=1) for i in range(5)]
    firsts = p.send_batch("t", [b"b0", b"b1"], partition=1)
    assert firsts == {1: 5}
    assert [f.get(0).offset for f in futures] == list(range(5))
    assert [r[3] for r in records(log, "t", 1)] == [b"s0", b"s1", b"s2", b"s3", b"s4", b"b0", b"b1"]


def test_send_batch_keyed_with_none_keys_and_murmur2(log, producers):
    """Keys the fast path cannot hash go through the partitioner, record by record."""
    for partitioner in (None, "murmur2"):
        p = producers(log, partitioner=partitioner) if partitioner else producers(log)
        part = p._partitioner
        keys = [b"k%d" % i for i in range(50)] + [None, b"last"]
        values = [b"v%d" % i for i in range(52)]
        before = {q: len(kv(log, "t", q)) for q in range(3)}
        firsts = p.send_batch("t", values, keys=keys)
        written = {q: kv(log, "t", q)[before[q]:] for q in range(3)}
        assert sorted((r for rs in written.values() for r in rs), key=lambda r: r[1]) == sorted(
            zip(keys, values), key=lambda r: r[1])
        for q, rs in written.items():
            for k, _v in rs:
                if k is not None:
                    assert part(k, [0, 1, 2], [0, 1, 2]) == q
            assert (q in firsts) == bool(rs)
            if rs:
                assert firsts[q] == before[q]


def test_send_batch_tombstones_and_serializers(log, producers):
    calls = []
    p = producers(log, value_serializer=lambda v: calls.append(v) or v.encode())
    p.send_batch("t", ["x", None], keys=[b"k", b"k"], partition=0)
    assert calls == ["x"]
    assert kv(log, "t", 0) == [(b"k", b"x"), (b"k", None)]


def test_send_batch_errors(log, producers):
    p = producers(log)
    with pytest.raises(InvalidRecordError):
        p.send_batch("t", [b"a", b"b"], keys=[b"k"])
    with pytest.raises(UnknownTopicOrPartitionError):
        p.send_batch("t", [b"a"], partition=3)


def test_keyless_send_batch_spreads_over_calls(log, producers):
    # Like send(): keyless records stick to a partition per batch, and the
    # batches spread over the partitions.  A send_batch call is a complete batch.
    p = producers(log)
    for _ in range(60):
        p.send_batch("t", [b"x"] * 5)
    ends = [log.partition("t", i).log_end_offset for i in range(3)]
    assert sum(ends) == 300
    assert min(ends) > 0, ends


# -- topics, metrics ---------------------------------------------------------------------------


def test_partitions_for(log, producers):
    p = producers(log)
    assert p.partitions_for("t") == {0, 1, 2}
    assert p.partitions_for("fresh") == {0}  # auto-created
    assert "fresh" in log.topics()


def test_auto_create_on_send(log, producers):
    p = producers(log)
    md = p.send("created-by-send", b"v").get(timeout=TIMEOUT)
    assert (md.topic, md.partition, md.offset) == ("created-by-send", 0, 0)
    assert log.topics()["created-by-send"].partitions == 1
    assert kv(log, "created-by-send", 0) == [(None, b"v")]


def test_auto_create_disabled(log, producers):
    p = producers(log, allow_auto_create_topics=False)
    with pytest.raises(UnknownTopicOrPartitionError):
        p.send("missing", b"v")
    with pytest.raises(UnknownTopicOrPartitionError):
        p.partitions_for("missing")
    with pytest.raises(UnknownTopicOrPartitionError):
        p.send_batch("missing", [b"v"])
    assert "missing" not in log.topics()
    assert p.send("t", b"v", partition=0).get(timeout=TIMEOUT).offset == 0  # existing topics work


def test_metrics(log, producers):
    p = producers(log, buffer_memory=1_000_000)
    m = p.metrics()
    assert set(m) == {"producer-metrics"}
    assert {"record-send-total", "record-error-total", "batch-total", "bytes-total",
            "buffer-pending-bytes", "buffer-available-bytes"} <= set(m["producer-metrics"])
    for i in range(10):
        p.send("t", b"0123456789", partition=i % 3)
    p.flush(timeout=TIMEOUT)
    m = p.metrics()["producer-metrics"]
    assert m["record-send-total"] == 10
    assert m["record-error-total"] == 0
    assert 1 <= m["batch-total"] <= 10
    assert m["bytes-total"] == 100
    assert m["buffer-pending-bytes"] == 0
    assert m["buffer-available-bytes"] == 1_000_000
    assert "strom.Producer" in repr(p)


# -- threads ------------------------------------------------------------------------------------


def run_threads(worker, n_threads, errors):
    """Run ``worker(t)`` for t in range(n_threads) at once; no worker may have failed."""
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors


def test_many_threads_share_one_producer(log, producers):
    p = producers(log, acks=1)
    n_threads, per_thread = 8, 5000
    errors = []
    barrier = threading.Barrier(n_threads)

    def worker(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                key = (b"key-%d" % (i % 13)) if (t + i) % 2 else None
                p.send("t", b"%d:%d" % (t, i), key=key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_threads(worker, n_threads, errors)
    p.flush(timeout=30)
    seen = set()
    xx = XxhashPartitioner()
    for part in range(3):
        last = {}
        for _, _, key, value, _ in records(log, "t", part):
            t, i = map(int, value.split(b":"))
            assert (t, i) not in seen
            seen.add((t, i))
            assert i > last.get(t, -1), "a thread's records are out of order in a partition"
            last[t] = i
            if key is not None:
                assert key == b"key-%d" % (i % 13)
                assert xx(key, [0, 1, 2], []) == part
    assert len(seen) == n_threads * per_thread


# -- a model of the partitions ------------------------------------------------------------------

KEYS = [b"alpha", b"beta", b"gamma", b"delta"]
op_strategy = st.one_of(
    st.tuples(st.just("send"), st.sampled_from([None, *KEYS]), st.binary(max_size=40),
              st.one_of(st.none(), st.integers(0, 2))),
    st.just(("flush",)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_strategy, max_size=40), linger_ms=st.sampled_from([0, 2]),
       batch_size=st.sampled_from([1, 50, 16384]))
def test_partitions_match_a_model(ops, linger_ms, batch_size):
    lg = strom.open(":memory:")
    lg.create_topic("m", partitions=3)
    p = strom.Producer(lg, linger_ms=linger_ms, batch_size=batch_size, acks=1)
    xx = XxhashPartitioner()
    try:
        sent = []
        for op in ops:
            if op[0] == "flush":
                p.flush(timeout=TIMEOUT)
                assert all(f.is_done for f, *_ in sent)
                continue
            _, key, value, partition = op
            sent.append((p.send("m", value, key=key, partition=partition), key, value, partition))
        p.flush(timeout=TIMEOUT)
        model = defaultdict(list)
        for fut, key, value, partition in sent:
            md = fut.get(0)
            if partition is not None:
                assert md.partition == partition
            elif key is not None:
                assert md.partition == xx(key, [0, 1, 2], [])
            assert md.offset == len(model[md.partition])
            model[md.partition].append((key, value))
        for part in range(3):
            assert kv(lg, "m", part) == model[part]
    finally:
        p.close(timeout=TIMEOUT)
        lg.close()


# -- send()'s fast path -------------------------------------------------------------------------
# Plain records (bytes value, bytes or no key, nothing else) on a producer without serializers
# take a shorter path through send(); these tests hold it to the general path's decisions.


def all_records(lg, topic, partition):
    """Every record of a partition, however many fetches it takes."""
    out, offset = [], 0
    while True:
        got = lg.partition(topic, partition).read_records(offset)
        if not got:
            return out
        out.extend(got)
        offset = got[-1][0] + 1


def test_plain_records_take_the_fast_path(log, producers):
    p = producers(log, acks=1)
    general = []
    real = p._send
    p._send = lambda *a: general.append(a) or real(*a)
    p.send("t", b"warm")  # the first record of a topic finds it through the general path
    general.clear()
    futures = [p.send("t", b"v%d" % i, key=b"k%d" % i if i % 2 else None) for i in range(500)]
    assert general == []
    p.send("t", bytearray(b"v"), key=b"k")  # anything else goes the general way
    p.send("t", b"v", key=b"k", headers=[("h", b"1")])
    p.send("t", None, key=b"k")
    p.send("t", b"v", key=b"k", partition=1)
    p.send("t", b"v", key=b"k", timestamp_ms=T0)
    assert len(general) == 5
    p.flush(timeout=TIMEOUT)
    assert all(f.succeeded() for f in futures)


def test_fast_path_refuses_what_the_general_path_refuses(log, producers):
    log.create_topic("small", partitions=1, config={"max.message.bytes": 1000})
    p = producers(log, acks=1, max_request_size=500)
    p.send("t", b"warm")
    p.send("small", b"warm")
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x" * 437)  # 437 + 64 > max_request_size
    assert p.send("t", b"x" * 436).get(timeout=TIMEOUT).serialized_value_size == 436
    with pytest.raises(RecordTooLargeError):
        p.send("t", b"x" * 400, key=b"k" * 37)
    with pytest.raises(InvalidRecordError):
        p.send("t", b"v", key="str key")
    p2 = producers(log, acks=1)
    p2.send("small", b"warm")
    with pytest.raises(RecordTooLargeError):
        p2.send("small", b"x" * 937)  # above the topic's max.message.bytes
    log.alter_topic("small", {"max.message.bytes": 200})
    with pytest.raises(RecordTooLargeError):  # the topic's current limit, read per record
        p2.send("small", b"x" * 200)
    p2.close(timeout=TIMEOUT)
    with pytest.raises(IllegalStateError):
        p2.send("small", b"v")


plain_send = st.tuples(st.just("send"), st.sampled_from([None, None, None, *KEYS]),
                       st.one_of(st.binary(max_size=12), st.binary(max_size=60)),
                       st.none(), st.none(), st.none())
other_send = st.tuples(
    st.just("send"),
    st.one_of(st.none(), st.sampled_from(KEYS), st.builds(bytearray, st.sampled_from(KEYS))),
    st.one_of(st.binary(max_size=60), st.none(), st.builds(bytearray, st.binary(max_size=8))),
    st.one_of(st.none(), st.integers(0, 2)),
    st.one_of(st.none(), st.just([("h", b"x")])),
    st.one_of(st.none(), st.integers(T0 - 10, T0 + 10)))
# Mostly plain records, the fast path's own, between the others.
fast_op = st.one_of(*[plain_send] * 12, other_send, other_send, st.just(("flush",)),
                    st.just(("tick",)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(fast_op, max_size=80), batch_size=st.sampled_from([1, 40, 150, 16384]),
       seed=st.integers(0, 2**16))
def test_fast_path_decides_as_the_general_path(ops, batch_size, seed):
    """The same records through a fast-path producer and a general-path one end the same.

    The general-path producer has an identity value serializer, which keeps it off the fast
    path; both sticky partitioners draw from the same seed.  linger_ms is long, so batches
    end only by batch_size or flush(), as the ops say, never by the sender's timing.
    """
    outcomes = []
    real_sticky = prod_mod.StickyPartitioner
    for general in (False, True):
        clock = strom.ManualClock(T0)
        lg = strom.open(":memory:", clock=clock)
        lg.create_topic("m", partitions=3)
        prod_mod.StickyPartitioner = lambda: part_mod.StickyPartitioner(rng=random.Random(seed))
        try:
            p = strom.Producer(lg, acks=1, linger_ms=60_000, batch_size=batch_size,
                               value_serializer=(lambda v: v) if general else None)
        finally:
            prod_mod.StickyPartitioner = real_sticky
        try:
            results = []
            for op in ops:
                if op[0] == "flush":
                    p.flush(timeout=TIMEOUT)
                elif op[0] == "tick":
                    clock.advance(3)
                else:
                    _, key, value, partition, headers, ts = op
                    try:
                        results.append(p.send("m", value, key=key, partition=partition,
                                              headers=headers, timestamp_ms=ts))
                    except StromError as exc:
                        results.append(type(exc))
            p.flush(timeout=TIMEOUT)
            seen = []
            for r in results:
                if isinstance(r, type):
                    seen.append(r)
                else:
                    md = r.get(0)
                    seen.append((md.partition, md.offset, md.timestamp, md.serialized_key_size,
                                 md.serialized_value_size, md.serialized_header_size))
            outcomes.append((seen, [all_records(lg, "m", i) for i in range(3)]))
        finally:
            p.close(timeout=TIMEOUT)
            lg.close()
    assert outcomes[0] == outcomes[1]


def test_threads_on_the_fast_path_lose_and_duplicate_nothing(producers):
    # Many threads, small batches (the sender swaps them out all the time), records on
    # both paths; every future must name the offset that holds its own record, once.
    lg = strom.open(":memory:")
    lg.create_topic("t", partitions=3)
    p = producers(lg, acks=1, batch_size=300)
    n_threads, per_thread = 8, 4000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        _run_fast_path_threads(lg, p, n_threads, per_thread)
    finally:
        sys.setswitchinterval(interval)
    lg.close()


def _run_fast_path_threads(lg, p, n_threads, per_thread):
    sent: list[list] = [[] for _ in range(n_threads)]
    errors = []
    barrier = threading.Barrier(n_threads)

    def worker(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                value = b"%d:%d" % (t, i)
                if i % 50 == 7:
                    fut = p.send("t", value, key=b"k", headers=[("h", b"x")])  # general path
                elif i % 3 == 0:
                    fut = p.send("t", value)
                else:
                    fut = p.send("t", value, key=b"key-%d" % (i % 17))
                sent[t].append((i, fut))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_threads(worker, n_threads, errors)
    p.flush(timeout=30)
    logged = {part: {r[0]: r for r in all_records(lg, "t", part)} for part in range(3)}
    assert sum(len(v) for v in logged.values()) == n_threads * per_thread
    values = set()
    for t in range(n_threads):
        last = {}
        for i, fut in sent[t]:
            md = fut.get(0)
            _, _, key, value, _ = logged[md.partition][md.offset]
            assert value == b"%d:%d" % (t, i)
            assert md.serialized_key_size == (-1 if key is None else len(key))
            assert md.offset > last.get(md.partition, -1), "a thread's records out of order"
            last[md.partition] = md.offset
            values.add(value)
    assert len(values) == n_threads * per_thread


def test_send_waiting_for_buffer_while_closing_does_not_leave_a_lost_future(producers):
    # A send() blocked on a full buffer while close() drains the producer must either be
    # written or refused: a future returned after the sender stopped would never complete.
    for _ in range(5):
        lg = strom.open(":memory:")
        lg.create_topic("t", partitions=1)
        p = producers(lg, acks=1, buffer_memory=100)
        started, release = threading.Event(), threading.Event()

        def block(md, started=started, release=release):
            started.set()
            release.wait(TIMEOUT)

        p.send("t", b"a" * 60, partition=0).add_callback(block)
        assert started.wait(TIMEOUT)
        out = []

        def send(p=p, out=out):
            try:
                out.append(p.send("t", b"b" * 60, partition=0))  # waits for the buffer
            except IllegalStateError as exc:
                out.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.01)
        closer = threading.Thread(target=p.close, kwargs={"timeout": TIMEOUT})
        closer.start()
        time.sleep(0.01)
        release.set()
        closer.join(TIMEOUT)
        sender.join(TIMEOUT)
        assert len(out) == 1
        if isinstance(out[0], strom.FutureRecordMetadata):
            assert out[0].get(timeout=TIMEOUT).offset == 1
        lg.close()


def test_batches_waiting_for_the_sender_share_a_timestamp_and_one_append(clock, producers):
    # linger_ms=0: batches of a partition opened while the previous one waits for the
    # sender take its timestamp, so the sender writes them together (within the topic's
    # max.message.bytes); futures, metadata and the log agree.
    lg = strom.open(":memory:", clock=clock)
    lg.create_topic("t", partitions=1, config={"max.message.bytes": 3000})
    p = producers(lg, acks=1, batch_size=200)
    started, release = threading.Event(), threading.Event()
    first = p.send("t", b"first", partition=0)
    first.add_callback(lambda md: (started.set(), release.wait(TIMEOUT)))
    assert started.wait(TIMEOUT)  # the sender is busy: what follows waits for it
    clock.advance(10)
    futures = [p.send("t", b"%050d" % i) for i in range(200)]  # dozens of batches
    clock.advance(10)
    release.set()
    p.flush(timeout=TIMEOUT)
    mds = [f.get(0) for f in futures]
    assert first.get(0).timestamp == T0
    assert {md.timestamp for md in mds} == {T0 + 10}
    assert [md.offset for md in mds] == list(range(1, 201))
    got = all_records(lg, "t", 0)
    assert [r[3] for r in got[1:]] == [b"%050d" % i for i in range(200)]
    assert {r[1] for r in got[1:]} == {T0 + 10}
    batches = lg.partition("t", 0).read(1, max_bytes=10**6)
    assert all(b.size <= 3000 for b in batches)
    assert len(batches) < 200 * 50 // 200  # fewer stored batches than producer batches


def test_partitioner_choosing_a_missing_partition_is_refused(log, producers):
    p = producers(log, partitioner=lambda key, all_partitions, available: 7)
    with pytest.raises(UnknownTopicOrPartitionError):
        p.send("t", b"v", key=b"k")
    with pytest.raises(UnknownTopicOrPartitionError):
        producers(log, partitioner=lambda k, a, v: -1).send("t", b"v")
    p2 = producers(log, partitioner=lambda k, a, v: True)
    with pytest.raises(UnknownTopicOrPartitionError):
        p2.send("t", b"v")


def test_fast_path_blocks_on_a_full_buffer(log, producers):
    # As test_full_buffer_times_out_when_the_sender_cannot_drain, with plain records (no
    # explicit partition: a topic of one partition) that append to an open batch.
    log.create_topic("one", partitions=1)
    p = producers(log, buffer_memory=100, max_block_ms=100)
    started, release = threading.Event(), threading.Event()

    def block(md):
        started.set()
        release.wait(TIMEOUT)

    p.send("one", b"a").add_callback(block)
    assert started.wait(TIMEOUT)
    try:
        queued = [p.send("one", b"b" * 90), p.send("one", b"x", key=b"k"), p.send("one", b"y" * 6)]
        start = time.monotonic()
        with pytest.raises(StromTimeoutError):
            p.send("one", b"c" * 3)  # 1 + 98 + 3 > 100
        with pytest.raises(StromTimeoutError):
            p.send("one", b"c", key=b"kk")
        assert time.monotonic() - start >= 0.19
    finally:
        release.set()
    assert [f.get(timeout=TIMEOUT).offset for f in queued] == [1, 2, 3]
    assert p.send("one", b"d").get(timeout=TIMEOUT).offset == 4


def test_metrics_count_a_record_before_its_future_completes(log, producers):
    # So that a flush() (or get()) that returned sees every record it waited for counted.
    p = producers(log, acks=1)
    seen = []
    futures = []
    for i in range(200):
        fut = p.send("t", b"%d" % i, partition=0)
        fut.add_callback(lambda md: seen.append(
            (md.offset, p.metrics()["producer-metrics"]["record-send-total"])))
        futures.append(fut)
    p.flush(timeout=TIMEOUT)
    assert len(seen) == 200
    assert all(total > offset for offset, total in seen)
    assert p.metrics()["producer-metrics"]["record-send-total"] == 200
