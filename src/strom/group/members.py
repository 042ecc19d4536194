"""Who is alive in a consumer group: one locked file per member, released by the OS at death.

Theory of operation
-------------------
A member of group G holds an exclusive ``flock`` on its own file,
``~groups/<G>/members/<member id>.member``, for as long as it lives, and
keeps in that file's hint area the time of its last heartbeat (8 bytes,
rewritten in place) and a small JSON description of itself (client id, pid,
host, incarnation), written once before the file is renamed into place.  The OS releases the lock the moment
the process ends, kill -9 included, so anyone can tell a dead member from a
live one at once: a probe that *can* take the lock has found a dead member
(and removes its file).  Probes open the file read-only, so that only a
holder's close (its leave or its death) raises inotify's IN_CLOSE_WRITE,
which the other members wait for.  No heartbeat or session timeout is needed to see a
death; ``max_poll_interval_ms`` is for members alive but stuck.

A member's file is created under a temporary name, locked and described,
then renamed into place, so a prober never finds an unlocked file of a live
member.  Directory names hold ``~``, which no topic name may, so the Log
never mistakes them for topics.

This module is the liveness layer of the group protocol; generations,
assignment (assignors.py) and rebalancing build on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
import time
import uuid
from urllib.parse import unquote
from typing import Any
from urllib.parse import quote

from ..errors import IllegalArgumentError, IllegalStateError, StromError
from ..storage import Log

__all__ = ["GroupMembers", "Member", "GROUPS_DIR"]

#: Where group state lives in a data directory (``~``: never a topic name).
GROUPS_DIR = "~groups"
_SUFFIX = ".member"
_LEN = struct.Struct("<I")
_BEAT = struct.Struct("<q")
_INFO_AT = _BEAT.size
#: The most a member description may take (its file's hint area).
MAX_INFO_BYTES = 64 * 1024


def _dir_name(group_id: str) -> str:
    """A file-system-safe, readable directory name for any group id."""
    name = "g-" + quote(group_id, safe="")
    if len(name) > 200:
        name = name[:150] + "-" + hashlib.sha256(group_id.encode()).hexdigest()[:32]
    return name


class Member:
    """This process's membership: the held lock, and the description others read."""

    def __init__(self, members: GroupMembers, member_id: str, lock: Any, path: str) -> None:
        self.group = members
        self.member_id = member_id
        self._lock = lock
        self.path = path
        self._closed = False

    def describe(self, info: dict[str, Any]) -> None:
        """Publish ``info`` (JSON-able) for the other members to read."""
        if self._closed:
            raise IllegalStateError(f"member {self.member_id!r} has left its group")
        data = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
        if len(data) > MAX_INFO_BYTES:
            raise StromError(f"member description of {len(data)} bytes exceeds {MAX_INFO_BYTES}")
        self._lock.write_hint(_LEN.pack(len(data)) + data, _INFO_AT)

    def heartbeat(self, now_ms: int) -> None:
        """Record that this member is alive and responsive at ``now_ms`` (8 bytes in place)."""
        if not self._closed:
            self._lock.write_hint(_BEAT.pack(now_ms))

    def leave(self) -> None:
        """Leave the group: remove the file, release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.group.fs.unlink(self.path)
        self._lock.close()

    @property
    def left(self) -> bool:
        """True after leave()."""
        return self._closed

    def __repr__(self) -> str:
        return f"<strom Member {self.member_id!r} of {self.group.group_id!r}>"


class GroupMembers:
    """The members of one group on one Log: join, and list the live ones.

    Thread-safe; any number of processes may use the same group at once.
    """

    def __init__(self, log: Log, group_id: str) -> None:
        if type(group_id) is not str or not group_id:
            raise IllegalArgumentError(f"a group id is a non-empty str, not {group_id!r}")
        self.log = log
        self.fs = log.fs
        self.group_id = group_id
        self.path = os.path.join(log.path, GROUPS_DIR, _dir_name(group_id), "members")
        self._lock = threading.Lock()
        self._dir_lock: Any = None  # members.lock: joins and reaping exclude each other

    def _locked(self) -> Any:
        if self._dir_lock is None:
            self.fs.makedirs(self.path)
            self._dir_lock = self.fs.lock(os.path.join(os.path.dirname(self.path), "members.lock"))
        return self._dir_lock

    def close(self) -> None:
        """Close the directory lock this object keeps open (it opens it again if used)."""
        with self._lock:
            if self._dir_lock is not None:
                self._dir_lock.close()
                self._dir_lock = None

    def join(self, info: dict[str, Any], member_id: str | None = None) -> Member:
        """Become a member (described by ``info``); returns the held membership.

        ``member_id`` is for static members (Kafka's group.instance.id): if a
        live member holds it already, IllegalStateError (Kafka's
        FencedInstanceIdException); a dead holder's place is taken over.
        """
        fs = self.fs
        fs.makedirs(self.path)
        if member_id is None:
            member_id = f"{info.get('client_id') or 'strom'}-{uuid.uuid4().hex[:16]}"
        final = os.path.join(self.path, quote(member_id, safe="") + _SUFFIX)
        temp = os.path.join(self.path, f"~joining~{uuid.uuid4().hex}")
        with self._lock, self._locked():  # created and locked at once, for reapers
            lock = fs.lock(temp)
            lock.acquire()
        try:
            member = Member(self, member_id, lock, final)
            member.heartbeat(int(time.monotonic() * 1000))  # the group clock
            member.describe({**info, "member_id": member_id, "pid": os.getpid(),
                             "host": socket.gethostname()})
            with self._lock, self._locked():
                try:
                    probe = fs.lock(final, probe=True)
                except FileNotFoundError:
                    probe = None
                if probe is not None:
                    try:
                        if not probe.acquire(blocking=False):
                            raise IllegalStateError(
                                f"member id {member_id!r} is held by a live member of group "
                                f"{self.group_id!r}")
                        probe.release()
                    finally:
                        probe.close()
                fs.replace(temp, final)
        except BaseException:
            fs.unlink(temp)
            lock.close()
            raise
        return member

    def live(self) -> dict[str, dict[str, Any]]:
        """The live members' descriptions, by member id; dead members' files are removed.

        Each description has ``heartbeat_ms``, the member's last heartbeat.
        """
        fs = self.fs
        out: dict[str, dict[str, Any]] = {}
        try:
            names = fs.listdir(self.path)
        except FileNotFoundError:
            return out
        for name in sorted(names):
            if not (name.endswith(_SUFFIX) or name.startswith("~joining~")):
                continue
            raw = self._probe(os.path.join(self.path, name))
            if raw is None or name.startswith("~joining~"):
                continue  # dead (now removed), gone, or a join under way
            member_id = unquote(name[:-len(_SUFFIX)])
            info = self._parse(raw) or {"member_id": member_id}
            info["heartbeat_ms"] = _BEAT.unpack_from(raw)[0] if len(raw) >= _BEAT.size else 0
            out[member_id] = info
        return out

    def _probe(self, path: str) -> bytes | None:
        """The description in a live member's file; None (and the file removed) if it is dead."""
        fs = self.fs
        if not fs.exists(path):
            return None  # left meanwhile
        try:
            probe = fs.lock(path, probe=True)
        except FileNotFoundError:
            return None  # left meanwhile
        try:
            if not probe.acquire(blocking=False):
                return probe.read_hint(_INFO_AT + _LEN.size + MAX_INFO_BYTES)
            probe.release()
        finally:
            probe.close()
        # Nobody held it: its process is gone.  Remove it under the directory
        # lock, and only if the name still means that file (not a new member's).
        with self._lock, self._locked():
            try:
                probe = fs.lock(path, probe=True)
            except FileNotFoundError:
                probe = None
            if probe is not None:
                try:
                    if probe.acquire(blocking=False) and probe.is_current():
                        fs.unlink(path)
                finally:
                    probe.close()
        return None

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        if len(raw) < _INFO_AT + _LEN.size:
            return None
        (n,) = _LEN.unpack_from(raw, _INFO_AT)
        start = _INFO_AT + _LEN.size
        try:
            info = json.loads(raw[start:start + n])
        except ValueError:
            return None  # damaged: the member counts, without its description
        return info if isinstance(info, dict) else None
