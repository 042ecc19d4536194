"""Model test: compaction of one partition against the full history of its appends.

A hypothesis state machine appends keyed records (a small key space, so keys
repeat; some values None: tombstones) to one partition of a compacted topic
with small segments, rolls, cleans (``clean_partition`` forced or not,
``Log.compact`` with and without ``roll``), reopens the log, advances the
clock and changes min.cleanable.dirty.ratio / min.compaction.lag.ms.  The
model keeps every append (offset -> key, value, timestamp, clock at append).

After every step, reading the partition from its start to its end
(following offsets: the next read at the last offset read + 1) must give:

* strictly increasing offsets, each record equal to the one appended at
  that offset (key, value, timestamp);
* for every key, its latest appended record as the last one read for it, or
  no record at all, and the latter only when that latest record is a
  tombstone appended at least delete.retention.ms ago (so a tombstone is
  never dropped before then);
* every record at or after the active segment's base offset, and at or after
  the cleaner's checkpoint (the clean end), present: cleaning touches neither;
* pairwise distinct keys among the records below the clean end (the
  cleaner checkpoint; every record below it was seen by a clean's map or
  is the only one of its key there).  After a forced clean the clean end
  is at least the base of the first sealed segment that is not cleanable
  (the active segment, or the first one too young for
  min.compaction.lag.ms), so then every cleanable sealed segment, taken
  together, holds at most one record per key;
* the log end offset unchanged by cleaning; ``verify()`` empty.

On top of these spec-level checks, each clean is predicted exactly, by
Kafka's rules, from the segment layout seen just before it and the records
read: whether it runs (nothing cleanable; dirty ratio; max.compaction.lag.ms;
a due tombstone horizon; or forced), where each pass ends (the map covers
dirty segments until it holds ``max_keys`` keys; a forced clean makes passes
until no dirty segment is left), which records it keeps (the latest of each
key mapped; a tombstone until a clean at or after delete.retention.ms past
the clean that first kept it), and the cleaner checkpoint it leaves.  The
model allows two freedoms: a tombstone whose horizon ran out while its
segment was not cleanable (min.compaction.lag.ms raised meanwhile) may stay
longer; and a clean that is not forced may also run when a horizon recorded
for a dirty batch copied whole (without looking for tombstones in it) runs
out.

The machine runs twice: on a MemoryFileSystem and on the OS file system in
a temp dir.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (initialize, invariant, precondition,
                                 rule)

from partition_machine import PartitionMachine  # tests/storage/partition_machine.py
import strom
from strom.config import LONG_MAX
from strom.storage.cleaner import DEFAULT_MAX_KEYS, clean_partition

TOPIC = "c"
KEYS = 6

_value = st.one_of(st.none(), st.binary(max_size=40), st.binary(max_size=40),
                   st.binary(max_size=40))  # a tombstone one time in four


class CompactionModel(PartitionMachine):
    topic = TOPIC

    def __init__(self) -> None:
        super().__init__()
        #: offset -> (key, value, timestamp, clock at append), every record ever appended
        self.history: dict[int, tuple[bytes, bytes | None, int, int]] = {}
        self.end = 0
        self.live: set[int] = set()   # offsets that must be readable
        self.loose: set[int] = set()  # tombstones that may be read or not (see the docstring)
        self.seen: dict[int, int] = {}  # tombstone offset -> time of the clean that first kept it
        self.horizons: list[int] = []   # times of cleans that first kept some tombstone, not yet run out
        self.maybe_horizons: list[int] = []  # times of cleans that may have recorded a horizon
        self.clean_end = 0              # the cleaner's checkpoint as the model predicts it

    # -- setup and teardown ----------------------------------------------------------

    @initialize(segment_bytes=st.one_of(st.integers(256, 700), st.integers(256, 4096)),
                delete_retention=st.sampled_from([0, 1_000, 10_000, 60_000]),
                ratio=st.sampled_from([0.0, 0.3, 0.5, 0.99, 1.0]),
                min_lag=st.sampled_from([0, 0, 2_000, 20_000]),
                max_lag=st.sampled_from([LONG_MAX, 3_000, 40_000]),
                index_interval=st.sampled_from([0, 100, 4096]),
                max_keys=st.sampled_from([DEFAULT_MAX_KEYS, 1, 2, 3]))
    def setup(self, segment_bytes, delete_retention, ratio, min_lag, max_lag, index_interval,
              max_keys):
        self.dr = delete_retention
        self.ratio = ratio
        self.min_lag = min_lag
        self.max_lag = max_lag
        self.max_keys = max_keys
        self.open()
        self.log.create_topic(TOPIC, 1, config={
            "cleanup.policy": "compact", "segment.bytes": segment_bytes,
            "delete.retention.ms": delete_retention, "min.cleanable.dirty.ratio": ratio,
            "min.compaction.lag.ms": min_lag, "max.compaction.lag.ms": max_lag,
            "index.interval.bytes": index_interval})
        self.p = self.log.partition(TOPIC, 0)

    def open(self) -> None:
        self.log = strom.open(self.dir, clock=self.clock, fs=self.fs, cleaner=False,
                              cleaner_max_keys=self.max_keys)

    # -- helpers ----------------------------------------------------------------------

    def read_all(self, max_bytes: int = 300) -> list[tuple]:
        """Every record from the log start to the end, following offsets."""
        out: list[tuple] = []
        offset = self.p.log_start_offset
        end = self.p.log_end_offset
        while offset < end:
            batches = self.p.read(offset, max_bytes)
            if not batches:  # nothing left: the last records were dropped tombstones
                break
            for b in batches:
                out.extend(b.records(offset))
            offset = batches[-1].last_offset + 1
        return out

    def plan(self, recs: list[tuple], layout: list[tuple[int, int]], now: int,
             forced: bool) -> dict | None:
        """What one pass of a clean at ``now`` over ``layout`` holding ``recs`` does.

        None if it certainly does not run.  ``sure`` is False when only a horizon that
        may have been set without a tombstone (see :meth:`apply`) would make it due.
        """
        bases = [b for b, _ in layout]
        sizes = [s for _, s in layout]
        by_seg: list[list[tuple]] = [[] for _ in layout]
        for r in recs:
            by_seg[bisect_right(bases, r[0]) - 1].append(r)
        n_cleanable = len(layout) - 1  # sealed segments, oldest first, up to a too young one
        if self.min_lag > 0:
            for i in range(n_cleanable):
                if by_seg[i] and max(r[1] for r in by_seg[i]) > now - self.min_lag:
                    n_cleanable = i
                    break
        if n_cleanable == 0:
            return None
        dirty_offset = max(self.clean_end, bases[0])
        first_dirty = bisect_left(bases, dirty_offset, 0, n_cleanable)
        dirty_bytes = sum(sizes[first_dirty:n_cleanable])
        clean_bytes = sum(sizes[:first_dirty])
        ratio = dirty_bytes / (dirty_bytes + clean_bytes) if dirty_bytes else 0.0
        sure = (forced or (dirty_bytes > 0 and ratio > self.ratio)
                or any(t + self.dr <= now for t in self.horizons))
        if not sure and first_dirty < n_cleanable and self.max_lag < LONG_MAX:
            first = by_seg[first_dirty]
            sure = bool(first) and now - first[0][1] > self.max_lag
        if not sure and not any(t + self.dr <= now for t in self.maybe_horizons):
            return None
        latest: dict[bytes, int] = {}
        covered = 0
        for i in range(first_dirty, n_cleanable):
            for r in by_seg[i]:
                latest[r[2]] = r[0]
            covered += 1
            if len(latest) >= self.max_keys:
                break
        rewrite_end = bases[first_dirty + covered]
        keep: set[int] = set()
        may_keep: set[int] = set()
        first_kept: list[int] = []  # tombstones this pass keeps for the first time
        kept_dirty = False
        for o, _ts, key, value, _h in recs:
            if o >= rewrite_end:
                keep.add(o)
                continue
            if latest.get(key, o) > o:
                continue  # superseded
            kept_dirty |= o >= dirty_offset
            if value is None:
                if o >= dirty_offset:
                    first_kept.append(o)
                elif o in self.loose:
                    may_keep.add(o)
                    continue
                elif self.seen[o] + self.dr <= now:
                    continue  # its delete.retention.ms ran out
            keep.add(o)
        return {"sure": sure, "clean_end": rewrite_end if first_dirty < n_cleanable else dirty_offset,
                "rewrite_end": rewrite_end, "untouched_from": min(rewrite_end, bases[n_cleanable]),
                "cleanable_end": bases[n_cleanable], "more": first_dirty + covered < n_cleanable,
                "keep": keep, "may_keep": may_keep, "first_kept": first_kept,
                "kept_dirty": kept_dirty}

    def apply(self, plan: dict, now: int) -> None:
        """Move the model past one pass of a clean."""
        self.live = plan["keep"]
        self.loose = plan["may_keep"]
        self.clean_end = plan["clean_end"]
        for o in plan["first_kept"]:
            self.seen[o] = now
        self.seen = {o: t for o, t in self.seen.items() if o in self.live | self.loose}
        for o, t in self.seen.items():
            if t + self.dr <= now and o >= plan["rewrite_end"] and o in self.live:
                self.live.discard(o)  # its horizon ran out unused: it may now stay longer
                self.loose.add(o)
        # A pass records a horizon when it keeps a tombstone of the dirty part; it may also
        # record one for a dirty batch it copies whole without looking for tombstones.
        self.horizons = [t for t in self.horizons if t + self.dr > now]
        self.maybe_horizons = [t for t in self.maybe_horizons if t + self.dr > now]
        if plan["first_kept"]:
            self.horizons.append(now)
        if plan["kept_dirty"]:
            self.maybe_horizons.append(now)

    # -- rules ------------------------------------------------------------------------

    @rule(batches=st.lists(st.lists(st.tuples(st.integers(0, KEYS - 1), _value),
                                    min_size=1, max_size=8), min_size=1, max_size=3),
          skew=st.one_of(st.none(), st.lists(st.integers(-5_000, 5_000), min_size=8, max_size=8)),
          then_roll=st.booleans())
    def append(self, batches, skew, then_roll):
        now = self.clock.time_ms()
        for records in batches:
            keys = [b"k%d" % k for k, _ in records]
            values = [v for _, v in records]
            timestamps = None if skew is None else [now + d for d in skew[:len(records)]]
            base = self.p.append(values, keys, timestamps=timestamps, acks=1)
            assert base == self.end
            for i, (key, value) in enumerate(zip(keys, values)):
                self.history[base + i] = (key, value, timestamps[i] if timestamps else now, now)
                self.live.add(base + i)
            self.end += len(records)
        if then_roll:
            self.p.roll()

    @rule()
    def roll(self):
        self.p.roll()

    @precondition(lambda self: self.end > 0)
    @rule(how=st.sampled_from(["force", "due", "compact", "compact_roll"]))
    def clean(self, how):
        now = self.clock.time_ms()
        before = self.read_all()
        layout = self.layout()
        if how == "compact_roll" and layout[-1][1]:
            layout.append((self.end, 0))
        forced = how != "due"
        plan = self.plan(before, layout, now, forced)
        if how in ("force", "due"):
            result = clean_partition(self.p, force=forced, max_keys=self.max_keys)
            cleaned = result is not None
        else:
            result = self.log.compact(TOPIC, roll=how == "compact_roll")
            assert result.partitions in (0, 1)
            cleaned = result.partitions == 1
        assert self.p.log_end_offset == self.end
        if plan is None or not cleaned:
            assert plan is None or not plan["sure"], (how, plan, layout, self.clean_end)
            assert not cleaned, (how, layout, self.clean_end)
            assert self.read_all() == before
            return
        # A forced clean goes on, pass after pass, until no dirty segment is left.  Later
        # passes see the segments below the clean end merged in ways the model does not
        # follow; only where they start matters (cleanability cannot change: the merged
        # segments hold older records only).
        self.apply(plan, now)
        while forced and plan["more"]:
            recs = [r for r in before if r[0] in self.live | self.loose]
            bases = [b for b, _ in layout]
            i = bisect_left(bases, self.clean_end)
            merged = [(bases[0], 0)] if i else []
            plan = self.plan(recs, merged + layout[i:], now, forced)
            self.apply(plan, now)
        if forced:  # every cleanable sealed segment is now below the clean end
            assert self.clean_end >= plan["cleanable_end"], (self.clean_end, plan)
        after = self.read_all()
        present = {r[0] for r in after}
        assert self.live <= present, sorted(self.live - present)
        assert present <= self.live | self.loose, sorted(present - self.live)
        self.loose &= present
        # nothing at or after the clean end or the first segment not cleanable changed
        cut = plan["untouched_from"]
        assert [r for r in after if r[0] >= cut] == [r for r in before if r[0] >= cut]

    @rule()
    def reopen(self):
        self.log.close()
        self.open()
        self.p = self.log.partition(TOPIC, 0)
        r = self.p.last_recovery
        assert (r.bytes_scanned, r.bytes_truncated, r.segments_deleted) == (0, 0, 0), r

    @rule(ms=st.sampled_from([1, 100, 1_000, 5_000, 30_000]))
    def tick(self, ms):
        self.clock.advance(ms)

    @rule(ratio=st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.5, 1.0])),
          min_lag=st.one_of(st.none(), st.sampled_from([0, 2_000, 20_000])))
    def alter(self, ratio, min_lag):
        config = {}
        if ratio is not None:
            config["min.cleanable.dirty.ratio"] = self.ratio = ratio
        if min_lag is not None:
            config["min.compaction.lag.ms"] = self.min_lag = min_lag
        self.log.alter_topic(TOPIC, config)

    @rule(data=st.data())
    def time_lookup(self, data):
        recs = self.read_all()
        if recs:
            target = data.draw(st.sampled_from(recs), label="record")[1] + \
                data.draw(st.integers(-1, 1), label="delta")
        else:
            target = self.clock.time_ms()
        want = next(((r[0], r[1]) for r in recs if r[1] >= target), None)
        assert self.p.offset_for_timestamp(target) == want, target

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def agrees(self):
        if self.log is None:
            return
        p = self.p
        assert p.log_end_offset == self.end
        assert p.log_start_offset == 0  # compaction never moves the log start
        recs = self.read_all()
        offsets = [r[0] for r in recs]
        assert all(a < b for a, b in zip(offsets, offsets[1:])), offsets
        for o, ts, key, value, headers in recs:
            assert (key, value, ts) == self.history[o][:3], o
            assert not headers
        present = set(offsets)
        assert self.live <= present, sorted(self.live - present)
        assert present <= self.live | self.loose, sorted(present - self.live - self.loose)

        # Cleaning touches neither the active segment nor anything at or after the clean end.
        active_base = p.segments[-1].base_offset
        assert self.clean_end <= active_base
        assert set(range(self.clean_end, self.end)) <= present

        # Each key: its latest record is the last one read, or it is gone entirely and was a
        # tombstone appended at least delete.retention.ms ago.
        now = self.clock.time_ms()
        latest: dict[bytes, int] = {}
        for o in sorted(self.history):
            latest[self.history[o][0]] = o
        last_read = {r[2]: r[0] for r in recs}
        for key, o in latest.items():
            _k, value, _ts, appended_at = self.history[o]
            if key in last_read:
                assert last_read[key] == o, (key, last_read[key], o)
            else:
                assert value is None and now >= appended_at + self.dr, (key, o)

        # Below the clean end every clean so far has seen every record: one per key.
        below = [r[2] for r in recs if r[0] < self.clean_end]
        assert len(below) == len(set(below)), below
        cp = p.cleaner_checkpoint()
        assert (cp["dirty_offset"] if cp else 0) == self.clean_end
        assert p.verify() == []


#: About 2 s in memory and 1 s on disk when it passes.  STROM_MODEL_EXAMPLES=2000 (examples
#: for each machine) soaks longer.
_EXAMPLES = os.environ.get("STROM_MODEL_EXAMPLES")
_COMMON = {"deadline": None, "report_multiple_bugs": False,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much]}

CompactionModel.TestCase.settings = settings(
    max_examples=int(_EXAMPLES or 40), stateful_step_count=25, **_COMMON)
TestCompactionModelOnDisk = CompactionModel.TestCase


class MemoryCompactionModel(CompactionModel):
    memory = True


MemoryCompactionModel.TestCase.settings = settings(
    max_examples=int(_EXAMPLES or 150), stateful_step_count=30, **_COMMON)
TestCompactionModelInMemory = MemoryCompactionModel.TestCase
