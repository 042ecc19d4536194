"""The log cleaner: compaction of topics whose cleanup.policy includes "compact".

Theory of operation (Kafka's log cleaner, research/engine.md section 1.7)
------------------------------------------------------------------------
A partition's sealed segments split at the *dirty offset* (the cleaner's
checkpoint) into a clean head, already compacted, and a dirty tail written
since.  The active segment is never cleaned, nor a sealed segment whose
newest record is younger than ``min.compaction.lag.ms``.  A partition is
cleaned when its dirty bytes are more than ``min.cleanable.dirty.ratio`` of
its cleanable bytes, when its oldest dirty record has waited
``max.compaction.lag.ms``, when a tombstone's ``delete.retention.ms`` has run
out, or on demand (:meth:`strom.Log.compact`).

Pass 1 reads the keys of the dirty tail into a map, key -> latest offset.
Pass 2 copies every cleanable segment, oldest first, in groups of
consecutive segments whose sizes add up to at most ``segment.bytes``,
keeping a record when it is the latest of its key in the map (or its key is
not in the map).  A batch whose records all stay is copied byte for byte; a
batch that loses some is re-encoded with the same offsets and timestamps
(offset gaps are what readers see); an emptied batch disappears.  Records
without a key are dropped (Kafka's rule; strom refuses them on append to a
compacted topic).

Tombstones (a record whose value is None) stay ``delete.retention.ms`` after
the clean that first saw them, so a consumer that is less far behind than
that sees the delete.  The checkpoint keeps, per range of offsets, the time
it was first cleaned (``horizons``); a later clean drops a tombstone of a
range whose time is ``delete.retention.ms`` past.  A lost checkpoint only
makes the next clean longer and tombstones live longer.

Each group's output is written to ``<base>.cleaned``, fsync'd, and swapped in
by :meth:`Partition.replace_segments` under the partition's file lock: a
marker ``<base>.swap`` names the segments it replaces, the cleaned file is
renamed over ``<base>.log`` (the commit), the replaced segments are deleted,
and the marker goes.  A crash before the rename leaves the old segments;
after it, recovery finishes the deletes.  Between the rename and the deletes
another process may list the new segment beside the old ones it replaces:
both hold true records at their offsets, so a reader going forward reads
each offset range from one or the other and loses nothing.

One cleaner per partition at a time, across processes: it holds the
partition's ``cleaner.lock`` while it works, and takes the writer's lock only
for the swap, so appends and reads go on during a clean.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from bisect import bisect_left, bisect_right
from itertools import compress
from operator import itemgetter, le
from typing import Any, Callable

from ..codec.batch import HEADER, HEADER_SIZE, RecordBatch, encode_payload, frame, scan
from ..config import LONG_MAX
from ..errors import CorruptRecordError, StromError
from .index import OffsetIndex, TimeIndex
from .partition import CLEANED_SUFFIX, Partition
from .segment import SCAN_CHUNK_BYTES, Segment, segment_name

__all__ = ["CleanResult", "clean_partition", "Cleaner", "DEFAULT_MAX_KEYS", "DEFAULT_BACKOFF_MS"]

logger = logging.getLogger("strom.cleaner")

#: Keys one pass maps at most (Kafka's dedupe buffer, counted in keys): about
#: 100 bytes of memory each.  A dirty tail with more keys is cleaned in
#: several passes, a whole number of segments each.
DEFAULT_MAX_KEYS = 4_000_000
#: How long the background cleaner sleeps between looks (Kafka's
#: log.cleaner.backoff.ms); a roll in this process wakes it at once.
DEFAULT_BACKOFF_MS = 15_000
#: How often the background cleaner applies time and size retention (Kafka's
#: log.retention.check.interval.ms); retention also runs at every roll.
RETENTION_CHECK_MS = 300_000
#: Cleaned output is written in pieces of this size.
_WRITE_BYTES = 8 * 1024 * 1024
#: Tombstone horizon ranges kept in the checkpoint at most (merged beyond).
_MAX_HORIZONS = 64

Progress = Callable[[int, int], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class CleanResult:
    """What one clean did to one partition (or, summed, to several).

    ``bytes_before``/``bytes_after`` and ``segments_before``/``segments_after``
    are the whole partition's; ``records_read`` counts records examined in
    both passes' segments (each once), ``records_kept`` those of them still
    in the log; ``seconds`` is wall time.
    """

    partitions: int = 0
    records_read: int = 0
    records_kept: int = 0
    tombstones_removed: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    segments_before: int = 0
    segments_after: int = 0
    seconds: float = 0.0

    def __add__(self, other: CleanResult) -> CleanResult:
        if not isinstance(other, CleanResult):
            return NotImplemented
        return CleanResult(*(a + b for a, b in zip(dataclasses.astuple(self),
                                                   dataclasses.astuple(other))))


class _Cancelled(Exception):
    """The cleaner was asked to stop (the log is closing)."""


class _Horizons:
    """When each range of offsets was first cleaned: ``[(end_offset, clean_ms), ...]``.

    An entry covers offsets from the previous entry's end up to its own.
    """

    def __init__(self, entries: list[tuple[int, int]]) -> None:
        entries = sorted(entries)
        self.ends = [e for e, _ in entries]
        self.times = [t for _, t in entries]

    def first_cleaned(self, offset: int) -> int | None:
        """The time the range holding ``offset`` was first cleaned, if known."""
        i = bisect_right(self.ends, offset)
        return self.times[i] if i < len(self.times) else None

    def due(self, now_ms: int, retention_ms: int) -> bool:
        """True if some range's tombstones may now be dropped."""
        return any(t + retention_ms <= now_ms for t in self.times)

    def after_clean(self, now_ms: int, retention_ms: int, clean_end: int,
                    kept_tombstone: bool) -> list[tuple[int, int]]:
        """The entries after a clean at ``now_ms`` up to ``clean_end``.

        Ranges whose tombstones this clean dropped go (their offsets fall to
        a later range: a later time keeps a tombstone longer, never shorter).
        A new range up to ``clean_end`` is added if a tombstone survived in
        the part cleaned for the first time.  Beyond ``_MAX_HORIZONS`` ranges,
        neighbours merge keeping the later time.
        """
        entries = [(e, t) for e, t in zip(self.ends, self.times) if t + retention_ms > now_ms]
        if kept_tombstone:
            entries.append((clean_end, now_ms))
        while len(entries) > _MAX_HORIZONS:
            merged = []
            for i in range(0, len(entries) - 1, 2):
                (_e1, t1), (e2, t2) = entries[i], entries[i + 1]
                merged.append((e2, max(t1, t2)))
            if len(entries) % 2:
                merged.append(entries[-1])
            entries = merged
        return entries


