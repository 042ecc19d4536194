"""kill -9 crash test: real writer processes killed at random moments, then recovery is checked.

Each round starts a writer process (crash_child.py) on one partition that
grows across rounds, lets it append batches of random size with acks=1, and
kills it with SIGKILL after a random delay (0..150 ms), right after its N-th
acknowledgement, at once, or while it is still starting (then the kill may
land in its own recovery).  segment.bytes is 64 KiB, so kills also land in
rolls, index writes and checkpoints.  In most rounds the writer writes some
appends in pieces with pauses between them (crash_child.SplitWriteFS, a
slow disk), so that kills tear batches.  The parent then reopens the log
and checks the Jepsen-style invariants of engine.md 3.7:

* every acknowledged record is there exactly once, at the offset the append
  returned, byte-identical (key, value, timestamp, headers), in one batch;
* offsets are dense from the log start; the only records that were not
  acknowledged are the whole batch that was in flight when the kill came
  (written, not yet acknowledged), never a piece of one;
* reading up to the log end offset ends cleanly (``read(end) == []``) and
  ``verify()`` finds nothing;
* an append after recovery gets the log end offset.

A quarter of the rounds are not checked at once: the next round's writer
opens the crashed log and recovers it itself, and the next check covers
both rounds.  Every round's records are hashed when checked; a final pass
re-reads the whole partition and compares, so later damage to earlier
rounds is caught too.  The variant with two writers appending at once kills
each at its own random moment.

``STROM_CRASH_ROUNDS`` sets the rounds (default 100; ``make soak`` runs
3000); the two-writer variant runs a fifth as many.  ``STROM_CRASH_SEED``
fixes the data and the kill plan (not the timing, which cannot be
replayed).  Run with ``-s`` for the one-line summaries.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import shutil
import time
from pathlib import Path

import msgpack
import childproc  # tests/childproc.py (tests/conftest.py puts that folder on sys.path)

import strom

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "crash_child.py"
TOPIC = "crash"

ROUNDS = int(os.environ.get("STROM_CRASH_ROUNDS", "100"))
SEED = int(os.environ.get("STROM_CRASH_SEED", str(random.randrange(2**32))))
#: Largest random delay between "ready" and the kill (the brief's 0..150 ms).
MAX_KILL_DELAY_S = 0.150
#: A child that neither acknowledges nor dies within this long is hung: fail.
CHILD_TIMEOUT_S = 60.0
#: verify() reads the whole partition; run it every round while the log is
#: small and every VERIFY_EVERY rounds after that (the final pass always runs).
VERIFY_EVERY = 25
#: Share of rounds whose writers split some writes in pieces (crash_child.SplitWriteFS).
SPLIT_ROUNDS = 0.75
#: Share of rounds the parent does not check at once: the next round's writer
#: opens the crashed log and recovers it itself (the check covers both rounds).
UNCHECKED_ROUNDS = 0.25

child = childproc.load_module(CHILD_SCRIPT, "strom_tests_crash_child")




class Writer(childproc.LineChild):
    """One crash_child.py process and what it has acknowledged so far."""

    def __init__(self, path: str, writer: int, round_: int, seed: int, env: dict[str, str],
                 split: bool) -> None:
        super().__init__(CHILD_SCRIPT, [path, TOPIC, writer, round_, seed] + (["split"] if split else []),
                         env, f"writer {writer}")
        self.writer = writer
        self.ready_at: float | None = None
        self.truncated_at_open = 0  # bytes of torn tail its own recovery cut
        self.acks: list[tuple[int, int, int]] = []  # (batch index, base offset, record count)

    def on_line(self, line: bytes) -> None:
        fields = line.split()
        if fields[0] == b"ready":
            self.ready_at = time.monotonic()
            self.truncated_at_open = int(fields[2])
        else:
            i, base, count = map(int, fields)
            self.acks.append((i, base, count))


class KillPlan:
    """When to kill one writer; chosen at random per writer and round."""

    def __init__(self, rng: random.Random) -> None:
        r = rng.random()
        if r < 0.05:
            # While it starts: in the interpreter, in imports, or in its own recovery.
            self.mode, self.delay, self.acks = "starting", rng.uniform(0.0, 0.25), None
        elif r < 0.10:
            self.mode, self.delay, self.acks = "at ready", 0.0, None
        elif r < 0.30:
            self.mode, self.delay, self.acks = "after acks", None, rng.choice(
                (1, 2, rng.randint(1, 20), rng.randint(1, 300)))
        else:
            self.mode, self.delay, self.acks = "delay", rng.uniform(0.0, MAX_KILL_DELAY_S), None

    def due(self, w: Writer, now: float) -> bool:
        if self.mode == "starting":
            return now >= w.started + self.delay
        if w.ready_at is None:
            return False
        if self.acks is not None:
            # Bounded in time too, should the writer be slow.
            return len(w.acks) >= self.acks or now >= w.ready_at + 2.0
        return now >= w.ready_at + self.delay

    def wait(self, w: Writer, now: float) -> float | None:
        """How long until this plan may be due without a line from the writer."""
        if self.mode == "starting":
            return w.started + self.delay - now
        if w.ready_at is not None and self.delay is not None:
            return w.ready_at + self.delay - now
        return None


def run_writers(path: str, round_: int, seed: int, n_writers: int, rng: random.Random,
                env: dict[str, str], modes: collections.Counter) -> list[Writer]:
    """Start ``n_writers`` writers, kill each by its plan, return them (dead, pipes drained)."""
    # Most rounds write some appends in pieces (a slow disk), so kills tear batches.
    split = rng.random() < SPLIT_ROUNDS
    modes["rounds with split writes"] += split
    writers = [Writer(path, w, round_, seed, env, split) for w in range(n_writers)]
    plans = [KillPlan(rng) for _ in writers]
    for plan in plans:
        modes[plan.mode] += 1
    childproc.kill_by_plans(writers, plans, "writers")
    return writers


def iter_records(p: strom.Partition, start: int, end: int):
    """Yield ``(record, batch_base_offset)`` for offsets start..end-1, checking density."""
    offset = start
    while offset < end:
        batches = p.read(offset)
        assert batches, f"read({offset}) returned nothing below the log end offset {end}"
        for b in batches:
            assert b.base_offset <= offset <= b.last_offset, (offset, b)
            for rec in b.records(offset):
                assert rec[0] == offset, f"offsets not dense: expected {offset}, read {rec[0]}"
                assert offset < end, f"read returned offset {offset} at or past the log end {end}"
                yield rec, b.base_offset
                offset += 1
    assert p.read(end) == [], "a read at the log end offset returned batches"


def record_digest(h, rec: tuple) -> None:
    h.update(msgpack.packb(list(rec), use_bin_type=True))


class Stats:
    def __init__(self) -> None:
        self.rounds = 0
        self.acked_records = 0
        self.acked_batches = 0
        self.unacked_batches_kept = 0
        self.bytes_truncated = 0
        self.recoveries_truncating = 0
        self.unchecked_rounds = 0
        self.bytes_truncated_by_writers = 0
        self.modes: collections.Counter = collections.Counter()


def check_rounds(path: str, sessions: list[tuple[int, list[Writer]]], seed: int, prev_end: int,
                 stats: Stats, verify: bool) -> tuple[int, bytes]:
    """Reopen after the kills of one or more rounds and check their invariants.

    ``sessions`` holds each unchecked round with its writers, oldest first;
    returns (the new end offset, the digest of the records checked).
    """
    log = strom.open(path)
    try:
        p = log.partition(TOPIC, 0)
        rec = p.last_recovery
        stats.bytes_truncated += rec.bytes_truncated
        stats.recoveries_truncating += rec.bytes_truncated > 0
        assert p.log_start_offset == 0
        end = p.log_end_offset
        rounds = [r for r, _ in sessions]
        where = f"rounds {rounds} (seed {seed}), recovery {rec}, end {end}, previous end {prev_end}"

        # The acknowledged batches, by base offset; each writer's in its own order.
        acked: dict[int, tuple[int, int, int, int]] = {}  # base -> (round, writer, index, count)
        next_index: dict[tuple[int, int], int] = {}  # (round, writer) -> its batch in flight
        last_end = prev_end
        for round_, writers in sessions:
            round_start = last_end
            for w in writers:
                last_end = round_start
                for n, (i, base, count) in enumerate(w.acks):
                    assert i == n, f"{where}: writer {w.writer} acknowledged batch {i} as its #{n}"
                    assert count == len(child.batch_for(seed, w.writer, round_, i)), where
                    assert base >= last_end, f"{where}: writer {w.writer}'s batch {i} went backwards"
                    assert base not in acked, f"{where}: two appends were given base offset {base}"
                    acked[base] = (round_, w.writer, i, count)
                    last_end = base + count
                next_index[round_, w.writer] = len(w.acks)
            last_end = max([round_start] + [b + c for b, (r, _, _, c) in acked.items() if r == round_])
        acked_end = max((b + c for b, (_, _, _, c) in acked.items()), default=prev_end)
        assert end >= acked_end, f"{where}: acknowledged records up to {acked_end} were lost"

        # Walk every record of the rounds: acknowledged batches, and at most one
        # unacknowledged (in-flight) batch per writer and round, whole.
        h = hashlib.blake2b(digest_size=16)
        records = iter_records(p, prev_end, end)
        offset = prev_end
        unacked_used: set[tuple[int, int]] = set()
        while offset < end:
            if offset in acked:
                round_, writer, index, count = acked.pop(offset)
            else:
                first, batch_base = next(records)
                assert batch_base == offset, f"{where}: offset {offset} is inside another batch"
                writer, round_, index, j = child.VALUE_HEAD.unpack_from(first[3])
                key = (round_, writer)
                assert j == 0 and key in next_index, (
                    f"{where}: offset {offset} holds a record nobody wrote: {first!r}")
                assert index == next_index[key] and key not in unacked_used, (
                    f"{where}: offset {offset} holds round {round_} writer {writer}'s batch {index}, "
                    f"which is neither acknowledged nor its one batch in flight ({next_index[key]})")
                unacked_used.add(key)
                count = len(child.batch_for(seed, writer, round_, index))
                stats.unacked_batches_kept += 1
                records = _prepend(first, batch_base, records)
            expected = child.batch_for(seed, writer, round_, index).records()
            for k in range(count):
                try:
                    got, batch_base = next(records)
                except StopIteration:
                    raise AssertionError(f"{where}: the log ends inside round {round_} writer "
                                         f"{writer}'s batch {index} (offset {offset + k})") from None
                assert batch_base == offset, (
                    f"{where}: round {round_} writer {writer}'s batch {index} was split or merged "
                    f"(record {offset + k} is in the batch at {batch_base})")
                assert got == (offset + k, *expected[k]), (
                    f"{where}: offset {offset + k} holds {got!r}, expected "
                    f"{(offset + k, *expected[k])!r} (round {round_} writer {writer}, batch {index})")
                record_digest(h, got)
            offset += count
        assert offset == end, f"{where}: the last batch runs past the log end"
        assert next(records, None) is None
        assert not acked, f"{where}: acknowledged batches not found at their offsets: {acked}"
        for _, writers in sessions:
            stats.bytes_truncated_by_writers += sum(w.truncated_at_open for w in writers)
            stats.acked_batches += sum(len(w.acks) for w in writers)
            stats.acked_records += sum(c for w in writers for _, _, c in w.acks)

        if verify:
            assert p.verify() == [], where

        # Appending after recovery continues at the log end offset.
        marker = b"parent-after-round-%d" % rounds[-1]
        base = p.append([marker], keys=[b"parent"], timestamps=child.BASE_TIMESTAMP_MS, acks=1)
        assert base == end, f"{where}: the append after recovery got offset {base}"
        got = p.read_records(end)
        assert got == [(end, child.BASE_TIMESTAMP_MS, b"parent", marker, None)], where
        record_digest(h, got[0])
        return end + 1, h.digest()
    finally:
        log.close()


def _prepend(rec, base, it):
    yield rec, base
    yield from it


def final_check(path: str, ranges: list[tuple[int, int, bytes]], seed: int) -> int:
    """Re-read the whole partition and compare each round's records with their digest."""
    log = strom.open(path)
    try:
        p = log.partition(TOPIC, 0)
        end = p.log_end_offset
        assert p.last_recovery.bytes_truncated == 0, p.last_recovery  # closed cleanly
        assert end == ranges[-1][1], (end, ranges[-1])
        assert p.verify() == []
        records = iter_records(p, 0, end)
        for start, stop, digest in ranges:
            h = hashlib.blake2b(digest_size=16)
            for _ in range(start, stop):
                rec, _ = next(records)
                record_digest(h, rec)
            assert h.digest() == digest, (
                f"records {start}..{stop - 1} changed after they were checked (seed {seed})")
        assert next(records, None) is None
        return len(p.segments)
    finally:
        log.close()


