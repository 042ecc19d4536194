"""Record batches: bytes <-> batches, pure functions (docs/format.md is the contract).

A record batch is strom's unit of writing, reading, checksumming, compression
and offset assignment: a 64-byte little-endian header followed by a payload.

    off size field               meaning
      0    8 checksum            xxh3_64 of bytes [8, batch_size) of this batch
      8    4 batch_size          whole batch in bytes, this header included
     12    1 version             format version, 1
     13    1 attributes          bits 0-2 compression (0 none, 4 zstd), bit 3
                                 timestamp type (1 = log append time), bits 4-7 zero
     14    2 producer_epoch      int16, -1 when no producer id
     16    8 base_offset         offset of the first record
     24    4 last_offset_delta   offset of the last record minus base_offset
     28    4 record_count        records in the payload
     32    8 first_timestamp     timestamp (ms) of the first record
     40    8 max_timestamp       largest record timestamp (ms)
     48    8 producer_id         int64, -1 when none
     56    4 base_sequence       int32, -1 when none
     60    4 raw_size            payload size before compression
     64    . payload             msgpack, zstd-compressed when bits 0-2 say so

The payload is one msgpack array of five columns, so a reader gets every
value of a batch from one C call and no per-record framing is parsed in
Python:

    [keys, values, timestamp_deltas, headers, offset_deltas]

``keys`` is nil when every key is nil; ``timestamp_deltas`` (record
timestamp minus first_timestamp) is nil when every record has
first_timestamp; ``headers`` is nil when no record has headers, else one
entry per record (nil or an array of [str, bin] pairs); ``offset_deltas`` is
nil for dense batches (0, 1, ..., n-1) and is present only after compaction.

Why a checksum over the header too: the base offset is written under the
partition lock and must be protected, unlike Kafka's broker-assigned offsets
that sit outside its CRC.  xxh3 runs at tens of GB/s here; a crc32 would cost
six times more and catch nothing more that matters (torn tails, bit flips).
The checksum is not a MAC: it detects accidents, not forgery.
"""

from __future__ import annotations

import struct
import threading
from itertools import repeat
from typing import Any, Iterator, NamedTuple, Sequence

import msgpack
import xxhash
import zstandard

from ..errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "VERSION",
    "COMPRESSION_NONE",
    "COMPRESSION_ZSTD",
    "TIMESTAMP_LOG_APPEND",
    "MAX_BATCH_BYTES",
    "MAX_RAW_PAYLOAD_BYTES",
    "EncodedPayload",
    "RecordBatch",
    "BatchColumns",
    "encode_payload",
    "frame",
    "encode_batch",
    "scan",
    "ScanResult",
]

HEADER = struct.Struct("<QIBBhqIIqqqiI")
HEADER_SIZE = 64
assert HEADER.size == HEADER_SIZE
#: Everything the checksum covers in the header (bytes 8..64).
_HEADER_TAIL = struct.Struct("<IBBhqIIqqqiI")
assert _HEADER_TAIL.size == HEADER_SIZE - 8
_CHECKSUM = struct.Struct("<Q")

VERSION = 1
COMPRESSION_MASK = 0x07
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 4  # Kafka's number for zstd, so the wire codec can map it 1:1
TIMESTAMP_LOG_APPEND = 0x08
_KNOWN_ATTRIBUTES = COMPRESSION_MASK | TIMESTAMP_LOG_APPEND

#: Largest batch the format accepts (header included).  Bounds what a reader
#: allocates for one batch read from an untrusted header; max.message.bytes
#: cannot be set above it.
MAX_BATCH_BYTES = 64 * 1024 * 1024
#: Largest payload before compression; bounds zstd output for a crafted batch.
MAX_RAW_PAYLOAD_BYTES = 256 * 1024 * 1024
#: zstd level 1: per 64 KiB batch it keeps 99% of level 3's ratio at 78% of
#: its cost (research/peers.md, measured here).
ZSTD_LEVEL = 1

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT32_MAX = 2**32 - 1
_BYTES_LIKE = frozenset({bytes, bytearray, memoryview, type(None)})

_local = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zc", None)
    if c is None:  # not thread-safe, so one per thread
        c = _local.zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return c


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zd", None)
    if d is None:
        d = _local.zd = zstandard.ZstdDecompressor()
    return d