def _max_timestamp(p: Partition, seg: Segment) -> int | None:
    if seg.max_timestamp is None and seg.size:
        with p._lock:
            seg.load_indexes()
    return seg.max_timestamp


def _batches(seg: Segment, stop: threading.Event | None):
    """Yield ``(batch, raw bytes)`` for every batch of a sealed segment, in order.

    Raises CorruptRecordError at an invalid batch (a sealed segment has no
    torn tail), FileNotFoundError if the file went away or was replaced.
    """
    f = seg.reader()
    size = seg.size
    pos = 0
    need = 0
    while pos < size:
        if stop is not None and stop.is_set():
            raise _Cancelled
        want = min(max(SCAN_CHUNK_BYTES, need), size - pos)
        data = f.pread(want, pos)
        res = scan(data, base_position=pos, path=seg.log_path)
        mv = memoryview(data)
        for b in res.batches:
            at = b.position - pos
            yield b, mv[at:at + b.size]
        pos += res.end
        need = 0
        if res.stop is None:
            if len(data) < want:
                raise CorruptRecordError("segment is shorter than listed", path=seg.log_path,
                                         position=pos)
            continue
        if res.stop == "incomplete" and len(data) == want and pos < size:
            rest = len(data) - res.end
            need = HEADER.unpack_from(data, res.end)[1] if rest >= HEADER_SIZE else HEADER_SIZE
            if pos + need <= size:
                continue
        raise CorruptRecordError(f"cannot clean a damaged segment ({res.stop})",
                                 path=seg.log_path, position=pos)


