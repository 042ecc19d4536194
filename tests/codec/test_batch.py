"""Unit tests for the record batch codec (src/strom/codec/batch.py; docs/format.md).

Layout of this file: round trips, header fields, scan() over several
batches, the table of damaged batches and the stop reason scan() gives for
each, payloads that pass the checksum but not the decoder, limits at the
limit and one past it, argument misuse, then the hypothesis properties.
"""

from __future__ import annotations

import random
import struct
import tracemalloc
from itertools import accumulate

import msgpack
import pytest
import xxhash
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.codec import batch as codec
from strom.codec.batch import (
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    HEADER,
    HEADER_SIZE,
    MAX_BATCH_BYTES,
    MAX_RAW_PAYLOAD_BYTES,
    TIMESTAMP_LOG_APPEND,
    VERSION,
    EncodedPayload,
    encode_batch,
    encode_payload,
    frame,
    scan,
)
from strom.config import TopicConfig
from strom.errors import (
    CorruptRecordError,
    InvalidConfigError,
    InvalidRecordError,
    RecordTooLargeError,
    StromError,
)

# -- helpers -------------------------------------------------------------------

#: Header fields in HEADER's order, named as in docs/format.md.
FIELDS = ("checksum", "batch_size", "version", "attributes", "producer_epoch", "base_offset",
          "last_offset_delta", "record_count", "first_timestamp", "max_timestamp",
          "producer_id", "base_sequence", "raw_size")
CODE = dict(zip(FIELDS, HEADER.format.lstrip("<=")))
OFFSET = {name: struct.calcsize("<" + "".join(CODE[f] for f in FIELDS[:i]))
          for i, name in enumerate(FIELDS)}
SIZE = {name: struct.calcsize("<" + CODE[name]) for name in FIELDS}
assert len(CODE) == len(FIELDS) and OFFSET["raw_size"] + SIZE["raw_size"] == HEADER_SIZE

INT64 = (-(2**63), 2**63 - 1)

#: Hypothesis: fast, deterministic, and no example database left in the repo.
FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)


def header(buf: bytes, pos: int = 0) -> dict:
    """The header at ``pos`` as a dict of field name -> value."""
    return dict(zip(FIELDS, HEADER.unpack_from(buf, pos)))


def reseal(buf: bytes) -> bytes:
    """Recompute the checksum of the single batch at the start of ``buf``."""
    size = min(header(buf)["batch_size"], len(buf))
    return struct.pack("<Q", xxhash.xxh3_64_intdigest(buf[8:size])) + buf[8:]


def put(buf: bytes, field: str, value: int, *, resealed: bool = False) -> bytes:
    """``buf`` with one header field overwritten (checksum recomputed if ``resealed``)."""
    out = bytearray(buf)
    struct.pack_into("<" + CODE[field], out, OFFSET[field], value)
    return reseal(bytes(out)) if resealed else bytes(out)


def flip(buf: bytes, index: int, mask: int = 0x01) -> bytes:
    """``buf`` with the byte at ``index`` XORed with ``mask``."""
    out = bytearray(buf)
    out[index] ^= mask
    return bytes(out)


def only(buf: bytes):
    """The one batch ``buf`` holds, checked whole by scan()."""
    result = scan(buf)
    assert result.stop is None and result.end == len(buf) and len(result.batches) == 1, result
    return result.batches[0]


def columns_of(buf: bytes) -> list:
    """The raw msgpack columns of a single uncompressed-or-zstd batch."""
    return msgpack.unpackb(only(buf).payload_bytes(), raw=False)


def plain(headers):
    """Decoded headers with each pair as a tuple, for comparing with what was encoded."""
    if headers is None:
        return None
    return [None if h is None else [tuple(pair) for pair in h] for h in headers]


def craft(payload, record_count: int, last_offset_delta: int, *, attributes: int = 0,
          raw_size: int | None = None, first_timestamp: int = 0) -> bytes:
    """A batch with a valid checksum around an arbitrary payload (an object or raw bytes)."""
    if not isinstance(payload, bytes):
        payload = msgpack.packb(payload, use_bin_type=True)
    enc = EncodedPayload(payload, len(payload) if raw_size is None else raw_size, record_count,
                         last_offset_delta, first_timestamp, first_timestamp, attributes)
    return frame(enc, 0) + payload


def value_for_raw_size(target: int) -> bytes:
    """A compressible value whose one-record payload is exactly ``target`` bytes of msgpack."""
    for n in range(target, max(target - 16, 0), -1):
        if len(msgpack.packb([None, [b"a" * n], None, None, None], use_bin_type=True)) == target:
            return b"a" * n
    raise AssertionError(f"no value gives a {target}-byte payload")


# -- round trips ----------------------------------------------------------------


def test_round_trip_values_only():
    batch = only(encode_batch(10, [b"a", b"bc", b""]))
    assert batch.records() == [(10, 0, None, b"a", None), (11, 0, None, b"bc", None),
                               (12, 0, None, b"", None)]
    cols = batch.columns()
    assert cols.keys is None and cols.headers is None
    assert cols.offsets == range(10, 13)
    assert (batch.base_offset, batch.last_offset, batch.next_offset) == (10, 12, 13)


