"""Readers in other processes read a partition correctly while it is compacted and appended to.

Three reader processes (compaction_child.py ``reader``) read a compacted
partition from its start to its end over and over, tailing new records for a
moment at the end of each pass, while a cleaner process cleans it again and
again (``clean_partition(force=True)``: most segments are rewritten and
swapped each time, small ones merged) and a writer process appends.  The
records are a pure function of their offset, so each reader checks, by
itself:

* every record it reads is the one appended at its offset, byte for byte;
* offsets strictly increase (gaps are what compaction leaves);
* at the end of each pass, where a read found the log end, it has read the
  latest record of every key below that offset: a clean drops a record only
  for a later one of the same key that was already in the log, so below the
  log end a reader reached, nothing it should see is ever missing -- whether
  the segments it read were swapped before, during or after its pass.

Two of the readers keep only 4 segment files open, so they reopen segments
by name, and list the directory, all the time -- also in the middle of
swaps; the third keeps its descriptors, so it reads replaced files through
them.

The parent asserts that no reader reported a problem, that cleans that
rewrote segments ran during most passes (CLOCK_MONOTONIC intervals of both,
from the children), that readers saw compaction's gaps, and at the end that
the log is sound with the latest record of every key and the writer's last
acknowledged append.  The children run 10 s.  ``STROM_COMPACTION_CRASH_SEED``
fixes the data.
"""

from __future__ import annotations

import os
import random
import selectors
import time
from pathlib import Path

import childproc  # tests/childproc.py (tests/conftest.py puts that folder on sys.path)
import pytest

import strom

HERE = Path(__file__).resolve().parent
CHILD_SCRIPT = HERE / "compaction_child.py"
child = childproc.load_module(CHILD_SCRIPT, "strom_tests_compaction_child")
TOPIC = child.TOPIC

SEED = int(os.environ.get("STROM_COMPACTION_CRASH_SEED", str(random.randrange(2**32))))
#: How long the children run.
RUN_S = 10.0
READERS = 3


class Running(childproc.LineChild):
    """A child that runs for RUN_S and ends with ``done``; its lines are kept."""

    def __init__(self, args: list, env: dict[str, str]) -> None:
        super().__init__(CHILD_SCRIPT, args, env, " ".join(map(str, args[:1] + args[3:4])))
        self.lines: list[list[str]] = []
        self.done = False

    def on_line(self, line: bytes) -> None:
        text = line.decode()
        if text.startswith("problem"):
            pytest.fail(f"{self.name} (seed {SEED}): {text}")
        self.done |= text == "done"
        self.lines.append(text.split())

    def failure(self) -> str:
        return self.died_on_its_own(f"(seed {SEED})")


def test_readers_in_other_processes_during_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "data")
    history = child.History(SEED)
    child.fill(path, history)
    env = childproc.child_env()
    children = [Running(["writer", path, SEED, 0, "none", "before", RUN_S], env),
                Running(["cleaner", path, SEED, 0, "none", "before", RUN_S], env)]
    children += [Running(["reader", path, SEED, i, RUN_S], env) for i in range(READERS)]
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    try:
        for c in children:
            sel.register(c.proc.stdout, selectors.EVENT_READ, c)
        open_ = len(children)
        while open_:
            assert time.monotonic() < t0 + RUN_S + childproc.CHILD_TIMEOUT_S, "children hung"
            for key, _ in sel.select(1.0):
                c = key.data
                if not c.feed():
                    sel.unregister(c.proc.stdout)
                    open_ -= 1
                    assert c.proc.wait(timeout=childproc.CHILD_TIMEOUT_S) == 0 and c.done, c.failure()
    finally:
        sel.close()
        for c in children:
            c.close()
    elapsed = time.monotonic() - t0
    writer, cleaner, readers = children[0], children[1], children[2:]

    # Cleans that rewrote segments: (start, end) on CLOCK_MONOTONIC.
    cleans = [(float(f[5]), float(f[6])) for f in cleaner.lines
              if f[0] == "cleaned" and f[1] != "none" and int(f[4]) > 0]
    passes = [(float(f[1]), float(f[2]), int(f[3]), int(f[4]), int(f[5]))
              for r in readers for f in r.lines if f[0] == "pass"]
    during = sum(1 for a, b, *_ in passes if any(s < b and a < e for s, e in cleans))
    gaps = sum(g for *_, g in passes)
    records = sum(n for *_, n, _g in passes)
    acked = [int(f[1]) for f in writer.lines if f[0] == "appended"]
    print(f"\n{READERS} readers, seed {SEED}: {len(passes)} passes ({during} during cleans that "
          f"rewrote segments) read {records} records with {gaps} gaps; {len(cleans)} such cleans; "
          f"writer acknowledged up to offset {acked[-1] if acked else None}; {elapsed:.1f} s")
    for r in readers:
        assert sum(1 for f in r.lines if f[0] == "pass") >= 3, f"{r.name} made too few passes"
    assert len(cleans) >= 5, "the cleaner rewrote too few times"
    assert during >= len(passes) // 2, f"only {during} of {len(passes)} passes ran during cleans"
    assert gaps > 0, "no reader ever met a gap left by compaction"
    assert acked, "the writer appended nothing"

    # The log as the children left it: sound, with every key's latest record.
    with strom.open(path, cleaner=False) as log:
        p = log.partition(TOPIC, 0)
        end = p.log_end_offset
        assert end == acked[-1]
        assert p.verify() == []
        assert not [n for n in os.listdir(p.path) if n.endswith((".cleaned", ".swap", ".deleted"))]
        present = set()
        offset, last = 0, -1
        while offset < end:
            for b in p.read(offset):
                for off, ts, key, value, _headers in b.records(offset):
                    assert last < off < end and (ts, key, value) == history.record(off), off
                    present.add(off)
                    last = off
            offset = last + 1
        latest = child.KeyIndex(history).latest_below(end)
        assert not [o for o in latest.values() if o not in present], f"seed {SEED}"