class _Output:
    """The cleaned file of one group, written in pieces, indexed as it goes."""

    def __init__(self, p: Partition, base: int) -> None:
        self.path = os.path.join(p.path, segment_name(base, CLEANED_SUFFIX))
        self.file = p.fs.open(self.path, write=True, create=True)
        self.file.truncate(0)
        self.interval = p.config.index_interval_bytes
        self.index = OffsetIndex(base)
        self.timeindex = TimeIndex(base)
        self.since = self.interval
        self.pos = 0
        self.written = 0
        self.pending: list[Any] = []
        self.pending_bytes = 0
        self.max_timestamp: int | None = None
        self.next_offset = base

    def add(self, buffers: tuple, size: int, base_offset: int, next_offset: int,
            max_timestamp: int) -> None:
        if self.max_timestamp is None or max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
        if self.since >= self.interval:
            self.index.append(base_offset, self.pos)
            self.timeindex.maybe_append(self.max_timestamp, base_offset)
            self.since = 0
        self.since += size
        self.pos += size
        self.next_offset = next_offset
        self.pending.extend(buffers)
        self.pending_bytes += size
        if self.pending_bytes >= _WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.file.pwritev(self.pending, self.written)
            self.written += self.pending_bytes
            self.pending = []
            self.pending_bytes = 0

    def finish(self) -> None:
        self.flush()
        self.file.fdatasync()
        self.file.close()

    def discard(self, fs: Any) -> None:
        self.file.close()
        fs.unlink(self.path)


