"""Producer benchmark: ``Producer.send()`` in a loop from one thread.

Plain script (STYLE.md habit 14): prints a fixed-width table with the median
records/s of each case over the rounds, and its ratio to a floor measured in
the same run.

    python benchmarks/producer_send.py            # 1,000,000 records a round, 5 rounds
    python benchmarks/producer_send.py --quick    # seconds-long smoke run (CI)

Each case sends ``n`` records of a 100-byte value (and a 16-byte key when
keyed) to a topic of 3 partitions, one ``send()`` call per record, then calls
``flush()``; the clock stops when ``flush()`` returns, so every record is
written (and fsync'd for ``acks="all"``).  "kept" keeps the future of every
record in a list, as an application that looks at them later does; "dropped"
lets each future go at once.  Each round opens a fresh log (a new temporary
directory, or ``:memory:``) and a fresh producer.  A kept future is an object
the cyclic garbage collector walks in each of its full passes until the
list is dropped: with the collector's default thresholds that is about a
third of a kept case's time (the same loop with the collector off runs
about 1.6 times as fast).

The floor is the least a Python loop can do per record with the same bytes:
``f.write(key); f.write(value)`` into a buffered file, then ``flush()``.

``bench_send()`` is importable: it measures one case once and returns
records/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import strom

TOPIC = "bench"
PARTITIONS = 3
KEY_BYTES = 16
VALUE_BYTES = 100
DISTINCT = 100_000  # distinct keys and values; records cycle through them

_records_cache: dict[int, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}


def make_records(n: int, seed: int = 7) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """``n`` 16-byte keys and ``n`` 100-byte values (cycling through ``DISTINCT`` of each).

    Tuples, not lists: the cyclic collector stops tracking a tuple of bytes after its first
    pass, so the input does not add to the collections that kept futures cause.
    """
    cached = _records_cache.get(n)
    if cached is not None:
        return cached
    rnd = random.Random(seed)
    distinct = min(n, DISTINCT)
    pool_k = [b"user-%011d" % rnd.randrange(10**11) for _ in range(distinct)]
    pool_v = [rnd.randbytes(VALUE_BYTES) for _ in range(distinct)]
    assert all(len(k) == KEY_BYTES for k in pool_k)
    keys = tuple(pool_k[i % distinct] for i in range(n))
    values = tuple(pool_v[i % distinct] for i in range(n))
    _records_cache.clear()
    _records_cache[n] = (keys, values)
    return keys, values


def bench_send(log_factory: Callable[[], strom.Log], n: int, acks: int | str, keyed: bool,
               keep_futures: bool) -> float:
    """Records/s of ``n`` ``send()`` calls plus the closing ``flush()``, from one thread.

    ``log_factory()`` returns an open log; the topic is created in it if
    missing, and the log is closed before returning.  ``acks`` is the
    producer's option (1 or "all"); ``keyed`` sends a 16-byte key with every
    100-byte value; ``keep_futures`` keeps every future in a list (else each
    is dropped at once).  Raises RuntimeError if not every record was written.
    """
    keys, values = make_records(n)
    log = log_factory()
    try:
        if TOPIC not in log.topics():
            log.create_topic(TOPIC, partitions=PARTITIONS)
        producer = strom.Producer(log, acks=acks)
        try:
            producer.partitions_for(TOPIC)  # the topic lookup, once, before the clock starts
            send = producer.send
            topic = TOPIC
            futures: list[strom.FutureRecordMetadata] = []
            keep = futures.append
            if keyed and keep_futures:
                t = time.perf_counter()
                for k, v in zip(keys, values):
                    keep(send(topic, v, key=k))
                producer.flush()
                dt = time.perf_counter() - t
            elif keyed:
                t = time.perf_counter()
                for k, v in zip(keys, values):
                    send(topic, v, key=k)
                producer.flush()
                dt = time.perf_counter() - t
            elif keep_futures:
                t = time.perf_counter()
                for v in values:
                    keep(send(topic, v))
                producer.flush()
                dt = time.perf_counter() - t
            else:
                t = time.perf_counter()
                for v in values:
                    send(topic, v)
                producer.flush()
                dt = time.perf_counter() - t
            written = producer.metrics()["producer-metrics"]["record-send-total"]
            if written != n or (futures and futures[-1].get(0).offset < 0):
                raise RuntimeError(f"{written} of {n} records written")
            del futures
        finally:
            producer.close()
        ends = sum(log.partition(TOPIC, p).log_end_offset for p in range(PARTITIONS))
        if ends != n:
            raise RuntimeError(f"the log holds {ends} records, expected {n}")
    finally:
        log.close()
    return n / dt


def floor_write(path: str, n: int) -> float:
    """Records/s of the bare loop: ``f.write(key); f.write(value)`` per record, then flush."""
    keys, values = make_records(n)
    with open(path, "wb") as f:
        w = f.write
        t = time.perf_counter()
        for k, v in zip(keys, values):
            w(k)
            w(v)
        f.flush()
        dt = time.perf_counter() - t
    os.unlink(path)
    return n / dt


CASES = [  # (name, acks, keyed, keep_futures)
    ("acks=1 keyless dropped", 1, False, False),
    ("acks=1 keyless kept", 1, False, True),
    ("acks=1 keyed dropped", 1, True, False),
    ("acks=1 keyed kept", 1, True, True),
    ('acks="all" keyless dropped', "all", False, False),
    ('acks="all" keyless kept', "all", False, True),
    ('acks="all" keyed dropped', "all", True, False),
    ('acks="all" keyed kept', "all", True, True),
]


def run(n: int, rounds: int, backends: list[str], base: str) -> tuple[dict, list[float]]:
    """Median-ready samples: {(backend, case): [records/s per round]}, and the floor's."""
    make_records(n)
    gc.collect()  # the input's tuples leave the collector's sight
    samples: dict[tuple[str, str], list[float]] = {}
    floors = []
    counter = iter(range(10**9))

    def file_log() -> strom.Log:
        """A log in a new directory under ``base``."""
        return strom.open(os.path.join(base, f"log-{next(counter)}"))

    factories = {"file": file_log, "memory": lambda: strom.open(":memory:")}
    for _ in range(rounds):
        floors.append(floor_write(os.path.join(base, "floor"), n))
        for backend in backends:
            for name, acks, keyed, keep in CASES:
                rate = bench_send(factories[backend], n, acks, keyed, keep)
                samples.setdefault((backend, name), []).append(rate)
                gc.collect()
        for entry in os.listdir(base):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
    return samples, floors