def test_keys_partially_none_round_trip():
    batch = only(encode_batch(0, [b"v1", b"v2", b"v3"], keys=[b"k", None, b""]))
    assert [r[2] for r in batch.records()] == [b"k", None, b""]


def test_keys_all_none_are_stored_as_nil():
    buf = encode_batch(0, [b"v1", b"v2"], keys=[None, None])
    assert columns_of(buf)[0] is None
    assert buf == encode_batch(0, [b"v1", b"v2"])
    assert [r[2] for r in only(buf).records()] == [None, None]


def test_tombstones_are_none_values_not_empty_bytes():
    batch = only(encode_batch(0, [None, b"", None], keys=[b"a", b"b", b"c"]))
    assert [r[3] for r in batch.records()] == [None, b"", None]


def test_headers_round_trip():
    headers = [[("a", b"1"), ("b", None), ("a", b"")], None, [("ü", b"\x00")]]
    batch = only(encode_batch(0, [b"x", b"y", b"z"], headers=headers))
    assert plain([r[4] for r in batch.records()]) == headers


def test_empty_header_lists_are_stored_as_nil():
    buf = encode_batch(0, [b"x", b"y"], headers=[[], None])
    assert columns_of(buf)[3] is None
    assert [r[4] for r in only(buf).records()] == [None, None]


def test_single_timestamp_is_stored_in_the_header_only():
    buf = encode_batch(0, [b"x", b"y"], timestamps=1700000000000)
    h = header(buf)
    assert h["first_timestamp"] == h["max_timestamp"] == 1700000000000
    assert columns_of(buf)[2] is None
    assert [r[1] for r in only(buf).records()] == [1700000000000] * 2


def test_per_record_timestamps_are_deltas_from_the_first():
    buf = encode_batch(0, [b"x", b"y", b"z"], timestamps=[30, 10, 20])
    h = header(buf)
    assert (h["first_timestamp"], h["max_timestamp"]) == (30, 30)
    assert columns_of(buf)[2] == [0, -20, -10]
    assert [r[1] for r in only(buf).records()] == [30, 10, 20]


def test_equal_per_record_timestamps_are_stored_as_nil():
    buf = encode_batch(0, [b"x", b"y"], timestamps=[7, 7])
    assert columns_of(buf)[2] is None
    assert buf == encode_batch(0, [b"x", b"y"], timestamps=7)


def test_timestamps_at_the_int64_edges():
    batch = only(encode_batch(0, [b"x", b"y"], timestamps=list(INT64)))
    assert [r[1] for r in batch.records()] == list(INT64)
    assert (batch.first_timestamp, batch.max_timestamp) == INT64


def test_sparse_batch_keeps_its_offsets():
    batch = only(encode_batch(100, [b"a", b"b", b"c"], offset_deltas=[0, 3, 7]))
    assert (batch.record_count, batch.last_offset_delta, batch.next_offset) == (3, 7, 108)
    assert [r[0] for r in batch.records()] == [100, 103, 107]
    assert [r[3] for r in batch.records(start_offset=101)] == [b"b", b"c"]
    assert batch.records(start_offset=108) == []


def test_records_from_a_start_offset_in_a_dense_batch():
    batch = only(encode_batch(10, [bytes([i]) for i in range(5)]))
    assert [r[0] for r in batch.records(start_offset=12)] == [12, 13, 14]
    assert [r[0] for r in batch.records(start_offset=3)] == [10, 11, 12, 13, 14]
    assert batch.records(start_offset=15) == []


def test_zstd_compresses_compressible_payloads():
    values = [b"abcdefgh" * 128] * 20
    buf = encode_batch(0, values, compression=COMPRESSION_ZSTD)
    batch = only(buf)
    assert batch.compression == COMPRESSION_ZSTD and header(buf)["attributes"] == COMPRESSION_ZSTD
    raw = msgpack.packb([None, values, None, None, None], use_bin_type=True)
    assert batch.raw_size == len(raw) > batch.size - HEADER_SIZE
    assert batch.payload_bytes() == raw
    assert zstandard.get_frame_parameters(buf[HEADER_SIZE:]).content_size == len(raw)
    assert [r[3] for r in batch.records()] == values


def test_zstd_keeps_incompressible_payloads_plain():
    values = [random.Random(0).randbytes(512)]
    buf = encode_batch(0, values, compression=COMPRESSION_ZSTD)
    assert buf == encode_batch(0, values, compression=COMPRESSION_NONE)
    batch = only(buf)
    assert batch.compression == COMPRESSION_NONE
    assert batch.raw_size == batch.size - HEADER_SIZE


def test_log_append_time_sets_attribute_bit_3():
    buf = encode_batch(0, [b"a" * 1000] * 4, log_append_time=True, compression=COMPRESSION_ZSTD)
    batch = only(buf)
    assert header(buf)["attributes"] == TIMESTAMP_LOG_APPEND | COMPRESSION_ZSTD
    assert batch.log_append_time and batch.compression == COMPRESSION_ZSTD
    assert not only(encode_batch(0, [b"a"])).log_append_time


