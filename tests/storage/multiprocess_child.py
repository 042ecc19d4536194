"""Child processes for tests/storage/test_multiprocess.py.

``python multiprocess_child.py writer DATA TOPIC WRITER APPENDS ACKS SEED``
    prints ``ready``, waits for a line on stdin, appends the batches of
    :func:`batch_values`, and prints ``done <json list of base offsets>``.
``python multiprocess_child.py reader DATA TOPIC SEED APPENDS STYLE``
    prints ``ready``, waits for a line on stdin, then tails the partition
    until it has read every record the writer ``0`` will append, checking each
    one; prints ``done <json summary>``.  STYLE ``read`` polls ``read()``;
    STYLE ``refresh`` calls ``refresh()`` and then reads up to the
    ``log_end_offset`` it reported, which must all be readable at once.
``python multiprocess_child.py crashreader DATA TOPIC SEED``
    tails a partition that crash_child.py writers append to and that are
    killed at random moments: every batch it reads must be one whole append
    of one writer, equal to what crash_child.batch_for says, and each
    writer's appends must come in order without a gap; it stops at the
    offset given by a ``stop OFFSET`` line on stdin and prints ``done <json>``.
``python multiprocess_child.py topics DATA``
    prints ``ready`` and answers commands read from stdin, one JSON line each.

A failed check raises: the traceback goes to stderr and the exit status is 1.
"""

from __future__ import annotations

import json
import random
import selectors
import sys
import time

import strom

#: A reader gives up (and fails) when it has not seen every record by then.
READER_TIMEOUT_S = 60.0
#: Sleep between polls that found nothing new.
POLL_S = 0.0005


def batch_values(seed: int, writer: int, index: int) -> list[bytes]:
    """The values of writer ``writer``'s ``index``-th append: 1..10 distinct records."""
    rng = random.Random(f"{seed}/{writer}/{index}")
    n = rng.randint(1, 10)
    return [b"%d:%d:%d:" % (writer, index, j) + rng.randbytes(rng.randint(0, 60)) for j in range(n)]


def batch_compression(index: int) -> str | None:
    return "zstd" if index % 3 == 0 else None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def writer(path: str, topic: str, writer_id: int, appends: int, acks: str, seed: int) -> None:
    acks_value: int | str = int(acks) if acks.lstrip("-").isdigit() else acks
    with strom.open(path) as log:
        p = log.partition(topic, 0)
        _say("ready")
        sys.stdin.readline()
        bases = []
        for i in range(appends):
            bases.append(p.append(batch_values(seed, writer_id, i), acks=acks_value,
                                  compression=batch_compression(i)))
    _say("done " + json.dumps(bases))


def reader(path: str, topic: str, seed: int, appends: int, style: str) -> None:
    expected = [v for i in range(appends) for v in batch_values(seed, 0, i)]
    total = len(expected)
    with strom.open(path) as log:
        p = log.partition(topic, 0)
        _say("ready")
        sys.stdin.readline()
        deadline = time.monotonic() + READER_TIMEOUT_S
        offset = batches = polls = empty = 0
        last_end = 0
        while offset < total:
            if time.monotonic() > deadline:
                raise AssertionError(f"reader saw {offset} of {total} records in {READER_TIMEOUT_S} s")
            polls += 1
            if style == "read":
                got = p.read(offset)
                limit = None
            else:
                p.refresh()
                limit = p.log_end_offset
                assert limit >= last_end, f"log_end_offset went back from {last_end} to {limit}"
                last_end = limit
                assert limit <= total, f"log_end_offset {limit} is past every record written ({total})"
                got = p.read(offset) if offset < limit else []
                assert got or offset == limit, f"read({offset}) returned nothing below log end {limit}"
            if not got:
                empty += 1
                time.sleep(POLL_S)
                continue
            for k, b in enumerate(got):
                if k == 0:
                    assert b.base_offset <= offset <= b.last_offset, (offset, b)
                else:
                    assert b.base_offset == offset, f"batches not contiguous: {b} after offset {offset}"
                batches += 1
                for rec in b.records(offset):
                    assert rec[0] == offset, f"offsets not dense: expected {offset}, read {rec[0]}"
                    assert offset < total, f"read offset {offset}, past every record written ({total})"
                    assert rec[3] == expected[offset], (
                        f"offset {offset} holds {rec[3]!r}, expected {expected[offset]!r}")
                    offset += 1
            # With refresh(), every offset below the reported end is readable now.
            while limit is not None and offset < limit:
                more = p.read(offset)
                assert more, f"read({offset}) returned nothing below log end {limit}"
                for b in more:
                    batches += 1
                    for rec in b.records(offset):
                        assert rec[0] == offset and rec[3] == expected[offset], (offset, rec)
                        offset += 1
        assert p.read(total) == [], "records past the last one written"
    _say("done " + json.dumps({"records": offset, "batches": batches, "polls": polls,
                               "empty_polls": empty}))