class EncodedPayload:
    """A batch's payload, encoded and ready to be framed at a base offset."""

    __slots__ = ("payload", "raw_size", "record_count", "last_offset_delta",
                 "first_timestamp", "max_timestamp", "attributes",
                 "producer_id", "producer_epoch", "base_sequence")

    def __init__(self, payload: bytes, raw_size: int, record_count: int, last_offset_delta: int,
                 first_timestamp: int, max_timestamp: int, attributes: int,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1):
        self.payload = payload
        self.raw_size = raw_size
        self.record_count = record_count
        self.last_offset_delta = last_offset_delta
        self.first_timestamp = first_timestamp
        self.max_timestamp = max_timestamp
        self.attributes = attributes
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence

    @property
    def batch_size(self) -> int:
        """Bytes this batch takes on disk, header included."""
        return HEADER_SIZE + len(self.payload)


def _check_column(name: str, column: Sequence[Any], count: int) -> None:
    if len(column) != count:
        raise InvalidRecordError(f"{name} has {len(column)} entries for {count} values")
    kinds = set(map(type, column))  # C-speed: about 10 ns a record
    if not kinds <= _BYTES_LIKE:
        bad = sorted(k.__name__ for k in kinds - _BYTES_LIKE)
        raise InvalidRecordError(f"{name} must be bytes or None, found {', '.join(bad)}")


def _check_headers(headers: Sequence[Any], count: int) -> list[Any] | None:
    if len(headers) != count:
        raise InvalidRecordError(f"headers has {len(headers)} entries for {count} values")
    out: list[Any] = []
    any_header = False
    for h in headers:
        if h is None or (isinstance(h, (list, tuple)) and not h):
            out.append(None)
            continue
        if not isinstance(h, (list, tuple)):
            raise InvalidRecordError(
                f"each record's headers must be a list of (str, bytes) pairs or None, not {h!r}")
        pairs = []
        for pair in h:
            try:
                k, v = pair
            except (TypeError, ValueError):
                raise InvalidRecordError(f"a header must be a (str, bytes) pair, got {pair!r}") from None
            if not isinstance(k, str) or not (v is None or type(v) in _BYTES_LIKE):
                raise InvalidRecordError(f"a header must be a (str, bytes) pair, got {pair!r}")
            pairs.append((k, v))
        out.append(pairs)
        any_header = True
    return out if any_header else None