def test_producer_fields_round_trip_and_default_to_minus_one():
    batch = only(encode_batch(0, [b"a"], producer_id=2**63 - 1, producer_epoch=-(2**15),
                              base_sequence=2**31 - 1))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        2**63 - 1, -(2**15), 2**31 - 1)
    batch = only(encode_batch(0, [b"a"]))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (-1, -1, -1)


def test_bytes_like_values_decode_as_bytes():
    batch = only(encode_batch(0, [bytearray(b"a"), memoryview(b"b")], keys=[memoryview(b"k"), None],
                              headers=[[("h", bytearray(b"v"))], None]))
    assert batch.records() == [(0, 0, b"k", b"a", [["h", b"v"]]), (1, 0, None, b"b", None)]


def test_empty_batch_round_trips():
    # Allowed by the codec; whether the log ever writes one is the storage layer's call.
    batch = only(encode_batch(5, []))
    assert batch.records() == [] and batch.record_count == 0


# -- header fields and framing -------------------------------------------------


def test_header_fields():
    buf = encode_batch(7, [b"hello", None], keys=[b"k1", b"k2"], timestamps=[20, 10],
                       producer_id=3, producer_epoch=1, base_sequence=9)
    payload = msgpack.packb([[b"k1", b"k2"], [b"hello", None], [0, -10], None, None],
                            use_bin_type=True)
    assert buf[HEADER_SIZE:] == payload
    assert header(buf) == {
        "checksum": xxhash.xxh3_64_intdigest(buf[8:]),
        "batch_size": HEADER_SIZE + len(payload),
        "version": VERSION,
        "attributes": 0,
        "producer_epoch": 1,
        "base_offset": 7,
        "last_offset_delta": 1,
        "record_count": 2,
        "first_timestamp": 20,
        "max_timestamp": 20,
        "producer_id": 3,
        "base_sequence": 9,
        "raw_size": len(payload),
    }
    batch = only(buf)
    assert (batch.size, batch.raw_size, batch.record_count) == (len(buf), len(payload), 2)


def test_frame_places_one_payload_at_any_base_offset():
    enc = encode_payload([b"a", b"b"], keys=[b"k", None])
    a, b = frame(enc, 0) + enc.payload, frame(enc, 1000) + enc.payload
    assert enc.batch_size == len(a) == len(b)
    differing = {i for i in range(len(a)) if a[i] != b[i]}
    assert differing and differing <= set(range(0, 8)) | set(range(16, 24))
    assert [r[0] for r in only(b).records()] == [1000, 1001]


def test_checksum_covers_the_base_offset():
    buf = encode_batch(5, [b"a"])
    assert scan(put(buf, "base_offset", 6)).stop == "checksum mismatch"
    assert only(put(buf, "base_offset", 6, resealed=True)).base_offset == 6


def test_checksum_is_xxh3_64_of_the_rest_of_the_batch():
    buf = encode_batch(0, [b"a", b"b"], compression=COMPRESSION_ZSTD)
    assert header(buf)["checksum"] == xxhash.xxh3_64_intdigest(buf[8:])


# -- scan over several batches -------------------------------------------------


def test_scan_reads_consecutive_batches_with_their_positions():
    bufs = [encode_batch(0, [b"a", b"b"]), encode_batch(2, [b"c"]), encode_batch(3, [b"d"] * 3)]
    data = b"".join(bufs)
    result = scan(data, base_position=4096, path="seg.log")
    assert result.stop is None and result.end == len(data)
    assert [b.position for b in result.batches] == [4096, 4096 + len(bufs[0]),
                                                    4096 + len(bufs[0]) + len(bufs[1])]
    assert [b.next_offset for b in result.batches] == [2, 3, 6]
    values = [r[3] for b in result.batches for r in b.records()]
    assert values == [b"a", b"b", b"c", b"d", b"d", b"d"]


def test_scan_max_batches_and_start():
    bufs = [encode_batch(i, [b"x"]) for i in range(3)]
    data = b"".join(bufs)
    result = scan(data, max_batches=2)
    assert (len(result.batches), result.end, result.stop) == (2, len(bufs[0]) * 2, None)
    result = scan(data, start=len(bufs[0]))
    assert [b.base_offset for b in result.batches] == [1, 2] and result.end == len(data)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_scan_accepts_any_buffer(kind):
    data = encode_batch(0, [b"a"]) + encode_batch(1, [b"b"])
    assert [b.base_offset for b in scan(kind(data)).batches] == [0, 1]


def test_scan_of_nothing():
    assert scan(b"") == ([], 0, None)


# -- damaged batches: the stop reason scan() gives for each -------------------

GOOD = encode_batch(0, [b"a", b"b"])
VICTIM = encode_batch(2, [b"hello", b"world"], keys=[b"k", None], timestamps=[1, 2])
SIZE_V = len(VICTIM)
_ZSTD_VICTIM = put(VICTIM, "attributes", COMPRESSION_ZSTD)

#: The header fields that only the checksum guards (every value is legal).
CHECKSUMMED = ("checksum", "producer_epoch", "base_offset", "last_offset_delta", "record_count",
               "first_timestamp", "max_timestamp", "producer_id", "base_sequence", "raw_size")

