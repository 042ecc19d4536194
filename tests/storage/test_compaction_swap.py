"""A crash at every step of a clean leaves the old segments or the cleaned ones, never a loss.

Deterministic crash-point tests, in memory.  :class:`CrashFS` is a
MemoryFileSystem that raises :class:`Crash` (a BaseException, as a kill
would stop everything) at the k-th file operation -- open, pwritev,
fdatasync, truncate, rename, replace, unlink, fsync_dir, write_atomic --
made during ``clean_partition``, and every operation after it (so no
clean-up code runs, as in a real crash).  For k = 1, 2, ... until a clean
finishes, each case builds the same partition, crashes the clean at step k,
reopens the log on the same memory tree (a new Log: a restarted process) and
checks:

* no ``.cleaned``, ``.swap``, ``.deleted`` or ``.tmp`` file is left and
  ``verify()`` finds nothing; the log end offset is unchanged;
* the offsets that a segment of the finished clean covers hold exactly the
  records they held before the clean, or exactly those the finished clean
  left there -- never a mix -- and the cleaned ones come first (groups are
  swapped oldest first);
* every key's latest record is there (unless the finished clean, too,
  dropped it: a tombstone past delete.retention.ms);
* a clean run after the crash ends with exactly the records of the clean
  that was never interrupted.

Cases: several full segments (one group each), many tiny segments merged
into one group (the marker lists the segments it replaces; their deletion
is interrupted at each step), a single segment, and a second clean that
drops tombstones whose delete.retention.ms ran out.  For the merge case
the recovery of each crash is itself crashed at every step, then recovered
again.  One more test kills a writer at each step of a roll while a cleaner
has the partition open and cleans it afterwards: the next open must find
every record (a recovery point left in the sealed segment must not name
bytes the clean removed).

The memory tree survives the "crash" whole (it models kill -9, not power
loss).
"""

from __future__ import annotations

import os
import re

import pytest

import strom
from strom import ManualClock
from strom.storage.cleaner import clean_partition
from strom.storage.memfs import MemoryFile, MemoryFileSystem

T0 = 1_700_000_000_000
TOPIC = "c"
PATH = "/data"
RETENTION_MS = 60_000
LEFTOVER_SUFFIXES = (".cleaned", ".swap", ".deleted", ".tmp")


class Crash(BaseException):
    """The process died here."""


class CrashFile(MemoryFile):
    """A file of a :class:`CrashFS`: its writes, syncs and truncations are crash points."""

    __slots__ = ()

    def pwritev(self, buffers, pos):
        self._fs.step("pwritev", self.path)
        return super().pwritev(buffers, pos)

    def fdatasync(self):
        self._fs.step("fdatasync", self.path)
        return super().fdatasync()

    def truncate(self, size):
        self._fs.step("truncate", self.path)
        return super().truncate(size)


