"""Sparse offset and time indexes of a segment: caches, never the truth.

Offset index (``.index``): 8-byte entries ``(relative_offset u32, position u32)``,
little-endian, sorted; ``relative_offset`` is a batch's base offset minus the
segment's base offset and ``position`` is that batch's byte position in the
``.log`` file.  Time index (``.timeindex``): 12-byte entries ``(timestamp i64,
relative_offset u32)``: the largest record timestamp seen in the segment up
to and including the batch that starts at that offset.  An entry is added
for the first batch of a segment and then whenever ``index.interval.bytes``
of batches have been written since the last one (Kafka's rule, default 4096).

Each file ends with an 8-byte xxh3_64 of its entries (Kafka's indexes have
none).  Offset entries could be checked on use alone (the batch at
``position`` must start at the indexed offset, and it is), but a time
entry's timestamp decides retention and time lookups and cannot be checked
without reading every batch before it; a bit flip there would delete fresh
records.  An index that fails any check is rebuilt from its segment.  Index files of sealed
segments are written whole at roll (temp file and rename, no fsync: a lost
index is rebuilt); the active segment's entries live in memory and reach the
file at roll, checkpoint and close.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right

import xxhash

__all__ = ["OffsetIndex", "TimeIndex", "IndexError_", "OFFSET_ENTRY", "TIME_ENTRY", "TRAILER"]

OFFSET_ENTRY = struct.Struct("<II")
TIME_ENTRY = struct.Struct("<qI")
#: Last 8 bytes of both files: xxh3_64 of the entries before it.
TRAILER = struct.Struct("<Q")
assert OFFSET_ENTRY.size == 8 and TIME_ENTRY.size == 12 and TRAILER.size == 8


def _seal(entries: bytes) -> bytes:
    return entries + TRAILER.pack(xxhash.xxh3_64_intdigest(entries))


def _unseal(data: bytes, entry_size: int) -> bytes:
    if len(data) < TRAILER.size or (len(data) - TRAILER.size) % entry_size:
        raise IndexError_(f"index size {len(data)} is not {entry_size} * n + {TRAILER.size}")
    entries = data[:-TRAILER.size]
    if xxhash.xxh3_64_intdigest(entries) != TRAILER.unpack_from(data, len(entries))[0]:
        raise IndexError_("index fails its checksum")
    return entries


class IndexError_(Exception):
    """An index file does not pass its checks (internal: the caller rebuilds)."""


class OffsetIndex:
    """Sparse map from offset to byte position within one segment."""

    __slots__ = ("base_offset", "offsets", "positions")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.offsets = array("q")
        self.positions = array("q")

    def __len__(self) -> int:
        return len(self.offsets)

    def append(self, offset: int, position: int) -> None:
        """Add an entry; offsets and positions must both increase."""
        if self.offsets:
            assert offset > self.offsets[-1] and position > self.positions[-1], (
                offset, position, self.offsets[-1], self.positions[-1])
        self.offsets.append(offset)
        self.positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """``(offset, position)`` of the last entry at or below ``offset``, else the segment start."""
        i = bisect_right(self.offsets, offset)
        if i == 0:
            return self.base_offset, 0
        return self.offsets[i - 1], self.positions[i - 1]

    def truncate_to_position(self, position: int) -> None:
        """Drop every entry at or past ``position``."""
        i = bisect_right(self.positions, position - 1)
        del self.offsets[i:]
        del self.positions[i:]

    def clear(self) -> None:
        """Drop every entry."""
        del self.offsets[:]
        del self.positions[:]

    def to_bytes(self) -> bytes:
        """The ``.index`` file contents: entries, then their checksum."""
        base = self.base_offset
        pack = OFFSET_ENTRY.pack
        return _seal(b"".join(pack(o - base, p) for o, p in zip(self.offsets, self.positions)))

    @classmethod
    def from_bytes(cls, base_offset: int, data: bytes, segment_size: int) -> OffsetIndex:
        """Parse and check an ``.index`` file; raises IndexError_ if it cannot be trusted."""
        data = _unseal(data, OFFSET_ENTRY.size)
        idx = cls(base_offset)
        last_rel = last_pos = -1
        for rel, pos in OFFSET_ENTRY.iter_unpack(data):
            if rel <= last_rel or pos <= last_pos or pos >= segment_size:
                raise IndexError_("index entries out of order or past the segment")
            last_rel, last_pos = rel, pos
            idx.offsets.append(base_offset + rel)
            idx.positions.append(pos)
        return idx


class TimeIndex:
    """Sparse map from timestamp to offset within one segment."""

    __slots__ = ("base_offset", "timestamps", "offsets")

    def __init__(self, base_offset: int) -> None:
        self.base_offset = base_offset
        self.timestamps = array("q")
        self.offsets = array("q")

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def max_timestamp(self) -> int | None:
        """The largest timestamp recorded, if any."""
        return self.timestamps[-1] if self.timestamps else None

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add ``(timestamp, offset)`` if the timestamp is larger than the last entry's."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        if self.offsets and offset < self.offsets[-1]:
            return
        if self.offsets and offset == self.offsets[-1]:
            self.timestamps[-1] = timestamp  # same batch, larger max: update in place
            return
        self.timestamps.append(timestamp)
        self.offsets.append(offset)

    def lookup(self, timestamp: int) -> int:
        """Offset of the last entry whose timestamp is below ``timestamp``, else the base.

        Every batch up to and including that offset's batch has only records
        older than ``timestamp``, so a forward scan may start there.
        """
        i = bisect_right(self.timestamps, timestamp - 1)
        return self.offsets[i - 1] if i else self.base_offset

    def truncate_to_offset(self, offset: int) -> None:
        """Drop every entry at or past ``offset``."""
        i = bisect_right(self.offsets, offset - 1)
        del self.timestamps[i:]
        del self.offsets[i:]

    def clear(self) -> None:
        """Drop every entry."""
        del self.timestamps[:]
        del self.offsets[:]

    def to_bytes(self) -> bytes:
        """The ``.timeindex`` file contents: entries, then their checksum."""
        base = self.base_offset
        pack = TIME_ENTRY.pack
        return _seal(b"".join(pack(t, o - base) for t, o in zip(self.timestamps, self.offsets)))

    @classmethod
    def from_bytes(cls, base_offset: int, data: bytes) -> TimeIndex:
        """Parse and check a ``.timeindex`` file; raises IndexError_ if it cannot be trusted."""
        data = _unseal(data, TIME_ENTRY.size)
        idx = cls(base_offset)
        last_ts = None
        last_rel = -1
        for ts, rel in TIME_ENTRY.iter_unpack(data):
            if (last_ts is not None and ts <= last_ts) or rel < last_rel:
                raise IndexError_("time index entries out of order")
            last_ts, last_rel = ts, rel
            idx.timestamps.append(ts)
            idx.offsets.append(base_offset + rel)
        return idx
