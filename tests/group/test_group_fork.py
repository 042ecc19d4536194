"""A forked child does not keep its parent's group membership alive, nor act for it."""

from __future__ import annotations

import os
import signal
import time

import strom
from childproc import Child

TOPIC = "t"

PARENT = r"""
import os, sys, time
import strom
log = strom.Log(sys.argv[1])
c = strom.Consumer(log, "t", group_id="g", enable_auto_commit=False)
deadline = time.monotonic() + 20
while not c.assignment():
    c.poll(timeout_ms=10)
    assert time.monotonic() < deadline
pid = os.fork()
if pid == 0:  # the child outlives its parent, holding copies of every descriptor
    try:
        c.poll(timeout_ms=0)
    except strom.IllegalStateError:
        os.write(1, b"child refused\n")  # one write: the parent prints on the same pipe
    time.sleep(60)
    os._exit(0)
os.write(1, f"ready {pid}\n".encode())
while True:
    c.poll(timeout_ms=100)
"""


def test_a_forked_child_does_not_keep_a_killed_parent_in_its_group(tmp_path):
    log = strom.Log(str(tmp_path))
    log.create_topic(TOPIC, 4)
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = Child(script, str(tmp_path))
    grandchild = None
    try:
        lines = sorted(parent.line() for _ in range(2))
        assert lines[0] == "child refused" and lines[1].startswith("ready ")
        grandchild = int(lines[1].split()[1])
        other = strom.Consumer(log, TOPIC, group_id="g", enable_auto_commit=False)
        parent.proc.kill()
        parent.proc.wait()
        deadline = time.monotonic() + 10
        while len(other.assignment()) < 4:
            other.poll(timeout_ms=10)
            assert time.monotonic() < deadline, "the killed parent's partitions never moved"
        other.close()
    finally:
        parent.proc.kill()
        if grandchild is not None:
            try:
                os.kill(grandchild, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log.close()