class CrashFS(MemoryFileSystem):
    """A memory tree whose file operations crash at the k-th step once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_at: int | None = None
        self.dead = False
        self.steps: list[tuple[str, str]] = []  # the steps made since arming

    def arm(self, k: int | None) -> None:
        """Crash at the k-th step from now (None: count steps, never crash)."""
        self.crash_at, self.dead, self.steps = k, False, []

    def revive(self) -> None:
        """A new process on the same tree: no more crashes."""
        self.crash_at, self.dead = None, False

    def step(self, op: str, path: str) -> None:
        if self.dead:
            raise Crash("already dead")
        # Temporary files have random names: keep the steps comparable between runs.
        self.steps.append((op, re.sub(r"\.[0-9a-f]{12}\.tmp$", ".*.tmp", os.path.basename(path))))
        if self.crash_at is not None and len(self.steps) >= self.crash_at:
            self.dead = True
            raise Crash(f"{op} {path}")

    def open(self, path, *, write=False, create=False, exclusive=False):
        self.step("open", path)
        f = super().open(path, write=write, create=create, exclusive=exclusive)
        f.__class__ = CrashFile
        return f

    def rename(self, src, dst):
        self.step("rename", src)
        return super().rename(src, dst)

    def replace(self, src, dst):
        self.step("replace", src)
        return MemoryFileSystem.rename(self, src, dst)  # one step, not a replace and a rename

    def unlink(self, path, missing_ok=True):
        self.step("unlink", path)
        return super().unlink(path, missing_ok)

    def fsync_dir(self, path):
        self.step("fsync_dir", path)
        return super().fsync_dir(path)

    def write_atomic(self, path, data, *, durable=True):
        self.step("write_atomic", path)
        return super().write_atomic(path, data, durable=durable)


def value(i: int) -> bytes:
    return b"value-%05d-" % i + b"x" * (i % 40)


def build(case: str) -> tuple[CrashFS, ManualClock]:
    """The partition a case cleans (in a fresh tree), the log closed."""
    fs, clock = CrashFS(), ManualClock(T0)
    config = {"cleanup.policy": "compact", "segment.bytes": 2048,
              "delete.retention.ms": RETENTION_MS}
    with strom.open(PATH, fs=fs, clock=clock, cleaner=False) as log:
        log.create_topic(TOPIC, 1, config=config)
        p = log.partition(TOPIC, 0)

        def append(i: int, key: int, tombstone: bool = False) -> None:
            p.append([None if tombstone else value(i)], keys=[b"key-%d" % key],
                     timestamps=T0 + i, acks=1)

        if case == "groups":  # full segments: one group each
            for i in range(150):
                append(i, i % 11, tombstone=i % 17 == 5)
        elif case == "merge":  # tiny segments: merged into one group or two
            for i in range(60):
                append(i, i % 7, tombstone=i % 13 == 4)
                if i % 3 == 2:
                    p.roll()
        elif case == "merge1":  # five tiny segments: one group
            for i in range(15):
                append(i, i % 4, tombstone=i == 9)
                if i % 3 == 2:
                    p.roll()
        elif case == "single":  # one sealed segment
            for i in range(12):
                append(i, i % 4, tombstone=i == 6)
            p.roll()
        elif case == "tombstones":  # a second clean, past the tombstones' retention
            for i in range(80):
                append(i, i % 9, tombstone=i % 9 in (2, 5))
            p.roll()
            assert clean_partition(p, force=True) is not None
            for i in range(80, 120):
                append(i, i % 9 + 3, tombstone=i % 10 == 1)
            p.roll()
            clock.advance(RETENTION_MS + 1)
        else:
            raise AssertionError(case)
        append(10_000, 0)  # the active segment holds something too
    return fs, clock


def open_for_clean(case: str) -> tuple[CrashFS, ManualClock, strom.Log, list[tuple]]:
    """The case's tree, its records (read by another Log), and a Log to clean it with."""
    fs, clock = build(case)
    with strom.open(PATH, fs=fs, clock=clock, cleaner=False) as log:
        before = records(log.partition(TOPIC, 0))
    return fs, clock, strom.open(PATH, fs=fs, clock=clock, cleaner=False), before


def records(p: strom.Partition) -> list[tuple]:
    """Every record from the start to the end, following offsets."""
    out: list[tuple] = []
    offset = p.log_start_offset
    while offset < p.log_end_offset:
        batch = p.read_records(offset)
        assert batch, offset
        assert not out or batch[0][0] > out[-1][0]
        out.extend(batch)
        offset = batch[-1][0] + 1
    return out


def latest_per_key(recs: list[tuple]) -> dict[bytes, tuple]:
    return {r[2]: r for r in recs}


class Reference:
    """A case's partition before and after a clean that nobody interrupted."""

    def __init__(self, case: str) -> None:
        fs, _clock, log, self.before = open_for_clean(case)
        p = log.partition(TOPIC, 0)
        self.end = p.log_end_offset
        fs.arm(None)
        self.result = clean_partition(p, force=True)
        assert self.result is not None
        self.steps = list(fs.steps)
        self.after = records(p)
        assert p.verify() == []
        # The offset ranges of the segments the clean leaves, each one group's output
        # (or a segment it left alone); the active segment's range last.
        bases = [s.base_offset for s in p.segments]
        self.ranges = list(zip(bases, bases[1:] + [self.end]))
        log.close()
        assert self.after != self.before, "the clean must change something"

    def within(self, recs: list[tuple], lo: int, hi: int) -> list[tuple]:
        return [r for r in recs if lo <= r[0] < hi]