def encode_payload(values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None,
                   timestamps: int | Sequence[int] = 0, headers: Sequence[Any] | None = None, *,
                   offset_deltas: Sequence[int] | None = None, compression: int = COMPRESSION_NONE,
                   log_append_time: bool = False, producer_id: int = -1, producer_epoch: int = -1,
                   base_sequence: int = -1) -> EncodedPayload:
    """Encode records (given as columns) into a payload; the base offset comes later.

    ``timestamps`` is one int for every record or one int per record.  Raises
    InvalidRecordError for wrong types and RecordTooLargeError past the
    format's limits.
    """
    if isinstance(values, (bytes, bytearray, str)):
        raise InvalidRecordError("values must be a sequence of bytes, not a single bytes/str")
    count = len(values)
    _check_column("values", values, count)
    if keys is not None:
        if isinstance(keys, (bytes, bytearray, str)):
            raise InvalidRecordError("keys must be a sequence of bytes, not a single bytes/str")
        _check_column("keys", keys, count)
        if not any(k is not None for k in keys):
            keys = None
    if headers is not None:
        headers = _check_headers(headers, count)
    if type(timestamps) is int:
        first_ts = max_ts = min_ts = timestamps
        ts_deltas = None
    else:
        if not isinstance(timestamps, Sequence) or isinstance(timestamps, (str, bytes)):
            raise InvalidRecordError(
                f"timestamps must be an int or a sequence of ints, not {type(timestamps).__name__}")
        if len(timestamps) != count or count == 0:
            raise InvalidRecordError(f"timestamps has {len(timestamps)} entries for {count} values")
        if set(map(type, timestamps)) != {int}:
            raise InvalidRecordError("timestamps must be ints (milliseconds)")
        first_ts = timestamps[0]
        max_ts = max(timestamps)
        min_ts = min(timestamps)
        ts_deltas = None if (max_ts == first_ts and min_ts == first_ts) else \
            list(map(first_ts.__rsub__, timestamps))
    if not (_INT64_MIN <= min_ts and max_ts <= _INT64_MAX):
        raise InvalidRecordError("timestamps must fit in a signed 64-bit integer")
    if offset_deltas is None:
        last_delta = count - 1 if count else 0
    else:
        if not isinstance(offset_deltas, Sequence) or len(offset_deltas) != count:
            raise InvalidRecordError("offset_deltas must be a sequence with one entry per value")
        if count and (set(map(type, offset_deltas)) != {int} or offset_deltas[0] < 0
                      or not all(map(int.__lt__, offset_deltas, offset_deltas[1:]))):
            raise InvalidRecordError("offset_deltas must be strictly increasing ints >= 0")
        last_delta = offset_deltas[-1] if count else 0
    if last_delta > _UINT32_MAX:
        raise RecordTooLargeError("a batch may span at most 2**32 offsets")
    for name, value, lo, hi in (("producer_id", producer_id, _INT64_MIN, _INT64_MAX),
                                ("producer_epoch", producer_epoch, -(2**15), 2**15 - 1),
                                ("base_sequence", base_sequence, -(2**31), 2**31 - 1)):
        if type(value) is not int or not lo <= value <= hi:
            raise InvalidRecordError(f"{name} must be an int in [{lo}, {hi}], not {value!r}")
    try:
        raw = msgpack.packb([keys, values, ts_deltas, headers, offset_deltas], use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRecordError(f"records could not be encoded: {exc}") from None
    raw_size = len(raw)
    if raw_size > MAX_RAW_PAYLOAD_BYTES:
        raise RecordTooLargeError(
            f"batch payload is {raw_size} bytes; the format limit is {MAX_RAW_PAYLOAD_BYTES}")
    attributes = TIMESTAMP_LOG_APPEND if log_append_time else 0
    payload = raw
    if compression == COMPRESSION_ZSTD:
        packed = _zstd_compressor().compress(raw)
        if len(packed) < raw_size:  # incompressible data stays plain: cheaper to read
            payload = packed
            attributes |= COMPRESSION_ZSTD
    elif compression != COMPRESSION_NONE:
        raise InvalidRecordError(f"unknown compression code {compression}")
    if HEADER_SIZE + len(payload) > MAX_BATCH_BYTES:
        raise RecordTooLargeError(
            f"batch is {HEADER_SIZE + len(payload)} bytes; the format limit is {MAX_BATCH_BYTES}")
    return EncodedPayload(payload, raw_size, count, last_delta, first_ts, max_ts, attributes,
                          producer_id, producer_epoch, base_sequence)


def frame(enc: EncodedPayload, base_offset: int) -> bytes:
    """The 64-byte header (checksum included) that places ``enc`` at ``base_offset``."""
    tail = _HEADER_TAIL.pack(
        HEADER_SIZE + len(enc.payload), VERSION, enc.attributes, enc.producer_epoch, base_offset,
        enc.last_offset_delta, enc.record_count, enc.first_timestamp, enc.max_timestamp,
        enc.producer_id, enc.base_sequence, enc.raw_size)
    h = xxhash.xxh3_64(tail)
    h.update(enc.payload)
    return _CHECKSUM.pack(h.intdigest()) + tail


def encode_batch(base_offset: int, values: Sequence[bytes | None], keys=None, timestamps=0,
                 headers=None, **kwargs: Any) -> bytes:
    """Encode and frame one whole batch (header + payload) as bytes."""
    enc = encode_payload(values, keys, timestamps, headers, **kwargs)
    return frame(enc, base_offset) + enc.payload


class BatchColumns(NamedTuple):
    """The records of a batch as columns (one list per field)."""

    offsets: Sequence[int]
    timestamps: list[int]
    keys: list[bytes | None] | None
    values: list[bytes | None]
    headers: list[Any] | None


class RecordBatch:
    """One verified batch read from a segment; records decode on demand.

    ``position`` is the batch's byte position in its segment file (or -1).
    """

    __slots__ = ("base_offset", "last_offset_delta", "record_count", "first_timestamp",
                 "max_timestamp", "attributes", "producer_id", "producer_epoch",
                 "base_sequence", "raw_size", "size", "position", "_payload", "_path")

    def __init__(self, header: tuple, payload: Any, position: int = -1, path: str | None = None):
        (_checksum, self.size, _version, self.attributes, self.producer_epoch,
         self.base_offset, self.last_offset_delta, self.record_count, self.first_timestamp,
         self.max_timestamp, self.producer_id, self.base_sequence, self.raw_size) = header
        self._payload = payload
        self.position = position
        self._path = path

    @property
    def last_offset(self) -> int:
        """Offset of the batch's last record."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset that follows this batch."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        """Compression code (0 none, 4 zstd)."""
        return self.attributes & COMPRESSION_MASK

    @property
    def log_append_time(self) -> bool:
        """True when the timestamps were set by the log, not the producer."""
        return bool(self.attributes & TIMESTAMP_LOG_APPEND)

    def __repr__(self) -> str:
        return (f"RecordBatch(base_offset={self.base_offset}, records={self.record_count}, "
                f"last_offset={self.last_offset}, size={self.size})")

    def _corrupt(self, why: str) -> CorruptRecordError:
        return CorruptRecordError(f"batch at offset {self.base_offset}: {why}",
                                  path=self._path, position=self.position)

    def payload_bytes(self) -> bytes:
        """The payload after decompression."""
        payload = self._payload
        if self.attributes & COMPRESSION_MASK == COMPRESSION_ZSTD:
            # zstandard trusts the frame's own content size over max_output_size,
            # so a crafted frame is checked against raw_size before it is inflated.
            try:
                declared = zstandard.frame_content_size(payload)
            except zstandard.ZstdError as exc:
                raise self._corrupt(f"zstd frame header is invalid: {exc}") from None
            if declared not in (-1, self.raw_size):
                raise self._corrupt(f"zstd frame declares {declared} bytes, raw_size is {self.raw_size}")
            try:
                payload = _zstd_decompressor().decompress(payload, max_output_size=self.raw_size)
            except zstandard.ZstdError as exc:
                raise self._corrupt(f"zstd payload does not decompress: {exc}") from None
            if len(payload) != self.raw_size:
                raise self._corrupt("decompressed size differs from raw_size")
        return payload

    def columns(self) -> BatchColumns:
        """Decode every record of the batch into columns."""
        try:
            obj = msgpack.unpackb(self.payload_bytes(), use_list=True, raw=False)
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"payload is not valid msgpack: {exc}") from None
        n = self.record_count
        if not (isinstance(obj, list) and len(obj) == 5):
            raise self._corrupt("payload is not a 5-column array")
        keys, values, ts_deltas, headers, offset_deltas = obj
        if not isinstance(values, list) or len(values) != n:
            raise self._corrupt("values column does not match record_count")
        if keys is not None and (not isinstance(keys, list) or len(keys) != n):
            raise self._corrupt("keys column does not match record_count")
        if headers is not None and (not isinstance(headers, list) or len(headers) != n):
            raise self._corrupt("headers column does not match record_count")
        offsets = self._offsets(offset_deltas)
        first = self.first_timestamp
        if ts_deltas is None:
            timestamps = [first] * n
        else:
            if not isinstance(ts_deltas, list) or len(ts_deltas) != n:
                raise self._corrupt("timestamp column does not match record_count")
            if n and set(map(type, ts_deltas)) != {int}:
                raise self._corrupt("timestamp column holds a non-integer")
            timestamps = list(map(first.__add__, ts_deltas))
        return BatchColumns(offsets, timestamps, keys, values, headers)

    def keys_and_offsets(self) -> tuple[list[bytes | None] | None, Sequence[int]]:
        """The keys column and the offsets, without building the values (the cleaner's map pass)."""
        payload = self.payload_bytes()
        up = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=max(len(payload), 1))
        try:
            up.feed(payload)
            if up.read_array_header() != 5:
                raise self._corrupt("payload is not a 5-column array")
            keys = up.unpack()
            up.skip()
            up.skip()
            up.skip()
            offset_deltas = up.unpack()
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.OutOfData,
                msgpack.StackError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"payload is not valid msgpack: {exc}") from None
        n = self.record_count
        if keys is not None and (not isinstance(keys, list) or len(keys) != n):
            raise self._corrupt("keys column does not match record_count")
        return keys, self._offsets(offset_deltas)

    def _offsets(self, offset_deltas: Any) -> Sequence[int]:
        """The records' offsets from the payload's offset_deltas column, checked against the header."""
        n = self.record_count
        base = self.base_offset
        if offset_deltas is None:
            if n and self.last_offset_delta != n - 1:
                raise self._corrupt("dense batch with last_offset_delta != record_count - 1")
            return range(base, base + n)
        if not isinstance(offset_deltas, list) or len(offset_deltas) != n or (
                n and (offset_deltas[-1] != self.last_offset_delta
                       or set(map(type, offset_deltas)) != {int})):
            raise self._corrupt("offset_deltas column does not match the header")
        return list(map(base.__add__, offset_deltas))

    def records(self, start_offset: int | None = None) -> list[tuple]:
        """Records as ``(offset, timestamp, key, value, headers)`` tuples, from ``start_offset``."""
        offsets, timestamps, keys, values, headers = self.columns()
        rows = list(zip(offsets, timestamps, keys if keys is not None else repeat(None),
                        values, headers if headers is not None else repeat(None)))
        if start_offset is not None and start_offset > self.base_offset:
            if isinstance(offsets, range):
                return rows[start_offset - self.base_offset:]
            return [r for r in rows if r[0] >= start_offset]
        return rows

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.records())