def si(x: float) -> str:
    """``x`` with a k/M suffix, three significant digits."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def main() -> None:
    """Parse the options, run the cases, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="records per case and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", choices=["file", "memory", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="100,000 records, 3 rounds")
    ap.add_argument("--dir", default=None, help="where the temporary logs go (default: TMPDIR)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rounds = 100_000, 3
    backends = ["file", "memory"] if args.backend == "both" else [args.backend]
    base = tempfile.mkdtemp(prefix="strom-bench-", dir=args.dir)
    try:
        samples, floors = run(args.n, args.rounds, backends, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    floor = statistics.median(floors)
    print(f"strom {strom.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; n={args.n:,} records a round, median of {args.rounds} rounds")
    print(f"{VALUE_BYTES}-byte values, {KEY_BYTES}-byte keys when keyed, {PARTITIONS} partitions, "
          "one sending thread, flush() inside the timed region")
    print()
    width = max(len(name) for name, *_ in CASES) + 10
    print(f"{'case':<{width}} {'records/s':>10} {'min':>8} {'max':>8} {'/floor':>7}")
    print("-" * (width + 37))
    print(f"{'floor: write(k); write(v)':<{width}} {si(floor):>10} {si(min(floors)):>8} "
          f"{si(max(floors)):>8} {1:>7.2f}")
    for (backend, name), rates in samples.items():
        med = statistics.median(rates)
        print(f"{backend + ' ' + name:<{width}} {si(med):>10} {si(min(rates)):>8} "
              f"{si(max(rates)):>8} {med / floor:>7.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