def check_reopened(fs: CrashFS, clock: ManualClock, ref: Reference, where: str) -> list[str]:
    """Open the crashed tree in a new Log and check it; returns each range's state."""
    fs.revive()
    log = strom.open(PATH, fs=fs, clock=clock, cleaner=False)
    try:
        p = log.partition(TOPIC, 0)
        left = [n for n in fs.listdir(p.path) if n.endswith(LEFTOVER_SUFFIXES)]
        assert not left, f"{where}: {left} left after recovery"
        assert p.verify() == [], where
        assert p.log_end_offset == ref.end, where
        got = records(p)
        states = []
        for lo, hi in ref.ranges:
            g = ref.within(got, lo, hi)
            old, new = ref.within(ref.before, lo, hi), ref.within(ref.after, lo, hi)
            assert g in (old, new), (
                f"{where}: offsets {lo}..{hi - 1} hold neither the old records nor the cleaned ones:"
                f"\n  got {[r[0] for r in g]}\n  old {[r[0] for r in old]}\n  new {[r[0] for r in new]}")
            states.append("same" if old == new else "new" if g == new else "old")
        changed = [s for s in states if s != "same"]
        assert changed == sorted(changed), f"{where}: groups swapped out of order {states}"  # new, then old
        kept = set(ref.after)
        present = set(got)
        for key, rec in latest_per_key(ref.before).items():
            if rec in kept:
                assert rec in present, f"{where}: the latest record of {key!r} is gone"
        # Cleaning again finishes the job: exactly what the uninterrupted clean left.
        clean_partition(p, force=True)
        assert records(p) == ref.after, where
        assert p.verify() == [], where
        return states
    finally:
        log.close()


def crash_clean_at(case: str, k: int) -> tuple[CrashFS, ManualClock, str | None]:
    """Build the case and run its clean, crashing at step k; returns where it crashed (None: it finished)."""
    fs, clock, log, _before = open_for_clean(case)
    p = log.partition(TOPIC, 0)
    fs.arm(k)
    try:
        clean_partition(p, force=True)
    except Crash as crash:
        return fs, clock, str(crash)
    finally:
        fs.revive()
    log.close()
    return fs, clock, None


@pytest.mark.parametrize("case", ["groups", "merge", "single", "tombstones"])
def test_crash_at_every_step_of_a_clean(case: str) -> None:
    ref = Reference(case)
    seen_states = set()
    k = 0
    while True:
        k += 1
        fs, clock, crashed = crash_clean_at(case, k)
        if crashed is None:
            break
        assert fs.steps[-1] == ref.steps[k - 1], "the clean is not deterministic"
        states = check_reopened(fs, clock, ref, f"{case}, crash at step {k} ({crashed})")
        seen_states.add(tuple(states))
    assert k - 1 == len(ref.steps), (k, len(ref.steps))
    ops = {op for op, _ in ref.steps}
    assert {"write_atomic", "replace", "unlink", "fsync_dir", "pwritev"} <= ops, ops
    # Crashes left the old layout, the cleaned one, and with several groups a mix.
    kinds = {tuple(sorted(set(states) - {"same"})) for states in seen_states}
    assert ("old",) in kinds and ("new",) in kinds, kinds
    groups = sum(1 for lo, hi in ref.ranges[:-1]
                 if ref.within(ref.before, lo, hi) != ref.within(ref.after, lo, hi))
    if groups > 1:
        assert ("new", "old") in kinds, kinds
    if case == "merge":
        assert "rename" in ops  # the merged segments went through .deleted
        assert groups > 1
    if case == "tombstones":
        assert ref.result.tombstones_removed > 0


