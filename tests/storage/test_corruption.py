"""Damaged files: strom raises its own errors and never returns wrong data (engine.md 3.7, item 4).

A partition with seven sealed segments and an active one is built once and
closed cleanly; every case copies it, damages some of its files (flipped
bytes, zeroed ranges, truncation, deletion), reopens it and reads every
record it can, segment by segment, skipping to the next segment when a read
raises CorruptRecordError.  Whatever the damage:

* opening raises nothing, or a CorruptRecordError / CorruptMetadataError;
  reading raises nothing but CorruptRecordError, carrying the damaged .log
  file and a byte position;
* every record returned is the one written at that offset (offset,
  timestamp, key, value, headers), returned once, in offset order, with one
  batch per read (an index lookup each) and with the default read budget;
* nothing below the recovery point is truncated at open, and segments whose
  .log file was not touched come back whole;
* damage confined to .index / .timeindex files, the recovery point or the
  lock file's hint costs nothing: every record comes back, verify() is
  clean, every offset can be sought, the indexes are valid afterwards (and
  in a fresh open), and appends continue at the right offset;
* where an open is refused, ``repair=True`` opens it and keeps only right
  records.

The cases are a parametrized table, each named for what it breaks, and a
hypothesis search over random damage to up to three files at once.  The
time index gets its own cases: a damaged entry that still parses must not
make offset_for_timestamp answer wrongly, nor retention.ms delete a
segment that holds fresh records.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strom
from strom.codec.batch import HEADER_SIZE, scan
from strom.storage.checkpoint import encode_meta
from strom.storage.partition import DEFAULT_FETCH_BYTES

TOPIC = "c"
CONFIG = {"segment.bytes": 8192, "index.interval.bytes": 512, "retention.ms": -1}
BASE_TS = 1_700_000_000_000
OFFSET_ENTRY_BYTES = 8
TIME_ENTRY_BYTES = 12


@dataclass(frozen=True)
class SegmentLayout:
    base_offset: int
    log: str  # file names, relative to the partition folder
    index: str
    timeindex: str
    batches: tuple[tuple[int, int, int, int], ...]  # (position, size, base offset, last offset)
    size: int

    @property
    def next_offset(self) -> int:
        return self.batches[-1][3] + 1


@dataclass(frozen=True, repr=False)
class Pristine:
    root: Path  # the data directory, never modified
    records: dict[int, tuple]  # offset -> (offset, timestamp, key, value, headers)
    segments: tuple[SegmentLayout, ...]  # oldest first; the last is the active one
    end: int

    def __repr__(self) -> str:  # short: hypothesis and pytest print it with every failure
        return f"Pristine({str(self.root)!r}, {self.end} records, {len(self.segments)} segments)"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis's printer
        printer.text(repr(self))

    @property
    def sealed(self) -> tuple[SegmentLayout, ...]:
        return self.segments[:-1]


def _build(root: Path) -> Pristine:
    rng = random.Random(20240613)
    written: list[tuple] = []
    with strom.open(root) as log:
        log.create_topic(TOPIC, config=CONFIG)
        p = log.partition(TOPIC, 0)
        i = 0
        # Seven sealed segments, and an active one with several batches and index entries.
        while len(p.segments) < 8 or p.segments[-1].size < 5000:
            i += 1
            n = rng.randint(1, 25)
            off = len(written)
            values = [rng.randbytes(rng.randint(0, 120)) for _ in range(n)]
            keys = [b"k%d" % rng.randrange(9) for _ in range(n)] if i % 3 == 0 else None
            headers = [[("h", b"%d" % j)] if j % 2 else None for j in range(n)] if i % 5 == 0 else None
            timestamps = [BASE_TS + 10 * (off + j) + rng.randint(0, 9) for j in range(n)]
            base = p.append(values, keys=keys, timestamps=timestamps, headers=headers,
                            compression="zstd" if i % 4 == 0 else None)
            assert base == off
            for j in range(n):
                written.append((off + j, timestamps[j], keys[j] if keys else None, values[j],
                                [list(h) for h in headers[j]] if headers and headers[j] else None))
        end = p.log_end_offset
    pdir = root / TOPIC / "0"
    layouts = []
    for name in sorted(os.listdir(pdir)):
        if not name.endswith(".log"):
            continue
        data = (pdir / name).read_bytes()
        res = scan(data)
        assert res.stop is None and res.end == len(data)
        stem = name[:-len(".log")]
        layouts.append(SegmentLayout(
            int(stem), name, stem + ".index", stem + ".timeindex",
            tuple((b.position, b.size, b.base_offset, b.last_offset) for b in res.batches), len(data)))
    records = dict(enumerate(written))
    assert [r[0] for r in written] == list(range(end))
    assert len(layouts) >= 6, "the case table expects several sealed segments"
    return Pristine(root, records, tuple(layouts), end)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Pristine:
    built = _build(tmp_path_factory.mktemp("pristine") / "data")
    with strom.open(built.root) as log:  # the build reads back as written
        p = log.partition(TOPIC, 0)
        for max_bytes in (ONE_BATCH, DEFAULT_FETCH_BYTES):
            result = read_everything(p, max_bytes)
            assert result.records == built.records and not result.errors
        check_time_index_exact(p, built)
    return built


def test_a_tiny_read_budget_is_not_corruption(pristine: Pristine) -> None:
    """max_bytes below a batch header still returns one whole batch; it is no sign of damage."""
    with strom.open(pristine.root) as log:
        p = log.partition(TOPIC, 0)
        for max_bytes in (1, HEADER_SIZE - 1):
            for seg in pristine.segments:
                for _, _, base, last in seg.batches[:3]:
                    batches = p.read(base, max_bytes)
                    assert [(b.base_offset, b.last_offset) for b in batches] == [(base, last)]


# -- damage -------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """One change to one file: ``kind`` is flip, zero, truncate, delete, write or replace."""

    target: str  # a file name in the partition folder, or "topic.json" / "~strom.json"
    kind: str
    position: int = 0
    length: int = 1
    data: bytes = b""
    seed: int = 0

    def path(self, root: Path) -> Path:
        if self.target == "~strom.json":
            return root / self.target
        if self.target == "topic.json":
            return root / TOPIC / self.target
        return root / TOPIC / "0" / self.target

    def apply(self, root: Path) -> None:
        path = self.path(root)
        if self.kind == "delete":
            path.unlink(missing_ok=True)
            return
        if self.kind == "replace":
            path.write_bytes(self.data)
            return
        data = bytearray(path.read_bytes()) if path.exists() else bytearray()
        if self.kind == "flip":
            rng = random.Random(self.seed)
            for _ in range(self.length):
                if data:
                    data[(self.position + rng.randrange(64)) % len(data)] ^= rng.randrange(1, 256)
        elif self.kind == "zero":
            end = min(len(data), self.position + self.length)
            data[self.position:end] = bytes(max(0, end - self.position))
        elif self.kind == "truncate":
            del data[self.position:]
        elif self.kind == "write":
            data[self.position:self.position + len(self.data)] = self.data
        else:
            raise AssertionError(self.kind)
        path.write_bytes(bytes(data))


def damaged_copy(pristine: Pristine, damages, workdir: Path) -> Path:
    root = workdir / "data"
    shutil.copytree(pristine.root, root)
    for d in damages:
        d.apply(root)
    return root


# -- reading everything -----------------------------------------------------------


@dataclass
class ReadResult:
    records: dict[int, tuple]
    errors: list[strom.CorruptRecordError]


#: A read budget of one batch header: each read returns one batch, so every
#: read goes through an index lookup.  (A budget below HEADER_SIZE should do
#: the same; see test_a_tiny_read_budget_is_not_corruption.)
ONE_BATCH = HEADER_SIZE


def read_everything(p: strom.Partition, max_bytes: int = ONE_BATCH) -> ReadResult:
    """Read from the log start to the end, skipping to the next segment after corruption."""
    bases = [s.base_offset for s in p.segments]
    out: dict[int, tuple] = {}
    errors: list[strom.CorruptRecordError] = []
    offset, end = p.log_start_offset, p.log_end_offset
    while offset < end:
        try:
            batches = p.read(offset, max_bytes)
            recs = [r for b in batches for r in b.records(offset)]
        except strom.CorruptRecordError as exc:
            errors.append(exc)
            later = [b for b in bases if b > offset]
            if not later:
                break
            offset = later[0]
            continue
        if not recs:
            break  # nothing more (a segment lost its tail: the rest is a gap)
        for r in recs:
            assert r[0] >= offset and r[0] not in out, f"offset {r[0]} returned out of order or twice"
            out[r[0]] = r
            offset = r[0] + 1
    return ReadResult(out, errors)


def check_no_wrong_data(pristine: Pristine, result: ReadResult) -> None:
    for offset, rec in result.records.items():
        assert rec == pristine.records.get(offset), (
            f"offset {offset}: read {rec!r}, wrote {pristine.records.get(offset)!r}")
    for exc in result.errors:
        assert exc.path is not None and exc.path.endswith(".log"), exc
        assert exc.position is not None and exc.position >= 0, exc


def read_each_offset(p: strom.Partition, pristine: Pristine) -> None:
    """Read every offset on its own (a consumer seeking anywhere): each index entry gets used."""
    for offset in range(pristine.end):
        batches = p.read(offset, ONE_BATCH)
        assert batches and batches[0].base_offset <= offset <= batches[0].last_offset, offset
        assert batches[0].records(offset)[0] == pristine.records[offset]


def check_indexes_valid(p: strom.Partition) -> None:
    """Every offset-index entry points at the start of the batch it names."""
    for seg in p.segments:
        idx = seg.index
        assert list(idx.offsets) == sorted(set(idx.offsets))
        for offset, position in zip(idx.offsets, idx.positions):
            assert seg.index_entry_valid(offset, position), (seg, offset, position)


def check_index_files(root: Path, pristine: Pristine) -> None:
    """In a fresh open, the index files (loaded, or re-derived) find every batch.

    Index files are caches checked on use: a file that fails its load checks
    is rebuilt, and an entry that points at the wrong batch is caught when a
    read uses it.  Reading every offset uses every entry, after which the
    index in memory must be entirely valid.
    """
    with strom.open(root) as log:
        p = log.partition(TOPIC, 0)
        result = read_everything(p, ONE_BATCH)
        assert not result.errors
        assert {o: r for o, r in result.records.items() if o < pristine.end} == pristine.records
        read_each_offset(p, pristine)
        check_indexes_valid(p)


# -- the checks every case runs ----------------------------------------------------


def run_case(pristine: Pristine, damages) -> dict:
    """Damage a copy, reopen, read everything and check; returns what happened."""
    with tempfile.TemporaryDirectory() as tmp:
        root = damaged_copy(pristine, damages, Path(tmp))
        targets = {d.target for d in damages}
        log_targets = {t for t in targets if t.endswith(".log")}
        active_log = pristine.segments[-1].log
        try:
            log = strom.open(root)
        except (strom.CorruptRecordError, strom.CorruptMetadataError) as exc:
            # Only damage to metadata or to the checkpointed segment may refuse an open.
            assert targets & {"topic.json", "~strom.json", "recovery-point", active_log}, (
                f"open refused for damage to {sorted(targets)}: {exc!r}")
            outcome = {"open": type(exc).__name__}
            if not targets & {"topic.json", "~strom.json"}:
                outcome["repaired"] = run_repaired(pristine, root)
            return outcome
        try:
            p = log.partition(TOPIC, 0)
            recovery = p.last_recovery
            # One batch per read (an index lookup each time), then the default budget.
            result = read_everything(p, max_bytes=ONE_BATCH)
            big = read_everything(p, max_bytes=DEFAULT_FETCH_BYTES)
            for r in (result, big):
                check_no_wrong_data(pristine, r)
            assert big.records == result.records
            returned = set(result.records)
            error_files = {os.path.basename(e.path) for e in result.errors + big.errors}
            assert error_files <= log_targets, (
                f"CorruptRecordError for {sorted(error_files)}, but only {sorted(log_targets)} "
                "were damaged")
            damaged_bases = {s.base_offset for s in pristine.segments if s.log in log_targets}
            # Nothing below the recovery point is truncated at open.
            if "recovery-point" not in targets:
                assert recovery.bytes_truncated == 0 and recovery.segments_deleted == 0, recovery
            # Untouched segments come back whole, unless a lost recovery point made
            # the open scan (and cut) from the start.
            if not (recovery.full_scan and damaged_bases):
                for seg in pristine.segments:
                    if seg.base_offset in damaged_bases:
                        continue
                    missing = set(range(seg.base_offset, seg.next_offset)) - returned
                    assert not missing, (f"segment {seg.base_offset} was not damaged, but offsets "
                                         f"{sorted(missing)[:5]}... did not come back")
            if not log_targets:
                # Only caches, the checkpoint or the hint were damaged: nothing is lost.
                assert result.records == pristine.records and not result.errors
                assert p.log_end_offset == pristine.end
                assert p.verify() == []
                read_each_offset(p, pristine)
                check_indexes_valid(p)
                ts = BASE_TS + 10 * pristine.end
                assert p.append([b"after damage"], timestamps=ts) == pristine.end
                assert p.read_records(pristine.end) == [(pristine.end, ts, None, b"after damage", None)]
            problems = p.verify() if log_targets else []
            outcome = {"open": "ok", "errors": len(result.errors), "returned": len(returned),
                       "recovery": recovery, "verify": problems}
        finally:
            log.close()
        if not log_targets:
            check_index_files(root, pristine)
        elif result.errors:
            outcome["repaired"] = run_repaired(pristine, root)
        return outcome


def run_repaired(pristine: Pristine, root: Path) -> int:
    """Open with repair=True: the damage is cut off, and what is left is right."""
    with strom.open(root, repair=True) as log:
        p = log.partition(TOPIC, 0)
        result = read_everything(p)
        check_no_wrong_data(pristine, result)
        # Every batch left is valid (a cut at a batch boundary elsewhere may leave a gap).
        assert not result.errors and p.verify() == []
        assert p.log_end_offset <= pristine.end
        return len(result.records)


# -- the table ----------------------------------------------------------------------


def _cases(pristine: Pristine) -> dict[str, tuple[list[Damage], str]]:
    """name -> (damages, expectation); built from the layout so positions hit what they name.

    Expectations: "all" every record back; "reported" a CorruptRecordError
    names the damaged .log file, and so does verify(); "verify" no record is
    lost, but verify() names the damaged file; "gap" records are missing but nothing is
    reported (a cut at a batch boundary leaves only valid batches); "refused"
    opening raises CorruptRecordError or CorruptMetadataError.
    """
    s0, s1, s2 = pristine.segments[0], pristine.segments[1], pristine.segments[2]
    act = pristine.segments[-1]
    mid = s1.batches[len(s1.batches) // 2]
    last0 = s0.batches[-1]
    return {
        # .log files of sealed segments
        "log: checksum bytes overwritten": (
            [Damage(s1.log, "write", mid[0], data=b"\xff\x00\xff")], "reported"),
        "log: flip in a payload": ([Damage(s1.log, "flip", mid[0] + HEADER_SIZE + 3, 1)], "reported"),
        "log: flip base_offset": ([Damage(s1.log, "write", mid[0] + 16, data=b"\x07")], "reported"),
        "log: flip batch_size of the last batch": (
            [Damage(s0.log, "write", last0[0] + 9, data=b"\x7f")], "reported"),
        "log: zero 100 bytes": ([Damage(s2.log, "zero", s2.size // 3, 100)], "reported"),
        "log: zero the whole file": ([Damage(s1.log, "zero", 0, s1.size)], "reported"),
        "log: zero the first header": ([Damage(s0.log, "zero", 0, HEADER_SIZE)], "reported"),
        "log: cut inside a batch": ([Damage(s1.log, "truncate", mid[0] + 10)], "reported"),
        "log: cut at a batch boundary": ([Damage(s1.log, "truncate", mid[0])], "gap"),
        "log: cut to nothing": ([Damage(s1.log, "truncate", 0)], "gap"),
        "log: deleted": ([Damage(s1.log, "delete")], "gap"),
        "log: garbage appended": ([Damage(s1.log, "write", s1.size, data=b"\x01" * 100)], "verify"),
        "log: a batch copied over its neighbour": (
            [Damage(s1.log, "write", mid[0], data=_batch_bytes(pristine, s1, len(s1.batches) // 2 - 1))],
            "reported"),
        "log: damage in three segments": ([Damage(s0.log, "flip", 100, 2, seed=1),
                                           Damage(s2.log, "truncate", s2.size - 5),
                                           Damage(pristine.segments[4].log, "zero", 0, 64)],
                                          "reported"),
        # the active segment, below its recovery point
        "active log: flip below the recovery point": (
            [Damage(act.log, "flip", act.batches[1][0] + 70, 1)], "reported"),
        "active log: cut below the recovery point": ([Damage(act.log, "truncate", act.size // 2)],
                                                     "refused"),
        "active log: deleted": ([Damage(act.log, "delete")], "refused"),
        # offset index files
        "index: deleted": ([Damage(s1.index, "delete")], "all"),
        "index: torn entry": ([Damage(s1.index, "truncate", 11)], "all"),
        "index: emptied": ([Damage(s1.index, "truncate", 0)], "all"),
        "index: zeroed": ([Damage(s1.index, "zero", 0, 1 << 20)], "all"),
        "index: middle entry points one byte late": (
            [Damage(s1.index, "write", 3 * OFFSET_ENTRY_BYTES + 4,
                    data=(_entry(pristine, s1, 3)[1] + 1).to_bytes(4, "little"))], "all"),
        "index: middle entry names the wrong offset": (
            [Damage(s1.index, "write", 3 * OFFSET_ENTRY_BYTES,
                    data=(_entry(pristine, s1, 3)[0] - s1.base_offset + 1).to_bytes(4, "little"))],
            "all"),
        "index: middle entry points at the next entry's batch": (
            [Damage(s1.index, "write", 3 * OFFSET_ENTRY_BYTES + 4,
                    data=_entry(pristine, s1, 4)[1].to_bytes(4, "little"))], "all"),
        "index: first entry moved off position 0": (
            [Damage(s1.index, "write", 0, data=(0).to_bytes(4, "little") + (1).to_bytes(4, "little"))],
            "all"),
        "index: last entry past the segment": (
            [Damage(s2.index, "write", _index_size(pristine, s2) - 4,
                    data=(s2.size + 100).to_bytes(4, "little"))], "all"),
        "index: entries swapped": ([Damage(s1.index, "replace", data=_swapped(pristine, s1))], "all"),
        "index: random bytes of the same size": (
            [Damage(s1.index, "replace", data=random.Random(5).randbytes(_index_size(pristine, s1)))],
            "all"),
        "index: the active segment's, one entry late": (
            [Damage(act.index, "write", 1 * OFFSET_ENTRY_BYTES + 4,
                    data=(_entry(pristine, act, 1)[1] + 64).to_bytes(4, "little"))], "all"),
        "index: the active segment's, deleted": ([Damage(act.index, "delete")], "all"),
        "index: every one deleted": ([Damage(s.index, "delete") for s in pristine.segments], "all"),
        # time index files
        "timeindex: deleted": ([Damage(s1.timeindex, "delete")], "all"),
        "timeindex: torn entry": ([Damage(s1.timeindex, "truncate", 13)], "all"),
        "timeindex: zeroed": ([Damage(s1.timeindex, "zero", 0, 1 << 20)], "all"),
        "timeindex: random bytes": (
            [Damage(s2.timeindex, "replace", data=random.Random(6).randbytes(36))], "all"),
        "timeindex: the active segment's, flipped": (
            [Damage(act.timeindex, "flip", 0, 4, seed=3)], "all"),
        # the recovery point
        "recovery-point: deleted": ([Damage("recovery-point", "delete")], "all"),
        "recovery-point: flipped": ([Damage("recovery-point", "flip", 30, 1, seed=4)], "all"),
        "recovery-point: emptied": ([Damage("recovery-point", "truncate", 0)], "all"),
        "recovery-point: cut in its header": ([Damage("recovery-point", "truncate", 10)], "all"),
        "recovery-point: valid checksum, negative fields": (
            [Damage("recovery-point", "replace",
                    data=encode_meta("recovery", {"segment": -1, "position": 0, "offset": 0}))], "all"),
        "recovery-point: valid checksum, not numbers": (
            [Damage("recovery-point", "replace",
                    data=encode_meta("recovery", {"segment": "x", "position": [], "offset": None}))],
            "all"),
        "recovery-point: valid checksum, past the end of its segment": (
            [Damage("recovery-point", "replace", data=encode_meta(
                "recovery", {"segment": act.base_offset, "position": 10**9, "offset": pristine.end}))],
            "refused"),
        "recovery-point: lost, and a sealed segment damaged": (
            [Damage("recovery-point", "delete"), Damage(s2.log, "flip", 200, 1, seed=2)], "any"),
        # the lock file's hint
        "lock: garbage hint": ([Damage("lock", "replace", data=random.Random(7).randbytes(32))], "all"),
        "lock: emptied": ([Damage("lock", "truncate", 0)], "all"),
        # metadata
        "topic.json: flipped": ([Damage("topic.json", "flip", 40, 1, seed=8)], "refused"),
        "topic.json: emptied": ([Damage("topic.json", "truncate", 0)], "refused"),
        "topic.json: cut in its body": ([Damage("topic.json", "truncate", 45)], "refused"),
        "~strom.json: flipped": ([Damage("~strom.json", "flip", 30, 1, seed=9)], "refused"),
    }


def _batch_bytes(pristine: Pristine, seg: SegmentLayout, i: int) -> bytes:
    pos, size, _, _ = seg.batches[i]
    with open(pristine.root / TOPIC / "0" / seg.log, "rb") as f:
        f.seek(pos)
        return f.read(size)


def _index_entries(pristine: Pristine, seg: SegmentLayout) -> list[tuple[int, int]]:
    data = (pristine.root / TOPIC / "0" / seg.index).read_bytes()
    return [(seg.base_offset + int.from_bytes(data[i:i + 4], "little"),
             int.from_bytes(data[i + 4:i + 8], "little")) for i in range(0, len(data), 8)]


def _entry(pristine: Pristine, seg: SegmentLayout, i: int) -> tuple[int, int]:
    entries = _index_entries(pristine, seg)
    assert len(entries) > i, f"segment {seg.base_offset} has {len(entries)} index entries"
    return entries[i]


def _index_size(pristine: Pristine, seg: SegmentLayout) -> int:
    return (pristine.root / TOPIC / "0" / seg.index).stat().st_size


def _swapped(pristine: Pristine, seg: SegmentLayout) -> bytes:
    data = (pristine.root / TOPIC / "0" / seg.index).read_bytes()
    return data[8:16] + data[0:8] + data[16:]


CASE_NAMES = [
    "log: checksum bytes overwritten", "log: flip in a payload", "log: flip base_offset",
    "log: flip batch_size of the last batch", "log: zero 100 bytes", "log: zero the whole file",
    "log: zero the first header", "log: cut inside a batch", "log: cut at a batch boundary",
    "log: cut to nothing", "log: deleted", "log: garbage appended",
    "log: a batch copied over its neighbour", "log: damage in three segments",
    "active log: flip below the recovery point", "active log: cut below the recovery point",
    "active log: deleted",
    "index: deleted", "index: torn entry", "index: emptied", "index: zeroed",
    "index: middle entry points one byte late", "index: middle entry names the wrong offset",
    "index: middle entry points at the next entry's batch", "index: first entry moved off position 0",
    "index: last entry past the segment", "index: entries swapped",
    "index: random bytes of the same size", "index: the active segment's, one entry late",
    "index: the active segment's, deleted", "index: every one deleted",
    "timeindex: deleted", "timeindex: torn entry", "timeindex: zeroed", "timeindex: random bytes",
    "timeindex: the active segment's, flipped",
    "recovery-point: deleted", "recovery-point: flipped", "recovery-point: emptied",
    "recovery-point: cut in its header", "recovery-point: valid checksum, negative fields",
    "recovery-point: valid checksum, not numbers",
    "recovery-point: valid checksum, past the end of its segment",
    "recovery-point: lost, and a sealed segment damaged",
    "lock: garbage hint", "lock: emptied",
    "topic.json: flipped", "topic.json: emptied", "topic.json: cut in its body",
    "~strom.json: flipped",
]


def test_case_table_is_complete(pristine: Pristine) -> None:
    assert sorted(_cases(pristine)) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_damage(pristine: Pristine, name: str) -> None:
    damages, expect = _cases(pristine)[name]
    outcome = run_case(pristine, damages)
    if expect == "refused":
        assert outcome["open"] != "ok", outcome
        return
    assert outcome["open"] == "ok", outcome
    if expect == "all":
        assert outcome["returned"] == pristine.end and outcome["errors"] == 0, outcome
    elif expect == "reported":
        assert outcome["errors"] >= 1, f"damage to a .log file went unreported: {outcome}"
    if expect in ("reported", "verify"):
        damaged = {d.target for d in damages if d.target.endswith(".log")}
        named = {os.path.basename(problem.split(" @ ")[0]) for problem in outcome["verify"]}
        assert named & damaged, f"verify() did not name {sorted(damaged)}: {outcome['verify']}"
    elif expect == "gap":
        assert outcome["returned"] < pristine.end, outcome


# -- random damage ------------------------------------------------------------------

#: Which files random damage hits, weighted: .log files of sealed segments most.
_TARGET_KINDS = ("log", "log", "log", "index", "index", "timeindex", "timeindex",
                 "recovery-point", "topic.json")


@st.composite
def random_damages(draw) -> list[tuple]:
    """1..3 abstract damages; :func:`_resolve` turns them into Damage for the layout."""
    return draw(st.lists(st.tuples(
        st.sampled_from(_TARGET_KINDS),
        st.integers(0, 1 << 16),                       # which segment
        st.sampled_from(("flip", "zero", "truncate")),
        st.floats(0.0, 1.0, allow_nan=False),          # where, as a share of the file
        st.integers(1, 300),                           # how many bytes (flip: up to 8)
        st.integers(0, 1 << 16),                       # seed of the flipped bytes
    ), min_size=1, max_size=3))


def _resolve(pristine: Pristine, raw: list[tuple]) -> list[Damage]:
    out = []
    for kind, k, how, where, length, seed in raw:
        if kind == "log":
            target = pristine.sealed[k % len(pristine.sealed)].log
        elif kind in ("index", "timeindex"):
            target = getattr(pristine.segments[k % len(pristine.segments)], kind)
        else:
            target = kind
        size = Damage(target, how).path(pristine.root).stat().st_size
        position = min(int(where * size), max(size - 1, 0))
        out.append(Damage(target, how, position, min(length, 8) if how == "flip" else length,
                          seed=seed))
    return out


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=random_damages())
def test_random_damage(pristine: Pristine, raw: list[tuple]) -> None:
    damages = _resolve(pristine, raw)
    run_case(pristine, damages)


# -- the time index: a well-formed but wrong entry ------------------------------------


def _time_entries(pristine: Pristine, seg: SegmentLayout) -> list[tuple[int, int]]:
    data = (pristine.root / TOPIC / "0" / seg.timeindex).read_bytes()[:-8]  # less the trailer
    return [(int.from_bytes(data[i:i + 8], "little", signed=True),
             int.from_bytes(data[i + 8:i + 12], "little")) for i in range(0, len(data), 12)]


def _time_file(entries: list[tuple[int, int]], trailer: bytes = bytes(8)) -> bytes:
    """A time index holding ``entries``, ending with ``trailer`` (by default one that
    no longer matches: damaged entries, as a disk would leave them)."""
    data = b"".join(ts.to_bytes(8, "little", signed=True) + rel.to_bytes(4, "little")
                    for ts, rel in entries)
    return data + trailer


def _true_max_ts(pristine: Pristine, seg: SegmentLayout, offset: int) -> int:
    """Largest timestamp in ``seg`` up to the end of the batch holding ``offset``."""
    last = next(b[3] for b in seg.batches if b[2] <= offset <= b[3])
    return max(pristine.records[o][1] for o in range(seg.base_offset, last + 1))


def check_time_index_exact(p: strom.Partition, pristine: Pristine) -> None:
    """Each time-index entry holds the largest timestamp up to its batch (what the writer wrote)."""
    for seg, layout in zip(p.segments, pristine.segments):
        ti = seg.timeindex
        assert len(ti) > 0
        for ts, offset in zip(ti.timestamps, ti.offsets):
            assert ts == _true_max_ts(pristine, layout, offset), (layout.base_offset, ts, offset)


def _timestamp_targets(pristine: Pristine) -> list[int]:
    targets = {BASE_TS - 1000, max(r[1] for r in pristine.records.values()) + 1}
    for seg in pristine.segments:
        for _, _, base, last in seg.batches:
            for o in (base, last):
                ts = pristine.records[o][1]
                targets.update((ts - 1, ts, ts + 1))
    return sorted(targets)


def _expected_for_timestamp(pristine: Pristine, target: int):
    for offset in range(pristine.end):
        if pristine.records[offset][1] >= target:
            return offset, pristine.records[offset][1]
    return None


def _time_cases(pristine: Pristine) -> dict[str, list[Damage]]:
    s1, s2 = pristine.segments[1], pristine.segments[2]
    e1, e2 = _time_entries(pristine, s1), _time_entries(pristine, s2)
    assert len(e1) >= 4 and len(e2) >= 4
    k = len(e1) // 2
    lowered_middle = list(e1)
    lowered_middle[k] = (e1[k][0] - 1, e1[k][1])
    lowered_last = list(e1)
    lowered_last[-1] = (e1[-2][0] + 1, e1[-1][1])
    shifted = [(ts - 3_600_000, rel) for ts, rel in e2]
    first_ancient = [(0, e2[0][1])] + e2[1:]
    later_offset = list(e1)
    later_offset[k] = (e1[k][0], e1[k + 1][1])
    return {
        "a middle entry's timestamp one lower": [Damage(s1.timeindex, "replace",
                                                        data=_time_file(lowered_middle))],
        "the sealing entry lowered to just above the one before": [
            Damage(s1.timeindex, "replace", data=_time_file(lowered_last))],
        "every timestamp an hour earlier": [Damage(s2.timeindex, "replace", data=_time_file(shifted))],
        "the first entry's timestamp in 1970": [Damage(s2.timeindex, "replace",
                                                       data=_time_file(first_ancient))],
        "a middle entry names the next entry's batch": [
            Damage(s1.timeindex, "replace", data=_time_file(later_offset))],
    }


TIME_CASE_NAMES = [
    "a middle entry's timestamp one lower",
    "the sealing entry lowered to just above the one before",
    "every timestamp an hour earlier",
    "the first entry's timestamp in 1970",
    "a middle entry names the next entry's batch",
]


def check_offsets_for_times(pristine: Pristine, root: Path) -> None:
    with strom.open(root) as log:
        p = log.partition(TOPIC, 0)
        wrong = []
        for target in _timestamp_targets(pristine):
            got = p.offset_for_timestamp(target)
            want = _expected_for_timestamp(pristine, target)
            if got != want:
                wrong.append((target, got, want))
        assert not wrong, (f"{len(wrong)} wrong offset_for_timestamp answers, e.g. "
                           f"(target, got, expected) {wrong[:3]}")


def test_offset_for_timestamp_on_the_pristine_log(pristine: Pristine, tmp_path: Path) -> None:
    root = damaged_copy(pristine, [], tmp_path)
    check_offsets_for_times(pristine, root)


@pytest.mark.parametrize("name", TIME_CASE_NAMES)
def test_time_index_damage_gives_no_wrong_offset(pristine: Pristine, tmp_path: Path, name: str) -> None:
    assert sorted(_time_cases(pristine)) == sorted(TIME_CASE_NAMES)
    root = damaged_copy(pristine, _time_cases(pristine)[name], tmp_path)
    check_offsets_for_times(pristine, root)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 1 << 16), entry=st.integers(0, 1 << 16), byte=st.integers(0, 11),
       bit=st.integers(0, 7))
def test_time_index_bit_flip_gives_no_wrong_offset(pristine: Pristine, k: int, entry: int,
                                                   byte: int, bit: int) -> None:
    seg = pristine.segments[k % len(pristine.segments)]
    n = len(_time_entries(pristine, seg))
    position = (entry % n) * TIME_ENTRY_BYTES + byte
    with tempfile.TemporaryDirectory() as tmp:
        root = damaged_copy(pristine, [], Path(tmp))
        path = root / TOPIC / "0" / seg.timeindex
        data = bytearray(path.read_bytes())
        data[position] ^= 1 << bit
        path.write_bytes(bytes(data))
        check_offsets_for_times(pristine, root)


def test_time_index_damage_does_not_make_retention_delete_fresh_records(
        pristine: Pristine, tmp_path: Path) -> None:
    """retention.ms must judge a sealed segment by its records, not by a damaged cache."""
    s1 = pristine.segments[1]
    root = damaged_copy(pristine, _time_cases(pristine)[
        "the sealing entry lowered to just above the one before"], tmp_path)
    retention_ms = 60_000
    newest_in_s1 = max(pristine.records[o][1] for o in range(s1.base_offset, s1.next_offset))
    now_ms = newest_in_s1 + retention_ms  # s1's newest record is exactly retention.ms old: keep
    with strom.open(root) as log:
        log.alter_topic(TOPIC, {"retention.ms": retention_ms})
        deleted = log.enforce_retention(now_ms=now_ms)
        p = log.partition(TOPIC, 0)
        assert p.log_start_offset == s1.base_offset, (
            f"retention deleted {deleted} segments; the log now starts at {p.log_start_offset}, "
            f"but segment {s1.base_offset} holds a record from {now_ms - newest_in_s1} ms ago "
            f"(retention.ms={retention_ms})")
        assert deleted == 1