DAMAGE = [
    # id, damage applied to VICTIM (which follows GOOD), scan's stop reason
    ("torn header, 1 byte", lambda b: b[:1], "incomplete"),
    ("torn header, 63 bytes", lambda b: b[:HEADER_SIZE - 1], "incomplete"),
    ("header without payload", lambda b: b[:HEADER_SIZE], "incomplete"),
    ("payload one byte short", lambda b: b[:-1], "incomplete"),
    ("batch_size one larger at the tail", lambda b: put(b, "batch_size", SIZE_V + 1), "incomplete"),
    ("batch_size one larger mid-file",
     lambda b: put(b, "batch_size", SIZE_V + 1) + GOOD, "checksum mismatch"),
    ("batch_size one smaller", lambda b: put(b, "batch_size", SIZE_V - 1), "checksum mismatch"),
    ("batch_size 0", lambda b: put(b, "batch_size", 0), "batch_size 0 out of range"),
    ("batch_size 63", lambda b: put(b, "batch_size", HEADER_SIZE - 1),
     "batch_size 63 out of range"),
    ("batch_size MAX_BATCH_BYTES + 1", lambda b: put(b, "batch_size", MAX_BATCH_BYTES + 1),
     f"batch_size {MAX_BATCH_BYTES + 1} out of range"),
    ("batch_size 2**32 - 1", lambda b: put(b, "batch_size", 2**32 - 1),
     f"batch_size {2**32 - 1} out of range"),
    ("version 0", lambda b: put(b, "version", 0), "unknown format version 0"),
    ("version 2", lambda b: put(b, "version", 2), "unknown format version 2"),
    ("version 2, resealed", lambda b: put(b, "version", 2, resealed=True),
     "unknown format version 2"),
    ("version 255", lambda b: put(b, "version", 255), "unknown format version 255"),
    ("attribute bit 4", lambda b: put(b, "attributes", 0x10), "unknown attributes 0x10"),
    ("attribute bit 7", lambda b: put(b, "attributes", 0x80), "unknown attributes 0x80"),
    ("attribute bit 4, resealed", lambda b: put(b, "attributes", 0x10, resealed=True),
     "unknown attributes 0x10"),
    *[(f"compression code {c}", lambda b, c=c: put(b, "attributes", c),
       f"unknown attributes {c:#x}") for c in (1, 2, 3, 5, 6, 7)],
    ("timestamp-type bit flipped", lambda b: put(b, "attributes", TIMESTAMP_LOG_APPEND),
     "checksum mismatch"),
    ("compression code 4 flipped in", lambda b: put(b, "attributes", COMPRESSION_ZSTD),
     "checksum mismatch"),
    *[(f"{field} byte {i} flipped", lambda b, at=OFFSET[field] + i: flip(b, at),
       "checksum mismatch") for field in CHECKSUMMED for i in range(SIZE[field])],
    ("first payload byte flipped", lambda b: flip(b, HEADER_SIZE), "checksum mismatch"),
    ("middle payload byte flipped", lambda b: flip(b, (HEADER_SIZE + SIZE_V) // 2, 0x80),
     "checksum mismatch"),
    ("last payload byte flipped", lambda b: flip(b, SIZE_V - 1), "checksum mismatch"),
    ("payload zeroed", lambda b: b[:HEADER_SIZE] + bytes(SIZE_V - HEADER_SIZE),
     "checksum mismatch"),
    ("payload bytes swapped", lambda b: b[:HEADER_SIZE] + b[HEADER_SIZE + 1:HEADER_SIZE + 2]
     + b[HEADER_SIZE:HEADER_SIZE + 1] + b[HEADER_SIZE + 2:], "checksum mismatch"),
    # valid checksum, inconsistent fields (a bug or a crafted file, not an accident)
    ("raw_size one larger, resealed", lambda b: put(b, "raw_size", SIZE_V - HEADER_SIZE + 1,
                                                    resealed=True),
     "raw_size inconsistent with batch_size"),
    ("raw_size 0, resealed", lambda b: put(b, "raw_size", 0, resealed=True),
     "raw_size inconsistent with batch_size"),
    ("zstd raw_size past MAX_RAW_PAYLOAD_BYTES, resealed",
     lambda b: put(_ZSTD_VICTIM, "raw_size", MAX_RAW_PAYLOAD_BYTES + 1, resealed=True),
     "raw_size inconsistent with batch_size"),
    ("base_offset -1, resealed", lambda b: put(b, "base_offset", -1, resealed=True),
     "offset fields inconsistent"),
    ("record_count past the offset span, resealed",
     lambda b: put(b, "record_count", 3, resealed=True), "offset fields inconsistent"),
    # not a batch at all
    ("64 zero bytes", lambda b: bytes(HEADER_SIZE), "unknown format version 0"),
    ("10 zero bytes", lambda b: bytes(10), "incomplete"),
    ("0xff bytes", lambda b: b"\xff" * 200, "unknown format version 255"),
]


@pytest.mark.parametrize("damage, stop", [pytest.param(d, s, id=i) for i, d, s in DAMAGE])
def test_scan_stops_at_damage(damage, stop):
    result = scan(GOOD + damage(VICTIM))
    assert (result.stop, result.end, len(result.batches)) == (stop, len(GOOD), 1)
    assert result.batches[0].records()[0][3] == b"a"


@pytest.mark.parametrize("damage, stop", [pytest.param(d, s, id=i) for i, d, s in DAMAGE])
def test_scan_stops_at_damage_at_the_start(damage, stop):
    assert scan(damage(VICTIM)) == ([], 0, stop)


def test_the_damage_table_leaves_the_victim_valid():
    assert only(VICTIM).records()[0] == (2, 1, b"k", b"hello", None)
    assert scan(GOOD + VICTIM).stop is None


# -- payloads that pass the checksum but not the decoder -----------------------

_RAW_100 = msgpack.packb([None, [b"a" * 100], None, None, None], use_bin_type=True)
_ZSTD_100 = zstandard.ZstdCompressor().compress(_RAW_100)
_INVALID_UTF8_HEADER = bytes.fromhex("95 c0 91 c4 01 76 c0 91 91 92 a1 ff c4 00 c0")

DECODE_DAMAGE = [
    # id, payload, record_count, last_offset_delta, extra header fields, message fragment
    ("unused msgpack byte", b"\xc1", 1, 0, {}, "not valid msgpack"),
    ("empty payload", b"", 1, 0, {}, "not valid msgpack"),
    ("truncated msgpack", b"\x95\xc0\x91\xc4\x05ab", 1, 0, {}, "not valid msgpack"),
    ("extra bytes after the array",
     msgpack.packb([None, [b"a"], None, None, None]) + b"\x00", 1, 0, {}, "not valid msgpack"),
    ("header name not UTF-8", _INVALID_UTF8_HEADER, 1, 0, {}, "not valid msgpack"),
    ("a map", {"values": [b"a"]}, 1, 0, {}, "not a 5-column array"),
    ("4 columns", [None, [b"a"], None, None], 1, 0, {}, "not a 5-column array"),
    ("6 columns", [None, [b"a"], None, None, None, None], 1, 0, {}, "not a 5-column array"),
    ("an int", 5, 1, 0, {}, "not a 5-column array"),
    ("values too long", [None, [b"a", b"b"], None, None, None], 1, 0, {},
     "values column does not match record_count"),
    ("values nil", [None, None, None, None, None], 1, 0, {},
     "values column does not match record_count"),
    ("values a bin", [None, b"a", None, None, None], 1, 0, {},
     "values column does not match record_count"),
    ("keys too short", [[b"k"], [b"a", b"b"], None, None, None], 2, 1, {},
     "keys column does not match record_count"),
    ("keys a bin", [b"k", [b"a"], None, None, None], 1, 0, {},
     "keys column does not match record_count"),
    ("headers too short", [None, [b"a", b"b"], None, [None], None], 2, 1, {},
     "headers column does not match record_count"),
    ("dense with a wrong last_offset_delta", [None, [b"a", b"b"], None, None, None], 2, 5, {},
     "dense batch with last_offset_delta != record_count - 1"),
    ("offset_deltas too short", [None, [b"a", b"b"], None, None, [0]], 2, 1, {},
     "offset_deltas column does not match the header"),
    ("offset_deltas ending elsewhere", [None, [b"a", b"b"], None, None, [0, 4]], 2, 5, {},
     "offset_deltas column does not match the header"),
    ("offset_deltas an int", [None, [b"a"], None, None, 0], 1, 0, {},
     "offset_deltas column does not match the header"),
    ("timestamp_deltas too short", [None, [b"a", b"b"], [0], None, None], 2, 1, {},
     "timestamp column does not match record_count"),
    ("timestamp_deltas an int", [None, [b"a"], 0, None, None], 1, 0, {},
     "timestamp column does not match record_count"),
    ("zstd flag on a plain payload", [None, [b"a"], None, None, None], 1, 0,
     {"attributes": COMPRESSION_ZSTD}, "zstd (frame header is invalid|payload does not decompress)"),
    ("zstd payload, raw_size one larger", _ZSTD_100, 1, 0,
     {"attributes": COMPRESSION_ZSTD, "raw_size": len(_RAW_100) + 1}, "raw_size|decompress"),
    ("zstd payload, raw_size one smaller", _ZSTD_100, 1, 0,
     {"attributes": COMPRESSION_ZSTD, "raw_size": len(_RAW_100) - 1}, "raw_size|decompress"),
]


@pytest.mark.parametrize("payload, count, last_delta, extra, message",
                         [pytest.param(*row[1:], id=row[0]) for row in DECODE_DAMAGE])
def test_decoding_a_damaged_payload_raises_corrupt_record_error(payload, count, last_delta, extra,
                                                                message):
    buf = craft(payload, count, last_delta, **extra)
    result = scan(GOOD + buf, base_position=1000, path="seg.log")
    assert result.stop is None, result.stop  # only the decoder can tell
    batch = result.batches[1]
    with pytest.raises(CorruptRecordError, match=message) as info:
        batch.records()
    assert (info.value.path, info.value.position) == ("seg.log", 1000 + len(GOOD))
    assert "seg.log" in str(info.value) and str(1000 + len(GOOD)) in str(info.value)


@pytest.mark.parametrize("payload", [
    pytest.param([None, [b"a"], [1.5], None, None], id="float timestamp delta"),
    pytest.param([None, [b"a"], [None], None, None], id="nil timestamp delta"),
    pytest.param([None, [b"a"], None, None, [0.0]], id="float offset delta"),
])
def test_non_integer_deltas_are_corrupt(payload):
    batch = only(craft(payload, 1, 0))
    with pytest.raises(CorruptRecordError):
        batch.columns()


def test_decompression_is_bounded_by_raw_size():
    payload = zstandard.ZstdCompressor(level=1).compress(
        msgpack.packb([None, [bytes(8_000_000)], None, None, None], use_bin_type=True))
    batch = only(craft(payload, 1, 0, attributes=COMPRESSION_ZSTD, raw_size=64))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptRecordError):
            batch.payload_bytes()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"decompressing a batch with raw_size 64 took {peak} bytes"


