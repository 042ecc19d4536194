"""A segment: one ``.log`` file of consecutive batches, with its two indexes.

Invariants (Kafka's): the segment's base offset is at or below every offset
in it and above every offset in earlier segments; its name is the base offset
in 20 digits.  ``size`` is the number of bytes known to hold whole, valid
batches: readers never read past it, so they never see a batch that a writer
is still copying in.

Not thread-safe on its own: the owning Partition serialises changes.  File
objects are dropped, never closed, when a segment is sealed or deleted, so a
reader in another thread that still holds one keeps a valid descriptor; the
descriptor closes when the last reference goes.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict

from ..codec.batch import HEADER, HEADER_SIZE, RecordBatch, scan
from ..errors import CorruptRecordError
from .fs import File, FileSystem
from .index import IndexError_, OffsetIndex, TimeIndex

__all__ = ["Segment", "ReaderCache", "segment_name", "parse_segment_name", "SCAN_CHUNK_BYTES"]

#: Bytes read per pread when scanning a segment: large enough that syscall cost
#: vanishes (16 batches of 64 KiB), small enough to stay in cache.
SCAN_CHUNK_BYTES = 1024 * 1024


class ReaderCache:
    """Bounds how many segments keep a read descriptor open (shared by a Log's partitions).

    A partition with thousands of segments would otherwise hold a descriptor
    per segment ever read and run into the process's limit (EMFILE).  When a
    segment opens its reader past ``limit``, the segment that opened one
    longest ago forgets its own; a reader still in use elsewhere stays valid
    (File objects close when the last reference goes) and the next read of
    that segment reopens it.  Order is by opening, not by use, so reads pay
    nothing for the bookkeeping.
    """

    #: Descriptors kept per Log by default: far below the usual 1024, and enough
    #: for a reader per partition of a few dozen busy partitions.
    DEFAULT_LIMIT = 256

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._open: OrderedDict[Segment, None] = OrderedDict()
        self._lock = threading.Lock()

    def opened(self, seg: Segment) -> None:
        """``seg`` just opened its reader; evict the oldest beyond the limit."""
        with self._lock:
            self._open[seg] = None
            self._open.move_to_end(seg)
            while len(self._open) > self.limit:
                old, _ = self._open.popitem(last=False)
                old._reader = None

    def forget(self, seg: Segment) -> None:
        """``seg`` dropped its reader."""
        with self._lock:
            self._open.pop(seg, None)

    def __len__(self) -> int:
        return len(self._open)


def segment_name(base_offset: int, suffix: str = ".log") -> str:
    """``00000000000000000042.log`` for base offset 42."""
    return f"{base_offset:020d}{suffix}"


def parse_segment_name(name: str) -> tuple[int, str] | None:
    """``(base_offset, suffix)`` for a segment file name, else None."""
    stem, dot, suffix = name.partition(".")
    if len(stem) != 20 or not stem.isdigit() or not dot:
        return None
    return int(stem), "." + suffix


class Segment:
    """One segment file and its in-memory state."""

    __slots__ = ("fs", "dir", "base_offset", "size", "next_offset", "max_timestamp",
                 "_first_timestamp", "_reader", "_writer", "_index", "_timeindex",
                 "bytes_since_index", "log_path", "index_interval", "reader_cache", "ino",
                 "retired")

    def __init__(self, fs: FileSystem, directory: str, base_offset: int, size: int = 0) -> None:
        self.fs = fs
        self.dir = directory
        self.base_offset = base_offset
        self.log_path = os.path.join(directory, segment_name(base_offset))
        self.size = size
        # Offset after the last batch; known for the active segment, None until scanned otherwise.
        self.next_offset: int | None = base_offset if size == 0 else None
        self.max_timestamp: int | None = None
        self._first_timestamp: int | None = None
        self._reader: File | None = None
        self._writer: File | None = None
        self._index: OffsetIndex | None = None
        self._timeindex: TimeIndex | None = None
        self.bytes_since_index = 0
        self.index_interval = 4096  # index.interval.bytes; the partition sets the topic's
        self.reader_cache: ReaderCache | None = None  # set by the partition
        # The inode of the file this object describes, once known.  The cleaner
        # replaces a sealed segment's file under the same name; an object that
        # describes the old file must never read the new one with the old
        # sizes and index (it reads FileNotFoundError and its owner looks again).
        self.ino: int | None = None
        self.retired = False  # replaced by compaction or deleted: never reopen

    def __repr__(self) -> str:
        return f"Segment(base_offset={self.base_offset}, size={self.size})"

    @property
    def index_path(self) -> str:
        return os.path.join(self.dir, segment_name(self.base_offset, ".index"))

    @property
    def timeindex_path(self) -> str:
        return os.path.join(self.dir, segment_name(self.base_offset, ".timeindex"))

    # -- files ---------------------------------------------------------------

    def _open(self, write: bool) -> File:
        if self.retired:
            raise FileNotFoundError(errno.ENOENT, "segment was replaced or deleted", self.log_path)
        f = self.fs.open(self.log_path, write=write)
        try:
            ino = f.ino()
        except BaseException:
            f.close()
            raise
        if self.ino is None:
            self.ino = ino
        elif ino != self.ino:  # the cleaner swapped a new file in under this name
            f.close()
            raise FileNotFoundError(errno.ENOENT, "segment file was replaced", self.log_path)
        return f

    def reader(self) -> File:
        """A read-only descriptor (opened on first use).

        Raises FileNotFoundError if the file is gone or is no longer the one
        this object describes (compaction replaced it).
        """
        f = self._reader
        if f is None:
            f = self._reader = self._open(False)
            if self.reader_cache is not None:
                self.reader_cache.opened(self)
        return f

    def writer(self) -> File:
        """A read-write descriptor (opened on first use)."""
        f = self._writer
        if f is None:
            f = self._writer = self._open(True)
        return f

    def retire(self) -> None:
        """This file was replaced or deleted: drop the descriptors and never reopen by name."""
        self.retired = True
        self.drop_files()

    def is_current(self) -> bool:
        """True if ``log_path`` still names the file this object describes."""
        if self.retired:
            return False
        try:
            _size, ino = self.fs.size_and_ino(self.log_path)
        except FileNotFoundError:
            return False
        return self.ino is None or ino == self.ino

    def writer_if_open(self) -> File | None:
        """The read-write descriptor if one is open."""
        return self._writer

    def drop_files(self) -> None:
        """Forget the descriptors; they close when no reader holds them any more."""
        if self._reader is not None and self.reader_cache is not None:
            self.reader_cache.forget(self)
        self._reader = None
        self._writer = None

    def close(self) -> None:
        """Close the descriptors now."""
        for f in (self._reader, self._writer):
            if f is not None:
                f.close()
        self.drop_files()

    def read(self, position: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``position``, never past ``size``."""
        n = min(n, self.size - position)
        if n <= 0:
            return b""
        return self.reader().pread(n, position)

    # -- indexes -------------------------------------------------------------

    @property
    def index(self) -> OffsetIndex:
        """The offset index, loaded (or rebuilt) on first use."""
        if self._index is None:
            self.load_indexes()
        assert self._index is not None
        return self._index

    @property
    def timeindex(self) -> TimeIndex:
        """The time index, loaded (or rebuilt) on first use."""
        if self._timeindex is None:
            self.load_indexes()
        assert self._timeindex is not None
        return self._timeindex

    def set_indexes(self, index: OffsetIndex, timeindex: TimeIndex) -> None:
        """Adopt indexes built by a scan."""
        self._index = index
        self._timeindex = timeindex
        tmax = timeindex.max_timestamp
        if tmax is not None and (self.max_timestamp is None or tmax > self.max_timestamp):
            self.max_timestamp = tmax

    def forget_indexes(self) -> None:
        """Drop the in-memory indexes (another process sealed this segment and wrote its files)."""
        self._index = None
        self._timeindex = None
        self.max_timestamp = None
        self.next_offset = None

    def load_indexes(self) -> None:
        """Load both index files, rebuilding from the segment if either fails its checks."""
        try:
            index = OffsetIndex.from_bytes(self.base_offset, self._read_file(self.index_path),
                                           max(self.size, 1))
            timeindex = TimeIndex.from_bytes(self.base_offset, self._read_file(self.timeindex_path))
            if self.size and (not len(index) or not len(timeindex)):
                raise IndexError_("empty index for a non-empty segment")
            if len(index) and not self.index_entry_valid(index.offsets[-1], index.positions[-1]):
                raise IndexError_("last index entry does not point at its batch")
        except (IndexError_, FileNotFoundError):
            self.rebuild_indexes()
            return
        self.set_indexes(index, timeindex)

    def _read_file(self, path: str) -> bytes:
        f = self.fs.open(path)
        try:
            return f.pread(f.size(), 0)
        finally:
            f.close()

    def index_entry_valid(self, offset: int, position: int) -> bool:
        """True if a batch with base offset ``offset`` starts at ``position``."""
        if position < 0 or position + HEADER_SIZE > self.size:
            return False
        head = self.reader().pread(HEADER_SIZE, position)
        if len(head) < HEADER_SIZE:
            return False
        return HEADER.unpack(head)[5] == offset

    def rebuild_indexes(self) -> int:
        """Rebuild both indexes by scanning the whole segment; returns the valid byte count.

        Raises CorruptRecordError if the segment holds an invalid batch before ``size``.
        """
        index = OffsetIndex(self.base_offset)
        timeindex = TimeIndex(self.base_offset)
        self.max_timestamp = None
        end, stop, next_offset, since = self.scan_into(index, timeindex, 0, self.size,
                                                       interval=self.index_interval)
        if stop is not None or end != self.size:
            raise CorruptRecordError(f"segment is damaged ({stop or 'short'})",
                                     path=self.log_path, position=end)
        self.set_indexes(index, timeindex)
        if next_offset is not None:
            self.next_offset = next_offset
        self.bytes_since_index = since
        self.seal_timeindex()
        if self.is_current():  # never write an index for a file the cleaner replaced
            try:
                self.save_indexes()  # so the next open does not rebuild again
            except OSError:
                pass  # a cache: a read-only or full disk only costs another rebuild
        return end

    def seal_timeindex(self) -> None:
        """Record the segment's largest timestamp as the time index's last entry.

        Between index points the time index lags; the last entry makes a
        sealed segment's largest timestamp (for retention and time lookups)
        readable without a scan.
        """
        if self.max_timestamp is None or self.next_offset is None or self.next_offset <= self.base_offset:
            return
        self.timeindex.maybe_append(self.max_timestamp, self.next_offset - 1)

    def scan_into(self, index: OffsetIndex, timeindex: TimeIndex, start: int, limit: int, *,
                  interval: int, expected_offset: int | None = None,
                  bytes_since_index: int | None = None) -> tuple[int, str | None, int | None, int]:
        """Scan and verify batches in ``[start, limit)``, adding index entries as a writer would.

        Returns ``(end, stop, next_offset, bytes_since_index)``: ``end`` is the
        position after the last valid batch, ``stop`` why the scan ended early
        (None when it reached ``limit`` exactly).  A batch whose base offset is
        below ``expected_offset`` counts as invalid (offsets only increase).
        """
        f = self.reader()
        pos = start
        next_offset = expected_offset
        since = interval if (bytes_since_index is None or start == 0) else bytes_since_index
        need = 0
        while pos < limit:
            want = min(max(SCAN_CHUNK_BYTES, need), limit - pos)
            chunk = f.pread(want, pos)
            res = scan(chunk, base_position=pos, path=self.log_path)
            for b in res.batches:
                if next_offset is not None and b.base_offset < next_offset:
                    return b.position, "offsets go backwards", next_offset, since
                if self.max_timestamp is None or b.max_timestamp > self.max_timestamp:
                    self.max_timestamp = b.max_timestamp
                if since >= interval:  # the first batch of a segment is always indexed
                    index.append(b.base_offset, b.position)
                    timeindex.maybe_append(self.max_timestamp, b.base_offset)
                    since = 0
                since += b.size
                if b.position == 0:
                    self._first_timestamp = b.first_timestamp
                next_offset = b.next_offset
            pos += res.end
            if res.stop is None:
                if len(chunk) < want:
                    return pos, "incomplete", next_offset, since  # the file is shorter than limit
                continue
            if res.stop != "incomplete" or len(chunk) < want:
                return pos, res.stop, next_offset, since
            # The chunk cut a batch in two: read again from its start, big enough to hold it.
            rest = len(chunk) - res.end
            need = HEADER.unpack_from(chunk, res.end)[1] if rest >= HEADER_SIZE else HEADER_SIZE
            if pos + need > limit:
                return pos, "incomplete", next_offset, since
        return pos, None, next_offset, since

    def save_indexes(self) -> None:
        """Write both index files whole (temp file and rename; no fsync: they are caches).

        The time index gets the segment's largest timestamp as its last entry
        first, so that whoever loads the files knows it without a scan.
        """
        if self._index is None or self._timeindex is None:
            return
        self.seal_timeindex()
        self.fs.write_atomic(self.index_path, self._index.to_bytes(), durable=False)
        self.fs.write_atomic(self.timeindex_path, self._timeindex.to_bytes(), durable=False)

    # -- batches -------------------------------------------------------------

    def first_timestamp(self) -> int | None:
        """First record timestamp of the segment (its first batch's), or None if empty."""
        if self._first_timestamp is None and self.size >= HEADER_SIZE:
            head = self.reader().pread(HEADER_SIZE, 0)
            if len(head) == HEADER_SIZE:
                self._first_timestamp = HEADER.unpack(head)[8]
        return self._first_timestamp

    def reset_first_timestamp(self) -> None:
        """Forget the cached first timestamp (after truncation)."""
        self._first_timestamp = None

    def read_batches(self, position: int, max_bytes: int) -> tuple[list[RecordBatch], int, str | None]:
        """Verified batches from ``position``, at least one if any fits before ``size``.

        Returns ``(batches, end_position, stop)``.
        """
        data = self.read(position, max(max_bytes, HEADER_SIZE))
        res = scan(data, base_position=position, path=self.log_path)
        if res.stop == "incomplete" and not res.batches and len(data) >= HEADER_SIZE:
            size = HEADER.unpack_from(data, 0)[1]
            if position + size <= self.size and size > len(data):
                data = self.read(position, size)
                res = scan(data, base_position=position, path=self.log_path)
        elif res.stop == "incomplete" and res.batches:
            res = res._replace(stop=None)  # cut by max_bytes, not by damage
        batches = res.batches
        last = self.base_offset - 1
        for i, b in enumerate(batches):
            if b.base_offset <= last:  # a batch out of place (e.g. copied over its neighbour)
                return batches[:i], b.position, "offsets go backwards"
            last = b.base_offset + b.last_offset_delta
        return batches, position + res.end, res.stop
