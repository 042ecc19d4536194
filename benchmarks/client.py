"""Client benchmark: Producer and Consumer throughput, and produce-to-consume latency.

Plain script (STYLE.md habit 14): prints fixed-width tables with medians over
rounds, the bare-loop floor measured beside each figure in the same run, the
ratio to it, and the targets of DESIGN.md with PASS/MISS.

    python benchmarks/client.py            # full run, a few minutes; writes results/client-<date>.{txt,md}
    python benchmarks/client.py --quick    # seconds-long smoke run (CI); writes nothing

Every case uses 100-byte values and 16-byte keys, a topic of 3 partitions and
a file-backed log in a new temporary directory; keyed records go to each
key's partition (the default partitioner).

* send(): ``Producer.send(topic, value, key=key)`` per record from one
  thread, the future of every record kept in a list, ``flush()`` inside the
  timed region.  Measured by ``bench_send`` of benchmarks/producer_send.py,
  the one definition of that loop (which also measures keyless and
  dropped-future sends).
* batch produce: ``Producer.send_batch(topic, values, keys)``,
  RECORDS_PER_CALL records a call.
* consumer iteration: ``for record in consumer`` over the records of the
  acks=1 batch-produce log (reopened: page cache warm), counting records.
* batch consume: ``Consumer.poll_columns()`` over the same log, counting
  ``len(columns.values)``.
* floors: ``f.write(k); f.write(v)`` per record into a buffered file, and
  reading that file back in 1 MiB chunks sliced into keys and values
  (benchmarks/storage.py's floors, imported from it).
* latency: a producer sends LATENCY_RATE records/s (``linger_ms=0``), the
  send time in the first 8 bytes of the value; a consumer blocked in
  iteration takes receive time - send time.  One process: the producer in
  the main thread, the consumer in a second thread, ``time.perf_counter_ns``.
  Two processes: the producer in a child process, the consumer here,
  ``time.monotonic_ns`` (CLOCK_MONOTONIC is system-wide on Linux).  The first
  LATENCY_WARMUP records of each run are dropped.  The floor is the same
  pacing and stamping through an ``os.pipe`` (thread to thread, process to
  process), as in research/peers.md.

Expected figures, written down before the first full run (2-vCPU VM,
Python 3.11; from research/peers.md, the storage results and one probe):

* send() acks=1: a probe of 200k records ran at 0.55 M/s while another
  engineer was reworking send(): ~1.8 us/record of Python (argument checks,
  partition choice, lock, list appends, a future object) -> 0.5-0.6 M/s,
  MISS against 2 M/s.  acks="all": the probe ran at 0.25 M/s (an fdatasync
  per batch; batches stay small because the sender thread writes whatever
  is there the moment it wakes) -> 0.25-0.35 M/s, MISS against 1 M/s.
* batch produce: send_batch picks each key's partition in a Python loop
  (a partitioner call and a dict/list append, ~250 ns), splits the columns
  with list comprehensions (~40 ns), then appends (~120 ns, storage
  results) -> 2-2.5 M/s, MISS against 5 M/s.  acks="all" adds 3 fsyncs
  per call (~0.6 ms per 10,000 records, ~60 ns/record) -> ~2 M/s.
* consumer iteration: one ConsumerRecord (a 13-field tuple) per record
  built from C iterators (~150 ns), columns decoded (~30 ns), handed out by
  ``yield from`` (~20 ns), counted by the loop (~20 ns), plus cyclic GC of
  the young tuples -> 2.5-4 M/s, around the 2.5 M/s target.
* batch consume: read + verify + unpackb of the columns is ~40-50 ns a
  record (storage read 14.9 M/s touching every key and value) plus the
  per-fetch Python of poll_columns -> 8-12 M/s, around the 8 M/s target.
* floors: 4.9-5 M/s write, 5.6 M/s read (storage results).
* latency, one process: send() notifies the sender thread (~50 us to wake),
  one append of one record (~30-50 us: encode, flock, pwritev, index),
  the append signal wakes the consumer thread (~50 us), a read and a
  ConsumerRecord -> p50 100-200 us, p99 300-600 us: MISS against
  p99 < 250 us.  acks="all" about the same: readers see a batch once it is
  written, before its fsync.  Pipe floor: p50 10-20 us.
* latency, two processes: + the inotify wake of the reader's watcher thread
  and a thread hand-off -> p50 150-300 us, p99 0.5-1 ms: MISS against
  p50 < 100 us, p99 < 500 us.  Pipe floor: p50 16-41 us, p99 73-879 us
  (research/peers.md).

What was measured, and the surprises, are in benchmarks/results/.

Internal: ``--child-produce`` and ``--child-pipe`` run this file as the
producing process of the two-process latency runs; they are not meant to be
run by hand.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import storage as storage_bench  # benchmarks/storage.py: data, floors, table helpers

import strom

Table = storage_bench.Table
si = storage_bench.si

TOPIC = "bench"
PARTITIONS = 3
KEY_BYTES = storage_bench.KEY_BYTES
VALUE_BYTES = storage_bench.VALUE_BYTES
RECORD_BYTES = KEY_BYTES + VALUE_BYTES
#: Records per send_batch() call: "many records in one call", about 1.2 MB,
#: split by key over the 3 partitions (~400 KB each, one batch each).
RECORDS_PER_CALL = 10_000
#: A consumer that finds nothing for this long stops (only when records are missing).
CONSUMER_TIMEOUT_MS = 2_000

#: Latency runs: the rate of the peers' latency runs (research/peers.md), so
#: the pipe floor here is comparable with theirs.
LATENCY_RATE = 2_000
LATENCY_WARMUP = 200
STAMP = struct.Struct("<q")  # the send time, first 8 bytes of the value

TARGETS = {  # DESIGN.md, Performance
    "send 1": 2_000_000,
    "send all": 1_000_000,
    "batch 1": 5_000_000,
    "batch keyless": 5_000_000,
    "iter": 2_500_000,
    "columns": 8_000_000,
}
TARGET_P99_ONE_US = 250
TARGET_P50_TWO_US = 100
TARGET_P99_TWO_US = 500

ACKS = (1, "all")


def acks_label(acks: int | str) -> str:
    return 'acks="all"' if acks == "all" else f"acks={acks}"


# -- data ------------------------------------------------------------------------

_input: dict[int, tuple[list[bytes], list[bytes]]] = {}


def records(n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` 16-byte keys and 100-byte values (storage.py's JSON-ish records), cached."""
    if n not in _input:
        _input.clear()
        values, keys, _ = storage_bench.make_records(n)
        _input[n] = (keys, values)
    return _input[n]


