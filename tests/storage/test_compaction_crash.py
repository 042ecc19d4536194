"""kill -9 crash tests of compaction: cleaner processes killed at random moments, then recovery is checked.

A partition of a compacted topic (segment.bytes 32 KiB, about 2 MiB: 12,000
keys) is cleaned over and over by a child process (compaction_child.py,
``clean`` mode: append one to three segments' worth of records, then
``clean_partition(p, force=True)``, again and again; a clean takes some 50
to 250 ms and swaps most segments), and the parent kills it with SIGKILL:

* in half the rounds at the j-th *pause*: the child runs on a file system
  that pauses a few milliseconds before (or after) every call of one
  operation during its cleans -- writing the ``.cleaned`` file, the
  ``.swap`` marker or a checkpoint (write_atomic), the rename over
  ``<base>.log`` (replace), a directory fsync, an unlink, the rename of a
  merged segment to ``.deleted``, an open, a file's creation -- and says so
  first; the parent
  kills it inside that pause.  The operation cycles from round to round, so
  every step of the swap is hit, both sides;
* otherwise at a random moment during its c-th clean, after a random delay,
  or while it starts (so in its own recovery of the previous crash).

The records are a pure function of their offset (compaction_child.History),
so the parent knows every record ever appended.  After each round it reopens
the log (a quarter of the rounds are left to the next child's recovery, and
checked with the next) and checks:

* no ``.cleaned``, ``.swap``, ``.deleted`` or ``.tmp`` file is left after an
  open with no cleaner running, and ``verify()`` finds nothing;
* the log end offset is the last acknowledged append's end, or that plus the
  one append in flight when the kill came: cleaning never moves it (the
  child also checks this around every clean);
* reading from the start, offsets strictly increase and every record is the
  one appended at its offset, byte for byte;
* the latest record of every key is there (tombstones included:
  delete.retention.ms is huge), and the active segment is dense;
* at the end, a clean the parent runs to completion leaves exactly the
  latest record of each key below the active segment.

The parent asserts that a good share of the kills landed inside a clean and
that kills landed inside the steps the rounds aimed at.  A variant runs a
writer child (appending with acks=1) beside a cleaner child, each killed at
its own moment, with the same checks: every acknowledged append must be
there.  In some of its rounds the writer is killed inside a roll (after the
new segment's creation, around the directory fsync, before the recovery
point moves) while the cleaner, which opened the log before, outlives it
and cleans the segment the roll sealed: a recovery point left in that
segment must not make the next open cut acknowledged records.

``STROM_COMPACTION_CRASH_ROUNDS`` sets the rounds (default 50; ``make soak``
runs 1000); the variant runs a third as many.  ``STROM_COMPACTION_CRASH_SEED``
fixes the data and the kill plan (not the timing).  Run with ``-s`` for the
summaries.
"""

from __future__ import annotations

import collections
import os
import random
import selectors
import shutil
import time
from pathlib import Path

import childproc  # tests/childproc.py (tests/conftest.py puts that folder on sys.path)
import pytest

import strom
from strom.storage.cleaner import clean_partition

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "compaction_child.py"
child = childproc.load_module(CHILD_SCRIPT, "strom_tests_compaction_child")
TOPIC = child.TOPIC

ROUNDS = int(os.environ.get("STROM_COMPACTION_CRASH_ROUNDS", "50"))
SEED = int(os.environ.get("STROM_COMPACTION_CRASH_SEED", str(random.randrange(2**32))))
#: A child that neither prints nor dies within this long is hung: fail.
CHILD_TIMEOUT_S = 60.0
#: Share of rounds the parent does not check at once: the next round's children
#: open the crashed log and recover it themselves (the check covers both rounds).
UNCHECKED_ROUNDS = 0.25
#: The steps a cleaner's kill aims at, cycled over the rounds that aim (both sides of each).
CLEANER_STEPS = [(op, when, "") for op in child.OPS for when in ("before", "after")]
#: The steps of a roll a writer's kill aims at, with the file name they must
#: concern: between the new segment's creation and the recovery point's move
#: to it (fsync_dir: the roll's, or the recovery point's own one after it).
WRITER_STEPS = [("create", "after", ".log"), ("fsync_dir", "before", ""),
                ("fsync_dir", "after", ""), ("write_atomic", "before", "recovery-point")]
LEFTOVER_SUFFIXES = (".cleaned", ".swap", ".deleted", ".tmp")


