"""Child processes for the compaction crash and reader tests (test_compaction_crash.py,
test_compaction_readers.py).

Run as ``python compaction_child.py MODE DATA_DIR SEED [ARGS...]``; every mode
opens the log with ``cleaner=False`` and prints ``ready <log end offset>``
first.  Modes:

``clean ROUND OP WHEN``
    Forever: append a segment's worth or more of records (acks=1), then
    ``clean_partition(p, force=True)``.  Prints ``appending <start> <n>``
    before each append and ``appended <end>`` after it returns,
    ``cleaning`` before each clean and ``cleaned <seconds> <segments before>
    <segments after> <bytes written> <start> <end>`` (CLOCK_MONOTONIC start
    and end; ``cleaned none <start> <end>`` when there was nothing to do)
    after it.
``cleaner ROUND OP WHEN [SECONDS]``
    The same cleans without the appends, for SECONDS (forever if absent).
``writer ROUND OP WHEN [SECONDS]``
    Appends batches of 1..40 records (acks=1) with a 2 ms pause between
    them, printing ``appending``/``appended`` as above.
``reader ID SECONDS``
    Reads the partition from its start to its end and on for a little while
    as records arrive (one *pass*), over and over, checking every record
    against :class:`History`, that offsets strictly increase, and at the end
    of each pass that it saw the latest record of every key below where it
    stopped.  Prints ``pass <start> <end> <stop offset> <records> <gaps>``
    per pass (monotonic times) and ``problem <text>`` for anything wrong.
    Readers other than number 0 keep only 4 segment files open.

``OP``/``WHEN``: the log runs on :class:`PausingFS`, which pauses briefly
before or after (``WHEN``) each call of one file operation ``OP`` (``none``:
never), printing ``pause <op> <when> <file name>`` first, so that the parent
can kill the child inside that step of a compaction swap (or of a roll).  The
cleaning modes pause only while a clean runs.

Every line is one ``os.write`` of fewer than PIPE_BUF bytes, so the parent
reads whole lines only; ``appended`` is written after the append returned,
so it is an acknowledgement.  A child that finds something wrong prints
``problem ...`` and exits with status 3.

The records are a pure function of their offset (:class:`History`): whoever
appends at log end offset ``o`` appends ``History.record(o)``, so the parent
knows every record ever written without being told it, whichever child
wrote it and whether or not it was acknowledged.
"""

from __future__ import annotations

import os
import random
import sys
import time

from strom.storage.fs import File, FileSystem

TOPIC = "compacted"
#: Records 0..FILL_RECORDS-1 (the parent's initial fill) have distinct keys, one per key.
FILL_RECORDS = 12_000
#: Distinct keys; later records pick one, HOT_SHARE of them among the first HOT_KEYS.
KEYS = 12_000
HOT_KEYS = 300
HOT_SHARE = 0.8
#: About this share of records after the fill are tombstones (value None).
TOMBSTONE_SHARE = 0.02
BASE_TIMESTAMP_MS = 1_700_000_000_000
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": 32 * 1024,
    "index.interval.bytes": 1024,
    # Tombstones stay (a clean never finds one due), so every key keeps its latest record.
    "delete.retention.ms": 10**15,
}
#: How long a pause lasts: the parent reacts to the ``pause`` line well within it.
PAUSE_S = 0.004
#: Operations PausingFS can pause in ("create": an exclusive open, which makes a new file).
OPS = ("cleaned_write", "write_atomic", "replace", "fsync_dir", "unlink", "rename", "open", "create")

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class History:
    """Every record the tests ever append, as a function of its offset."""

    def __init__(self, seed: int) -> None:
        self.salt = _mix(seed)
        self.pool = random.Random(seed).randbytes(4096)

    def key_index(self, offset: int) -> int:
        if offset < FILL_RECORDS:
            return offset % KEYS
        h = _mix(offset ^ self.salt)
        if (h & 0xFFFF) < HOT_SHARE * 0x10000:
            return (h >> 16) % HOT_KEYS
        return (h >> 16) % KEYS

    def key(self, offset: int) -> bytes:
        return b"k%05d" % self.key_index(offset)

    def record(self, offset: int) -> tuple[int, bytes, bytes | None]:
        """``(timestamp, key, value)`` of the record at ``offset``."""
        h = _mix(offset ^ self.salt ^ 0x5555)
        ts = BASE_TIMESTAMP_MS + offset // 8
        if offset >= FILL_RECORDS and (h & 0xFFFF) < TOMBSTONE_SHARE * 0x10000:
            return ts, self.key(offset), None
        n = 40 + (h >> 16) % 200
        at = (h >> 32) % (len(self.pool) - 256)
        return ts, self.key(offset), b"%d:" % offset + self.pool[at:at + n]

    def columns(self, start: int, n: int) -> tuple[list, list, list]:
        """``(values, keys, timestamps)`` of offsets start..start+n-1, as append takes them."""
        recs = [self.record(o) for o in range(start, start + n)]
        return [r[2] for r in recs], [r[1] for r in recs], [r[0] for r in recs]