class FreshLogs:
    """A factory of new file-backed logs under ``base``, and their removal."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.made: list[str] = []

    def path(self) -> str:
        p = os.path.join(self.base, f"log-{len(self.made)}")
        self.made.append(p)
        return p

    def __call__(self) -> strom.Log:
        return strom.open(self.path())

    def remove(self) -> None:
        for p in self.made:
            shutil.rmtree(p, ignore_errors=True)
        self.made.clear()


# -- throughput ------------------------------------------------------------------

def find_bench_send() -> tuple[Callable[..., float], str]:
    """producer_send.bench_send (the one definition of the send() loop), checked against this run's shape."""
    import producer_send  # benchmarks/producer_send.py, beside this file
    shape = (producer_send.PARTITIONS, producer_send.KEY_BYTES, producer_send.VALUE_BYTES)
    if shape != (PARTITIONS, KEY_BYTES, VALUE_BYTES):
        raise SystemExit(f"producer_send measures (partitions, key, value bytes) = {shape}, "
                         f"this run {(PARTITIONS, KEY_BYTES, VALUE_BYTES)}")
    return producer_send.bench_send, "bench_send of benchmarks/producer_send.py"


def batch_produce(directory: str, vbatches: list[list[bytes]], kbatches: list[list[bytes]] | None,
                  acks: int | str, n: int) -> float:
    """Records/s of send_batch() calls of RECORDS_PER_CALL records (keyed unless ``kbatches`` is None)."""
    log = strom.open(directory)
    try:
        log.create_topic(TOPIC, partitions=PARTITIONS)
        producer = strom.Producer(log, acks=acks)
        try:
            producer.partitions_for(TOPIC)
            send_batch = producer.send_batch
            topic = TOPIC
            t = time.perf_counter()
            for i, values in enumerate(vbatches):
                send_batch(topic, values, None if kbatches is None else kbatches[i])
            producer.flush()
            dt = time.perf_counter() - t
        finally:
            producer.close()
        ends = sum(log.partition(TOPIC, p).log_end_offset for p in range(PARTITIONS))
        if ends != n:
            raise SystemExit(f"send_batch: the log holds {ends} records, expected {n}")
    finally:
        log.close()
    return n / dt