class Proc(childproc.LineChild):
    """One child process; its lines are parsed as they come."""

    def __init__(self, mode: str, path: str, args: list, env: dict[str, str]) -> None:
        super().__init__(CHILD_SCRIPT, [mode, path, *args], env, f"{mode} child (seed {SEED})")
        self.mode = mode
        self.ready_at: float | None = None
        self.ready_end: int | None = None
        self.acked_end: int | None = None  # end of the last acknowledged append
        self.inflight: tuple[int, int] | None = None  # (start, count) of an append under way
        self.cleaning = False  # between "cleaning" and "cleaned"
        self.cleans_started = 0
        self.cleans_finished = 0
        self.cleans: list[tuple] = []  # (seconds, segments before, after, bytes written)
        self.pauses: list[str] = []  # file names of the pauses, in order
        self.last: str = ""

    def on_line(self, raw: bytes) -> None:
        line = raw.decode()
        fields = line.split()
        kind = fields[0]
        if kind == "problem":
            pytest.fail(f"{self.mode} child found a problem (seed {SEED}): {line}")
        elif kind == "ready":
            self.ready_at = time.monotonic()
            self.ready_end = self.acked_end = int(fields[1])
        elif kind == "appending":
            start, n = int(fields[1]), int(fields[2])
            assert start == self.acked_end, (line, self.acked_end)
            self.inflight = (start, n)
        elif kind == "appended":
            assert self.inflight is not None and int(fields[1]) == sum(self.inflight), line
            self.acked_end, self.inflight = int(fields[1]), None
        elif kind == "cleaning":
            self.cleaning = True
            self.cleans_started += 1
        elif kind == "cleaned":
            self.cleaning = False
            self.cleans_finished += 1
            if fields[1] != "none":
                self.cleans.append((float(fields[1]), int(fields[2]), int(fields[3]), int(fields[4])))
        elif kind == "pause":
            self.pauses.append(fields[3])
        self.last = line

    def where(self) -> str:
        """What the child was doing when it died (from the last line it wrote)."""
        if self.ready_at is None:
            return "starting"
        if self.last.startswith("pause"):
            return self.last
        if self.cleaning:
            return "cleaning"
        if self.inflight is not None:
            return "appending"
        return "between"


class KillPlan:
    """When to kill one child; chosen at random per child and round."""

    def __init__(self, mode: str, rng: random.Random, step: tuple[str, str, str] | None,
                 clean_s: float, outlive: Proc | None = None) -> None:
        self.step = step
        self.deadline: float | None = None
        self.outlive = outlive
        r = rng.random()
        if outlive is not None:
            # Keep cleaning after the writer died (inside a roll): until a clean that
            # started after its death has finished, and a little more.
            self.mode, self.delay, self.after = "outlive", rng.uniform(0.0, 0.1), None
        elif step is not None:
            # Inside the j-th pause on a file named ``*suffix``: early or deep into the
            # clean; in one of the writer's first rolls.
            self.mode = "pause"
            self.pauses = rng.choice((1, 2, rng.randint(1, 10), rng.randint(1, 60))) \
                if mode != "writer" else rng.choice((1, 1, 2))
        elif r < 0.08:
            self.mode, self.delay = "starting", rng.uniform(0.0, 0.12)
        elif mode != "writer" and r < 0.7:
            # During the c-th clean, somewhere in its usual duration.
            self.mode, self.clean, self.delay = "in clean", rng.choice((1, 2, 3)), \
                rng.uniform(0.0, 0.9 * clean_s)
        else:
            self.mode, self.delay = "delay", rng.uniform(0.0, 0.6)

    def due(self, c: Proc, now: float) -> bool:
        if self.mode == "starting":
            return now >= c.started + self.delay
        if c.ready_at is None:
            return False
        if self.mode == "pause":
            # Should the step not come (a clean with no merge renames nothing): kill anyway.
            aimed = sum(1 for name in c.pauses if name.endswith(self.step[2]))
            return aimed >= self.pauses or len(c.cleans) >= 3 or now >= c.ready_at + 3.0
        if self.mode == "outlive":
            if self.after is None and self.outlive.killed:
                self.after = (c.cleans_started + 2, now + 5.0)  # a whole clean after it
            if self.deadline is None and self.after is not None and (
                    c.cleans_finished >= self.after[0] or now >= self.after[1]):
                self.deadline = now + self.delay
            return self.deadline is not None and now >= self.deadline
        if self.mode == "in clean":
            if self.deadline is None and c.cleans_started >= self.clean:
                self.deadline = now + self.delay
            return self.deadline is not None and now >= self.deadline
        return now >= c.ready_at + self.delay

    def wait(self, c: Proc, now: float) -> float:
        """How long until this plan may be due without a line from the child."""
        if self.mode == "starting":
            return c.started + self.delay - now
        if self.mode == "delay" and c.ready_at is not None:
            return c.ready_at + self.delay - now
        if self.deadline is not None:
            return self.deadline - now
        return 0.05


