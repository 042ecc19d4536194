"""A partition: an ordered list of segments, appended by many processes, read by any.

Theory of operation
-------------------
Writers.  Every append takes the partition's in-process lock and then an
exclusive ``flock`` on the partition's ``lock`` file, so one writer at a time,
across threads and processes.  Under the lock the writer re-reads the tail
(:meth:`Partition._sync_tail`): the lock file's hint says whether another
process rolled or deleted segments (then the segment list is re-read), and
the active segment's size says whether another process appended (then the new
batches are scanned and indexed).  Offsets are therefore assigned from the
file, never from a writer's memory.  The whole append is one ``pwritev`` at
the known end; if it fails the file is cut back to where it was.  A batch cut
short by a writer that died mid-write is cut off by the next lock holder:
nobody was told it was written.

Durability.  ``acks=0``/``1`` return once ``pwritev`` returned: the bytes are
in the page cache and survive a kill -9 of any process.  ``acks="all"`` also
``fdatasync``s the segment before returning; concurrent appenders in one
process share one fsync (group commit), because a sync that starts after my
write made it durable, whoever asked for it.  A failed fsync marks the
partition failed (PartitionFailedError) until the log is reopened: Linux may
drop the dirty pages and report the error only once.

Rolls.  A new segment starts when the active one would pass
``segment.bytes``, when the incoming batch is ``segment.ms`` newer than the
segment's first batch, or when relative offsets or positions would overflow
32 bits.  The old segment is fsync'd and its index files written before the
new file is created and the directory fsync'd, so at any instant only the
active segment can hold data that is not on stable storage.

Recovery point.  ``recovery-point`` names a position (segment, byte) below
which everything is valid and fsync'd.  It moves at each roll, after group
commits every ``CHECKPOINT_INTERVAL_BYTES``, and at close.  Opening a
partition takes the lock and scans only from the recovery point: a batch
that is invalid there is a torn tail and is truncated, with every later
segment (data after a hole cannot be trusted).  Nothing below the recovery
point is read at open; damage there is found by reads and reported as
CorruptRecordError, never truncated silently; :meth:`Partition.repair`
truncates it on request.

Readers take no file lock.  They read with ``pread`` up to the size known to
hold whole batches, verify every checksum, and learn of other processes'
appends by comparing that size with the file's.  Segment files deleted by
retention in another process are noticed through the hint's epoch or a
missing file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
import threading
from bisect import bisect_right
from typing import Any, Iterator, Sequence

from ..clock import Clock
from ..codec.batch import (COMPRESSION_NONE, COMPRESSION_ZSTD, HEADER, EncodedPayload,
                           RecordBatch, encode_payload, frame)
from ..config import TopicConfig
from ..records import PartitionInfo
from ..errors import (CorruptMetadataError, CorruptRecordError, InvalidRecordError,
                      LogClosedError, OffsetOutOfRangeError, PartitionFailedError,
                      RecordTooLargeError, StorageError, StromError,
                      UnknownTopicOrPartitionError)
from .checkpoint import read_meta, write_meta
from .fs import FileSystem
from .index import OffsetIndex, TimeIndex
from .notify import AppendSignal
from .segment import ReaderCache, Segment, parse_segment_name, segment_name

__all__ = ["Partition", "RecoveryResult", "CHECKPOINT_INTERVAL_BYTES",
           "DEFAULT_FETCH_BYTES", "ACKS"]

#: A group commit moves the recovery point when it is this far ahead: recovery
#: then rescans at most this much of a segment written with acks="all"
#: (about 10 ms), and the extra checkpoint costs about 1 ms per 16 MiB.
CHECKPOINT_INTERVAL_BYTES = 16 * 1024 * 1024
#: Default byte budget of one read (Kafka's max.partition.fetch.bytes).
DEFAULT_FETCH_BYTES = 1024 * 1024
#: The lock file's hint: active segment base offset, log start offset, epoch
#: (bumped by every change of the segment list), truncations (bumped when
#: valid batches are removed from the active segment: truncate_to, repair).
HINT = struct.Struct("<qqqq")
#: Accepted acks values (Kafka's): 0 and 1 write to the OS, "all"/-1 also fsync.
ACKS = (0, 1, "all", -1)
_U32 = 2**32 - 1
#: How many recent batch starts a partition remembers for tailing readers.
_RECENT_LIMIT = 256

LOCK_FILE = "lock"
RECOVERY_FILE = "recovery-point"
#: flock held by the one process cleaning (compacting) this partition.
CLEANER_LOCK_FILE = "cleaner.lock"
#: A compaction swap in progress: ``<base>.swap`` names the segments it replaces.
SWAP_SUFFIX = ".swap"
CLEANED_SUFFIX = ".cleaned"
#: The cleaner's progress: first dirty offset and tombstone horizons.
CLEANER_CHECKPOINT_FILE = "cleaner-checkpoint"
_LEFTOVER_SUFFIXES = (".tmp", ".deleted")


@dataclasses.dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What opening (or repairing) a partition did."""

    bytes_scanned: int
    bytes_truncated: int
    segments_deleted: int
    full_scan: bool


def _check_offset(offset: Any, what: str = "offset") -> int:
    if type(offset) is not int:
        raise InvalidRecordError(f"{what} must be an int, not {type(offset).__name__}")
    return offset


def _check_acks(acks: Any) -> bool:
    if not (type(acks) in (int, str) and acks in ACKS):  # type first: 1.0 == 1 and True == 1
        raise InvalidRecordError(f"acks must be one of 0, 1, 'all' (or -1), not {acks!r}")
    return acks in ("all", -1)


