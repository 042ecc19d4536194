"""docs/format.md cannot drift from the code, and a golden file pins the format.

The tables of docs/format.md are parsed and checked against the struct
formats and constants in src (offsets and sizes are derived from
``HEADER.format`` and the index entry structs, never restated here), the
worked examples are re-run byte for byte, and tests/golden/batch-v1.bin,
checked in, must decode to the records below and be re-encoded identically.

If a test here fails after a format change, change docs/format.md, bump
``VERSION`` and write a new golden file (``batch-v2.bin``), keeping the old
one while strom still reads it.  To write the golden file of this version
once: ``PYTHONPATH=src python tests/codec/test_format_doc.py --write-golden``.
"""

from __future__ import annotations

import importlib
import re
import struct
import sys
from pathlib import Path

import msgpack
import pytest
import xxhash

from strom.codec import batch as codec
from strom.codec.batch import (
    COMPRESSION_MASK,
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    HEADER,
    HEADER_SIZE,
    TIMESTAMP_LOG_APPEND,
    RecordBatch,
    encode_batch,
    encode_payload,
    scan,
)
from strom.errors import InvalidRecordError
from strom.storage import checkpoint
from strom.storage.index import OFFSET_ENTRY, TIME_ENTRY, TRAILER, OffsetIndex, TimeIndex

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "format.md"
GOLDEN_PATH = ROOT / "tests" / "golden" / "batch-v1.bin"

#: docs/format.md's names for struct codes.
TYPES = {"B": "u8", "h": "i16", "H": "u16", "i": "i32", "I": "u32", "q": "i64", "Q": "u64"}
TYPE_SIZES = {name: struct.calcsize("<" + code) for code, name in TYPES.items()}


# -- reading docs/format.md ---------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    """Heading title -> the text under it, up to the next heading of any level."""
    out: dict[str, str] = {}
    title, lines, fenced = None, [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6} ", line):
            if title is not None:
                out[title] = "\n".join(lines)
            title, lines = line.lstrip("#").strip(), []
            assert title not in out, f"docs/format.md has two headings {title!r}"
        else:
            lines.append(line)
    if title is not None:
        out[title] = "\n".join(lines)
    return out


def _tables(body: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``body``, as rows of column name -> cell text."""
    tables, block = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if block:
            columns, separator, *rows = block
            assert all(set(c) <= set(":-") for c in separator), block
            assert all(len(r) == len(columns) for r in rows), block
            tables.append([dict(zip(columns, r)) for r in rows])
            block = []
    return tables


def _code_blocks(body: str) -> list[tuple[str, str]]:
    """Every fenced code block in ``body``, as (language, text)."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", body, re.M | re.S)]


def _int(cell: str) -> int:
    return int(cell.strip("`").replace(",", ""), 0)


DOC = DOC_PATH.read_text(encoding="utf-8")
SECTIONS = _sections(DOC)


def section(prefix: str) -> str:
    matches = [t for t in SECTIONS if t.startswith(prefix)]
    assert len(matches) == 1, f"docs/format.md: expected one section {prefix!r}, got {matches}"
    return SECTIONS[matches[0]]


def table(prefix: str, first_column: str) -> list[dict[str, str]]:
    """The one table under section ``prefix`` whose first column is ``first_column``."""
    found = [t for t in _tables(section(prefix)) if t and next(iter(t[0])) == first_column]
    assert len(found) == 1, f"docs/format.md §{prefix}: expected one {first_column!r} table"
    return found[0]


def layout(struct_format: str) -> list[tuple[int, int, str]]:
    """(offset, size, type) of each field of a little-endian struct format, from the code."""
    out, offset = [], 0
    for code in struct_format.lstrip("<"):
        size = struct.calcsize("<" + code)
        out.append((offset, size, TYPES[code]))
        offset += size
    return out


def documented_layout(rows: list[dict[str, str]]) -> list[tuple[int, int, str]]:
    return [(int(r["Offset"]), int(r["Size"]), r["Type"]) for r in rows]


# -- the batch header ----------------------------------------------------------


def _header_rows() -> list[dict[str, str]]:
    return [r for r in table("Header", "Offset") if r["Field"] != "payload"]


def test_header_table_matches_the_struct_format():
    assert HEADER.format.startswith("<"), "the format is little-endian"
    assert documented_layout(_header_rows()) == layout(HEADER.format)
    assert HEADER.size == HEADER_SIZE == sum(int(r["Size"]) for r in _header_rows())


def test_the_payload_starts_after_the_header():
    (payload,) = [r for r in table("Header", "Offset") if r["Field"] == "payload"]
    assert int(payload["Offset"]) == HEADER_SIZE
    assert payload["Size"].replace(" ", "") == f"batch_size-{HEADER_SIZE}"