def run_children(children: list[Proc], plans: list[KillPlan]) -> None:
    """Kill each child by its plan; returns once all are dead and their pipes drained."""
    childproc.kill_by_plans(children, plans)


def wait_ready(c: Proc) -> None:
    """Read the child's lines until it printed ``ready``."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        sel.register(c.fd, selectors.EVENT_READ)
        while c.ready_at is None:
            assert time.monotonic() < deadline, f"{c.mode} child never got ready"
            if sel.select(1.0):
                c.feed()
                if c.eof:
                    c.proc.wait(timeout=CHILD_TIMEOUT_S)
                    pytest.fail(c.died_on_its_own())


class Expect:
    """Which log end offsets a reopen may find: the acknowledged end, or it plus the append in flight."""

    def __init__(self, end: int) -> None:
        self.ends = {end}

    def after(self, appender: Proc) -> None:
        """Narrow to what an appending child acknowledged before it died."""
        if appender.ready_end is None:
            return  # died before it opened the log: nothing changed
        assert appender.ready_end in self.ends, (
            f"a child opened the log at end offset {appender.ready_end}, expected one of "
            f"{sorted(self.ends)} (seed {SEED})")
        ends = {appender.acked_end}
        if appender.inflight is not None:
            ends.add(sum(appender.inflight))
        self.ends = ends

    def opened(self, end: int) -> None:
        assert end in self.ends, (f"the log end offset is {end}, expected one of {sorted(self.ends)} "
                                  f"(seed {SEED})")
        self.ends = {end}


def read_all(p: strom.Partition, end: int, history) -> list[int]:
    """Offsets present from the start to ``end``, checking each record and their order."""
    offsets: list[int] = []
    offset = p.log_start_offset
    last = -1
    while offset < end:
        batches = p.read(offset)
        assert batches, f"read({offset}) returned nothing below the log end offset {end}"
        for b in batches:
            for off, ts, key, value, headers in b.records(offset):
                assert last < off < end, f"offset {off} read after {last} (end {end}, seed {SEED})"
                assert (ts, key, value) == history.record(off) and headers is None, (
                    f"offset {off} holds {(ts, key, value, headers)!r}, expected "
                    f"{history.record(off)!r} (seed {SEED})")
                offsets.append(off)
                last = off
        offset = last + 1
    assert p.read(end) == []
    return offsets


def check_log(path: str, history, index, expect: Expect) -> int:
    """Reopen the log (no cleaner) and check every invariant; returns the log end offset."""
    log = strom.open(path, cleaner=False)
    try:
        p = log.partition(TOPIC, 0)
        end = p.log_end_offset
        expect.opened(end)
        leftovers = [n for n in os.listdir(p.path) if n.endswith(LEFTOVER_SUFFIXES)]
        assert not leftovers, f"files left after recovery: {leftovers} (seed {SEED})"
        assert p.verify() == [], f"seed {SEED}"
        assert p.log_start_offset == 0
        offsets = read_all(p, end, history)
        present = set(offsets)
        latest = index.latest_below(end)
        missing = sorted((o, k) for k, o in latest.items() if o not in present)
        assert not missing, (f"the latest records of {len(missing)} keys are gone, e.g. "
                             f"{missing[:5]} (seed {SEED})")
        active = p.segments[-1].base_offset
        tail = [o for o in offsets if o >= active]
        assert tail == list(range(active, end)), f"the active segment lost records (seed {SEED})"
        return end
    finally:
        log.close()


def final_clean(path: str, history, index, expect: Expect) -> tuple[int, int]:
    """Run a clean to completion: below the active segment only each key's latest record stays."""
    end = check_log(path, history, index, expect)
    with strom.open(path, cleaner=False) as log:
        p = log.partition(TOPIC, 0)
        assert clean_partition(p, force=True) is not None
        assert p.log_end_offset == end
        assert p.verify() == []
        active = p.segments[-1].base_offset
        offsets = read_all(p, end, history)
        below = [o for o in offsets if o < active]
        expected = sorted(index.latest_below(active).values())
        assert below == expected, f"a complete clean kept the wrong records (seed {SEED})"
        return len(offsets), len(p.segments)