def new_consumer(log: strom.Log, timeout_ms: int = CONSUMER_TIMEOUT_MS) -> strom.Consumer:
    return strom.Consumer(log, TOPIC, auto_offset_reset="earliest", enable_auto_commit=False,
                          consumer_timeout_ms=timeout_ms)


def check_positions(consumer: strom.Consumer, n: int, what: str) -> None:
    ends = sum(consumer.position(tp) for tp in consumer.assignment())
    if ends != n:
        raise SystemExit(f"{what}: positions add up to {ends} after {n} records")


def consume_iter(directory: str, n: int) -> float:
    """Records/s of ``for record in consumer`` over ``n`` records, counting them."""
    log = strom.open(directory)
    try:
        consumer = new_consumer(log)
        try:
            count = 0
            t = time.perf_counter()
            for _record in consumer:
                count += 1
                if count == n:  # stop at the last record: the idle timeout stays out of the clock
                    break
            dt = time.perf_counter() - t
            if count != n:
                raise SystemExit(f"consumer iteration: {count} of {n} records")
            check_positions(consumer, n, "consumer iteration")
        finally:
            consumer.close()
    finally:
        log.close()
    return n / dt


def consume_columns(directory: str, n: int) -> float:
    """Records/s of poll_columns() over ``n`` records, counting len(values)."""
    log = strom.open(directory)
    try:
        consumer = new_consumer(log)
        try:
            poll = consumer.poll_columns
            count = 0
            t = time.perf_counter()
            while count < n:
                out = poll(timeout_ms=CONSUMER_TIMEOUT_MS)
                if not out:
                    break
                for columns in out.values():
                    count += len(columns.values)
            dt = time.perf_counter() - t
            if count != n:
                raise SystemExit(f"poll_columns: {count} of {n} records")
            check_positions(consumer, n, "poll_columns")
        finally:
            consumer.close()
    finally:
        log.close()
    return n / dt


def run_throughput(base: str, n: int, rounds: int, bench_send: Callable[..., float]) -> dict:
    keys, values = records(n)
    vb = storage_bench.batches_of(values, RECORDS_PER_CALL)
    kb = storage_bench.batches_of(keys, RECORDS_PER_CALL)
    prepare = getattr(sys.modules.get("producer_send"), "make_records", None)
    if prepare is not None:
        prepare(n)  # its input, made now so that it is frozen below with ours
    # The harness's input stays out of the cyclic collector's walks (as in
    # storage.py); strom's objects, and the floors', are collected as usual.
    gc.collect()
    gc.freeze()
    warm = storage_bench.warm_page_cache(base, max(8 * n * RECORD_BYTES, 64 * 1024 * 1024))
    rates: dict[str, list[float]] = {}

    def note(name: str, rate: float) -> None:
        rates.setdefault(name, []).append(rate)

    logs = FreshLogs(base)
    try:
        for _ in range(rounds):
            for acks in ACKS:
                note(f"send {acks}", bench_send(logs, n, acks, True, True))
                logs.remove()
                gc.collect()
            for acks in ACKS:
                d = logs.path()
                note(f"batch {acks}", batch_produce(d, vb, kb, acks, n))
                if acks == 1:
                    note("iter", consume_iter(d, n))
                    note("columns", consume_columns(d, n))
                logs.remove()
                gc.collect()
            d = logs.path()  # keyless: no key to hash, one sticky partition per call
            note("batch keyless", batch_produce(d, vb, None, 1, n))
            logs.remove()
            gc.collect()
            path = os.path.join(base, "floor")
            note("floor write", n / storage_bench.floor_write(path, values, keys))
            note("floor read", n / storage_bench.floor_read(path, n))
            os.unlink(path)
            gc.collect()
    finally:
        logs.remove()
        gc.unfreeze()
    return {"rates": rates, "n": n, "rounds": rounds, "warm": warm,
            "empty_loop_ns": storage_bench.empty_loop_ns(values)}


# -- latency -----------------------------------------------------------------------