class _Pass:
    """One clean of one partition (the state both passes share)."""

    def __init__(self, p: Partition, now_ms: int, stop: threading.Event | None,
                 progress: Progress | None, total: int) -> None:
        self.p = p
        self.now = now_ms
        self.stop = stop
        self.progress = progress
        self.total = total
        self.done = 0
        self.records_read = 0
        self.records_kept = 0
        self.tombstones_removed = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.kept_dirty_tombstone = False
        self.survivors: list[int] | None = None

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)

    def build_map(self, segs: list[Segment], max_keys: int) -> tuple[dict, int]:
        """Key -> latest offset over ``segs``; returns the map and how many segments it covers."""
        latest: dict = {}
        covered = mapped = 0
        for seg in segs:
            for b, _raw in _batches(seg, self.stop):
                keys, offsets = b.keys_and_offsets()
                if keys is not None:
                    latest.update(zip(keys, offsets))
                    mapped += len(keys)
            covered += 1
            self.advance(seg.size)
            if len(latest) >= max_keys:
                break
        latest.pop(None, None)
        # In the dirty tail a record stays exactly when its offset is its key's
        # latest: the sorted latest offsets say which records of a batch stay
        # (none or all: without decoding it) at a cost per survivor, not per record.
        self.survivors = sorted(latest.values())
        return latest, covered

    def clean_group(self, group: list[Segment], latest: dict, dirty_offset: int, map_start: int,
                    horizons: _Horizons, delete_retention_ms: int) -> bool:
        """Copy ``group`` keeping the latest record per key; swap it in.  False if aborted.

        ``map_start`` is where the map's segments begin: from there on every
        key is in the map.  It may lie past ``dirty_offset`` (a clean that
        died after merging a group across the dirty offset, before its
        checkpoint, leaves the dirty offset inside a segment).
        """
        p = self.p
        out = _Output(p, group[0].base_offset)
        g = _GroupTally(changed=len(group) > 1)
        survivors = self.survivors
        try:
            for seg in group:
                for b, raw in _batches(seg, self.stop):
                    if not (survivors is not None and b.base_offset >= map_start
                            and self._copy_dirty(b, raw, out, g, survivors)):
                        self._copy_mapped(b, raw, out, g, latest, dirty_offset, horizons,
                                          delete_retention_ms)
                self.advance(seg.size)
            self.records_read += g.read
            self.bytes_read += sum(s.size for s in group)
            if not g.changed:  # nothing to drop, nothing to merge: leave the segment as it is
                out.discard(p.fs)
                self.records_kept += g.read
                self.kept_dirty_tombstone |= g.kept_dirty_tombstone
                return True
            out.finish()
        except FileNotFoundError:
            out.discard(p.fs)  # retention or truncation removed a segment of the group: next time
            return False
        except BaseException:
            out.discard(p.fs)
            raise
        # replace_segments removes the cleaned file itself whenever it does not commit it.
        new = p.replace_segments(group, out.path, out.pos, out.index, out.timeindex,
                                 out.next_offset, out.max_timestamp)
        if new is None:
            return False
        self.records_kept += g.kept
        self.tombstones_removed += g.tombstones
        self.bytes_written += out.pos
        self.kept_dirty_tombstone |= g.kept_dirty_tombstone
        return True

    @staticmethod
    def _copy_dirty(b: RecordBatch, raw: memoryview, out: _Output, g: _GroupTally,
                    survivors: list[int]) -> bool:
        """Copy a batch of the dirty tail by the sorted latest offsets; False if it cannot.

        Every key of the dirty tail is in the map, so a record here stays
        exactly when its offset is its key's latest: a batch with no survivor
        goes and one with only survivors stays, undecoded; a dense batch with
        some picks them by position.  A batch with offset gaps (rare here) is
        left to :meth:`_copy_mapped`.
        """
        base = b.base_offset
        lo = bisect_left(survivors, base)
        hits = bisect_right(survivors, base + b.last_offset_delta) - lo
        n = b.record_count
        if hits == n:
            g.read += n
            g.kept += n
            g.kept_dirty_tombstone = True  # it may hold one: its clock starts now
            out.add((raw,), b.size, base, b.next_offset, b.max_timestamp)
            return True
        g.changed = True
        if not hits:
            g.read += n
            return True
        offsets, timestamps, keys, values, headers = b.columns()
        if type(offsets) is not range:
            return False
        kept = survivors[lo:lo + hits]
        pick = itemgetter(*map(base.__rsub__, kept))
        if hits == 1:
            columns = [[pick(c)] if c is not None else None for c in (keys, values, timestamps, headers)]
        else:
            columns = [list(pick(c)) if c is not None else None
                       for c in (keys, values, timestamps, headers)]
        g.read += n
        g.kept += hits
        g.kept_dirty_tombstone |= None in columns[1]
        out.add(*_reencode(b, kept, *columns))
        return True

    def _copy_mapped(self, b: RecordBatch, raw: memoryview, out: _Output, g: _GroupTally,
                     latest: dict, dirty_offset: int, horizons: _Horizons,
                     delete_retention_ms: int) -> None:
        """Copy a batch record by record: kept when its key's latest offset in the map is
        its own (or its key is not in the map), and it is not a tombstone past its horizon."""
        offsets, timestamps, keys, values, headers = b.columns()
        n = len(values)
        g.read += n
        if keys is None:  # no keys at all: nothing a compacted topic keeps
            g.changed = True
            return
        keep = list(map(le, map(latest.get, keys, offsets), offsets))
        if None in keys:
            for i, k in enumerate(keys):
                if k is None:
                    keep[i] = False
        if None in values:
            for i, v in enumerate(values):
                if v is None and keep[i]:
                    off = offsets[i]
                    if off >= dirty_offset:
                        g.kept_dirty_tombstone = True  # first clean: its clock starts now
                        continue
                    first = horizons.first_cleaned(off)
                    if first is not None and first + delete_retention_ms <= self.now:
                        keep[i] = False
                        g.tombstones += 1
        kept = sum(keep)
        g.kept += kept
        if kept == n:
            out.add((raw,), b.size, b.base_offset, b.next_offset, b.max_timestamp)
            return
        g.changed = True
        if kept:
            out.add(*_reencode(
                b, list(compress(offsets, keep)), list(compress(keys, keep)),
                list(compress(values, keep)), list(compress(timestamps, keep)),
                list(compress(headers, keep)) if headers is not None else None))


@dataclasses.dataclass(slots=True)
class _GroupTally:
    """What the copy of one group has done so far."""

    changed: bool = False
    read: int = 0
    kept: int = 0
    tombstones: int = 0
    kept_dirty_tombstone: bool = False


