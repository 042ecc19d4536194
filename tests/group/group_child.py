"""Child processes for tests/group/test_group_processes.py.

Each mode opens its own Log on the data directory, prints ``ready`` once it
is set up, and prints ``done <json>`` last.  A failed check raises: the
traceback goes to stderr and the exit status is 1.

``python group_child.py consume DATA TOPIC GROUP JOURNAL [option=value ...]``
    a Consumer in group GROUP (earliest, no auto-commit, commit_acks=1)
    subscribed to TOPIC, with a rebalance listener; options ``instance``
    (group_instance_id), ``session_ms``, ``heartbeat_ms`` (default 10000,
    1000), ``assignor`` (default cooperative-sticky), ``work_ms`` (below).
    It prints ``ready`` once it has joined, then polls until ``stop`` (or
    end of input) on stdin, and closes.  It appends to the file JOURNAL,
    one line each:

    ``REC p offset``      a record handled (its value checked: ``"p:offset"``)
    ``COMMIT p offset``   a commit returned (offset: the next to read)
    ``ASSIGN p t``        on_partitions_assigned, t = time.monotonic()
    ``REVOKE p t``        on_partitions_revoked, after committing p
    ``LOST p t``          on_partitions_lost
    ``ERROR text``        a commit failed (in the listener, or after a poll)

    A poll's REC lines are written (and reach the page cache) before its
    commit, its COMMIT lines after it; ``work_ms`` sleeps between the two,
    so that a kill often lands on handled but uncommitted records.  Lines
    written survive a kill -9 (os.write, no buffer in the process).  The
    listener commits a partition before it is revoked (Kafka's pattern), so
    only a killed member leaves uncommitted records behind.
``python group_child.py produce DATA TOPIC TOTAL RATE``
    prints ``ready``, waits for a line on stdin, then writes TOTAL records
    round-robin over the (empty) topic's partitions at RATE records/s, value
    ``"p:offset"``, with ``send_batch``; prints ``done <json {p: count}>``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import strom
from strom import TopicPartition

#: How often the producer writes: RATE / TICKS_PER_S records a tick.
TICKS_PER_S = 100


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Journal:
    """An append-only file of event lines, written with os.write (survives kill -9)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, lines: list[str]) -> None:
        data = "".join(lines).encode()
        while data:
            data = data[os.write(self.fd, data):]


class Listener(strom.ConsumerRebalanceListener):
    """Journals assignment changes; commits what was handled before a partition goes."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.consumer: strom.Consumer | None = None
        self.handled: dict[TopicPartition, int] = {}  # next offset to commit, per partition

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        t = time.monotonic()
        self.journal.write([f"ASSIGN {tp.partition} {t:.6f}\n" for tp in sorted(assigned)])

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        assert self.consumer is not None
        lines = []
        todo = {tp: self.handled[tp] for tp in revoked if tp in self.handled}
        try:
            if todo:
                self.consumer.commit(todo)
                lines += [f"COMMIT {tp.partition} {o}\n" for tp, o in sorted(todo.items())]
        except strom.StromError as exc:
            lines.append(f"ERROR commit at revoke of {sorted(todo)}: {exc!r}\n".replace("\n", " ")
                         + "\n")
        for tp in revoked:
            self.handled.pop(tp, None)
        t = time.monotonic()
        self.journal.write(lines + [f"REVOKE {tp.partition} {t:.6f}\n" for tp in sorted(revoked)])

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        for tp in lost:
            self.handled.pop(tp, None)
        t = time.monotonic()
        self.journal.write([f"LOST {tp.partition} {t:.6f}\n" for tp in sorted(lost)])


def consume(path: str, topic: str, group: str, journal_path: str, options: dict[str, str]) -> None:
    journal = Journal(journal_path)
    work_s = int(options.get("work_ms", "0")) / 1000
    stop = threading.Event()
    with strom.open(path) as log:
        listener = Listener(journal)
        consumer = strom.Consumer(
            log, group_id=group, group_instance_id=options.get("instance"),
            auto_offset_reset="earliest", enable_auto_commit=False, commit_acks=1,
            session_timeout_ms=int(options.get("session_ms", "10000")),
            heartbeat_interval_ms=int(options.get("heartbeat_ms", "1000")),
            partition_assignment_strategy=options.get("assignor", "cooperative-sticky"))
        listener.consumer = consumer
        consumer.subscribe([topic], listener=listener)

        def read_stdin() -> None:
            sys.stdin.readline()  # "stop", or end of input
            stop.set()
            consumer.wakeup()
        threading.Thread(target=read_stdin, daemon=True).start()
        _say("ready")
        count = 0
        while not stop.is_set():
            got = consumer.poll(timeout_ms=1000)
            if not got:
                continue
            lines = []
            for tp, records in got.items():
                p = tp.partition
                for r in records:
                    if r.value != b"%d:%d" % (p, r.offset):
                        raise AssertionError(f"partition {p} offset {r.offset} holds {r.value!r}")
                    lines.append(f"REC {p} {r.offset}\n")
                count += len(records)
            journal.write(lines)
            if work_s:
                time.sleep(work_s)
            done = {tp: records[-1].offset + 1 for tp, records in got.items()}
            listener.handled.update(done)
            try:
                consumer.commit(done)
            except strom.CommitFailedError as exc:  # put out of the group: the next poll rejoins
                journal.write([f"ERROR commit after poll: {exc!r}".replace("\n", " ") + "\n"])
                continue
            journal.write([f"COMMIT {tp.partition} {o}\n" for tp, o in sorted(done.items())])
        consumer.close()
    _say(f"done {count}")


def produce(path: str, topic: str, total: int, rate: int) -> None:
    with strom.open(path) as log:
        producer = strom.Producer(log, acks=1)
        partitions = len(log.topic(topic).partitions)
        sent = [0] * partitions
        _say("ready")
        sys.stdin.readline()
        per_tick = max(1, rate // TICKS_PER_S)
        due = time.monotonic()
        i = 0
        while i < total:
            n = min(per_tick, total - i)
            values: list[list[bytes]] = [[] for _ in range(partitions)]
            for j in range(i, i + n):
                p = j % partitions
                values[p].append(b"%d:%d" % (p, sent[p]))
                sent[p] += 1
            for p, vs in enumerate(values):
                if vs:
                    producer.send_batch(topic, vs, partition=p)
            i += n
            due += 1 / TICKS_PER_S
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
        producer.close()
    _say("done " + json.dumps(dict(enumerate(sent))))


def main(argv: list[str]) -> None:
    mode, args = argv[1], argv[2:]
    if mode == "consume":
        options = dict(a.split("=", 1) for a in args[4:])
        consume(args[0], args[1], args[2], args[3], options)
    elif mode == "produce":
        produce(args[0], args[1], int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