class KeyIndex:
    """Where each key occurs, offset by offset, extended on demand."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.end = 0
        self.latest: dict[bytes, int] = {}
        self.keys: list[bytes] = []  # by offset

    def extend(self, end: int) -> None:
        key = self.history.key
        for o in range(self.end, end):
            k = key(o)
            self.keys.append(k)
            self.latest[k] = o
        self.end = max(self.end, end)

    def latest_below(self, end: int) -> dict[bytes, int]:
        """Key -> offset of its latest record below ``end`` (``end`` <= the extended end)."""
        self.extend(end)
        if end == self.end:
            return dict(self.latest)
        out: dict[bytes, int] = {}
        for o, k in enumerate(self.keys[:end]):
            out[k] = o
        return out


def fill(path: str, history: History) -> None:
    """The initial partition: FILL_RECORDS records, one per key (about 2 MiB)."""
    import strom

    with strom.open(path, cleaner=False) as log:
        log.create_topic(TOPIC, 1, config=TOPIC_CONFIG)
        p = log.partition(TOPIC, 0)
        for start in range(0, FILL_RECORDS, 200):
            values, keys, timestamps = history.columns(start, 200)
            p.append(values, keys=keys, timestamps=timestamps, acks=1)


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write: a whole line or nothing


class PausingFile(File):
    """A ``.cleaned`` file whose writes pause (when its file system pauses in cleaned_write)."""

    __slots__ = ("fs",)

    def pwritev(self, buffers, pos):
        return self.fs.maybe_pause("cleaned_write", self.path,
                                   lambda: File.pwritev(self, buffers, pos))


class PausingFS(FileSystem):
    """The OS file system, pausing before or after each call of one operation."""

    def __init__(self, op: str, when: str) -> None:
        self.op = op
        self.when = when
        #: Pause only while set (around each clean; in a writer once it opened the log).
        self.active = False

    def maybe_pause(self, op: str, path: str, call):
        if op != self.op or not self.active:
            return call()
        name = os.path.basename(path)
        if self.when == "after":
            result = call()
            _say(f"pause {op} after {name}")
            time.sleep(PAUSE_S)
            return result
        _say(f"pause {op} before {name}")
        time.sleep(PAUSE_S)
        return call()

    def open(self, path, *, write=False, create=False, exclusive=False):
        f = self.maybe_pause("create" if exclusive else "open", path, lambda: super(
            PausingFS, self).open(path, write=write, create=create, exclusive=exclusive))
        if write and path.endswith(".cleaned"):
            paused = PausingFile(f.fd, f.path)
            paused.fs = self
            f.fd = -1  # the descriptor now belongs to ``paused``
            f = paused
        return f

    def rename(self, src, dst):
        return self.maybe_pause("rename", src, lambda: super(PausingFS, self).rename(src, dst))

    def replace(self, src, dst):
        return self.maybe_pause("replace", src, lambda: super(PausingFS, self).replace(src, dst))

    def unlink(self, path, missing_ok=True):
        return self.maybe_pause("unlink", path, lambda: super(PausingFS, self).unlink(path, missing_ok))

    def fsync_dir(self, path):
        return self.maybe_pause("fsync_dir", path, lambda: super(PausingFS, self).fsync_dir(path))

    def write_atomic(self, path, data, *, durable=True):
        return self.maybe_pause("write_atomic", path, lambda: super(PausingFS, self).write_atomic(
            path, data, durable=durable))


def _problem(text: str) -> None:
    _say(f"problem {text}")
    sys.exit(3)


def _append(p, history: History, n: int) -> None:
    start = p.log_end_offset
    values, keys, timestamps = history.columns(start, n)
    _say(f"appending {start} {n}")
    base = p.append(values, keys=keys, timestamps=timestamps, acks=1)
    if base != start:
        _problem(f"append of records generated for offset {start} got offset {base}")
    _say(f"appended {start + n}")


def _clean(p, fs: PausingFS, clean_partition, alone: bool) -> None:
    """One forced clean; ``alone``: nobody else appends, so the log end must not move."""
    end = p.log_end_offset
    _say("cleaning")
    fs.active = True
    t0 = time.monotonic()
    res = clean_partition(p, force=True)
    t1 = time.monotonic()
    fs.active = False
    if alone and p.log_end_offset != end:
        _problem(f"the log end offset moved from {end} to {p.log_end_offset} during a clean")
    if res is None:
        _say(f"cleaned none {t0:.6f} {t1:.6f}")
    else:
        _say(f"cleaned {res.seconds:.6f} {res.segments_before} {res.segments_after} "
             f"{res.bytes_written} {t0:.6f} {t1:.6f}")


def read_pass(p, history: History, index: KeyIndex, tail_s: float) -> tuple[int, int, int]:
    """One pass from the log start to the end, then tailing for ``tail_s``.

    Returns ``(stop offset, records read, gaps seen)``; exits with a problem
    line on anything wrong.
    """
    offset = p.log_start_offset
    last = offset - 1
    seen: dict[bytes, int] = {}
    records = gaps = 0
    tail_until = None
    while True:
        batches = p.read(offset)
        if not batches:
            now = time.monotonic()
            if tail_until is None:
                tail_until = now + tail_s
            if now < tail_until:
                time.sleep(0.001)
                continue
            break
        for b in batches:
            for off, ts, key, value, _headers in b.records(offset):
                if off <= last:
                    _problem(f"offset {off} read after {last}")
                expected = history.record(off)
                if (ts, key, value) != expected:
                    _problem(f"offset {off} holds {(ts, key, value)!r}, expected {expected!r}")
                gaps += off != last + 1
                seen[key] = off
                last = off
                records += 1
        offset = last + 1
    # read() returned nothing at ``offset``: that was the log end offset then.  A
    # clean drops a record only for a later one of its key that was already in
    # the log, so below there: the latest record of every key below ``offset``
    # must have been read.
    latest = index.latest_below(offset)
    if seen != latest:
        missing = [(k, o, seen.get(k)) for k, o in latest.items() if seen.get(k) != o][:5]
        _problem(f"pass stopping at {offset}: latest records not read (key, latest, read): {missing}")
    return offset, records, gaps


def main(argv: list[str]) -> int:
    import strom
    from strom.storage.cleaner import clean_partition

    mode, path, seed = argv[0], argv[1], int(argv[2])
    history = History(seed)
    if mode == "reader":
        ident, seconds = int(argv[3]), float(argv[4])
        fs: FileSystem = FileSystem()
    else:
        round_, op, when = int(argv[3]), argv[4], argv[5]
        seconds = float(argv[6]) if len(argv) > 6 else float("inf")
        fs = PausingFS(op, when)
    log = strom.open(path, cleaner=False, fs=fs)
    p = log.partition(TOPIC, 0)
    _say(f"ready {p.log_end_offset}")
    deadline = time.monotonic() + seconds
    if mode == "clean":
        rng = random.Random(f"{seed}/clean/{round_}")
        while True:
            # A segment's worth or more (about 230 records fill one): every clean has dirty data.
            target = p.log_end_offset + rng.randint(250, 600)
            while p.log_end_offset < target:
                _append(p, history, rng.randint(1, 60))
            _clean(p, fs, clean_partition, alone=True)
    elif mode == "cleaner":
        while time.monotonic() < deadline:
            _clean(p, fs, clean_partition, alone=False)
    elif mode == "writer":
        rng = random.Random(f"{seed}/writer/{round_}")
        fs.active = True  # pauses from now on (in its rolls), not in its open
        while time.monotonic() < deadline:
            _append(p, history, rng.randint(1, 40))
            time.sleep(0.002)
    elif mode == "reader":
        if ident:
            # Few descriptors (as a log with more segments than its budget): segments are
            # reopened by name all the time, so this reader often lists the directory
            # while a swap is under way.
            log.reader_cache.limit = 4
        index = KeyIndex(history)
        passes = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            stop, records, gaps = read_pass(p, history, index, tail_s=0.05)
            passes += 1
            _say(f"pass {t0:.6f} {time.monotonic():.6f} {stop} {records} {gaps}")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    log.close()
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