def pace(count: int, rate: float, send: Callable[[int], None]) -> None:
    """Call ``send(i)`` for i in range(count), ``rate`` times a second (no catching up in bursts)."""
    interval = 1e9 / rate
    now = time.perf_counter_ns
    sleep = time.sleep
    due = now()
    for i in range(count):
        due += interval
        left = due - now()
        if left > 0:
            sleep(left / 1e9)
        elif left < -interval:
            due = now()  # fell behind (a stall): restart the schedule rather than burst
        send(i)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(strom.__file__)))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def spawn(*args: str) -> subprocess.Popen:
    """This file as a child process; returns once it printed "ready" (it waits for "go")."""
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=child_env())
    line = child.stdout.readline()  # unbuffered: nothing after the line is read here
    if line.strip() != b"ready":
        child.kill()
        _, err = child.communicate()
        raise SystemExit(f"child {args[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return child


def finish(child: subprocess.Popen, what: str) -> None:
    try:
        _, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"{what}: child exited with {child.returncode}: "
                         f"{err.decode(errors='replace')[-2000:]}")


def collect(consume: Callable[[], None], count: int, rate: float, samples: list[int],
            what: str, start: Callable[[], None]) -> None:
    """Run ``consume`` in a thread, blocked before ``start()`` begins sending; wait for ``count`` samples."""
    thread = threading.Thread(target=consume, name="bench-consumer", daemon=True)
    thread.start()
    time.sleep(0.05)  # let the consumer reach its blocking wait before the first send
    start()
    thread.join(count / rate + 30)
    if thread.is_alive() or len(samples) != count:
        raise SystemExit(f"{what}: the consumer got {len(samples)} of {count} records"
                         + (" and is still waiting" if thread.is_alive() else ""))


def strom_consumer_loop(consumer: strom.Consumer, count: int, clock: Callable[[], int],
                        samples: list[int]) -> Callable[[], None]:
    def consume() -> None:
        unpack = STAMP.unpack_from
        add = samples.append
        for record in consumer:
            add(clock() - unpack(record.value)[0])
            if len(samples) == count:
                break
    return consume


def stamped_sender(send: Callable[..., object], keys: list[bytes], clock: Callable[[], int]
                   ) -> Callable[[int], None]:
    pad = bytes(VALUE_BYTES - STAMP.size)
    pack = STAMP.pack
    topic = TOPIC

    def one(i: int) -> None:
        send(topic, pack(clock()) + pad, key=keys[i])
    return one


def latency_strom_one(directory: str, acks: int | str, rate: float, count: int) -> list[int]:
    """ns from send() to the consumer thread's receipt, producer and consumer in this process."""
    keys, _ = records(count)
    samples: list[int] = []
    log = strom.open(directory)
    try:
        log.create_topic(TOPIC, partitions=PARTITIONS)
        producer = strom.Producer(log, acks=acks, linger_ms=0)
        consumer = new_consumer(log)
        try:
            producer.partitions_for(TOPIC)
            clock = time.perf_counter_ns
            one = stamped_sender(producer.send, keys, clock)
            collect(strom_consumer_loop(consumer, count, clock, samples), count, rate, samples,
                    f"latency, one process, {acks_label(acks)}", lambda: pace(count, rate, one))
        finally:
            producer.close()
            consumer.close()
    finally:
        log.close()
    return samples


def latency_strom_two(directory: str, acks: int | str, rate: float, count: int) -> list[int]:
    """ns from send() in a child process to the receipt by a consumer thread here."""
    samples: list[int] = []
    log = strom.open(directory)
    try:
        log.create_topic(TOPIC, partitions=PARTITIONS)
        consumer = new_consumer(log)
        try:
            child = spawn("--child-produce", directory, "--acks", str(acks), "--rate", str(rate),
                          "--count", str(count))
            try:
                collect(strom_consumer_loop(consumer, count, time.monotonic_ns, samples), count, rate,
                        samples, f"latency, two processes, {acks_label(acks)}",
                        lambda: child.stdin.write(b"go\n"))
            finally:
                finish(child, "latency producer")
        finally:
            consumer.close()
    finally:
        log.close()
    return samples


def child_produce(directory: str, acks: str, rate: float, count: int) -> None:
    """The producing process of latency_strom_two."""
    keys, _ = records(count)
    with strom.open(directory) as log:
        producer = strom.Producer(log, acks="all" if acks == "all" else int(acks), linger_ms=0)
        producer.partitions_for(TOPIC)
        one = stamped_sender(producer.send, keys, time.monotonic_ns)
        print("ready", flush=True)
        sys.stdin.readline()
        pace(count, rate, one)
        producer.close()