# -- limits: at the limit and one past it --------------------------------------

_BIG = 1 << 17
_BIN32_OVERHEAD = len(msgpack.packb([None, [b"x" * _BIG], None, None, None],
                                    use_bin_type=True)) - _BIG


def test_max_batch_bytes_at_the_limit_and_one_past():
    size = MAX_BATCH_BYTES - HEADER_SIZE - _BIN32_OVERHEAD
    buf = encode_batch(0, [b"x" * size])
    assert len(buf) == MAX_BATCH_BYTES
    assert scan(buf).stop is None
    del buf
    with pytest.raises(RecordTooLargeError, match=str(MAX_BATCH_BYTES)):
        encode_batch(0, [b"x" * (size + 1)])


@pytest.mark.parametrize("limit", [HEADER_SIZE + 16, 300])
def test_max_batch_bytes_is_shared_by_writer_and_reader(monkeypatch, limit):
    at_limit = encode_batch(0, [value_for_raw_size(limit - HEADER_SIZE)])
    past_limit = encode_batch(0, [value_for_raw_size(limit - HEADER_SIZE + 1)])
    assert (len(at_limit), len(past_limit)) == (limit, limit + 1)
    monkeypatch.setattr(codec, "MAX_BATCH_BYTES", limit)
    assert encode_batch(0, [value_for_raw_size(limit - HEADER_SIZE)]) == at_limit
    with pytest.raises(RecordTooLargeError):
        encode_batch(0, [value_for_raw_size(limit - HEADER_SIZE + 1)])
    assert scan(at_limit).stop is None
    assert scan(past_limit).stop == f"batch_size {limit + 1} out of range"