def _reencode(b: RecordBatch, offsets: list[int], keys: list, values: list,
              timestamps: list[int], headers: list | None) -> tuple:
    """The kept records of ``b`` as a new batch, for :meth:`_Output.add`: same offsets,
    timestamps, headers, compression and producer fields; base offset = first kept."""
    base = offsets[0]
    first_ts = timestamps[0]
    enc = encode_payload(
        values, keys, first_ts if timestamps.count(first_ts) == len(timestamps) else timestamps,
        headers, offset_deltas=list(map(base.__rsub__, offsets)),
        compression=b.compression, log_append_time=b.log_append_time,
        producer_id=b.producer_id, producer_epoch=b.producer_epoch,
        base_sequence=b.base_sequence + base - b.base_offset if b.base_sequence >= 0 else -1)
    return ((frame(enc, base), enc.payload), enc.batch_size, base,
            base + enc.last_offset_delta + 1, enc.max_timestamp)


def _groups(segs: list[Segment], max_bytes: int, following_base: int) -> list[list[Segment]]:
    """Consecutive segments in groups of at most ``max_bytes`` (old sizes) and 2**32 offsets."""
    groups: list[list[Segment]] = []
    bases = [s.base_offset for s in segs] + [following_base]
    i = 0
    while i < len(segs):
        group = [segs[i]]
        size = segs[i].size
        j = i + 1
        while (j < len(segs) and size + segs[j].size <= max_bytes
               and bases[j + 1] - bases[i] - 1 <= 2**32 - 1):
            size += segs[j].size
            group.append(segs[j])
            j += 1
        groups.append(group)
        i = j
    return groups


def clean_partition(p: Partition, *, force: bool = False, now_ms: int | None = None,
                    progress: Progress | None = None, max_keys: int = DEFAULT_MAX_KEYS,
                    stop: threading.Event | None = None, wait: bool = False) -> CleanResult | None:
    """Clean (compact) one partition if it is due, or always with ``force``.

    Returns what was done, or None when the partition's policy does not
    compact, nothing is cleanable or due, or another cleaner holds the
    partition (``wait=True`` waits for it instead).  ``progress(done, total)``
    is called with bytes as the clean goes.  ``stop`` (an Event) aborts the
    clean between batches, leaving the log as it was or with some groups
    already swapped in (both valid).
    """
    if not p.config.compacts:
        return None
    if not p.try_cleaner_lock(blocking=wait):
        return None
    try:
        total = None
        while True:
            result, more = _clean_locked(p, force=force, now_ms=now_ms, progress=progress,
                                         max_keys=max_keys, stop=stop)
            if result is not None:
                total = result if total is None else _merge(total, result)
            if not (force and more):  # a forced clean goes on until no dirty segment is left
                return total
    except _Cancelled:
        return total
    finally:
        p.release_cleaner_lock()


def _merge(first: CleanResult, later: CleanResult) -> CleanResult:
    """Two passes over one partition as one result (sizes before from the first, after from the last)."""
    both = first + later
    return dataclasses.replace(both, partitions=1, bytes_before=first.bytes_before,
                               segments_before=first.segments_before,
                               bytes_after=later.bytes_after, segments_after=later.segments_after)