def pipe_reader(fd: int, count: int, clock: Callable[[], int], samples: list[int]) -> Callable[[], None]:
    def consume() -> None:
        read = os.read
        unpack = STAMP.unpack
        add = samples.append
        for _ in range(count):
            data = read(fd, STAMP.size)  # writes of 8 bytes are atomic, so reads get whole stamps
            if len(data) != STAMP.size:
                return
            add(clock() - unpack(data)[0])
    return consume


def latency_pipe_one(rate: float, count: int) -> list[int]:
    """The floor: stamps through an os.pipe from this thread to a reader thread."""
    samples: list[int] = []
    r, w = os.pipe()
    try:
        clock = time.perf_counter_ns
        pack = STAMP.pack

        def one(_i: int) -> None:
            os.write(w, pack(clock()))
        collect(pipe_reader(r, count, clock, samples), count, rate, samples,
                "latency floor, one process", lambda: pace(count, rate, one))
    finally:
        os.close(r)
        os.close(w)
    return samples


def latency_pipe_two(rate: float, count: int) -> list[int]:
    """The floor: stamps through a pipe from a child process to a reader thread here."""
    samples: list[int] = []
    child = spawn("--child-pipe", "--rate", str(rate), "--count", str(count))
    try:
        collect(pipe_reader(child.stdout.fileno(), count, time.monotonic_ns, samples), count, rate,
                samples, "latency floor, two processes", lambda: child.stdin.write(b"go\n"))
    finally:
        finish(child, "latency pipe writer")
    return samples


def child_pipe(rate: float, count: int) -> None:
    """The writing process of latency_pipe_two: stamps to stdout."""
    clock = time.monotonic_ns
    pack = STAMP.pack
    print("ready", flush=True)
    sys.stdin.readline()
    fd = sys.stdout.fileno()

    def one(_i: int) -> None:
        os.write(fd, pack(clock()))
    pace(count, rate, one)