def crash_loop(tmp_path: Path, rounds: int, n_writers: int, label: str) -> None:
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic(TOPIC, config=child.TOPIC_CONFIG)
    rng = random.Random(f"{SEED}/{n_writers}")
    env = childproc.child_env()
    stats = Stats()
    ranges: list[tuple[int, int, bytes]] = []
    prev_end = 0
    pending: list[tuple[int, list[Writer]]] = []
    t0 = time.monotonic()
    for round_ in range(rounds):
        pending.append((round_, run_writers(path, round_, SEED, n_writers, rng, env, stats.modes)))
        stats.rounds += 1
        if round_ < rounds - 1 and rng.random() < UNCHECKED_ROUNDS:
            stats.unchecked_rounds += 1
            continue  # the next writer recovers this crash itself
        verify = round_ < 100 or round_ % VERIFY_EVERY == 0
        end, digest = check_rounds(path, pending, SEED, prev_end, stats, verify)
        ranges.append((prev_end, end, digest))
        prev_end = end
        pending = []
    segments = final_check(path, ranges, SEED)
    elapsed = time.monotonic() - t0
    split_rounds = stats.modes.pop("rounds with split writes", 0)
    print(f"\n{label}: {stats.rounds} rounds x {n_writers} writer(s) ({split_rounds} with split "
          f"writes, {stats.unchecked_rounds} recovered by the next writer), seed {SEED}: "
          f"{stats.acked_records} acked records in {stats.acked_batches} batches checked, "
          f"{stats.unacked_batches_kept} in-flight batches kept whole, "
          f"{stats.bytes_truncated} bytes truncated in {stats.recoveries_truncating} reopens "
          f"(+{stats.bytes_truncated_by_writers} by writers' own recovery), "
          f"{prev_end} offsets in {segments} segments, kills {dict(sorted(stats.modes.items()))}, "
          f"{elapsed:.1f} s")
    # A soak run writes gigabytes; pytest keeps the last tmp dirs, so free them on success.
    shutil.rmtree(path)


def test_kill9_single_writer(tmp_path: Path) -> None:
    crash_loop(tmp_path, ROUNDS, 1, "crash")


def test_kill9_two_concurrent_writers(tmp_path: Path) -> None:
    crash_loop(tmp_path, max(4, ROUNDS // 5), 2, "crash, 2 writers")