def test_header_field_names_are_the_codes_names():
    # Unpack a header whose every field is distinct and ask RecordBatch for each
    # field by the doc's name: a doc naming fields in the wrong order fails here.
    names = [r["Field"] for r in _header_rows()]
    values = tuple(range(100, 100 + len(names)))
    batch = RecordBatch(values, b"")
    kept = {"batch_size": "size"}
    for name, value in zip(names, values):
        if name in ("checksum", "version"):  # checked by scan(), not kept
            continue
        assert getattr(batch, kept.get(name, name)) == value, name


def test_the_module_docstring_table_matches_the_doc():
    docstring = [(int(m[1]), m[2], m[3]) for m in re.finditer(
        r"^\s+(\d+)\s+(\d+|\.)\s+([a-z_]+)\s", codec.__doc__, re.M)]
    documented = [(int(r["Offset"]), r["Size"] if r["Field"] != "payload" else ".", r["Field"])
                  for r in table("Header", "Offset")]
    assert docstring == documented


# -- constants, attributes, compression, payload --------------------------------


def _constant_rows() -> list[dict[str, str]]:
    return [row for t in _tables(DOC) if t and "Constant" in t[0] for row in t]


def _resolve(qualified: str):
    module, _, name = qualified.strip("`").rpartition(".")
    return getattr(importlib.import_module("strom." + module), name)


def test_documented_constants_match_the_code():
    rows = _constant_rows()
    assert rows
    for row in rows:
        assert _resolve(row["Constant"]) == _int(row["Value"]), row["Constant"]


def test_every_format_constant_is_documented():
    documented = {row["Constant"].strip("`") for row in _constant_rows()}
    required = {f"codec.batch.{n}" for n in (
        "HEADER_SIZE", "VERSION", "COMPRESSION_MASK", "COMPRESSION_NONE", "COMPRESSION_ZSTD",
        "TIMESTAMP_LOG_APPEND", "ZSTD_LEVEL", "MAX_BATCH_BYTES", "MAX_RAW_PAYLOAD_BYTES")}
    assert required | {"storage.checkpoint.MAX_META_BYTES"} <= documented


def _mask_of_bits(bits: str) -> int:
    low, _, high = bits.partition("-")
    return sum(1 << b for b in range(int(low), int(high or low) + 1))


def test_attribute_table_matches_the_masks():
    rows = table("Attributes", "Bits")
    assert [_mask_of_bits(r["Bits"]) for r in rows] == [_int(r["Mask"]) for r in rows]
    masks = [_int(r["Mask"]) for r in rows]
    assert masks == [COMPRESSION_MASK, TIMESTAMP_LOG_APPEND,
                     0xFF & ~(COMPRESSION_MASK | TIMESTAMP_LOG_APPEND)]


@pytest.mark.parametrize("bit", range(4, 8))
def test_reserved_attribute_bits_are_rejected(bit):
    buf = bytearray(encode_batch(0, [b"x"]))
    buf[13] |= 1 << bit
    assert scan(bytes(buf)).stop == f"unknown attributes {1 << bit:#x}"


def test_compression_table_matches_the_codes():
    rows = table("Compression", "Code")
    assert {int(r["Code"]): r["Codec"] for r in rows} == {COMPRESSION_NONE: "none",
                                                        COMPRESSION_ZSTD: "zstd"}


@pytest.mark.parametrize("code", [c for c in range(8)
                                  if c not in (COMPRESSION_NONE, COMPRESSION_ZSTD)])
def test_undocumented_compression_codes_are_rejected(code):
    with pytest.raises(InvalidRecordError):
        encode_payload([b"x"], compression=code)
    buf = bytearray(encode_batch(0, [b"x"]))
    buf[13] = code
    assert scan(bytes(buf)).stop == f"unknown attributes {code:#x}"


def test_payload_columns_are_in_the_documented_order():
    rows = table("Payload", "Index")
    assert [int(r["Index"]) for r in rows] == list(range(5))
    buf = encode_batch(0, [b"v1", b"v2"], keys=[b"k1", None], timestamps=[10, 12],
                       headers=[[("h", b"x")], None], offset_deltas=[0, 2])
    columns = msgpack.unpackb(buf[HEADER_SIZE:], raw=False)
    expected = {"keys": [b"k1", None], "values": [b"v1", b"v2"], "timestamp_deltas": [0, 2],
                "headers": [[["h", b"x"]], None], "offset_deltas": [0, 2]}
    assert {r["Column"]: columns[int(r["Index"])] for r in rows} == expected