LATENCY_CASES = (  # name, processes, acks (None: the pipe floor)
    ("one process, acks=1", 1, 1),
    ('one process, acks="all"', 1, "all"),
    ("floor: os.pipe, thread to thread", 1, None),
    ("two processes, acks=1", 2, 1),
    ('two processes, acks="all"', 2, "all"),
    ("floor: os.pipe, process to process", 2, None),
)


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile (the ceil(q * n)-th smallest), in microseconds."""
    rank = -(-round(q * len(sorted_ns) * 1000) // 1000)  # ceil without float fuzz: 0.99 * 8000 is 7920.000...1
    return sorted_ns[max(0, min(len(sorted_ns), rank) - 1)] / 1000


def run_latency(base: str, rounds: int, seconds: float, warmup: int) -> dict:
    count = warmup + int(LATENCY_RATE * seconds)
    records(count)
    stats: dict[str, list[dict[str, float]]] = {}
    for r in range(rounds):
        for name, procs, acks in LATENCY_CASES:
            d = os.path.join(base, f"lat-{r}-{procs}-{acks}")
            if acks is None:
                ns = latency_pipe_one(LATENCY_RATE, count) if procs == 1 else latency_pipe_two(
                    LATENCY_RATE, count)
            elif procs == 1:
                ns = latency_strom_one(d, acks, LATENCY_RATE, count)
            else:
                ns = latency_strom_two(d, acks, LATENCY_RATE, count)
            shutil.rmtree(d, ignore_errors=True)
            kept = sorted(ns[warmup:])
            stats.setdefault(name, []).append({
                "p50": percentile(kept, 0.50), "p99": percentile(kept, 0.99),
                "p999": percentile(kept, 0.999), "max": kept[-1] / 1000, "n": len(kept)})
            gc.collect()
    return {"stats": stats, "count": count - warmup, "rounds": rounds, "warmup": warmup}


# -- output ----------------------------------------------------------------------

def us(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def throughput_table(res: dict, send_impl: str) -> tuple[Table, list[str]]:
    n, rates = res["n"], res["rates"]

    def med(name: str) -> float:
        return statistics.median(rates[name])

    def span(name: str) -> str:
        rs = sorted(rates[name])
        return f"{si(rs[0])}-{si(rs[-1])}"

    t = Table(f"Table 1. throughput, {n:,} records (16 B key + 100 B value), {PARTITIONS} partitions, "
              f"median of {res['rounds']} round(s)",
              [("operation", "<"), ("rec/s", ">"), ("ns/rec", ">"), ("min-max rec/s", ">"),
               ("floor rec/s", ">"), ("strom/floor", ">"), ("target", ">"), ("", "<")])
    w_floor, r_floor = med("floor write"), med("floor read")
    rows = [(f"send() {acks_label(a)}, future kept, flush", f"send {a}", w_floor) for a in ACKS]
    rows += [(f"send_batch() {acks_label(a)}, {RECORDS_PER_CALL:,} a call", f"batch {a}", w_floor)
             for a in ACKS]
    rows += [(f"send_batch() acks=1, keyless, {RECORDS_PER_CALL:,} a call", "batch keyless", w_floor)]
    rows += [("consumer iteration, counting", "iter", r_floor),
             ("poll_columns(), counting len(values)", "columns", r_floor)]
    for label, name, floor in rows:
        x = med(name)
        target = TARGETS.get(name)
        t.add(label, si(x), f"{1e9 / x:.0f}", span(name), si(floor), f"{x / floor:.2f}",
              "" if target is None else f">= {si(target)}",
              "" if target is None else ("PASS" if x >= target else "MISS"))
    for label, name in (("floor: write(k); write(v) per record + flush", "floor write"),
                        ("floor: 1 MiB reads, slice keys and values", "floor read")):
        x = med(name)
        t.add(label, si(x), f"{1e9 / x:.0f}", span(name), "", "", "", "")
    notes = [
        (f"send(): {send_impl}. One thread, keyed, the future of every record kept in a list; the clock "
         "stops when flush() returns (acks=\"all\": fsync'd)."),
        (f"send_batch(): keyed, each key's partition; {RECORDS_PER_CALL:,} records a call. The DESIGN.md "
         "target (>= 5M/s) is checked on acks=1, as storage.py checks append. The keyless row sends the "
         "same values without keys (one sticky partition per call)."),
        ("Consumers read the acks=1 send_batch() log, reopened (page cache warm), from the earliest offset, "
         "without a group; iteration stops at the n-th record, so the idle timeout is not timed."),
        ("Floors write and read a plain file in the same directory in the same round (benchmarks/storage.py); "
         "strom/floor above 1 means strom is faster than the bare per-record loop."),
        "The harness's input is excluded from cyclic GC (gc.freeze), as in storage.py.",
    ]
    return t, notes


def latency_table(res: dict) -> tuple[Table, list[str]]:
    stats = res["stats"]

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in stats[name])

    t = Table(f"Table 2. produce->consume latency in us, {LATENCY_RATE:,} records/s, "
              f"{res['count']:,} samples a run, median of {res['rounds']} run(s)",
              [("path", "<"), ("p50", ">"), ("p99", ">"), ("p99.9", ">"), ("max", ">"),
               ("p99 min-max", ">"), ("floor p50", ">"), ("floor p99", ">"), ("p99/floor", ">"),
               ("target", ">"), ("", "<")])
    for name, procs, acks in LATENCY_CASES:
        p50, p99, p999, mx = (med(name, k) for k in ("p50", "p99", "p999", "max"))
        p99s = sorted(s["p99"] for s in stats[name])
        span = f"{us(p99s[0])}-{us(p99s[-1])}"
        if acks is None:
            t.add(name, us(p50), us(p99), us(p999), us(mx), span, "", "", "", "", "")
            continue
        floor = next(n for n, p, a in LATENCY_CASES if p == procs and a is None)
        f50, f99 = med(floor, "p50"), med(floor, "p99")
        if procs == 1:
            target, ok = f"p99 < {TARGET_P99_ONE_US}", p99 < TARGET_P99_ONE_US
        else:
            target = f"p50 < {TARGET_P50_TWO_US}, p99 < {TARGET_P99_TWO_US}"
            ok = p50 < TARGET_P50_TWO_US and p99 < TARGET_P99_TWO_US
        t.add(name, us(p50), us(p99), us(p999), us(mx), span, us(f50), us(f99), f"{p99 / f99:.1f}",
              target, "PASS" if ok else "MISS")
    notes = [
        ("latency = receive time - send time of each record: the send time is stamped in the value just "
         "before send(); the receive time is taken as the consumer's iteration hands the record out."),
        ("One process: producer in the main thread, consumer blocked in iteration in a second thread, "
         "time.perf_counter_ns. Two processes: producer in a child process, consumer thread here, "
         "time.monotonic_ns (CLOCK_MONOTONIC, one clock for the whole system on Linux)."),
        (f"Producer: linger_ms=0, keyed, {PARTITIONS} partitions, paced at a fixed rate by sleeping until "
         f"each send is due; the first {res['warmup']} records of a run are dropped (warm-up)."),
        ("Floors: the same pacing and stamps through an os.pipe (8-byte writes, a reader blocked in "
         "os.read), as research/peers.md measured across processes."),
        ("Percentiles are nearest-rank over a run's samples; each figure is the median over runs; "
         "p99 min-max spans the runs."),
    ]
    return t, notes


def header(args: argparse.Namespace, fs_kind: str, load: tuple[float, float, float],
           warm: tuple[float, float], loop_ns: float) -> list[str]:
    return [
        "strom client benchmark" + (" (--quick: a smoke run; one round, small n, figures indicative only)"
                                    if args.quick else ""),
        *storage_bench.machine_lines(fs_kind, args.dir is not None, load),
        f"calibrate  empty `for v in values: pass` loop {loop_ns:.1f} ns/iter (peers.md: 14-16)",
        (f"warm-up    page-cache writes in 64 KiB: first pass {warm[0]:,.0f} MB/s, "
         f"second pass {warm[1]:,.0f} MB/s (a slow first pass = memory not touched since boot)"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI); writes no results")
    ap.add_argument("--records", type=int, help="records per throughput case (default 1,000,000; "
                    "50,000 with --quick)")
    ap.add_argument("--rounds", type=int, help="rounds for the medians (default 5; 1 with --quick)")
    ap.add_argument("--latency-seconds", type=float,
                    help=f"seconds of sending per latency run at {LATENCY_RATE:,}/s (default 4; 0.5 with --quick)")
    ap.add_argument("--dir", help="where the data goes (default: a new directory in the system temp)")
    ap.add_argument("--no-save", action="store_true", help="do not write results/client-<date>.{txt,md}")
    ap.add_argument("--child-produce", help=argparse.SUPPRESS)
    ap.add_argument("--child-pipe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--acks", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_produce:
        child_produce(args.child_produce, args.acks, args.rate, args.count)
        return
    if args.child_pipe:
        child_pipe(args.rate, args.count)
        return

    n = args.records or (50_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.latency_seconds or (0.5 if args.quick else 4.0)
    warmup = 50 if args.quick else LATENCY_WARMUP

    started = time.perf_counter()
    load = os.getloadavg()
    with storage_bench.scratch_dir(args.dir) as (base, fs_kind):
        bench_send, send_impl = find_bench_send()
        res1 = run_throughput(base, n, rounds, bench_send)
        res2 = run_latency(base, rounds, seconds, warmup)
    elapsed = time.perf_counter() - started

    t1, notes1 = throughput_table(res1, send_impl)
    t2, notes2 = latency_table(res2)
    head = header(args, fs_kind, load, res1["warm"], res1["empty_loop_ns"])
    out = ["\n".join(head), t1.text() + "\n" + "\n".join("  " + s for s in notes1),
           t2.text() + "\n" + "\n".join("  " + s for s in notes2), f"elapsed {elapsed:.1f} s"]
    text = "\n\n".join(out)
    print(text)
    md = ["\n".join(["## " + head[0], ""] + ["- " + h for h in head[1:]]),
          t1.markdown() + "\n\n" + "\n".join("- " + s for s in notes1),
          t2.markdown() + "\n\n" + "\n".join("- " + s for s in notes2), f"elapsed {elapsed:.1f} s"]
    if not args.quick and not args.no_save:
        stem = storage_bench.results_stem("client")
        with open(stem + ".txt", "w") as f:
            f.write(text + "\n")
        with open(stem + ".md", "w") as f:
            f.write("\n\n".join(md) + "\n")
        print(f"\nwrote {os.path.relpath(stem, os.getcwd())}.txt and .md")


if __name__ == "__main__":
    main()
