"""Consumers in real processes: tailing a producer, waking on another process's append, kill -9.

Every child is consumer_child.py run with ``sys.executable`` on its own Log
object; processes meet only through the data directory.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import childproc  # tests/childproc.py

import strom
from strom import TopicPartition

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "consumer_child.py"
CHILD_TIMEOUT_S = childproc.CHILD_TIMEOUT_S
#: A poll blocked in another process must return this soon after an append.
WAKE_S = 2.0
#: Small segments, so that the producer rolls while the consumer reads.
TOPIC_CONFIG = {"segment.bytes": 64 * 1024, "retention.ms": -1}


children = childproc.children_fixture(CHILD_SCRIPT)


def log_contents(path: str, topic: str) -> dict[int, list[list]]:
    """[offset, value] of every record per partition, read straight from the log."""
    out = {}
    with strom.open(path) as log:
        for i, p in enumerate(log.topic(topic).partitions):
            out[i] = [[r[0], r[3].decode()] for r in p.read_records(0, max_bytes=1 << 30)]
            assert len(out[i]) == p.log_end_offset
    return out


def test_a_tailing_consumer_sees_every_record_of_a_producer_process_once(tmp_path, children):
    total = 6000
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("stream", partitions=3, config=TOPIC_CONFIG)
    consumer = children("tail", path, "stream", str(total))
    assert consumer.line() == "ready"  # subscribed and waiting before anything is produced
    producer = children("produce", path, "stream", str(total), str(random.randrange(2**32)))
    assert producer.line() == "ready"
    producer.send("go")
    assert producer.finish() == str(total)
    seen = {int(p): records for p, records in json.loads(consumer.finish()).items()}

    written = log_contents(path, "stream")
    assert sorted(int(v) for records in written.values() for _o, v in records) == list(range(total))
    assert all(written.values()), "the producer left a partition empty"
    # Per partition: every record, in offset order, each once.
    assert {p: records for p, records in written.items() if records} == seen


def test_a_poll_blocked_in_one_process_wakes_on_an_append_by_another(tmp_path, children):
    rounds = 3
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("wake")
        log.partition("wake", 0).append([b"before"], acks=1)
        waiter = children("wait", path, "wake", str(rounds))
        assert waiter.line() == "ready"
        for i in range(rounds):
            assert waiter.line() == f"polling {i}"
            waiter.wait_until_blocked()
            offset = log.partition("wake", 0).append([b"wake up %d" % i], acks=1)
            appended = time.monotonic()
            report = json.loads(waiter.line())
            answered = time.monotonic()
            assert report["offsets"] == [offset], report
            assert report["timestamps"][0] >= report["started_ms"], report  # appended during the poll
            assert report["elapsed"] < 30 - 5, report  # far from the 30 s timeout
            assert answered - appended < WAKE_S, (answered - appended, report)
        assert waiter.finish() == ""


def test_a_consumer_killed_after_committing_resumes_from_the_commit(tmp_path, children):
    per_partition = 4000
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("work", partitions=3, config=TOPIC_CONFIG)
        for p in range(3):
            part = log.partition("work", p)
            for start in range(0, per_partition, 25):
                part.append([b"%d-%d" % (p, i) for i in range(start, start + 25)], acks=1)
    victim = children("commit", path, "work", "grp", "50")
    assert victim.line() == "ready"
    printed: list[dict[int, int]] = []
    while len(printed) < 5:
        line = victim.line()
        assert line.startswith("committed "), line
        printed.append({int(p): o for p, o in json.loads(line[len("committed "):]).items()})
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=CHILD_TIMEOUT_S)
    assert victim.proc.returncode == -signal.SIGKILL

    with strom.open(path) as log:
        c = strom.Consumer(log, "work", group_id="grp", auto_offset_reset="earliest",
                           enable_auto_commit=False)
        tps = [TopicPartition("work", p) for p in range(3)]
        committed = {tp.partition: c.committed(tp) for tp in tps}
        last = printed[-1]
        for p in range(3):
            # Every commit that returned in the dead process is there (or a later one).
            assert committed[p] is not None and committed[p] >= last[p], (committed, last)
        assert sum(committed.values()) % 50 == 0  # a whole commit, not a part of one
        assert {tp.partition: c.position(tp) for tp in tps} == committed
        seen: dict[int, list[int]] = {p: [] for p in range(3)}
        while True:
            got = c.poll(timeout_ms=0)
            if not got:
                break
            for tp, records in got.items():
                seen[tp.partition] += [r.offset for r in records]
                assert [r.value for r in records] == [
                    b"%d-%d" % (tp.partition, r.offset) for r in records]
        for p in range(3):
            # Nothing before the commit again, nothing after it lost.
            assert seen[p] == list(range(committed[p], per_partition)), p
        c.close()