def test_max_batch_bytes_applies_to_the_compressed_size(monkeypatch):
    values = [b"a" * 5000]
    size = len(encode_batch(0, values, compression=COMPRESSION_ZSTD))
    assert size < 200
    monkeypatch.setattr(codec, "MAX_BATCH_BYTES", size)
    assert len(encode_batch(0, values, compression=COMPRESSION_ZSTD)) == size
    with pytest.raises(RecordTooLargeError):
        encode_batch(0, values)
    monkeypatch.setattr(codec, "MAX_BATCH_BYTES", size - 1)
    with pytest.raises(RecordTooLargeError):
        encode_batch(0, values, compression=COMPRESSION_ZSTD)


def test_max_raw_payload_bytes_at_the_limit_and_one_past(monkeypatch):
    limit = 4000
    monkeypatch.setattr(codec, "MAX_RAW_PAYLOAD_BYTES", limit)
    buf = encode_batch(0, [value_for_raw_size(limit)], compression=COMPRESSION_ZSTD)
    batch = only(buf)
    assert batch.raw_size == limit and batch.compression == COMPRESSION_ZSTD
    for compression in (COMPRESSION_ZSTD, COMPRESSION_NONE):
        with pytest.raises(RecordTooLargeError, match=str(limit)):
            encode_batch(0, [value_for_raw_size(limit + 1)], compression=compression)
    assert scan(put(buf, "raw_size", limit + 1, resealed=True)).stop == (
        "raw_size inconsistent with batch_size")


def test_an_uncompressed_batch_that_fits_never_trips_the_raw_limit():
    assert MAX_RAW_PAYLOAD_BYTES >= MAX_BATCH_BYTES - HEADER_SIZE


def test_offset_span_at_the_limit_and_one_past():
    batch = only(encode_batch(10, [b"a", b"b"], offset_deltas=[0, 2**32 - 1]))
    assert batch.last_offset_delta == 2**32 - 1 and batch.next_offset == 10 + 2**32
    assert [r[0] for r in batch.records()] == [10, 10 + 2**32 - 1]
    with pytest.raises(RecordTooLargeError):
        encode_batch(10, [b"a", b"b"], offset_deltas=[0, 2**32])


def test_max_message_bytes_cannot_exceed_max_batch_bytes():
    assert TopicConfig.from_kafka({"max.message.bytes": MAX_BATCH_BYTES}).max_message_bytes == (
        MAX_BATCH_BYTES)
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({"max.message.bytes": MAX_BATCH_BYTES + 1})


def test_limit_errors_are_value_errors_and_type_errors_are_type_errors():
    assert issubclass(RecordTooLargeError, (StromError, ValueError))
    assert issubclass(InvalidRecordError, StromError) and issubclass(InvalidRecordError, TypeError)