def _clean_locked(p: Partition, *, force: bool, now_ms: int | None, progress: Progress | None,
                  max_keys: int, stop: threading.Event | None
                  ) -> tuple[CleanResult | None, bool]:
    """One pass; returns its result (None if nothing was due) and whether dirty segments remain."""
    started = time.perf_counter()
    config = p.config
    now = p.clock.time_ms() if now_ms is None else now_ms
    segs = p.segments_for_cleaning()
    before_bytes, before_count = sum(s.size for s in segs), len(segs)
    sealed = segs[:-1]
    cleanable = sealed
    if config.min_compaction_lag_ms > 0:
        cutoff = now - config.min_compaction_lag_ms
        for k, seg in enumerate(sealed):
            mt = _max_timestamp(p, seg)
            if mt is not None and mt > cutoff:
                cleanable = sealed[:k]
                break
    if not cleanable:
        return None, False
    truncations = p.truncations
    checkpoint = p.cleaner_checkpoint() or {"dirty_offset": 0, "horizons": []}
    horizons = _Horizons(checkpoint["horizons"])
    bases = [s.base_offset for s in cleanable]
    dirty_offset = max(checkpoint["dirty_offset"], bases[0])
    first_dirty = bisect_left(bases, dirty_offset)
    dirty = cleanable[first_dirty:]
    dirty_bytes = sum(s.size for s in dirty)
    clean_bytes = sum(s.size for s in cleanable[:first_dirty])
    ratio = dirty_bytes / (dirty_bytes + clean_bytes) if dirty_bytes else 0.0
    retention = config.delete_retention_ms
    due = force or (dirty_bytes > 0 and ratio > config.min_cleanable_dirty_ratio) \
        or horizons.due(now, retention)
    if not due and dirty and config.max_compaction_lag_ms < LONG_MAX:
        first_ts = dirty[0].first_timestamp()
        due = first_ts is not None and now - first_ts > config.max_compaction_lag_ms
    if not due:
        return None, False
    job = _Pass(p, now, stop, progress, dirty_bytes + clean_bytes + dirty_bytes)
    try:
        latest, covered = job.build_map(dirty, max_keys)
    except FileNotFoundError:
        return None, False  # retention or truncation removed a dirty segment meanwhile: next time
    end = first_dirty + covered
    clean_end = segs[end].base_offset if dirty else dirty_offset
    map_start = dirty[0].base_offset if dirty else clean_end
    rewrite = cleanable[:end]
    complete = True
    for group in _groups(rewrite, config.segment_bytes, clean_end):
        if not job.clean_group(group, latest, dirty_offset, map_start, horizons, retention):
            complete = False  # the segments changed under us (retention, truncation): next time
            break
    if complete:
        complete = p.write_cleaner_checkpoint(clean_end, horizons.after_clean(
            now, retention, clean_end, job.kept_dirty_tombstone), truncations)
    if progress is not None:
        progress(job.total, job.total)
    after = p.segments
    result = CleanResult(1, job.records_read, job.records_kept, job.tombstones_removed,
                         job.bytes_read, job.bytes_written, before_bytes,
                         sum(s.size for s in after), before_count, len(after),
                         time.perf_counter() - started)
    return result, complete and end < len(cleanable)


class Cleaner:
    """The background cleaner of one Log: a daemon thread cleaning what is due.

    It looks every ``backoff_ms`` and whenever a partition of this process
    rolls; each look cleans every compacted partition that is due (skipping
    those another process is cleaning) and applies time and size retention.
    Errors are logged and the partition is tried again at the next look.
    """

    def __init__(self, log: Any, backoff_ms: int = DEFAULT_BACKOFF_MS,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.log = log
        self.backoff_s = backoff_ms / 1000
        self.max_keys = max_keys
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: The last error per (topic, partition), for diagnosis; cleared by a good clean.
        self.errors: dict[tuple[str, int], BaseException] = {}
        #: Cleans done by this thread.
        self.cleans = 0
        self._next_retention = time.monotonic() + RETENTION_CHECK_MS / 1000

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="strom-cleaner", daemon=True)
                self._thread.start()

    def wake(self, _partition: Any = None) -> None:
        """Look now (a segment rolled)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(self.backoff_s)
            self._wake.clear()

    def run_once(self) -> int:
        """One look at every partition; returns the number of partitions cleaned."""
        cleaned = 0
        try:
            self.log._refresh()  # topics other processes created, altered or deleted
            partitions = list(self.log.partitions())
        except (StromError, OSError):
            return 0  # closing
        retention = time.monotonic() >= self._next_retention
        if retention:
            self._next_retention = time.monotonic() + RETENTION_CHECK_MS / 1000
        for p in partitions:
            if self._stop.is_set():
                break
            key = (p.topic, p.partition)
            try:
                if retention and p.config.deletes:
                    p.delete_old_segments()
                if p.config.compacts and clean_partition(p, max_keys=self.max_keys,
                                                         stop=self._stop) is not None:
                    cleaned += 1
                    self.cleans += 1
                self.errors.pop(key, None)
            except Exception as exc:  # a background thread must outlive any one partition's trouble
                if self._stop.is_set() or getattr(p, "_closed", False):
                    break
                if self.errors.get(key).__class__ is not exc.__class__:
                    logger.warning("cleaning %s-%d failed: %r", p.topic, p.partition, exc,
                                   exc_info=not isinstance(exc, (StromError, OSError)))
                self.errors[key] = exc
        return cleaned

    def close(self) -> None:
        """Stop the thread, abandoning a clean in progress (the log stays valid)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
