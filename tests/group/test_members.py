"""Group liveness: a member is alive exactly while its process holds its file's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import childproc  # tests/childproc.py
import pytest

import strom
from strom.group.members import GroupMembers

CHILD = """
import sys, strom
from strom.group.members import GroupMembers
log = strom.open(sys.argv[1])
member = GroupMembers(log, sys.argv[2]).join({"client_id": "child"}, member_id=sys.argv[3] or None)
print(member.member_id, flush=True)
sys.stdin.readline()  # live until told (or killed)
"""


@pytest.fixture(params=["memory", "directory"])
def log(request, tmp_path):
    lg = strom.open(":memory:" if request.param == "memory" else tmp_path / "data")
    yield lg
    lg.close()


def test_join_describe_and_leave(log):
    group = GroupMembers(log, "billing/eu")  # any string is a group id
    a = group.join({"client_id": "a", "topics": ["t"]})
    b = group.join({"client_id": "b"})
    live = group.live()
    assert set(live) == {a.member_id, b.member_id}
    assert live[a.member_id]["topics"] == ["t"] and live[a.member_id]["pid"] == os.getpid()
    a.describe({"member_id": a.member_id, "owned": [["t", 0]]})
    assert group.live()[a.member_id]["owned"] == [["t", 0]]
    a.leave()
    a.leave()  # idempotent
    assert set(group.live()) == {b.member_id}
    with pytest.raises(strom.IllegalStateError):
        a.describe({})
    assert GroupMembers(log, "other").live() == {}
    assert "billing/eu" not in log.topics() and not any("~" in t for t in log.topics())


def test_a_static_member_id_is_held_by_one_live_member(log):
    group = GroupMembers(log, "g")
    first = group.join({}, member_id="worker-1")
    with pytest.raises(strom.IllegalStateError, match="live member"):
        group.join({}, member_id="worker-1")
    first.leave()
    again = group.join({}, member_id="worker-1")
    assert set(group.live()) == {"worker-1"}
    again.leave()


def test_a_killed_member_is_seen_dead_at_once(tmp_path):
    path = str(tmp_path / "data")
    strom.open(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, path, "g", static], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=childproc.child_env())
             for static in ("", "static-1")]
    try:
        ids = [p.stdout.readline().strip() for p in procs]
        with strom.open(path) as log:
            group = GroupMembers(log, "g")
            assert set(group.live()) == set(ids)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=30)
            t0 = time.monotonic()
            assert set(group.live()) == {ids[1]}  # no timeout: the lock went with the process
            assert time.monotonic() - t0 < 5
            # The static member's place can be taken over once its holder is dead.
            procs[1].send_signal(signal.SIGKILL)
            procs[1].wait(timeout=30)
            again = group.join({}, member_id="static-1")
            assert set(group.live()) == {"static-1"}
            again.leave()
            assert len(os.listdir(group.path)) == 0  # dead members' files were removed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()


def test_a_join_that_died_half_way_is_cleaned_up(tmp_path):
    with strom.open(tmp_path / "data") as log:
        group = GroupMembers(log, "g")
        live = group.join({})
        stale = os.path.join(group.path, "~joining~deadbeef")
        open(stale, "wb").close()  # a joiner killed before it renamed its file into place
        assert set(group.live()) == {live.member_id}
        assert not os.path.exists(stale)
        live.leave()


def test_a_bad_group_id(log):
    for bad in ("", None, 3):
        with pytest.raises(strom.IllegalArgumentError):
            GroupMembers(log, bad)
