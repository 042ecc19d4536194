"""Consumers in real processes: tailing a producer, waking on another process's append, kill -9.

Every child is consumer_child.py run with ``sys.executable`` on its own Log
object; processes meet only through the data directory.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import strom
from strom import TopicPartition

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "consumer_child.py"
SRC = HERE.parents[1] / "src"
#: A child that prints nothing for this long is hung: fail.
CHILD_TIMEOUT_S = 60.0
#: A poll blocked in another process must return this soon after an append.
WAKE_S = 2.0
#: Small segments, so that the producer rolls while the consumer reads.
TOPIC_CONFIG = {"segment.bytes": 64 * 1024, "retention.ms": -1}


def child_env() -> dict[str, str]:
    """The environment of a child: this checkout's src first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH")
                                                      else []))
    return env


class Child:
    """A consumer_child.py process spoken to by lines on stdin and stdout."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD_SCRIPT), *args], bufsize=0,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=child_env())
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""

    def line(self, timeout: float = CHILD_TIMEOUT_S) -> str:
        """The next line the child prints (fails on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                self.fail(f"printed nothing for {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                self.fail("exited early")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> str:
        """Wait for the child's ``done`` line and its exit; returns the text after ``done``."""
        line = self.line()
        try:
            _out, err = self.proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self.proc.returncode != 0 or not line.startswith("done"):
            self.fail(f"printed {line[:200]!r}", err)
        return line[len("done "):]

    def fail(self, what: str, err: bytes | None = None) -> None:
        if err is None:
            self.proc.kill()
            _out, err = self.proc.communicate()
        pytest.fail(f"child {self.proc.args[2:]} {what} (status {self.proc.returncode}):\n"
                    + err.decode(errors="replace"))

    def all_threads_asleep(self) -> bool:
        """True when every thread of the child is blocked (state S); True where /proc is missing."""
        task_dir = f"/proc/{self.proc.pid}/task"
        try:
            tasks = os.listdir(task_dir)
        except OSError:
            return True
        for task in tasks:
            try:
                with open(f"{task_dir}/{task}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # the thread ended meanwhile
            if state != "S":
                return False
        return True

    def wait_until_blocked(self) -> None:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not self.all_threads_asleep():
            if time.monotonic() > deadline:
                self.fail("never blocked")
            time.sleep(0.001)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.selector.close()


@pytest.fixture
def children():
    started: list[Child] = []

    def start(*args: str) -> Child:
        c = Child(*args)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


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
