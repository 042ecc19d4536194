"""Several processes on one log: concurrent writers, tailing readers, topics seen across processes.

Every process here is a real one (multiprocess_child.py run with
``sys.executable``), each with its own Log object; they meet only through the
files, the partition's flock and its hint, as separate programs would.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import childproc  # tests/childproc.py (tests/conftest.py puts that folder on sys.path)
import pytest

import strom

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "multiprocess_child.py"
CRASH_CHILD_SCRIPT = HERE / "crash_child.py"
#: A child that is not ready or done within this long is hung: fail.
CHILD_TIMEOUT_S = 120.0
#: Small segments, so both writers roll often, each under the other's feet.
TOPIC_CONFIG = {"segment.bytes": 16 * 1024, "index.interval.bytes": 1024, "retention.ms": -1}


child = childproc.load_module(CHILD_SCRIPT, "strom_tests_multiprocess_child")




children = childproc.children_fixture(CHILD_SCRIPT)
Child = childproc.Child


def read_all(p: strom.Partition) -> list[tuple]:
    """Every record from the log start, with its batch's base offset appended."""
    out = []
    offset = p.log_start_offset
    while offset < p.log_end_offset:
        batches = p.read(offset)
        assert batches, f"read({offset}) returned nothing below the log end {p.log_end_offset}"
        for b in batches:
            for rec in b.records(offset):
                assert rec[0] == offset, f"offsets not dense: expected {offset}, read {rec[0]}"
                out.append((*rec, b.base_offset))
                offset += 1
    assert p.read(offset) == []
    return out


def test_two_writers_append_to_one_partition(tmp_path: Path, children) -> None:
    appends = 2000
    seed = random.randrange(2**32)
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("mp", config=TOPIC_CONFIG)
    writers = [children("writer", path, "mp", "0", str(appends), "1", str(seed)),
               children("writer", path, "mp", "1", str(appends), "all", str(seed))]
    for w in writers:
        assert w.line() == "ready"
    for w in writers:
        w.send("go")
    bases = [json.loads(w.finish()) for w in writers]

    with strom.open(path) as log:
        p = log.partition("mp", 0)
        assert p.last_recovery.bytes_truncated == 0
        records = read_all(p)
        total = sum(len(child.batch_values(seed, w, i)) for w in (0, 1) for i in range(appends))
        assert p.log_start_offset == 0 and p.log_end_offset == total == len(records)
        assert p.verify() == []
        assert len(p.segments) > 10  # both writers rolled segments
        owner = [None] * total
        for w in (0, 1):
            assert bases[w] == sorted(bases[w]), f"writer {w}'s appends went backwards"
            for i, base in enumerate(bases[w]):
                values = child.batch_values(seed, w, i)
                got = records[base:base + len(values)]
                assert [r[3] for r in got] == values, f"writer {w}'s append {i} at offset {base}"
                assert {r[5] for r in got} == {base}, f"writer {w}'s append {i} is not one batch"
                for r in got:
                    assert owner[r[0]] is None, f"offset {r[0]} written by two appends"
                    owner[r[0]] = w
        assert None not in owner
        switches = sum(1 for a, b in zip(owner, owner[1:]) if a != b)
        # The writers really ran at once: their batches interleave.
        assert switches > 2, f"writers did not overlap (owner changed {switches} times)"
        # And this process appends after both, at the end.
        assert p.append([b"after"]) == total


def test_readers_tail_a_writer(tmp_path: Path, children) -> None:
    appends = 3000
    seed = random.randrange(2**32)
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("tail", config=TOPIC_CONFIG)
    readers = [children("reader", path, "tail", str(seed), str(appends), style)
               for style in ("read", "refresh")]
    writer = children("writer", path, "tail", "0", str(appends), "1", str(seed))
    for c in (*readers, writer):
        assert c.line() == "ready"
    for c in (*readers, writer):
        c.send("go")
    bases = json.loads(writer.finish())
    total = sum(len(child.batch_values(seed, 0, i)) for i in range(appends))
    assert bases[0] == 0 and len(bases) == appends
    for r in readers:
        summary = json.loads(r.finish())
        print(f"\nreader {r.proc.args[-1]}: {summary}")
        assert summary["records"] == total, summary
    with strom.open(path) as log:
        p = log.partition("tail", 0)
        assert p.log_end_offset == total and p.verify() == []


def test_reader_tails_writers_killed_mid_write(tmp_path: Path, children) -> None:
    """A reader never sees a torn batch of a writer that died in the middle of writing it."""
    rounds = 6
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    path = str(tmp_path / "data")
    crash_config = {"segment.bytes": 64 * 1024, "retention.ms": -1, "index.interval.bytes": 1024}
    with strom.open(path) as log:
        log.create_topic("torn", config=crash_config)
    reader = children("crashreader", path, "torn", str(seed))
    assert reader.line() == "ready"
    truncated = 0
    for round_ in range(rounds):
        # Two writers whose appends go to disk in pieces; each killed at a random moment.
        writers = [children(path, "torn", str(w), str(round_), str(seed), "split",
                            script=CRASH_CHILD_SCRIPT) for w in (0, 1)]
        for w in writers:
            assert w.line().startswith("ready")
        for w in writers:
            time.sleep(rng.uniform(0.0, 0.1))
            w.proc.send_signal(signal.SIGKILL)
            w.proc.wait()
        time.sleep(0.01)  # let the reader meet the torn tail, if the last kill left one
        with strom.open(path) as log:  # recovery cuts the torn tail
            p = log.partition("torn", 0)
            truncated += p.last_recovery.bytes_truncated
            end = p.log_end_offset
    reader.send(f"stop {end}")
    summary = json.loads(reader.finish())
    print(f"\ncrash reader: {summary}, end {end}, {truncated} torn bytes cut at reopen")
    assert summary["records"] == end


def test_topics_are_seen_across_processes(tmp_path: Path, children) -> None:
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        other = children("topics", path)
        assert other.line() == "ready"
        assert log.topics() == {} and other.ask("topics") == {}

        # Created in the other process: seen here, data included.
        assert other.ask("create from-child 3") == "ok"
        assert {name: info.partitions for name, info in log.topics().items()} == {"from-child": 3}
        assert [r[3] for r in log.partition("from-child", 2).read_records(0)] == [
            b"hello from from-child"]

        # Created here: seen there, by a lookup of the unknown name and in topics().
        log.create_topic("from-parent", partitions=2, config={"segment.bytes": 4096})
        log.partition("from-parent", 1).append([b"one", b"two"], acks="all")
        assert other.ask("read from-parent 1") == ["one", "two"]
        assert other.ask("topics") == {"from-child": 3, "from-parent": 2}
        assert other.ask("config from-parent segment.bytes") == 4096

        # Both appending to one partition through their own Log objects.
        log.partition("from-child", 2).append([b"parent was here"])
        assert other.ask("read from-child 2") == ["hello from from-child", "parent was here"]

        # A name taken in one process is taken in the other.
        assert other.ask("create from-parent 1") == {"error": "TopicExistsError"}
        with pytest.raises(strom.TopicExistsError):
            log.create_topic("from-child")

        # A config change here reaches the other process.
        log.alter_topic("from-parent", {"retention.ms": 123_456})
        assert other.ask("config from-parent retention.ms") == 123_456

        # Deleted there: gone here.
        assert other.ask("delete from-child") == "ok"
        assert set(log.topics()) == {"from-parent"}
        with pytest.raises(strom.UnknownTopicOrPartitionError):
            log.partition("from-child", 0)
        assert other.ask("quit") == "bye"
        assert other.proc.wait(timeout=CHILD_TIMEOUT_S) == 0