class Stats:
    def __init__(self) -> None:
        self.rounds = 0
        self.unchecked = 0
        self.plans: collections.Counter = collections.Counter()
        self.where: collections.Counter = collections.Counter()
        self.aimed: collections.Counter = collections.Counter()  # step -> rounds aiming at it
        self.hit: collections.Counter = collections.Counter()  # step -> kills inside it
        self.cleaner_kills = 0
        self.in_clean = 0
        self.cleans: list[tuple] = []

    def record_kill(self, c: Proc, plan: KillPlan) -> None:
        where = c.where()
        self.plans[f"{c.mode}:{plan.mode}"] += 1
        self.where[f"{c.mode}:{where.split()[0]}"] += 1
        self.cleans += c.cleans
        if plan.step is not None:
            step = f"{c.mode}:{' '.join(plan.step)}".rstrip()
            self.aimed[step] += 1
            op, when, suffix = plan.step
            if where.startswith(f"pause {op} {when}") and where.endswith(suffix):
                self.hit[step] += 1
        if c.mode != "writer":
            self.cleaner_kills += 1
            self.in_clean += c.cleaning or where.startswith("pause")

    def summary(self) -> str:
        secs = sorted(s for s, *_ in self.cleans)
        median = secs[len(secs) // 2] if secs else 0.0
        swapped = sum(1 for _, before, after, written in self.cleans if written)
        return (f"{self.rounds} rounds ({self.unchecked} recovered by the next children), seed {SEED}: "
                f"{self.in_clean}/{self.cleaner_kills} cleaner kills inside a clean; "
                f"{len(self.cleans)} cleans finished ({swapped} wrote segments, median {median:.3f} s); "
                f"plans {dict(sorted(self.plans.items()))}; died at {dict(sorted(self.where.items()))}; "
                f"steps hit/aimed {({s: f'{self.hit[s]}/{n}' for s, n in sorted(self.aimed.items())})}")


def crash_loop(tmp_path: Path, rounds: int, with_writer: bool, label: str) -> None:
    path = str(tmp_path / "data")
    history = child.History(SEED)
    index = child.KeyIndex(history)
    child.fill(path, history)
    expect = Expect(child.FILL_RECORDS)
    rng = random.Random(f"{SEED}/{with_writer}")
    env = childproc.child_env()
    stats = Stats()
    clean_s = 0.08  # a clean's usual duration, learnt as cleans finish
    steps = 0
    t0 = time.monotonic()
    for round_ in range(rounds):
        specs = []  # (mode, step)
        aim = rng.random() < (0.6 if with_writer else 0.5)
        cleaner_step = writer_step = None
        if aim:
            if with_writer and rng.random() < 0.5:
                writer_step = WRITER_STEPS[steps % len(WRITER_STEPS)]
            else:
                cleaner_step = CLEANER_STEPS[steps % len(CLEANER_STEPS)]
            steps += 1
        specs.append(("cleaner" if with_writer else "clean", cleaner_step))
        if with_writer:
            specs.append(("writer", writer_step))
        children = []
        for mode, step in specs:
            op, when = step[:2] if step is not None else ("none", "before")
            if writer_step is not None and mode == "writer":
                wait_ready(children[0])  # the cleaner has the log open before the writer dies
            children.append(Proc(mode, path, [SEED, round_, op, when], env))
        # When the writer is killed inside a roll, the cleaner outlives it (and cleans what
        # the roll sealed); otherwise each dies at its own moment.
        plans = [KillPlan(mode, rng, step, clean_s,
                          outlive=children[1] if writer_step is not None and i == 0 else None)
                 for i, (mode, step) in enumerate(specs)]
        run_children(children, plans)
        for c, plan in zip(children, plans):
            stats.record_kill(c, plan)
            if c.cleans:
                clean_s = sorted(s for s, *_ in c.cleans)[len(c.cleans) // 2]
        expect.after(children[-1])  # the child that appends: the cleaner alone, or the writer
        stats.rounds += 1
        if round_ < rounds - 1 and rng.random() < UNCHECKED_ROUNDS:
            stats.unchecked += 1
            continue  # the next round's children recover this crash themselves
        check_log(path, history, index, expect)
    records, segments = final_clean(path, history, index, expect)
    elapsed = time.monotonic() - t0
    print(f"\n{label}: {stats.summary()}; finally {records} records in {segments} segments, "
          f"{elapsed:.1f} s")
    # Kills really landed in cleans, and in the steps they aimed at.
    assert stats.in_clean >= 0.4 * stats.cleaner_kills, stats.summary()
    assert sum(1 for *_, written in stats.cleans if written) >= rounds // 10, stats.summary()
    # A round whose step never came (a clean that merges nothing renames nothing) kills
    # elsewhere; most rounds land in the step they aim at.
    assert sum(stats.hit.values()) >= sum(stats.aimed.values()) // 2, stats.summary()
    for step, n in stats.aimed.items():
        if n >= 3:
            assert stats.hit[step] >= n // 3, f"{step}: {stats.summary()}"
    shutil.rmtree(path)


def test_kill9_cleaner(tmp_path: Path) -> None:
    crash_loop(tmp_path, ROUNDS, False, "compaction crash")


def test_kill9_cleaner_and_writer(tmp_path: Path) -> None:
    crash_loop(tmp_path, max(6, ROUNDS // 3), True, "compaction crash, cleaner and writer")
