"""Child processes for tests/client/test_consumer_processes.py.

Each mode opens its own Log on the data directory, prints ``ready`` once it
is set up, and prints its results as ``done <json>`` (one line).  A failed
check raises: the traceback goes to stderr and the exit status is 1.

``python consumer_child.py produce DATA TOPIC TOTAL SEED``
    waits for a line on stdin, then sends TOTAL records (values ``"0"``,
    ``"1"``, ...) with a Producer: keyed records through ``send()`` and
    keyless runs through ``send_batch()`` to one partition, in small chunks,
    flushing after each; prints ``done <count>``.
``python consumer_child.py tail DATA TOPIC TOTAL``
    subscribes a consumer (group ``tail``, earliest) to TOPIC, prints
    ``ready``, then iterates until it has seen TOTAL records; prints ``done``
    with ``{partition: [[offset, value], ...]}`` in the order handed out.
``python consumer_child.py wait DATA TOPIC ROUNDS``
    assigns partition 0 at its end and, ROUNDS times, prints
    ``polling <round>``, blocks in ``poll(timeout_ms=30000)`` and prints a
    json line: the seconds the poll took, its wall-clock start (ms) and the
    offsets and timestamps of the records it returned.
``python consumer_child.py commit DATA TOPIC GROUP EVERY``
    consumes TOPIC in group GROUP without auto-commit, a few batches of a
    partition at a time (so partitions interleave), commits after every
    EVERY records and then prints ``committed <json {partition: offset}>``;
    when nothing is left it prints ``idle`` and waits on stdin.  The test
    kills it with SIGKILL somewhere in there.
"""

from __future__ import annotations

import json
import random
import sys
import time

import strom

#: A child that has not finished its work by then fails.
CHILD_TIMEOUT_S = 60.0
#: The longest a blocked poll waits in ``wait`` mode (the test expects far less).
WAIT_POLL_MS = 30_000


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def produce(path: str, topic: str, total: int, seed: int) -> None:
    rng = random.Random(seed)
    with strom.open(path) as log:
        producer = strom.Producer(log, acks=1, linger_ms=0)
        partitions = len(log.topic(topic).partitions)
        _say("ready")
        sys.stdin.readline()
        i = 0
        while i < total:
            n = min(total - i, rng.randint(1, 60))
            values = [str(j).encode() for j in range(i, i + n)]
            if rng.random() < 0.5:
                futures = [producer.send(topic, v, key=b"key-%d" % rng.randrange(1000))
                           for v in values]
                producer.flush()
                for f in futures:
                    f.get(timeout=CHILD_TIMEOUT_S)
            else:
                producer.send_batch(topic, values, partition=rng.randrange(partitions))
            i += n
            time.sleep(rng.random() * 0.002)  # pacing: let the consumer catch up now and then
        producer.close()
    _say(f"done {total}")


def tail(path: str, topic: str, total: int) -> None:
    with strom.open(path) as log:
        consumer = strom.Consumer(log, topic, group_id="tail", auto_offset_reset="earliest",
                                  consumer_timeout_ms=CHILD_TIMEOUT_S * 1000)
        for tp in consumer.assignment():
            consumer.position(tp)
        _say("ready")
        seen: dict[int, list[list]] = {}
        for count, record in enumerate(consumer, 1):
            seen.setdefault(record.partition, []).append([record.offset, record.value.decode()])
            if count == total:
                break
        # Nothing more may come: every record was handed out once.
        extra = consumer.poll(timeout_ms=0)
        assert extra == {}, f"records beyond the {total} produced: {extra}"
        consumer.close()
    _say("done " + json.dumps(seen))


def wait(path: str, topic: str, rounds: int) -> None:
    with strom.open(path) as log:
        consumer = strom.Consumer(log, auto_offset_reset="latest")
        tp = strom.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_end(tp)
        consumer.position(tp)
        _say("ready")
        for i in range(rounds):
            _say(f"polling {i}")
            started_ms = time.time_ns() // 1_000_000
            t0 = time.monotonic()
            got = consumer.poll(timeout_ms=WAIT_POLL_MS)
            elapsed = time.monotonic() - t0
            records = got.get(tp, [])
            _say(json.dumps({"elapsed": elapsed, "started_ms": started_ms,
                             "offsets": [r.offset for r in records],
                             "timestamps": [r.timestamp for r in records]}))
        consumer.close()
    _say("done")


def commit(path: str, topic: str, group: str, every: int) -> None:
    with strom.open(path) as log:
        consumer = strom.Consumer(log, topic, group_id=group, auto_offset_reset="earliest",
                                  enable_auto_commit=False, consumer_timeout_ms=1000,
                                  max_partition_fetch_bytes=1024)
        _say("ready")
        for count, _record in enumerate(consumer, 1):
            if count % every == 0:
                consumer.commit()
                positions = {tp.partition: consumer.position(tp) for tp in consumer.assignment()}
                _say("committed " + json.dumps(positions))
        _say("idle")
        sys.stdin.readline()


def main(argv: list[str]) -> None:
    mode, args = argv[1], argv[2:]
    if mode == "produce":
        produce(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "tail":
        tail(args[0], args[1], int(args[2]))
    elif mode == "wait":
        wait(args[0], args[1], int(args[2]))
    elif mode == "commit":
        commit(args[0], args[1], args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