# -- index files -----------------------------------------------------------------


def test_offset_index_table_matches_the_entry_struct():
    rows = table("Offset index", "Offset")
    assert documented_layout(rows) == layout(OFFSET_ENTRY.format)
    index = OffsetIndex(100)
    index.append(105, 4096)
    fields = {"relative_offset": 5, "position": 4096}
    entries = b"".join(
        struct.pack("<" + {v: k for k, v in TYPES.items()}[r["Type"]], fields[r["Field"]])
        for r in rows)
    assert index.to_bytes() == entries + TRAILER.pack(xxhash.xxh3_64_intdigest(entries))


def test_time_index_table_matches_the_entry_struct():
    rows = table("Time index", "Offset")
    assert documented_layout(rows) == layout(TIME_ENTRY.format)
    index = TimeIndex(100)
    index.maybe_append(1700000000000, 105)
    fields = {"timestamp": 1700000000000, "relative_offset": 5}
    entries = b"".join(
        struct.pack("<" + {v: k for k, v in TYPES.items()}[r["Type"]], fields[r["Field"]])
        for r in rows)
    assert index.to_bytes() == entries + TRAILER.pack(xxhash.xxh3_64_intdigest(entries))


def test_index_trailer_row_matches_the_code():
    rows = table("Index files", "Offset")
    assert [(r["Offset"], r["Size"], r["Type"], r["Field"]) for r in rows] == [
        ("8n or 12n", str(TRAILER.size), "u64", "checksum")]
    assert TRAILER.format == "<Q" and TYPE_SIZES["u64"] == TRAILER.size


def test_lock_hint_table_matches_the_partition_code():
    from strom.storage.partition import HINT  # imported here: storage is not the codec

    rows = table("Directory layout", "Offset")
    assert documented_layout(rows) == layout(HINT.format)
    assert f"first {HINT.size} bytes are a hint" in section("Directory layout")


def test_log_marker_format_version():
    from strom.storage.log import FORMAT_VERSION

    assert f'"format_version": {FORMAT_VERSION}}}' in section("Directory layout")


def test_every_layout_table_is_contiguous():
    layouts = [t for t in _tables(DOC) if t and {"Offset", "Size", "Type"} <= set(t[0])
               and t[0]["Offset"].isdigit()]  # the index trailer sits at 8n or 12n
    assert len(layouts) >= 4  # batch header, lock hint, offset index, time index
    for rows in layouts:
        offset = 0
        for row in rows:
            if row["Type"] == "bytes":  # the payload: runs to the end
                assert row is rows[-1] and int(row["Offset"]) == offset
                continue
            assert (int(row["Offset"]), int(row["Size"])) == (offset, TYPE_SIZES[row["Type"]]), row
            offset += int(row["Size"])


# -- worked examples ---------------------------------------------------------------


def _hexdump(text: str) -> bytes:
    out = bytearray()
    for line in text.strip().splitlines():
        position, *octets = line.split()
        assert int(position, 16) == len(out), line
        out += bytes.fromhex("".join(octets))
    return bytes(out)


EXAMPLES = [t for t in SECTIONS if t.startswith("Example ")]


def test_there_are_worked_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("title", EXAMPLES)
def test_worked_example(title):
    body = SECTIONS[title]
    (lang1, call), (lang2, dump) = _code_blocks(body)
    assert (lang1, lang2) == ("python", "text")
    encoded = eval(call, vars(codec).copy())  # noqa: S307 - the doc's own example
    assert _hexdump(dump) == encoded
    (rows,) = [t for t in _tables(body) if t and "Bytes" in t[0]]
    position = 0
    for row in rows:
        octets = bytes.fromhex(row["Bytes"].strip("`"))
        assert int(row["Offset"]) == position and encoded[position:position + len(octets)] == octets
        position += len(octets)
    assert position == len(encoded), "the annotation covers every byte"
    header = dict(zip([r["Field"] for r in _header_rows()], HEADER.unpack_from(encoded)))
    for row in rows:
        if int(row["Offset"]) < HEADER_SIZE:
            assert _int(row["Value"]) == header[row["Field"]], row["Field"]


def test_metadata_example():
    body = section("Metadata files")
    (_, grammar), (lang1, call), (lang2, shown) = _code_blocks(body)
    assert (lang1, lang2) == ("python", "text")
    assert grammar.startswith("strom <kind> <xxh3_64 of the body as 16 lowercase hex digits>")
    blob = eval(call, vars(checkpoint).copy())  # noqa: S307 - the doc's own example
    assert blob == shown.rstrip("\n").encode()
    head, _, body_bytes = blob.partition(b"\n")
    assert re.fullmatch(rb"strom [a-z]+ [0-9a-f]{16}", head)
    assert int(head.split()[2], 16) == xxhash.xxh3_64_intdigest(body_bytes)
    assert checkpoint.decode_meta("recovery", blob) == {"segment": 0, "position": 4096,
                                                        "offset": 128}


