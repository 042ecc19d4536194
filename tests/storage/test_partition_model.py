"""Model test: one partition against a plain Python list of records.

A hypothesis state machine appends, reads, rolls, reopens, truncates and
applies retention to a real partition, and does the same to a list of
``(offset, timestamp, key, value, headers)`` tuples plus the list of batch
base offsets; after every step the two must agree.

Retention is predicted from the segment layout seen on disk just before the
step (file sizes) and the model's timestamps (each segment's largest one),
with Kafka's rules: a sealed segment goes when what stays is still at least
``retention.bytes``, or when its largest timestamp is more than
``retention.ms`` old; only a prefix of sealed segments, never the active one.
Rolls apply retention too, so appends and rolls are checked the same way.

The machine runs twice: on the OS file system in a temp dir, and on a
MemoryFileSystem (the two must behave the same).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (initialize, invariant, precondition,
                                 rule)

from partition_machine import PartitionMachine  # tests/storage/partition_machine.py
import strom
from strom import OffsetOutOfRangeError
from strom.storage.segment import segment_name

TOPIC = "m"

_headers = st.one_of(
    st.none(),
    st.just([]),
    st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=8))),
             min_size=1, max_size=3),
)
_record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=16)),   # key
    st.one_of(st.none(), st.binary(max_size=120)),  # value (None: a tombstone)
    _headers,
    st.integers(-60_000, 60_000),                   # timestamp, relative to the clock
)


def _norm_headers(h):
    return [tuple(pair) for pair in h] if h else None


class PartitionModel(PartitionMachine):
    topic = TOPIC

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple] = []  # records from log_start_offset to the end
        self.batches: list[int] = []    # base offsets of the batches in self.records
        self.start = 0
        self.end = 0

    # -- setup and teardown ----------------------------------------------------------

    @initialize(segment_bytes=st.integers(512, 4096),
                index_interval=st.sampled_from([0, 64, 300, 1000, 4096]),
                retention_ms=st.sampled_from([-1, 0, 5_000, 30_000, 120_000]),
                retention_bytes=st.sampled_from([-1, 0, 1_000, 3_000, 10_000]),
                segment_ms=st.sampled_from([604_800_000, 10_000, 60_000]))
    def setup(self, segment_bytes, index_interval, retention_ms, retention_bytes, segment_ms):
        self.retention_ms = retention_ms
        self.retention_bytes = retention_bytes
        self.log = strom.open(self.dir, clock=self.clock, fs=self.fs)
        self.log.create_topic(TOPIC, 1, config={
            "segment.bytes": segment_bytes, "index.interval.bytes": index_interval,
            "retention.ms": retention_ms, "retention.bytes": retention_bytes,
            "segment.ms": segment_ms})
        self.p = self.log.partition(TOPIC, 0)

    # -- model helpers ----------------------------------------------------------------

    def max_ts(self, lo: int, hi: int) -> int | None:
        recs = self.records[lo - self.start:hi - self.start]
        return max(r[1] for r in recs) if recs else None

    def predict_retention(self, layout: list[tuple[int, int]], end: int, now: int) -> int:
        """How many leading segments Kafka's rules delete from ``layout`` (the last is active)."""
        sealed = layout[:-1]
        count = 0
        if self.retention_bytes >= 0:
            excess = sum(size for _, size in layout) - self.retention_bytes
            for _, size in sealed:
                if excess - size < 0:
                    break
                excess -= size
                count += 1
        if self.retention_ms >= 0:
            n = 0
            bounds = [b for b, _ in layout] + [end]
            for i, _ in enumerate(sealed):
                ts = self.max_ts(bounds[i], bounds[i + 1])
                if ts is not None and now - ts <= self.retention_ms:
                    break
                n += 1
            count = max(count, n)
        return count

    def drop_prefix(self, new_start: int) -> None:
        assert new_start >= self.start, (new_start, self.start)
        assert new_start == self.end or new_start in self.batches, "start is not a batch boundary"
        del self.records[:new_start - self.start]
        self.batches = [b for b in self.batches if b >= new_start]
        self.start = new_start

    def check_retention_step(self, before: list[tuple[int, int]], rolled: bool) -> None:
        """After an append or roll: did the roll's retention delete exactly the predicted prefix?"""
        after_start = self.p.log_start_offset
        if not rolled:
            assert after_start == self.start, "segments deleted without a roll"
            return
        # retention ran right after the roll, on the old segments plus the new empty one
        new_base = self.p.segments[-1].base_offset
        expected = self.predict_retention(before + [(new_base, 0)], new_base, self.clock.time_ms())
        bases = [b for b, _ in before] + [new_base]
        assert after_start == bases[expected], (after_start, bases, expected)
        self.drop_prefix(after_start)

    def read_everything(self, offset: int, max_bytes: int) -> list[tuple]:
        out: list[tuple] = []
        while offset < self.end:
            batches = self.p.read(offset, max_bytes)
            assert batches, f"read({offset}, {max_bytes}) returned nothing below the end {self.end}"
            first = batches[0]
            assert first.base_offset <= offset <= first.last_offset
            for a, b in zip(batches, batches[1:]):
                assert b.base_offset == a.next_offset
            for b in batches:
                assert b.base_offset in self.batches
                out.extend(b.records(offset))
            offset = batches[-1].next_offset
        return out

    def expected_from(self, offset: int) -> list[tuple]:
        return self.records[offset - self.start:]

    # -- rules ------------------------------------------------------------------------

    @rule(records=st.lists(_record, min_size=1, max_size=20),
          ts_mode=st.sampled_from(["clock", "one", "each"]),
          with_keys=st.booleans(), with_headers=st.booleans(),
          acks=st.sampled_from([1, "all"]), compression=st.sampled_from([None, "zstd"]))
    def append(self, records, ts_mode, with_keys, with_headers, acks, compression):
        now = self.clock.time_ms()
        values = [r[1] for r in records]
        keys = [r[0] for r in records] if with_keys else None
        headers = [r[2] for r in records] if with_headers else None
        if ts_mode == "clock":
            timestamps, ts = None, [now] * len(records)
        elif ts_mode == "one":
            timestamps = now + records[0][3]
            ts = [timestamps] * len(records)
        else:
            timestamps = ts = [now + r[3] for r in records]
        before = self.layout()
        old_active = before[-1][0]
        base = self.p.append(values, keys=keys, timestamps=timestamps, headers=headers,
                             acks=acks, compression=compression)
        assert base == self.end
        self.batches.append(base)
        for i, r in enumerate(records):
            self.records.append((base + i, ts[i], keys[i] if keys else None, values[i],
                                 _norm_headers(headers[i]) if headers else None))
        self.end += len(records)
        self.check_retention_step(before, rolled=self.p.segments[-1].base_offset != old_active)

    @rule()
    def roll(self):
        before = self.layout()
        active_base, active_size = before[-1]
        new_base = self.p.roll()
        if active_size:
            assert new_base == self.end
        else:
            assert new_base == active_base
        self.check_retention_step(before, rolled=bool(active_size))

    @precondition(lambda self: self.end > self.start)
    @rule(data=st.data(), max_bytes=st.sampled_from([64, 100, 300, 1000, 1 << 20]))
    def read(self, data, max_bytes):
        offset = data.draw(st.integers(self.start, self.end - 1), label="offset")
        got = [(o, ts, k, v, _norm_headers(h)) for o, ts, k, v, h in
               self.read_everything(offset, max_bytes)]
        assert got == self.expected_from(offset)

    @precondition(lambda self: self.end > self.start)
    @rule(data=st.data(), max_records=st.integers(1, 30))
    def read_records(self, data, max_records):
        offset = data.draw(st.integers(self.start, self.end - 1), label="offset")
        got = [(o, ts, k, v, _norm_headers(h)) for o, ts, k, v, h in
               self.p.read_records(offset, max_records)]
        want = self.expected_from(offset)
        assert 1 <= len(got) <= max_records
        assert got == want[:len(got)]

    @rule(beyond=st.integers(1, 5))
    def read_out_of_range(self, beyond):
        assert self.p.read(self.end) == []
        assert self.p.read_records(self.end) == []
        for bad in (self.end + beyond, self.start - beyond):
            try:
                self.p.read(bad)
            except OffsetOutOfRangeError as exc:
                assert exc.offset == bad
            else:
                raise AssertionError(f"read({bad}) outside [{self.start}, {self.end}] did not raise")

    @rule()
    def reopen(self):
        self.log.close()
        self.log = strom.open(self.dir, clock=self.clock, fs=self.fs)
        self.p = self.log.partition(TOPIC, 0)
        r = self.p.last_recovery
        assert (r.bytes_scanned, r.bytes_truncated, r.segments_deleted) == (0, 0, 0), r

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(self.start - 2, self.end + 2), label="offset")
        if offset < self.start:
            try:
                self.p.truncate_to(offset)
            except OffsetOutOfRangeError:
                return
            raise AssertionError(f"truncate_to({offset}) below the start {self.start} did not raise")
        new_end = self.p.truncate_to(offset)
        if offset >= self.end:
            assert new_end == self.end
            return
        expected = max(b for b in self.batches if b <= offset)
        assert new_end == expected, (offset, new_end, expected)
        del self.records[new_end - self.start:]
        self.batches = [b for b in self.batches if b < new_end]
        self.end = new_end
        assert self.p.log_start_offset == self.start

    @rule(advance=st.sampled_from([0, 1, 1_000, 5_001, 30_001, 120_001]),
          via_log=st.booleans())
    def retention(self, advance, via_log):
        now = self.clock.advance(advance)
        before = self.layout()
        expected = self.predict_retention(before, self.end, now)
        deleted = self.log.enforce_retention() if via_log else self.p.delete_old_segments(now)
        assert deleted == expected, (deleted, expected, before)
        new_start = self.p.log_start_offset
        assert new_start == before[expected][0]
        assert new_start <= self.p.segments[-1].base_offset  # never the active segment
        self.drop_prefix(new_start)
        names = {n for n in self.fs.listdir(self.pdir) if n.endswith(".log")}
        assert names == {segment_name(b) for b, _ in before[expected:]}

    @rule(data=st.data(), near=st.sampled_from(["a record", "the newest", "the clock"]))
    def time_lookup(self, data, near):
        if self.records and near == "a record":
            rec = data.draw(st.sampled_from(self.records), label="record")
            target = rec[1] + data.draw(st.integers(-2, 2), label="delta")
        elif self.records and near == "the newest":  # the records a consumer asks for most
            newest = max(r[1] for r in self.records[-20:])
            target = newest + data.draw(st.integers(-1, 1), label="delta")
        else:
            target = self.clock.time_ms() + data.draw(st.integers(-100_000, 100_000), label="t")
        want = next(((r[0], r[1]) for r in self.records if r[1] >= target), None)
        assert self.p.offset_for_timestamp(target) == want, target

    @rule(ms=st.integers(0, 20_000))
    def tick(self, ms):
        self.clock.advance(ms)

    @rule()
    def flush(self):
        self.p.flush()

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def offsets_agree(self):
        if self.log is None:
            return
        assert self.p.log_end_offset == self.end
        assert self.p.log_start_offset == self.start
        assert [r[0] for r in self.records] == list(range(self.start, self.end))  # dense
        segs = self.p.segments
        bases = [s.base_offset for s in segs]
        assert bases[0] == self.start
        assert bases == sorted(set(bases))
        assert all(b == self.end or b in self.batches for b in bases)
        on_disk = sorted(n for n in self.fs.listdir(self.pdir) if n.endswith(".log"))
        assert on_disk == [segment_name(b) for b in bases]

    # verify() is a rule, not an invariant: its scan refreshes each segment's in-memory
    # largest timestamp, so running it after every step would hide stale-state bugs from
    # the time lookup and retention rules.  teardown() runs it once more.
    @rule()
    def verify(self):
        assert self.p.verify() == []


#: About 8 s when it passes.  STROM_MODEL_EXAMPLES=2000 soaks longer.  A failure costs up to
#: two minutes of shrinking (file-system steps are slow to replay); hypothesis's database
#: then replays the shrunk case at once on the next run.
PartitionModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("STROM_MODEL_EXAMPLES", "400")), stateful_step_count=40,
    deadline=None, report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestPartitionModel = PartitionModel.TestCase


class MemoryPartitionModel(PartitionModel):
    memory = True


MemoryPartitionModel.TestCase.settings = PartitionModel.TestCase.settings
TestMemoryPartitionModel = MemoryPartitionModel.TestCase