def test_crash_while_recovering_a_crashed_merge() -> None:
    """A crash at every step of the recovery of a crashed swap, then a recovery again."""
    ref = Reference("merge1")
    assert len(ref.ranges) == 2, "one group (and the active segment)"
    # Every distinct tree a crash leaves with a swap marker for the recovery to act on.
    trees: dict[tuple, int] = {}
    p_dir = f"{PATH}/{TOPIC}/0"
    for k in range(1, len(ref.steps) + 1):
        fs, _clock, _crashed = crash_clean_at("merge1", k)
        names = fs.listdir(p_dir)
        if any(n.endswith(".swap") for n in names):
            trees.setdefault(tuple(sorted((n, fs.file_size(f"{p_dir}/{n}")) for n in names)), k)
    # Before the commit (the .cleaned file still there) and after it, deletes pending.
    assert len(trees) >= 4, trees
    recoveries = 0
    for k in trees.values():
        k2 = 0
        while True:
            k2 += 1
            fs, clock, _ = crash_clean_at("merge1", k)
            fs.arm(k2)
            try:
                log = strom.open(PATH, fs=fs, clock=clock, cleaner=False)
            except Crash as crash:
                check_reopened(fs, clock, ref, f"crash at step {k}, recovery crash at step {k2} "
                                               f"({crash})")
                recoveries += 1
                continue
            log.close()
            break
    assert recoveries > 5 * len(trees)


def test_writer_killed_in_a_roll_while_a_cleaner_has_the_partition_open() -> None:
    """A roll cut short at each step, then a clean by another Log: the next open finds everything."""
    config = {"cleanup.policy": "compact", "segment.bytes": 2048, "delete.retention.ms": RETENTION_MS}

    def record(j: int) -> tuple:
        return (j, T0 + j, b"key-%d" % (j % 5), value(j), None)

    def append(p: strom.Partition, j: int) -> None:
        p.append([value(j)], keys=[b"key-%d" % (j % 5)], timestamps=T0 + j, acks=1)

    # How many one-record appends fill the first segment (the next one rolls).
    with strom.open(":memory:", clock=ManualClock(T0), cleaner=False) as log:
        log.create_topic(TOPIC, 1, config=config)
        p = log.partition(TOPIC, 0)
        n = 0
        while len(p.segments) == 1:
            append(p, n)
            n += 1
    rolling = n - 1  # the append that rolls
    cleaned_after_crash = 0
    k = 0
    while True:
        k += 1
        fs, clock = CrashFS(), ManualClock(T0)
        with strom.open(PATH, fs=fs, clock=clock, cleaner=False) as log:
            log.create_topic(TOPIC, 1, config=config)
            for j in range(rolling // 2):
                append(log.partition(TOPIC, 0), j)
        # The writer's open leaves its recovery point inside the segment it will seal.
        writer = strom.open(PATH, fs=fs, clock=clock, cleaner=False)
        wp = writer.partition(TOPIC, 0)
        for j in range(rolling // 2, rolling):
            append(wp, j)
        cleaner = strom.open(PATH, fs=fs, clock=clock, cleaner=False)
        cp = cleaner.partition(TOPIC, 0)
        fs.arm(k)
        try:
            append(wp, rolling)
            crashed = None
        except Crash as crash:
            crashed = str(crash)
        fs.revive()
        if crashed is None:
            writer.close()
        result = clean_partition(cp, force=True)  # None if the roll never made its new segment
        cleaned_after_crash += crashed is not None and result is not None and result.bytes_written > 0
        cleaner.close()
        where = f"writer crashed at step {k} of the rolling append ({crashed})"
        log = strom.open(PATH, fs=fs, clock=clock, cleaner=False)
        try:
            p = log.partition(TOPIC, 0)
            end = p.log_end_offset
            assert end in (rolling, rolling + 1), where
            assert p.verify() == [], where
            got = records(p)
            assert all(r == record(r[0]) for r in got), where
            assert latest_per_key(got) == latest_per_key([record(j) for j in range(end)]), where
        finally:
            log.close()
        if crashed is None:
            break
    assert k > 5, "the rolling append made too few steps"
    assert cleaned_after_crash >= 3, "too few crashes left a sealed segment to clean"
