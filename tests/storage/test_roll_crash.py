"""A writer killed in the middle of a roll, while another process keeps writing.

The roller creates the next segment file before it publishes the roll.  If
it dies between the two, the other writer must not keep appending to the
old segment past the new one's base offset (that would give two records one
offset).  The child dies by ``os._exit`` at each file-system step of the
roll in turn, a deterministic crash point; the parent had the partition open
the whole time.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import childproc  # tests/childproc.py
import pytest

import strom

CHILD = textwrap.dedent("""
    import os, sys
    import strom
    from strom.storage.fs import FileSystem

    path, die_at = sys.argv[1], sys.argv[2]

    class DieDuringRoll(FileSystem):
        armed = False
        def open(self, p, **kw):
            if self.armed and die_at == "create" and kw.get("exclusive"):
                f = super().open(p, **kw)
                os._exit(137)  # the new segment exists; nothing else of the roll happened
            return super().open(p, **kw)
        def fsync_dir(self, p):
            if self.armed and die_at == "fsync_dir":
                os._exit(137)
            return super().fsync_dir(p)
        def write_atomic(self, p, data, **kw):
            if self.armed and die_at == "checkpoint" and p.endswith("recovery-point"):
                os._exit(137)
            return super().write_atomic(p, data, **kw)

    fs = DieDuringRoll()
    log = strom.open(path, fs=fs)
    p = log.partition("t", 0)
    p.append([b"child-%d" % i for i in range(10)], acks=1)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent appends meanwhile, so it has seen everything so far
    fs.armed = True
    p.roll()
    raise SystemExit("the roll finished; it should have died")
""")


@pytest.mark.parametrize("die_at", ["create", "fsync_dir", "checkpoint"])
def test_other_writer_follows_a_roll_whose_roller_died(tmp_path, die_at):
    path = str(tmp_path / "data")
    with strom.open(path) as log:
        log.create_topic("t")
    survivor = strom.open(path)
    p = survivor.partition("t", 0)

    child = subprocess.Popen([sys.executable, "-c", CHILD, path, die_at], env=childproc.child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        assert p.append([b"parent-a", b"parent-b"], acks=1) == 10  # catches up with the child
        child.stdin.write(b"go\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 137, child.stderr.read().decode()
    finally:
        child.kill()
        child.wait()

    assert p.append([b"parent-c", b"parent-d"], acks=1) == 12
    survivor.close()

    with strom.open(path) as log:
        p = log.partition("t", 0)
        assert p.append([b"after"], acks=1) == 14, "an offset was handed out twice"
        records = []
        offset = 0
        while True:
            batches = p.read(offset)
            if not batches:
                break
            for b in batches:
                records.extend(b.records(offset))
            offset = batches[-1].next_offset
        assert [r[0] for r in records] == list(range(15))
        assert [r[3] for r in records] == [b"child-%d" % i for i in range(10)] + [
            b"parent-a", b"parent-b", b"parent-c", b"parent-d", b"after"]
        assert p.verify() == []
        for offset in range(15):  # each offset is found where the segment names say it is
            assert p.read_records(offset, max_records=1)[0][0] == offset