def crashreader(path: str, topic: str, seed: int) -> None:
    import crash_child  # beside this file, so on sys.path[0]

    head = crash_child.VALUE_HEAD
    next_index: dict[tuple[int, int], int] = {}  # (writer, round) -> next batch index
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    stop_at = None
    offset = batches = polls = empty = last_end = 0
    with strom.open(path) as log:
        p = log.partition(topic, 0)
        _say("ready")
        deadline = None
        while stop_at is None or offset < stop_at:
            if stop_at is None and sel.select(0):
                stop_at = int(sys.stdin.readline().split()[1])
                deadline = time.monotonic() + READER_TIMEOUT_S
            if deadline is not None and time.monotonic() > deadline:
                raise AssertionError(f"reader reached {offset} of {stop_at} in {READER_TIMEOUT_S} s")
            polls += 1
            p.refresh()
            end = p.log_end_offset
            assert end >= last_end, f"log_end_offset went back from {last_end} to {end}"
            last_end = end
            got = p.read(offset)
            if not got:
                empty += 1
                time.sleep(POLL_S)
                continue
            for b in got:
                assert b.base_offset == offset, f"batch {b} does not start at {offset}"
                recs = b.records()
                writer, round_, index, j = head.unpack_from(recs[0][3])
                want = next_index.get((writer, round_), 0)
                assert index == want, (
                    f"offset {offset}: writer {writer}'s round {round_} batch {index}, expected {want}")
                next_index[writer, round_] = index + 1
                expected = crash_child.batch_for(seed, writer, round_, index).records()
                assert len(recs) == len(expected), f"offset {offset}: part of an append"
                for k, rec in enumerate(recs):
                    assert rec == (offset + k, *expected[k]), f"offset {offset + k}: {rec!r}"
                offset += len(recs)
                batches += 1
        assert p.read(stop_at) == [] and offset == stop_at, (offset, stop_at)
    _say("done " + json.dumps({"records": offset, "batches": batches, "polls": polls,
                               "empty_polls": empty, "writer_rounds": len(next_index)}))


def topics(path: str) -> None:
    """Answer commands on stdin with one Log object for the life of the process."""
    with strom.open(path) as log:
        _say("ready")
        for line in sys.stdin:
            cmd, *args = line.split()
            try:
                if cmd == "create":
                    name, partitions = args[0], int(args[1])
                    log.create_topic(name, partitions=partitions)
                    log.partition(name, partitions - 1).append([b"hello from " + name.encode()],
                                                               acks="all")
                    out: object = "ok"
                elif cmd == "topics":
                    out = {name: info.partitions for name, info in log.topics().items()}
                elif cmd == "read":
                    # As a consumer reads: until a read at the end finds nothing
                    # (a read at the known end looks for other processes' appends).
                    p = log.partition(args[0], int(args[1]))
                    values, offset = [], p.log_start_offset
                    while recs := p.read_records(offset):
                        values += [r[3].decode() for r in recs]
                        offset = recs[-1][0] + 1
                    out = values
                elif cmd == "config":
                    log.topics()  # see changes to topic.json
                    out = log.describe_topic(args[0]).config[args[1]]
                elif cmd == "delete":
                    log.delete_topic(args[0])
                    out = "ok"
                elif cmd == "quit":
                    _say(json.dumps("bye"))
                    return
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except strom.StromError as exc:
                out = {"error": type(exc).__name__}
            _say(json.dumps(out))


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "writer":
        writer(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5], int(argv[6]))
    elif kind == "reader":
        reader(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5])
    elif kind == "crashreader":
        crashreader(argv[1], argv[2], int(argv[3]))
    elif kind == "topics":
        topics(argv[1])
    else:
        raise SystemExit(f"unknown child kind {kind!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
