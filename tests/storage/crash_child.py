"""Writer process for the kill -9 tests (tests/storage/test_crash.py).

Run as ``python crash_child.py DATA_DIR TOPIC WRITER ROUND SEED [split]``:
opens the log, prints ``ready <log end offset> <bytes its recovery cut>``,
then appends the batches that :func:`batch_for` describes, one after
another, with acks=1, and after each append returns prints ``<index> <base
offset> <record count>``.  It never stops on its own before MAX_APPENDS; the
parent kills it with SIGKILL.

Every line is one ``os.write`` of fewer than PIPE_BUF bytes to the pipe, so
the parent reads whole lines and a line it reads is an acknowledgement: the
append had returned before the line was written.

With ``split`` the log is opened on :class:`SplitWriteFS`, which writes some
appends to ``.log`` files in up to four pieces with a short pause between
them, as a slow disk would: a kill then often lands inside a write and
leaves a torn batch at the tail.  Without it a kill -9 practically never
tears a write: Linux stops a write for a fatal signal only between
page-cache folios (measured here: SIGKILL cut 64 MiB writes only at
multiples of 2 MiB), so the torn-tail paths of recovery would go untested.

The batches are a pure function of ``(seed, writer, round, index)``, so the
parent regenerates what an acknowledged (or a written but unacknowledged)
batch must hold without the child sending any record.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import time

from strom.storage.fs import File, FileSystem

#: The child stops by itself after this many appends (a bound should the parent die).
MAX_APPENDS = 200_000
#: Records per append: 1..MAX_RECORDS (the brief's "1..200").
MAX_RECORDS = 200
#: First bytes of every value: writer, round, batch index, record index.
VALUE_HEAD = struct.Struct(">IIII")
#: Timestamps are near this (2023-11-14), so segment.ms never rolls and retention.ms=-1 keeps all.
BASE_TIMESTAMP_MS = 1_700_000_000_000
TOPIC_CONFIG = {"segment.bytes": 64 * 1024, "retention.ms": -1, "index.interval.bytes": 1024}


#: Pause between the pieces of a split write: long enough that many kills land inside one.
SPLIT_PAUSE_S = 0.0002


class SplitFile(File):
    """A segment file whose writes sometimes go to the disk in pieces."""

    __slots__ = ()
    rng = random.Random()

    def pwritev(self, buffers, pos):
        data = b"".join(buffers)
        if len(data) < 2 or self.rng.random() < 0.3:
            return super().pwritev(buffers, pos)
        cuts = sorted(self.rng.sample(range(1, len(data)), min(3, len(data) - 1)))
        start = 0
        for cut in cuts + [len(data)]:
            super().pwritev([data[start:cut]], pos + start)
            start = cut
            if cut < len(data):
                time.sleep(SPLIT_PAUSE_S)
        return len(data)


class SplitWriteFS(FileSystem):
    """The OS file system, with :class:`SplitFile` for ``.log`` files opened for writing."""

    def open(self, path, *, write=False, create=False, exclusive=False):
        f = super().open(path, write=write, create=create, exclusive=exclusive)
        if write and path.endswith(".log"):
            split = SplitFile(f.fd, f.path)
            f.fd = -1  # the descriptor now belongs to ``split``; f's __del__ must not close it
            f = split
        return f


class Batch:
    """What one append sends: columns and options."""

    __slots__ = ("values", "keys", "timestamps", "headers", "compression")

    def __init__(self, values, keys, timestamps, headers, compression):
        self.values = values
        self.keys = keys
        self.timestamps = timestamps
        self.headers = headers
        self.compression = compression

    def __len__(self) -> int:
        return len(self.values)

    def records(self) -> list[tuple]:
        """``(timestamp, key, value, headers)`` per record, as a read returns them."""
        n = len(self.values)
        ts = self.timestamps if isinstance(self.timestamps, list) else [self.timestamps] * n
        keys = self.keys if self.keys is not None else [None] * n
        headers = self.headers if self.headers is not None else [None] * n
        return [(ts[i], keys[i], self.values[i], _norm_headers(headers[i])) for i in range(n)]


def _norm_headers(h):
    """Headers as a read gives them back: None, or a list of [name, value] lists."""
    if not h:
        return None
    return [[k, v] for k, v in h]


def batch_for(seed: int, writer: int, round_: int, index: int) -> Batch:
    """The ``index``-th batch that writer ``writer`` appends in round ``round_``."""
    rng = random.Random(f"{seed}/{writer}/{round_}/{index}")
    # Mostly small and medium batches, some at the limit: sizes vary widely.
    n = rng.choice((rng.randint(1, 10), rng.randint(1, MAX_RECORDS), MAX_RECORDS))
    compressible = rng.random() < 0.3
    compression = "zstd" if rng.random() < 0.3 else None
    big = rng.randrange(n) if rng.random() < 0.02 else -1  # one large record now and then
    values = []
    for j in range(n):
        pad_len = rng.randint(2000, 30000) if j == big else rng.choice((0, rng.randint(0, 16),
                                                                      rng.randint(0, 120)))
        if compressible:
            pad = bytes((rng.randrange(256),)) * pad_len
        else:
            pad = rng.randbytes(pad_len)
        values.append(VALUE_HEAD.pack(writer, round_, index, j) + pad)
    keys = None
    if rng.random() < 0.3:
        keys = [None if rng.random() < 0.2 else b"key-%d" % rng.randrange(50) for _ in range(n)]
    ts0 = BASE_TIMESTAMP_MS + round_ * 10_000 + index
    if rng.random() < 0.5:
        timestamps: int | list[int] = ts0
    else:
        timestamps = [ts0 + rng.randint(-5, 5) for _ in range(n)]
    headers = None
    if rng.random() < 0.2:
        headers = [[("w", b"%d" % writer), ("i", b"%d" % j)] if j % 3 == 0 else None
                   for j in range(n)]
    return Batch(values, keys, timestamps, headers, compression)


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write: a whole line or nothing


def main(argv: list[str]) -> int:
    import strom

    path, topic, writer, round_, seed = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    split = argv[5:] == ["split"]
    log = strom.open(path, fs=SplitWriteFS() if split else None)
    p = log.partition(topic, 0)
    _say(f"ready {p.log_end_offset} {p.last_recovery.bytes_truncated}")
    for index in range(MAX_APPENDS):
        b = batch_for(seed, writer, round_, index)
        base = p.append(b.values, keys=b.keys, timestamps=b.timestamps, headers=b.headers,
                        acks=1, compression=b.compression)
        _say(f"{index} {base} {len(b)}")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
