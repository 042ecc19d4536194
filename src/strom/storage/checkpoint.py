"""Small metadata files (topic config, recovery points) with a checksum line.

Each file is one header line and a JSON body::

    strom <kind> <xxh3_64 of the body, 16 hex digits>\\n
    {...json...}

Files are replaced whole by ``FileSystem.write_atomic`` (temp file, fsync,
rename, fsync of the directory), so a crash leaves the old file or the new
one.  A file that fails its checksum or does not parse raises
CorruptMetadataError: metadata is never guessed.
"""

from __future__ import annotations

import json
from typing import Any

import xxhash

from ..errors import CorruptMetadataError
from .fs import FileSystem

__all__ = ["encode_meta", "decode_meta", "write_meta", "read_meta", "MAX_META_BYTES"]

#: Metadata files are tiny; a larger one is damaged or not ours.
MAX_META_BYTES = 1024 * 1024


def encode_meta(kind: str, body: dict[str, Any]) -> bytes:
    """Serialise ``body`` under a checksummed header line."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return b"strom %s %016x\n" % (kind.encode(), xxhash.xxh3_64_intdigest(data)) + data


def decode_meta(kind: str, blob: bytes, path: str | None = None) -> dict[str, Any]:
    """Verify and parse a blob written by :func:`encode_meta`."""
    head, sep, data = blob.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != b"strom" or parts[1] != kind.encode():
        raise CorruptMetadataError(f"not a strom {kind} file", path=path)
    try:
        expected = int(parts[2], 16)
    except ValueError:
        raise CorruptMetadataError(f"bad checksum field in {kind} file", path=path) from None
    if xxhash.xxh3_64_intdigest(data) != expected:
        raise CorruptMetadataError(f"{kind} file fails its checksum", path=path)
    try:
        body = json.loads(data)
    except ValueError:
        raise CorruptMetadataError(f"{kind} file is not JSON", path=path) from None
    if not isinstance(body, dict):
        raise CorruptMetadataError(f"{kind} file does not hold an object", path=path)
    return body


def write_meta(fs: FileSystem, path: str, kind: str, body: dict[str, Any]) -> None:
    """Atomically and durably replace the metadata file at ``path``."""
    fs.write_atomic(path, encode_meta(kind, body))


def read_meta(fs: FileSystem, path: str, kind: str) -> dict[str, Any]:
    """Read and verify the metadata file at ``path`` (FileNotFoundError if missing)."""
    f = fs.open(path)
    try:
        blob = f.pread(MAX_META_BYTES + 1, 0)
    finally:
        f.close()
    if len(blob) > MAX_META_BYTES:
        raise CorruptMetadataError(f"{kind} file is larger than {MAX_META_BYTES} bytes", path=path)
    return decode_meta(kind, blob, path)