class ScanResult(NamedTuple):
    """What :func:`scan` found: whole valid batches, where they end, why it stopped.

    ``stop`` is ``None`` when the buffer ended exactly after a batch,
    ``"incomplete"`` when the last batch runs past the buffer, or a
    description of the first invalid bytes.
    """

    batches: list[RecordBatch]
    end: int
    stop: str | None


def scan(buf: bytes | memoryview, start: int = 0, *, base_position: int = 0,
         path: str | None = None, max_batches: int | None = None) -> ScanResult:
    """Parse consecutive batches of ``buf`` from ``start``, verifying each checksum.

    ``base_position`` is the file position of ``buf[0]`` (for error reports and
    ``RecordBatch.position``).  Stops at the end of the buffer, at a batch
    that runs past it, or at the first invalid batch; never raises on bad
    bytes: the caller decides whether they are a torn tail or corruption.
    """
    mv = memoryview(buf)
    n = len(mv)
    pos = start
    out: list[RecordBatch] = []
    unpack_from = HEADER.unpack_from
    digest = xxhash.xxh3_64_intdigest
    while pos < n:
        if max_batches is not None and len(out) >= max_batches:
            return ScanResult(out, pos, None)
        if n - pos < HEADER_SIZE:
            return ScanResult(out, pos, "incomplete")
        header = unpack_from(mv, pos)
        size = header[1]
        if header[2] != VERSION:
            return ScanResult(out, pos, f"unknown format version {header[2]}")
        if size < HEADER_SIZE or size > MAX_BATCH_BYTES:
            return ScanResult(out, pos, f"batch_size {size} out of range")
        if header[3] & ~_KNOWN_ATTRIBUTES or (header[3] & COMPRESSION_MASK) not in (
                COMPRESSION_NONE, COMPRESSION_ZSTD):
            return ScanResult(out, pos, f"unknown attributes {header[3]:#x}")
        if pos + size > n:
            return ScanResult(out, pos, "incomplete")
        if digest(mv[pos + 8:pos + size]) != header[0]:
            return ScanResult(out, pos, "checksum mismatch")
        if header[12] > MAX_RAW_PAYLOAD_BYTES or (
                header[3] & COMPRESSION_MASK == COMPRESSION_NONE and header[12] != size - HEADER_SIZE):
            return ScanResult(out, pos, "raw_size inconsistent with batch_size")
        if header[5] < 0 or header[7] > header[6] + 1:
            return ScanResult(out, pos, "offset fields inconsistent")
        out.append(RecordBatch(header, mv[pos + HEADER_SIZE:pos + size], base_position + pos, path))
        pos += size
    return ScanResult(out, pos, None)