# -- the golden file ------------------------------------------------------------

#: (base_offset, values, keyword arguments of encode_batch), written back to back.
GOLDEN_CALLS = [
    (0, [b"hello", None],
     {"keys": [b"k1", b"k2"], "timestamps": [1700000000000, 1700000000005]}),
    (2, [b"v"],
     {"headers": [[("trace", b"\x01\x02"), ("empty", None)]], "timestamps": 1700000000010,
      "log_append_time": True, "producer_id": 7, "producer_epoch": 0, "base_sequence": 0}),
    (3, [b"a", b"b", b"c"],
     {"keys": [b"x", None, b"x"], "offset_deltas": [0, 4, 9],
      "timestamps": [1700000000020, 1700000000019, 1700000000030]}),
    (13, [b"compressible " * 20] * 5,
     {"compression": COMPRESSION_ZSTD, "timestamps": 1700000000040}),
    (18, [b"", None],
     {"keys": [b"", None], "timestamps": [-1, 2**63 - 1], "producer_id": 2**63 - 1,
      "producer_epoch": 2**15 - 1, "base_sequence": 2**31 - 1}),
]

#: What the golden file decodes to: (offset, timestamp, key, value, headers).
GOLDEN_RECORDS = [
    (0, 1700000000000, b"k1", b"hello", None),
    (1, 1700000000005, b"k2", None, None),
    (2, 1700000000010, None, b"v", [["trace", b"\x01\x02"], ["empty", None]]),
    (3, 1700000000020, b"x", b"a", None),
    (7, 1700000000019, None, b"b", None),
    (12, 1700000000030, b"x", b"c", None),
    *[(o, 1700000000040, None, b"compressible " * 20, None) for o in range(13, 18)],
    (18, -1, b"", b"", None),
    (19, 2**63 - 1, None, None, None),
]

#: xxh3_64 of tests/golden/batch-v1.bin: the file is never rewritten by accident.
GOLDEN_DIGEST = "4bc21387a3b99f8d"


def _encode_golden() -> list[bytes]:
    return [encode_batch(base, values, **kwargs) for base, values, kwargs in GOLDEN_CALLS]


def test_golden_file_is_the_pinned_file():
    assert f"{xxhash.xxh3_64_intdigest(GOLDEN_PATH.read_bytes()):016x}" == GOLDEN_DIGEST


def test_golden_file_decodes_to_the_records():
    golden = GOLDEN_PATH.read_bytes()
    result = scan(golden, path=str(GOLDEN_PATH))
    assert result.stop is None and result.end == len(golden)
    assert [r for b in result.batches for r in b.records()] == GOLDEN_RECORDS
    assert [b.compression for b in result.batches] == [0, 0, 0, COMPRESSION_ZSTD, 0]
    assert [b.log_append_time for b in result.batches] == [False, True, False, False, False]
    assert (result.batches[4].producer_id, result.batches[4].producer_epoch,
            result.batches[4].base_sequence) == (2**63 - 1, 2**15 - 1, 2**31 - 1)


def test_encoding_today_gives_the_golden_bytes():
    data = GOLDEN_PATH.read_bytes()
    golden = [data[b.position:b.position + b.size] for b in scan(data).batches]
    today = _encode_golden()
    assert len(today) == len(golden)
    for (base, values, kwargs), new, old in zip(GOLDEN_CALLS, today, golden):
        if kwargs.get("compression") == COMPRESSION_ZSTD:
            # zstd's bytes may change with the zstd version (docs/format.md, known
            # downsides); everything zstd does not produce must not.
            new_batch, old_batch = scan(new).batches[0], scan(old).batches[0]
            assert new_batch.payload_bytes() == old_batch.payload_bytes()
            assert HEADER.unpack_from(new)[2:] == HEADER.unpack_from(old)[2:]
        else:
            assert new == old, f"batch at {base} encodes differently: the format changed"


def _write_golden() -> None:
    if GOLDEN_PATH.exists():
        sys.exit(f"{GOLDEN_PATH} exists; a golden file is written once per format version")
    data = b"".join(_encode_golden())
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_PATH.write_bytes(data)
    print(f"wrote {GOLDEN_PATH} ({len(data)} bytes), xxh3_64 {xxhash.xxh3_64_intdigest(data):016x}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-golden"]:
        _write_golden()
    else:
        sys.exit(__doc__)