class Partition:
    """One partition of a topic: append batches, read them back, keep them bounded.

    Thread-safe; several processes may open the same partition at once.
    """

    def __init__(self, fs: FileSystem, path: str, topic: str, partition: int,
                 config: TopicConfig, clock: Clock, *, repair: bool = False,
                 reader_cache: ReaderCache | None = None,
                 signal: AppendSignal | None = None) -> None:
        self.fs = fs
        self.path = path
        self.topic = topic
        self.partition = partition
        self.config = config
        self.clock = clock
        self._reader_cache = reader_cache if reader_cache is not None else ReaderCache()
        self._signal = signal if signal is not None else AppendSignal()
        # Where recent batches start: {base offset: (segment, byte position)}.  A
        # reader tailing the log asks for exactly these offsets; without this it
        # would scan from the sparse index entry, batch by batch, on every read.
        self._recent: dict[int, tuple[Segment, int]] = {}
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._flock = fs.lock(os.path.join(path, LOCK_FILE))
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._end_offset = 0
        self._epoch = 0
        self._truncations = 0
        self._checkpoint: tuple[int, int, int, int | None] | None = None
        self._durable: tuple[Segment | None, int] = (None, 0)
        self._failed: StromError | None = None
        self._closed = False
        self._wrote = False
        self._cleaner_flock: Any = None
        self._cleaner_mutex = threading.Lock()  # flock does not exclude threads sharing its fd
        #: Called (no locks held by the caller's contract: keep it cheap) after a roll.
        self.on_roll: Any = None
        with self._lock, self._locked():
            self.last_recovery = self._recover(full=repair)

    # -- small helpers -------------------------------------------------------

    def __repr__(self) -> str:
        return f"Partition({self.topic!r}, {self.partition}, end={self._end_offset})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._flock.acquire()
        try:
            yield
        finally:
            self._flock.release()

    def _check_usable(self) -> None:
        if self._closed:
            raise LogClosedError(f"partition {self.topic}-{self.partition} is closed")
        if self._failed is not None:
            raise self._failed

    def _new_segment(self, base: int, size: int = 0) -> Segment:
        seg = Segment(self.fs, self.path, base, size)
        seg.index_interval = self.config.index_interval_bytes
        seg.reader_cache = self._reader_cache
        return seg

    def _listed_segment(self, base: int) -> Segment:
        """A Segment for a file found in the directory, with its size and identity."""
        seg = self._new_segment(base)
        try:
            seg.size, seg.ino = self.fs.size_and_ino(seg.log_path)
        except FileNotFoundError:
            seg.size = 0
        seg.next_offset = base if seg.size == 0 else None
        return seg

    def _publish_hint(self, *, truncated: bool = False, active_base: int | None = None) -> None:
        """Tell other processes the segment list changed (both locks held)."""
        hint = self._read_hint()
        epoch, truncations = (hint[2], hint[3]) if hint is not None else (0, 0)
        self._epoch = max(epoch, self._epoch) + 1
        self._truncations = max(truncations, self._truncations) + (1 if truncated else 0)
        if active_base is None:
            active_base = self._segments[-1].base_offset
        self._flock.write_hint(HINT.pack(active_base, self._bases[0], self._epoch, self._truncations))

    def _read_hint(self) -> tuple[int, int, int, int] | None:
        raw = self._flock.read_hint(HINT.size)
        return HINT.unpack(raw) if len(raw) == HINT.size else None

    def _set_segments(self, segments: list[Segment]) -> None:
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        active = segments[-1]
        self._end_offset = active.next_offset if active.next_offset is not None else active.base_offset

    def _io_error(self, what: str, exc: OSError, path: str | None = None) -> StorageError:
        return StorageError(f"{what} failed for {self.topic}-{self.partition}: {exc.strerror or exc}",
                            errno=exc.errno, path=path or self.path)

    # -- recovery ------------------------------------------------------------

    def _read_checkpoint(self) -> tuple[int, int, int, int | None] | None:
        """``(segment, position, offset, max_timestamp)`` of the recovery point, if readable."""
        try:
            body = read_meta(self.fs, os.path.join(self.path, RECOVERY_FILE), "recovery")
            cp = (int(body["segment"]), int(body["position"]), int(body["offset"]))
            max_ts = body.get("max_timestamp")
            if max_ts is not None and type(max_ts) is not int:
                raise TypeError
        except FileNotFoundError:
            return None
        except (CorruptMetadataError, KeyError, TypeError, ValueError):
            return None  # a damaged checkpoint costs a scan of the newest segment, nothing else
        return (*cp, max_ts) if min(cp) >= 0 else None

    def _write_checkpoint(self, seg: Segment, position: int, offset: int) -> None:
        """Persist the recovery point (``position`` of ``seg`` is valid and fsync'd).

        ``max_timestamp`` is the segment's largest timestamp as known now: at or
        above the largest below ``position``, which is the safe side for
        retention and time lookups.
        """
        write_meta(self.fs, os.path.join(self.path, RECOVERY_FILE), "recovery",
                   {"segment": seg.base_offset, "position": position, "offset": offset,
                    "max_timestamp": seg.max_timestamp})
        self._checkpoint = (seg.base_offset, position, offset, seg.max_timestamp)

    def _delete_segment_files(self, seg: Segment) -> None:
        """Rename a segment's files to .deleted (the .log first: that is the commit), then unlink."""
        seg.retire()
        paths = [seg.log_path, seg.index_path, seg.timeindex_path]
        for p in paths:
            try:
                self.fs.rename(p, p + ".deleted")
            except FileNotFoundError:
                pass
        self.fs.fsync_dir(self.path)
        for p in paths:
            self.fs.unlink(p + ".deleted")

    def _recover(self, *, full: bool) -> RecoveryResult:
        """Bring the partition to a valid state; runs under both locks."""
        fs = self.fs
        names = fs.listdir(self.path)
        if any(n.endswith(SWAP_SUFFIX) for n in names):
            self._resolve_swaps(names)
            names = fs.listdir(self.path)
        cleaned = [n for n in names if n.endswith(CLEANED_SUFFIX)]
        if cleaned and self.try_cleaner_lock():
            try:  # no cleaner is running: its half-built output is garbage
                for name in cleaned:
                    fs.unlink(os.path.join(self.path, name))
            finally:
                self.release_cleaner_lock()
        bases: set[int] = set()
        for name in names:
            if name.endswith(_LEFTOVER_SUFFIXES):
                fs.unlink(os.path.join(self.path, name))
                continue
            parsed = parse_segment_name(name)
            if parsed is not None and parsed[1] == ".log":
                bases.add(parsed[0])
        for name in names:
            parsed = parse_segment_name(name)
            if parsed is not None and parsed[1] in (".index", ".timeindex") and parsed[0] not in bases:
                fs.unlink(os.path.join(self.path, name))  # orphan of a deleted segment
        cp = None if full else self._read_checkpoint()
        if not bases:
            base = cp[2] if cp else 0
            f = fs.open(os.path.join(self.path, segment_name(base)), write=True, create=True)
            f.close()
            fs.fsync_dir(self.path)
            bases.add(base)
            cp = None
        segs = [self._listed_segment(b) for b in sorted(bases)]
        interval = self.config.index_interval_bytes
        if cp is not None:
            seg_bases = [s.base_offset for s in segs]
            if cp[0] not in seg_bases:
                raise CorruptRecordError(
                    f"{self.topic}-{self.partition}: the segment at the recovery point is missing; "
                    "data below the recovery point was lost (open with repair=True to truncate)",
                    path=os.path.join(self.path, segment_name(cp[0])))
            start_i = seg_bases.index(cp[0])
            if cp[1] > segs[start_i].size:
                raise CorruptRecordError(
                    f"{self.topic}-{self.partition}: segment is shorter than its recovery point; "
                    "data below the recovery point was lost (open with repair=True to truncate)",
                    path=segs[start_i].log_path, position=segs[start_i].size)
            start_pos, expected, cp_max_ts = cp[1], cp[2], cp[3]
        else:
            # No usable recovery point: every sealed segment was fsync'd whole before the
            # next one was created, so only the newest needs checking -- unless repairing.
            start_i, start_pos, expected, cp_max_ts = (0 if full else len(segs) - 1), 0, None, None
        scanned = truncated = deleted = 0
        for i in range(start_i, len(segs)):
            seg = segs[i]
            index, timeindex, since = OffsetIndex(seg.base_offset), TimeIndex(seg.base_offset), None
            pos = 0
            if i == start_i and start_pos > 0:
                try:
                    seg.load_indexes()  # checked; rebuilt from [0, size) only if damaged
                    index, timeindex = seg.index, seg.timeindex
                    index.truncate_to_position(start_pos)
                    timeindex.truncate_to_offset(expected)
                    if cp_max_ts is not None and expected > seg.base_offset:
                        timeindex.maybe_append(cp_max_ts, expected - 1)  # batches below the point
                    pos = start_pos
                    since = start_pos - (index.positions[-1] if len(index) else 0)
                except CorruptRecordError:
                    index, timeindex, since, pos = OffsetIndex(seg.base_offset), TimeIndex(seg.base_offset), None, 0
                    expected = None
            seg.max_timestamp = timeindex.max_timestamp
            end, stop, next_offset, since = seg.scan_into(
                index, timeindex, pos, seg.size, interval=interval,
                expected_offset=expected, bytes_since_index=since)
            scanned += end - pos
            seg.set_indexes(index, timeindex)
            seg.bytes_since_index = since
            seg.next_offset = next_offset if next_offset is not None else seg.base_offset
            expected = seg.next_offset
            if stop is not None or end != seg.size:
                truncated += seg.size - end
                try:
                    f = seg.writer()
                    f.truncate(end)
                    f.fdatasync()
                except OSError as exc:
                    raise self._io_error("truncating a torn tail", exc, seg.log_path) from exc
                seg.size = end
                for later in segs[i + 1:]:
                    truncated += later.size
                    deleted += 1
                    self._delete_segment_files(later)
                segs = segs[:i + 1]
                break
        self._set_segments(segs)
        if truncated:
            self._cut_cleaner_checkpoint(self._end_offset)
        active = segs[-1]
        if active.next_offset is None:
            active.next_offset = active.base_offset
        if truncated or scanned or cp is None:
            # What we just checked becomes the new recovery point, once it is on disk.
            active.writer().fdatasync()
            active.save_indexes()
            self._write_checkpoint(active, active.size, self._end_offset)
        else:
            self._checkpoint = cp
        # A full scan (repair) may remove batches other processes have read.
        self._publish_hint(truncated=full and bool(truncated))
        return RecoveryResult(scanned, truncated, deleted, cp is None)

    # -- compaction swaps ------------------------------------------------------

    def try_cleaner_lock(self, blocking: bool = False) -> bool:
        """Take the partition's cleaner lock (one cleaner per partition, across processes)."""
        if not self._cleaner_mutex.acquire(blocking=blocking):
            return False
        try:
            if self._cleaner_flock is None:
                self._cleaner_flock = self.fs.lock(os.path.join(self.path, CLEANER_LOCK_FILE))
            if self._cleaner_flock.acquire(blocking=blocking):
                return True
        except BaseException:
            self._cleaner_mutex.release()
            raise
        self._cleaner_mutex.release()
        return False

    def release_cleaner_lock(self) -> None:
        """Release the cleaner lock taken by :meth:`try_cleaner_lock`."""
        try:
            self._cleaner_flock.release()
        finally:
            self._cleaner_mutex.release()

    def _resolve_swaps(self, names: list[str]) -> None:
        """Finish or undo compaction swaps a dead cleaner left (under the file lock).

        ``<base>.swap`` is written, under the file lock, just before the
        cleaned file is renamed over ``<base>.log``.  If ``<base>.cleaned``
        is still there, the rename did not happen: the old segments are
        intact, and the new file is dropped.  If it is gone, the rename
        happened: the segments the new one replaces are deleted.
        """
        fs = self.fs
        for name in names:
            if not name.endswith(SWAP_SUFFIX):
                continue
            parsed = parse_segment_name(name)
            marker = os.path.join(self.path, name)
            if parsed is None:
                fs.unlink(marker)
                continue
            base = parsed[0]
            cleaned = os.path.join(self.path, segment_name(base, CLEANED_SUFFIX))
            if fs.exists(cleaned):
                # Not committed.  The marker goes first: a marker without its
                # cleaned file means "committed", and must never be left so.
                fs.unlink(marker)
                fs.fsync_dir(self.path)
                fs.unlink(cleaned)
                continue
            try:
                body = read_meta(fs, marker, "swap")
                replaces = [int(b) for b in body["replaces"]]
            except (CorruptMetadataError, KeyError, TypeError, ValueError):
                replaces = []  # unreadable: written before the rename, so nothing to finish
            for b in replaces:
                if b > base:
                    self._delete_segment_files(self._new_segment(b))
            fs.fsync_dir(self.path)
            fs.unlink(marker)

    def replace_segments(self, old: list[Segment], cleaned_path: str, size: int,
                         index: OffsetIndex, timeindex: TimeIndex, next_offset: int,
                         max_timestamp: int | None) -> Segment | None:
        """Swap the fsync'd file ``cleaned_path`` in for the consecutive sealed segments ``old``.

        The new segment takes the first old segment's base offset.  A crash at
        any instant leaves the old set or the new one (see
        :meth:`_resolve_swaps`).  Returns the new segment, or None (the
        cleaned file removed) when the old segments changed meanwhile
        (retention, truncation or another swap).
        """
        base = old[0].base_offset
        fs = self.fs
        with self._lock, self._locked():
            try:
                self._check_usable()
                self._sync_tail(locked=True)
            except BaseException:
                fs.unlink(cleaned_path)
                raise
            segs = self._segments
            try:
                i = next(j for j, sg in enumerate(segs) if sg is old[0])
            except StopIteration:
                i = -1
            if (i < 0 or i + len(old) >= len(segs)
                    or any(a is not b for a, b in zip(segs[i:i + len(old)], old))
                    or not all(sg.is_current() for sg in old)):
                fs.unlink(cleaned_path)
                return None
            marker = os.path.join(self.path, segment_name(base, SWAP_SUFFIX))
            committed = False
            try:
                disk = self._read_checkpoint()
                active = segs[-1]
                if disk is None or disk[0] != active.base_offset:
                    # A recovery point left in a sealed segment (a roll cut short) would
                    # name bytes this swap removes; the active segment's start is as true.
                    self._write_checkpoint(active, 0, active.base_offset)
                # The old indexes go first: a reader must never pair them with the new file.
                fs.unlink(old[0].index_path)
                fs.unlink(old[0].timeindex_path)
                write_meta(fs, marker, "swap", {"base": base,
                                                "replaces": [sg.base_offset for sg in old[1:]]})
                new = self._new_segment(base, size)
                fs.replace(cleaned_path, old[0].log_path)  # the commit
                committed = True
                fs.fsync_dir(self.path)
                for sg in old:
                    sg.retire()
                for sg in old[1:]:
                    self._delete_segment_files(sg)
                fs.unlink(marker)
            except OSError as exc:
                if not committed:  # undo: the marker first (see _resolve_swaps)
                    with contextlib.suppress(OSError):
                        fs.unlink(marker)
                        fs.fsync_dir(self.path)
                        fs.unlink(cleaned_path)
                else:
                    for sg in old:
                        sg.retire()
                self._reload_segments()
                raise self._io_error("compaction swap", exc, old[0].log_path) from exc
            new.next_offset = next_offset
            new.max_timestamp = max_timestamp
            new.set_indexes(index, timeindex)
            try:
                new.ino = fs.size_and_ino(new.log_path)[1]
                new.save_indexes()
            except OSError:
                pass  # indexes are caches: rebuilt on next use
            self._recent.clear()
            self._set_segments(segs[:i] + [new] + segs[i + len(old):])
            self._publish_hint()
            return new

    def cleaner_checkpoint(self) -> dict[str, Any] | None:
        """The cleaner's checkpoint (``dirty_offset``, ``horizons``), or None if missing or damaged."""
        try:
            body = read_meta(self.fs, os.path.join(self.path, CLEANER_CHECKPOINT_FILE), "cleaner")
            dirty = body["dirty_offset"]
            horizons = [(int(e), int(t)) for e, t in body.get("horizons", [])]
            if type(dirty) is not int or dirty < 0:
                raise TypeError
        except FileNotFoundError:
            return None
        except (CorruptMetadataError, KeyError, TypeError, ValueError):
            return None  # lost progress only costs a fuller clean
        return {"dirty_offset": dirty, "horizons": horizons}

    def write_cleaner_checkpoint(self, dirty_offset: int, horizons: list[tuple[int, int]],
                                 truncations: int) -> bool:
        """Persist the cleaner's progress, unless the partition was truncated since
        ``truncations`` was read (then the offsets it names may hold other records).

        Returns True if written.
        """
        with self._lock, self._locked():
            self._sync_tail(locked=True)
            if self._truncations != truncations:
                return False
            self._store_cleaner_checkpoint(dirty_offset, horizons)
            return True

    def _store_cleaner_checkpoint(self, dirty_offset: int, horizons: list[tuple[int, int]]) -> None:
        write_meta(self.fs, os.path.join(self.path, CLEANER_CHECKPOINT_FILE), "cleaner",
                   {"dirty_offset": dirty_offset, "horizons": [list(h) for h in horizons]})

    def _cut_cleaner_checkpoint(self, end: int) -> None:
        """The log now ends at ``end`` (truncation): forget cleaning progress past it.

        Offsets at and after ``end`` will hold new records, dirty again, whose
        tombstones must not inherit an old clean's horizon (Kafka truncates its
        cleaner checkpoint the same way).
        """
        cp = self.cleaner_checkpoint()
        if cp is None or (cp["dirty_offset"] <= end and all(e <= end for e, _ in cp["horizons"])):
            return
        self._store_cleaner_checkpoint(min(cp["dirty_offset"], end),
                                       [(min(e, end), t) for e, t in cp["horizons"]])

    @property
    def truncations(self) -> int:
        """How many times valid batches were removed from this partition (as of the last look)."""
        return self._truncations

    def segments_for_cleaning(self) -> list[Segment]:
        """Every segment (the last is the active one), after catching up with other processes
        and finishing any compaction swap a dead cleaner left."""
        self._check_usable()
        with self._lock, self._locked():
            self._sync_tail(locked=True)
            names = self.fs.listdir(self.path)
            if any(n.endswith(SWAP_SUFFIX) for n in names):
                self._resolve_swaps(names)
                self._reload_segments()
            return list(self._segments)

    def repair(self) -> RecoveryResult:
        """Check every segment from the start and truncate at the first invalid batch.

        For a partition whose damage lies below the recovery point (reads raise
        CorruptRecordError there): everything from the damaged batch on is
        removed.  Returns what was scanned, truncated and deleted.
        """
        if self._closed:
            raise LogClosedError(f"partition {self.topic}-{self.partition} is closed")
        with self._lock, self._locked():
            for seg in self._segments:
                seg.drop_files()
            self._failed = None
            self.last_recovery = self._recover(full=True)
            return self.last_recovery

    # -- keeping up with other processes -------------------------------------

    def _reload_segments(self, rescan_active: bool = False) -> None:
        """Re-read the segment list from the directory (another process changed it)."""
        self._recent.clear()
        names = self.fs.listdir(self.path)
        bases = sorted({p[0] for p in map(parse_segment_name, names) if p is not None and p[1] == ".log"})
        if not bases:
            raise UnknownTopicOrPartitionError(
                f"partition {self.topic}-{self.partition} has no segments (was the topic deleted?)")
        old = {s.base_offset: s for s in self._segments}
        old_active = self._segments[-1] if self._segments else None
        segs = []
        for b in bases:
            seg = old.pop(b, None)
            listed = self._listed_segment(b)
            if seg is not None and None not in (seg.ino, listed.ino) and seg.ino != listed.ino:
                seg.retire()  # compaction swapped a new file in under this name
                seg = None
            if seg is None:
                seg = listed
            elif b != bases[-1]:
                if seg is old_active or listed.size != seg.size:
                    seg.forget_indexes()  # sealed elsewhere: its index files are now the complete ones
                seg.size = listed.size
            if seg.ino is None:
                seg.ino = listed.ino
            segs.append(seg)
        for gone in old.values():
            gone.retire()
        active = segs[-1]
        if active is not old_active or rescan_active:
            try:
                active.size = self.fs.file_size(active.log_path)
            except FileNotFoundError:
                active.size = 0
            active.drop_files()
            index, timeindex = OffsetIndex(active.base_offset), TimeIndex(active.base_offset)
            active.max_timestamp = None
            active.reset_first_timestamp()
            end, _stop, next_offset, since = active.scan_into(
                index, timeindex, 0, active.size, interval=self.config.index_interval_bytes)
            active.size = end
            active.set_indexes(index, timeindex)
            active.bytes_since_index = since
            active.next_offset = next_offset if next_offset is not None else active.base_offset
        self._set_segments(segs)

    def _sync_tail(self, *, locked: bool) -> None:
        """Catch up with appends, rolls and deletions by other processes.

        With ``locked`` (the caller holds the file lock) a torn tail left by a
        dead writer is cut off; without it, the tail is only not read.
        """
        hint = self._read_hint()
        if hint is not None and (hint[2] != self._epoch or hint[3] != self._truncations
                                 or hint[0] != self._segments[-1].base_offset):
            # Another process rolled, deleted or truncated: our view of the
            # active segment is stale only if valid batches were removed.  A
            # hint naming another active segment than ours means a roll that
            # may not have finished (its roller died): look until it agrees.
            rescan = hint[3] != self._truncations
            self._epoch, self._truncations = hint[2], hint[3]
            self._reload_segments(rescan_active=rescan)
            if locked and hint[0] != self._segments[-1].base_offset:
                self._publish_hint()  # the roll died before creating its segment: set it right
        active = self._segments[-1]
        try:
            f = active.writer() if locked else active.reader()
            size = f.size()
        except FileNotFoundError:
            self._reload_segments()
            return
        if size == active.size:
            return
        if size < active.size:  # truncated by another process
            self._reload_segments(rescan_active=True)
            return
        if len(self._recent) >= _RECENT_LIMIT:
            self._recent.clear()
        self._recent[self._end_offset] = (active, active.size)  # where a tailing reader resumes
        end, stop, next_offset, since = active.scan_into(
            active.index, active.timeindex, active.size, size,
            interval=self.config.index_interval_bytes, expected_offset=self._end_offset,
            bytes_since_index=active.bytes_since_index)
        active.size = end
        active.bytes_since_index = since
        if next_offset is not None:
            active.next_offset = self._end_offset = next_offset
        if stop is not None and locked:
            try:
                f.truncate(end)  # a writer died mid-append: nobody was told this was written
            except OSError as exc:
                raise self._io_error("truncating a torn tail", exc, active.log_path) from exc

    def refresh(self) -> None:
        """See what other processes appended, rolled or deleted since the last look."""
        self._check_usable()
        with self._lock:
            self._sync_tail(locked=False)

    # -- appending -----------------------------------------------------------

    def _encode(self, values: Sequence[Any], keys: Any, timestamps: Any, headers: Any,
                compression: int, log_append_time: bool, atomic: bool = False) -> list[EncodedPayload]:
        enc = encode_payload(values, keys, timestamps, headers, compression=compression,
                             log_append_time=log_append_time)
        limit = self.config.max_message_bytes
        if enc.batch_size <= limit:
            return [enc]
        n = len(values)
        if n <= 1 or atomic:
            what = "a record" if n <= 1 else f"{n} records that must stay one batch"
            raise RecordTooLargeError(
                f"{what} of {enc.batch_size} bytes (as a batch) exceeds max.message.bytes={limit} "
                f"of topic {self.topic!r}")
        half = n // 2

        def part(col: Any, a: int, b: int) -> Any:
            return None if col is None or isinstance(col, int) else col[a:b]

        return (self._encode(values[:half], part(keys, 0, half), timestamps if isinstance(timestamps, int)
                             else timestamps[:half], part(headers, 0, half), compression, log_append_time)
                + self._encode(values[half:], part(keys, half, n), timestamps if isinstance(timestamps, int)
                               else timestamps[half:], part(headers, half, n), compression, log_append_time))

    def append(self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None,
               timestamps: int | Sequence[int] | None = None, headers: Sequence[Any] | None = None, *,
               acks: int | str = "all", compression: str | None = None, atomic: bool = False,
               append_time: int | None = None) -> int:
        """Append records (given as columns) and return the offset of the first one.

        ``values`` and ``keys`` are sequences of bytes (or None); ``timestamps``
        one int (ms) for all, one per record, or None for now; ``headers`` one
        list of ``(str, bytes)`` pairs (or None) per record.  The records are
        written as one batch, or several when they exceed ``max.message.bytes``,
        with one write; they get consecutive offsets.  ``acks`` as in Kafka: 0
        or 1 return once the OS has the bytes (survives kill -9), "all" once
        they are fsync'd (survives power loss).  ``atomic=True`` refuses
        (RecordTooLargeError) records that would need more than one batch, so
        that a crash keeps all of them or none.  On a LogAppendTime topic the
        records are stamped with ``append_time`` if given (a reading of this
        partition's clock), else with the clock now.
        """
        durable = _check_acks(acks)
        self._check_usable()
        if not len(values):
            raise InvalidRecordError("append needs at least one record")
        config = self.config
        if config.compacts and (keys is None or None in keys):
            raise InvalidRecordError(
                f"topic {self.topic!r} is compacted (cleanup.policy={config.cleanup_policy}): "
                "every record needs a key")
        log_append_time = config.message_timestamp_type == "LogAppendTime"
        if log_append_time:  # the log's time; a caller may read the clock first to know it
            timestamps = self.clock.time_ms() if append_time is None else append_time
        elif timestamps is None:
            timestamps = self.clock.time_ms()
        if config.compression_type == "zstd":
            codec = COMPRESSION_ZSTD
        elif config.compression_type == "uncompressed" or compression in (None, "none"):
            codec = COMPRESSION_NONE
        elif compression == "zstd":
            codec = COMPRESSION_ZSTD
        else:
            raise InvalidRecordError(f"compression must be None or 'zstd', not {compression!r}")
        encoded = self._encode(values, keys, timestamps, headers, codec, log_append_time, atomic)
        total = sum(e.batch_size for e in encoded)
        count = sum(e.last_offset_delta + 1 for e in encoded)
        with self._lock:
            self._check_usable()
            self._flock.acquire()
            try:
                self._sync_tail(locked=True)
                active = self._segments[-1]
                if active.size and self._should_roll(active, total, count, encoded[-1].max_timestamp):
                    self._roll()
                    active = self._segments[-1]
                base = first = self._end_offset
                buffers: list[bytes] = []
                for enc in encoded:
                    buffers.append(frame(enc, base))
                    buffers.append(enc.payload)
                    base += enc.last_offset_delta + 1
                pos = active.size
                f = active.writer()
                try:
                    f.pwritev(buffers, pos)
                except OSError as exc:
                    try:
                        f.truncate(pos)
                    except OSError:
                        self._failed = PartitionFailedError(
                            f"{self.topic}-{self.partition}: a write failed and could not be undone; "
                            "reopen the log to recover", errno=exc.errno, path=active.log_path)
                    raise self._io_error("append", exc, active.log_path) from exc
                self._wrote = True
                index, timeindex = active.index, active.timeindex
                interval = config.index_interval_bytes
                since = active.bytes_since_index
                base = first
                p = pos
                recent = self._recent
                if len(recent) >= _RECENT_LIMIT:
                    recent.clear()
                for enc in encoded:
                    recent[base] = (active, p)
                    if active.max_timestamp is None or enc.max_timestamp > active.max_timestamp:
                        active.max_timestamp = enc.max_timestamp
                    if since >= interval or p == 0:
                        index.append(base, p)
                        timeindex.maybe_append(active.max_timestamp, base)
                        since = 0
                    size = enc.batch_size
                    since += size
                    p += size
                    base += enc.last_offset_delta + 1
                active.bytes_since_index = since
                active.size = p
                active.next_offset = self._end_offset = base
            finally:
                self._flock.release()
        self._signal.fire()  # readers see the batch now (as other processes' readers do)
        if durable:
            self._sync(active, p)
        return first

    def _should_roll(self, active: Segment, size: int, count: int, max_timestamp: int) -> bool:
        config = self.config
        if active.size + size > config.segment_bytes or active.size + size > _U32:
            return True
        if self._end_offset + count - active.base_offset > _U32:
            return True
        first_ts = active.first_timestamp()
        # A compacted topic also rolls by max.compaction.lag.ms: only sealed
        # segments are cleaned, so no record waits longer than that (Kafka's rule).
        segment_ms = min(config.segment_ms, config.max_compaction_lag_ms) if config.compacts \
            else config.segment_ms
        return first_ts is not None and max_timestamp - first_ts > segment_ms

    def roll(self) -> int:
        """Seal the active segment (if it holds anything) and start a new one; returns its base."""
        self._check_usable()
        with self._lock, self._locked():
            self._sync_tail(locked=True)
            if self._segments[-1].size:
                self._roll()
            return self._segments[-1].base_offset

    def _roll(self) -> None:
        """Seal the active segment and start a new one (both locks held)."""
        old = self._segments[-1]
        base = self._end_offset
        new_path = os.path.join(self.path, segment_name(base))
        # Announce the roll before the new file exists: a roller killed after
        # creating it must not leave other writers appending to the old segment
        # past the new one's base offset (they look until hint and files agree).
        self._publish_hint(active_base=base)
        try:
            old.writer().fdatasync()
            old.seal_timeindex()
            old.save_indexes()
            try:
                f = self.fs.open(new_path, write=True, create=True, exclusive=True)
            except FileExistsError:
                if self.fs.file_size(new_path):
                    raise CorruptRecordError("a segment already exists where the next one starts",
                                             path=new_path) from None
                f = self.fs.open(new_path, write=True)
            f.close()
            self.fs.fsync_dir(self.path)
        except OSError as exc:
            raise self._io_error("roll", exc, new_path) from exc
        old.drop_files()
        self._durable = (None, 0)
        new = self._new_segment(base)
        new.set_indexes(OffsetIndex(base), TimeIndex(base))
        self._set_segments(self._segments + [new])
        self._write_checkpoint(new, 0, base)
        self._publish_hint()
        self._delete_old_segments_locked(self.clock.time_ms())
        if self.on_roll is not None:
            self.on_roll(self)

    def _sync(self, seg: Segment, end: int) -> None:
        """Make everything up to ``end`` of ``seg`` durable (group commit)."""
        with self._sync_lock:
            durable_seg, durable_pos = self._durable
            if durable_seg is seg and durable_pos >= end:
                return
            f = seg.writer_if_open()
            if f is None:
                return  # sealed meanwhile by this process: the roll fsync'd it
            target = seg.size
            try:
                f.fdatasync()
            except OSError as exc:
                self._failed = PartitionFailedError(
                    f"{self.topic}-{self.partition}: fsync failed ({exc.strerror}); writes are refused "
                    "until the log is reopened", errno=exc.errno, path=seg.log_path)
                raise self._failed from exc
            self._durable = (seg, target)
        cp = self._checkpoint
        if cp is None or cp[0] != seg.base_offset or target - cp[1] >= CHECKPOINT_INTERVAL_BYTES:
            self._advance_checkpoint(seg, target)

    def _advance_checkpoint(self, seg: Segment, position: int) -> None:
        """Move the recovery point to ``position`` of ``seg`` (known fsync'd) if that is ahead."""
        with self._lock, self._locked():
            if self._closed or seg is not self._segments[-1] or position > seg.size:
                return
            disk = self._read_checkpoint()
            if disk is not None and (disk[0], disk[1]) >= (seg.base_offset, position):
                self._checkpoint = disk
                return
            offset = self._offset_at(seg, position)
            if offset is None:
                return
            seg.save_indexes()
            self._write_checkpoint(seg, position, offset)

    def _offset_at(self, seg: Segment, position: int) -> int | None:
        """The next offset after the batch that ends at ``position`` of ``seg``."""
        if position == seg.size:
            return seg.next_offset
        if position == 0:
            return seg.base_offset
        idx = seg.index
        i = bisect_right(idx.positions, position) - 1
        pos = idx.positions[i] if i >= 0 else 0
        if pos and not seg.index_entry_valid(idx.offsets[i], pos):
            pos = 0
        while pos < position:
            head = seg.reader().pread(HEADER.size, pos)
            if len(head) < HEADER.size:
                return None
            h = HEADER.unpack(head)
            pos += h[1]
            if pos == position:
                return h[5] + h[6] + 1
        return None

    def flush(self) -> None:
        """fsync everything appended so far (acks=1 data becomes power-loss safe)."""
        self._check_usable()
        seg = self._segments[-1]
        self._sync(seg, seg.size)

    # -- reading -------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        """First offset still in the log (as of the last look at the disk)."""
        return self._bases[0]

    @property
    def log_end_offset(self) -> int:
        """The offset the next record will get (as of the last look at the disk)."""
        return self._end_offset

    def _out_of_range(self, offset: int) -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError(
            f"offset {offset} is outside {self.topic}-{self.partition}'s range "
            f"[{self._bases[0]}, {self._end_offset}]", offset=offset,
            log_start_offset=self._bases[0], log_end_offset=self._end_offset)

    def read(self, offset: int, max_bytes: int = DEFAULT_FETCH_BYTES) -> list[RecordBatch]:
        """Verified batches holding the records at and after ``offset``.

        The first batch may start before ``offset`` (a batch is read whole);
        at least one batch is returned when any record at or after ``offset``
        exists, even if it is larger than ``max_bytes``.  Returns ``[]`` at the
        log end offset; raises OffsetOutOfRangeError below the log start or
        above the end, and CorruptRecordError for damaged bytes.
        """
        _check_offset(offset)
        self._check_usable()
        for attempt in range(4):
            with self._lock:
                if attempt:  # a file vanished or was replaced: look at the directory itself
                    self._reload_segments()
                if offset >= self._end_offset or offset < self._bases[0] or attempt:
                    self._sync_tail(locked=False)
                if offset == self._end_offset:
                    return []
                if offset > self._end_offset or offset < self._bases[0]:
                    raise self._out_of_range(offset)
                segs = self._segments
                i = bisect_right(self._bases, offset) - 1
            try:
                return self._read_from(segs, i, offset, max_bytes)
            except FileNotFoundError:
                continue  # retention or compaction elsewhere removed or replaced it; look again
        raise self._out_of_range(offset)

    def _read_from(self, segs: list[Segment], i: int, offset: int, max_bytes: int) -> list[RecordBatch]:
        hint = self._recent.get(offset)
        if hint is not None and hint[0] is segs[i]:
            # Trusted only if a verified batch starting at ``offset`` is really there.
            batches, _end, _stop = hint[0].read_batches(hint[1], max_bytes)
            if batches and batches[0].base_offset == offset:
                return batches
        while i < len(segs):
            seg = segs[i]
            pos = self._position_for(seg, offset)
            last_seen = -1
            while pos < seg.size:
                batches, end, stop = seg.read_batches(pos, max_bytes)
                if batches and batches[0].base_offset <= last_seen:
                    raise CorruptRecordError(f"{self.topic}-{self.partition}: offsets go backwards",
                                             path=seg.log_path, position=batches[0].position)
                if batches:
                    last_seen = batches[-1].last_offset
                keep = [b for b in batches if b.base_offset + b.last_offset_delta >= offset]
                if keep:
                    return keep
                if stop is not None and end < seg.size:
                    raise CorruptRecordError(
                        f"{self.topic}-{self.partition}: invalid batch ({stop})",
                        path=seg.log_path, position=end)
                if end == pos:
                    break
                pos = end
            i += 1
        return []

    def _position_for(self, seg: Segment, offset: int) -> int:
        """Byte position in ``seg`` of a batch at or before ``offset``, from a checked index entry."""
        entry_offset, pos = seg.index.lookup(offset)
        if pos and not seg.index_entry_valid(entry_offset, pos):
            with self._lock:
                seg.rebuild_indexes()  # the index lied: it is only a cache
            entry_offset, pos = seg.index.lookup(offset)
        return pos

    def read_records(self, offset: int, max_records: int | None = None,
                     max_bytes: int = DEFAULT_FETCH_BYTES) -> list[tuple]:
        """Records from ``offset`` as ``(offset, timestamp, key, value, headers)`` tuples."""
        out: list[tuple] = []
        for batch in self.read(offset, max_bytes):
            out.extend(batch.records(offset))
        return out[:max_records] if max_records is not None else out

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record whose timestamp is >= ``timestamp``, else None."""
        _check_offset(timestamp, "timestamp")
        self._check_usable()
        self.refresh()
        with self._lock:
            segs = list(self._segments)
        for seg in segs:
            if seg.max_timestamp is None and seg.size:
                with self._lock:
                    seg.load_indexes()
            if seg.max_timestamp is None or seg.max_timestamp < timestamp:
                continue
            pos = self._position_for(seg, seg.timeindex.lookup(timestamp))
            while pos < seg.size:
                batches, end, stop = seg.read_batches(pos, DEFAULT_FETCH_BYTES)
                for b in batches:
                    if b.max_timestamp >= timestamp:
                        for rec in b.records():
                            if rec[1] >= timestamp:
                                return rec[0], rec[1]
                if stop is not None or end == pos:
                    if stop is not None and end < seg.size:
                        raise CorruptRecordError(f"invalid batch ({stop})", path=seg.log_path, position=end)
                    break
                pos = end
        return None

    # -- retention, truncation -----------------------------------------------

    def delete_old_segments(self, now_ms: int | None = None) -> int:
        """Apply retention.ms and retention.bytes (cleanup.policy=delete); returns segments deleted."""
        self._check_usable()
        with self._lock, self._locked():
            self._sync_tail(locked=True)
            return self._delete_old_segments_locked(self.clock.time_ms() if now_ms is None else now_ms)

    def _delete_old_segments_locked(self, now_ms: int) -> int:
        config = self.config
        if not config.deletes:
            return 0
        sealed = self._segments[:-1]
        count = 0
        if config.retention_bytes >= 0:
            excess = sum(s.size for s in self._segments) - config.retention_bytes
            for seg in sealed:
                if excess - seg.size < 0:
                    break
                excess -= seg.size
                count += 1
        if config.retention_ms >= 0:
            n = 0
            for seg in sealed:
                if seg.max_timestamp is None and seg.size:
                    seg.load_indexes()
                if seg.max_timestamp is not None and now_ms - seg.max_timestamp <= config.retention_ms:
                    break
                n += 1
            count = max(count, n)
        if not count:
            return 0
        victims = self._segments[:count]
        try:
            for seg in victims:
                self._delete_segment_files(seg)
        except OSError as exc:
            self._reload_segments()
            raise self._io_error("retention delete", exc) from exc
        self._set_segments(self._segments[count:])
        self._publish_hint()
        return count

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding an offset at or after ``offset``; returns the new end offset.

        A batch is removed whole, so the new end may be below ``offset``
        when ``offset`` falls inside a batch.
        """
        _check_offset(offset)
        self._check_usable()
        with self._lock, self._locked():
            self._sync_tail(locked=True)
            if offset >= self._end_offset:
                return self._end_offset
            self._recent.clear()
            if offset < self._bases[0]:
                raise self._out_of_range(offset)
            i = bisect_right(self._bases, offset) - 1
            seg = self._segments[i]
            pos = self._position_for(seg, offset)
            cut = None
            while pos < seg.size:
                batches, end, stop = seg.read_batches(pos, DEFAULT_FETCH_BYTES)
                for b in batches:
                    if b.last_offset >= offset:
                        cut = b
                        break
                if cut is not None or stop is not None or end == pos:
                    break
                pos = end
            cut_pos = cut.position if cut is not None else seg.size
            try:
                for later in self._segments[i + 1:]:
                    self._delete_segment_files(later)
                f = seg.writer()
                f.truncate(cut_pos)
                f.fdatasync()
                self.fs.fsync_dir(self.path)
            except OSError as exc:
                self._failed = PartitionFailedError(
                    f"{self.topic}-{self.partition}: truncation failed ({exc.strerror}); reopen the log",
                    errno=exc.errno, path=seg.log_path)
                raise self._failed from exc
            seg.size = cut_pos
            seg.reset_first_timestamp()
            seg.rebuild_indexes()
            if cut_pos == 0:
                seg.next_offset = seg.base_offset
            self._durable = (None, 0)
            self._set_segments(self._segments[:i + 1])
            self._cut_cleaner_checkpoint(self._end_offset)
            cp = self._checkpoint
            if cp is None or (cp[0], cp[1]) > (seg.base_offset, cut_pos):
                seg.save_indexes()
                self._write_checkpoint(seg, cut_pos, self._end_offset)
            self._publish_hint(truncated=True)
            return self._end_offset

    # -- checking, describing, closing ----------------------------------------

    def verify(self) -> list[str]:
        """Read and check every batch of every segment; returns the problems found (empty if none)."""
        self._check_usable()
        problems = []
        with self._lock:
            segs = list(self._segments)
        expected = None
        for seg, following in zip(segs, segs[1:] + [None]):
            end, stop, next_offset, _ = seg.scan_into(
                OffsetIndex(seg.base_offset), TimeIndex(seg.base_offset), 0, seg.size,
                interval=seg.index_interval, expected_offset=expected)
            if stop is not None or end != seg.size:
                problems.append(f"{seg.log_path} @ byte {end}: {stop or 'short segment'}")
            if next_offset is not None:
                if following is not None and next_offset > following.base_offset:
                    problems.append(f"{seg.log_path}: holds offsets up to {next_offset - 1}, past the "
                                    f"next segment's base offset {following.base_offset}")
                expected = next_offset
        return problems

    def info(self) -> PartitionInfo:
        """A snapshot of this partition's offsets and size."""
        self.refresh()
        with self._lock:
            return PartitionInfo(self.partition, self._bases[0], self._end_offset,
                                 sum(s.size for s in self._segments), len(self._segments))

    @property
    def segments(self) -> list[Segment]:
        """The segments, oldest first (a copy of the list)."""
        return list(self._segments)

    def close(self, *, discard: bool = False) -> None:
        """Write the recovery point if this process wrote, and release every file.

        ``discard=True`` only releases the files (the partition was deleted).
        """
        if self._closed:
            return
        with self._lock:
            try:
                if self._wrote and self._failed is None and not discard:
                    with self._locked():
                        self._sync_tail(locked=True)
                        active = self._segments[-1]
                        active.writer().fdatasync()
                        self._durable = (active, active.size)
                        disk = self._read_checkpoint()
                        if disk is None or (disk[0], disk[1]) < (active.base_offset, active.size):
                            active.save_indexes()
                            self._write_checkpoint(active, active.size, self._end_offset)
            except (FileNotFoundError, UnknownTopicOrPartitionError):
                pass  # deleted under us (delete_topic elsewhere): nothing left to checkpoint
            except OSError as exc:
                raise self._io_error("close", exc) from exc
            finally:
                self._closed = True
                for seg in self._segments:
                    seg.close()
                self._flock.close()
                if self._cleaner_flock is not None:
                    self._cleaner_flock.close()