# -- argument misuse -----------------------------------------------------------

MISUSE = [
    # id, values, keyword arguments
    ("values a str", "abc", {}),
    ("values a bytes", b"abc", {}),
    ("values a bytearray", bytearray(b"abc"), {}),
    ("a str value", ["abc"], {}),
    ("an int value", [1], {}),
    ("a str among bytes", [b"a", "b"], {}),
    ("keys a bytes", [b"a"], {"keys": b"k"}),
    ("keys a str", [b"a"], {"keys": "k"}),
    ("an int key", [b"a"], {"keys": [1]}),
    ("a str key", [b"a"], {"keys": ["k"]}),
    ("too few keys", [b"a", b"b"], {"keys": [b"k"]}),
    ("too many keys", [b"a"], {"keys": [b"k", b"l"]}),
    ("a str header value", [b"a"], {"headers": [[("k", "v")]]}),
    ("a bytes header name", [b"a"], {"headers": [[(b"k", b"v")]]}),
    ("a header of one item", [b"a"], {"headers": [[("k",)]]}),
    ("a header of three items", [b"a"], {"headers": [[("k", b"v", b"w")]]}),
    ("a header that is a str", [b"a"], {"headers": [["kv"]]}),
    ("a pair instead of a list of pairs", [b"a"], {"headers": [("k", b"v")]}),
    ("a header name with a lone surrogate", [b"a"], {"headers": [[("\ud800", b"v")]]}),
    ("too few headers", [b"a", b"b"], {"headers": [None]}),
    ("a float timestamp in a list", [b"a"], {"timestamps": [1.5]}),
    ("a bool timestamp in a list", [b"a"], {"timestamps": [True]}),
    ("a str timestamp in a list", [b"a"], {"timestamps": ["1"]}),
    ("too few timestamps", [b"a", b"b"], {"timestamps": [1]}),
    ("a timestamp list for no records", [], {"timestamps": []}),
    ("a timestamp past int64", [b"a"], {"timestamps": 2**63}),
    ("a timestamp below int64", [b"a"], {"timestamps": -(2**63) - 1}),
    ("a listed timestamp past int64", [b"a", b"b"], {"timestamps": [0, 2**63]}),
    ("a first timestamp below int64", [b"a", b"b"], {"timestamps": [-(2**63) - 1, 0]}),
    ("compression code 1 (gzip)", [b"a"], {"compression": 1}),
    ("compression code 3 (lz4)", [b"a"], {"compression": 3}),
    ("compression code 99", [b"a"], {"compression": 99}),
    ("too few offset_deltas", [b"a", b"b"], {"offset_deltas": [0]}),
    ("a negative offset delta", [b"a"], {"offset_deltas": [-1]}),
]


@pytest.mark.parametrize("values, kwargs", [pytest.param(v, k, id=i) for i, v, k in MISUSE])
def test_misuse_raises_invalid_record_error(values, kwargs):
    with pytest.raises(InvalidRecordError):
        encode_payload(values, **kwargs)


MISUSE_CASES = [
    # id, values, keyword arguments, what src raises today
    ("a bool timestamp", [b"a"], {"timestamps": True}, "TypeError from len()"),
    ("a float timestamp", [b"a"], {"timestamps": 1.5}, "TypeError from len()"),
    ("a None timestamp", [b"a"], {"timestamps": None}, "TypeError from len()"),
    ("an int as a record's headers", [b"a"], {"headers": [5]}, "TypeError: not iterable"),
    ("repeated offset deltas", [b"a", b"b"], {"offset_deltas": [0, 0]},
     "accepted; scan() then rejects the batch"),
    ("decreasing offset deltas", [b"a", b"b"], {"offset_deltas": [5, 3]},
     "accepted; decodes to offsets 5, 3"),
    ("a negative last offset delta", [b"a", b"b"], {"offset_deltas": [0, -1]},
     "struct.error from frame()"),
    ("a str offset delta", [b"a"], {"offset_deltas": ["0"]}, "TypeError from <"),
    ("a float offset delta", [b"a"], {"offset_deltas": [0.5]}, "struct.error from frame()"),
    ("a listed timestamp below int64", [b"a", b"b"], {"timestamps": [-10, -(2**63) - 1]},
     "accepted; only first and max are range-checked"),
    ("producer_epoch past int16", [b"a"], {"producer_epoch": 2**15}, "struct.error from frame()"),
    ("producer_id past int64", [b"a"], {"producer_id": 2**63}, "struct.error from frame()"),
    ("base_sequence past int32", [b"a"], {"base_sequence": 2**31}, "struct.error from frame()"),
]


@pytest.mark.parametrize("values, kwargs", [pytest.param(v, k, id=f"{i}: {why}")
                                            for i, v, k, why in MISUSE_CASES])
def test_misuse_is_refused(values, kwargs):
    with pytest.raises(InvalidRecordError):
        encode_batch(0, values, **kwargs)


def test_a_timestamp_delta_past_msgpack_int_is_refused_cleanly():
    # A format limit (docs/format.md, Limits): deltas are msgpack ints, -2**63 .. 2**64 - 1,
    # so a batch cannot go from the largest int64 timestamp down to the smallest.
    with pytest.raises(InvalidRecordError):
        encode_payload([b"a", b"b"], timestamps=[2**63 - 1, -(2**63)])


# -- properties -----------------------------------------------------------------

_ts = st.integers(-(2**62), 2**62)
_bin = st.binary(max_size=40)
_header_name = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


@st.composite
def batches(draw, max_records: int = 12):
    """Arguments for encode_batch and the records it must decode to."""
    n = draw(st.integers(0, max_records))
    values = draw(st.lists(st.none() | _bin, min_size=n, max_size=n))
    keys = draw(st.none() | st.lists(st.none() | _bin, min_size=n, max_size=n))
    timestamps = draw(_ts | st.lists(_ts, min_size=n, max_size=n)) if n else draw(_ts)
    headers = draw(st.none() | st.lists(
        st.none() | st.lists(st.tuples(_header_name, st.none() | _bin), max_size=3),
        min_size=n, max_size=n))
    offset_deltas = None
    if n and draw(st.booleans()):
        first = draw(st.integers(0, 5))
        gaps = draw(st.lists(st.integers(1, 1000), min_size=n - 1, max_size=n - 1))
        offset_deltas = list(accumulate(gaps, initial=first))
    kwargs = {
        "keys": keys, "timestamps": timestamps, "headers": headers,
        "offset_deltas": offset_deltas,
        "compression": draw(st.sampled_from([COMPRESSION_NONE, COMPRESSION_ZSTD])),
        "log_append_time": draw(st.booleans()),
        "producer_id": draw(st.integers(*INT64)),
        "producer_epoch": draw(st.integers(-(2**15), 2**15 - 1)),
        "base_sequence": draw(st.integers(-(2**31), 2**31 - 1)),
    }
    base = draw(st.integers(0, 2**62))
    deltas = offset_deltas if offset_deltas is not None else range(n)
    ts = timestamps if isinstance(timestamps, list) else [timestamps] * n
    expected = [(base + d, t, None if keys is None else keys[i], values[i],
                 None if headers is None or not headers[i] else list(headers[i]))
                for i, (d, t) in enumerate(zip(deltas, ts))]
    return base, values, kwargs, expected


def _normalised(records):
    return [(o, t, k, v, plain([h])[0]) for o, t, k, v, h in records]


@FAST
@given(batches())
def test_round_trip_of_random_batches(case):
    base, values, kwargs, expected = case
    buf = encode_batch(base, values, **kwargs)
    batch = only(buf)
    assert _normalised(batch.records()) == expected
    assert batch.record_count == len(values) and batch.size == len(buf)
    assert batch.log_append_time == kwargs["log_append_time"]
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        kwargs["producer_id"], kwargs["producer_epoch"], kwargs["base_sequence"])
    if expected:
        assert batch.first_timestamp == expected[0][1]
        assert batch.max_timestamp == max(r[1] for r in expected)
        assert batch.last_offset == expected[-1][0]


@FAST
@given(st.binary(max_size=300)
       | st.builds(lambda a, b: a + b, st.just(GOOD), st.binary(max_size=200)))
def test_scan_never_raises_on_arbitrary_bytes(data):
    result = scan(data)
    assert 0 <= result.end <= len(data)
    assert sum(b.size for b in result.batches) == result.end
    assert (result.stop is None) == (result.end == len(data))
    for batch in result.batches:
        try:
            batch.records()
        except CorruptRecordError:
            pass


@FAST
@given(batches(max_records=6), st.data())
def test_mutated_encodings_are_rejected_or_decode_to_the_original(case, data):
    base, values, kwargs, expected = case
    buf = encode_batch(base, values, **kwargs)
    mutated = bytearray(buf)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(1, 255)),
                               max_size=4))
    for index, mask in flips:
        mutated[index] ^= mask
    cut = data.draw(st.none() | st.integers(0, len(buf)))
    if cut is not None:
        del mutated[cut:]
    mutated += data.draw(st.binary(max_size=80))
    result = scan(bytes(mutated))  # never raises
    changed = bytes(mutated[:len(buf)]) != buf
    if result.batches:
        first = result.batches[0]
        assert not changed, "scan accepted a damaged batch"
        assert first.size == len(buf)
        assert _normalised(first.records()) == expected
    else:
        assert changed, "scan rejected an intact batch"


_msgpack_items = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | _bin
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12)


@FAST
@given(st.lists(_msgpack_items, min_size=5, max_size=5) | _msgpack_items,
       st.integers(0, 4), st.integers(0, 4), st.sampled_from([0, TIMESTAMP_LOG_APPEND]))
def test_checksummed_garbage_decodes_or_raises_corrupt_record_error(payload, count, last_delta,
                                                                     attributes):
    # A crafted batch passes the checksum (it is not a MAC); the decoder must still
    # only ever return columns of the right length or raise CorruptRecordError.
    result = scan(craft(payload, count, last_delta, attributes=attributes))
    for batch in result.batches:
        try:
            cols = batch.columns()
        except CorruptRecordError:
            continue
        assert len(cols.values) == len(cols.timestamps) == len(cols.offsets) == count
