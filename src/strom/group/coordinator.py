"""Consumer groups without a coordinator: a shared state file, changed under a lock by any member.

Theory of operation
-------------------
A group's state (generation, members and their subscriptions, the target
assignment, and each member's *claims*: the partitions it is consuming now)
lives in one small file, ``~groups/<group>/state``, replaced atomically.
Every change is a read-modify-write under the group's ``flock``
(``state.lock``); there is no leader.  The file is not fsync'd: it describes
live processes, and after a machine crash none is left (a damaged file reads
as an empty group).

Who is alive comes from strom.group.members: each member holds a lock on its
own file, which the OS releases when its process ends.  Every member runs a
watcher thread that waits (inotify, through a TailWaiter) on the group's
directories for a state change, a member's file being closed (a leave, or a
death: the kernel closes a killed process's files), or a deletion.  On each
wake it probes the members and applies :func:`reconcile`, a pure function
of (state, live members, partition counts, clock); if that changes anything
it takes the lock and writes the result.  So a kill -9 is absorbed within
milliseconds, by whichever member sees it first.

Safety: a partition is given to a member only when no other member claims
it (with an eager assignor, a member's whole assignment is given at once,
when all of it is free: Kafka's eager rebalance barrier).  A member claims partitions of its assignment under the lock, and only
if the generation it read is still current; it releases a partition after
its ``on_partitions_revoked`` has run.  When a rebalance moves a partition,
the new assignment leaves it out until its old owner releases it, and the
release itself runs :func:`reconcile`, which hands it over (Kafka's
cooperative protocol, KIP-429: partitions that stay put are consumed
throughout).  With an eager assignor, members give up every partition at
each new generation, as Kafka's eager protocol does.  A commit is accepted
only for partitions the committer claims, checked under the lock
(CommitFailedError otherwise): a member that lost a partition cannot
overwrite its new owner's progress.

Timeouts cover what death detection cannot: a member whose watcher thread
has not written a heartbeat for ``session_timeout_ms`` (a stopped process)
is put out of the group; a member that has not polled for
``max_poll_interval_ms`` puts itself out, as Kafka's heartbeat thread does.
A static member (``group_instance_id``) that goes away keeps its place and
its partitions for ``session_timeout_ms``: restarted within that time, it
takes them back with no rebalance.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack
import xxhash

from ..errors import (CommitFailedError, IllegalStateError, InconsistentGroupProtocolError,
                      LogClosedError, StromError, StromTimeoutError,
                      UnknownTopicOrPartitionError)
from ..records import TopicPartition
from ..storage import Log
from ..storage.fs import FileSystem
from ..storage.notify import IN_CLOSE_WRITE, IN_DELETE, IN_MOVED_TO, AppendSignal, TailWaiter
from .assignors import ASSIGNORS, Assignor, Subscription
from .members import GROUPS_DIR, GroupMembers, Member, _dir_name

__all__ = ["GroupState", "MemberState", "GroupStore", "Membership", "reconcile", "monotonic_ms"]

log_ = logging.getLogger("strom.group")

_STATE = "state"
_STATE_LOCK = "state.lock"
_VERSION = 1
#: The most a state file may hold (a crafted file cannot make us allocate more).
MAX_STATE_BYTES = 64 * 1024 * 1024
#: inotify events that mean the group changed: a state write, a member's
#: file closed by its holder (leave or death), a file removed.
_GROUP_EVENTS = IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE
#: How long a watcher waits for the group lock before trying again later (it
#: must go on beating while a stopped process holds the lock).
_WATCHER_LOCK_S = 0.05
#: How long a consumer's claim or commit waits for the group lock.
LOCK_TIMEOUT_S = 30.0


def monotonic_ms() -> int:
    """The group clock: CLOCK_MONOTONIC in ms, one clock for every process on the machine."""
    return int(time.monotonic() * 1000)


@dataclasses.dataclass(frozen=True)
class MemberState:
    """A member as the group state records it."""

    topics: tuple[str, ...]
    incarnation: str
    instance_id: str | None = None
    client_id: str = ""
    assignors: tuple[str, ...] = ("cooperative-sticky",)
    session_timeout_ms: int = 10_000
    #: When a static member was last seen alive, if it is gone now (group clock).
    departed_ms: int | None = None


_EMPTY: Mapping[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class GroupState:
    """One group's state: a value; changes make new ones."""

    generation: int = 0
    protocol: str | None = None
    members: Mapping[str, MemberState] = dataclasses.field(default_factory=dict)
    #: The partitions each member is to consume in this generation.
    assignment: Mapping[str, tuple[TopicPartition, ...]] = dataclasses.field(default_factory=dict)
    #: The partitions each member consumes now (claimed under the lock).
    owned: Mapping[str, tuple[TopicPartition, ...]] = dataclasses.field(default_factory=dict)
    #: Members put out of the group while alive (member id -> incarnation).
    fenced: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The partition count of each subscribed topic, as this generation saw it.
    partitions: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def owner(self, tp: TopicPartition) -> str | None:
        """The member that claims ``tp``, or None."""
        for member, tps in self.owned.items():
            if tp in tps:
                return member
        return None

    def is_member(self, member_id: str, incarnation: str) -> bool:
        """True if ``member_id`` in that incarnation belongs to the group now."""
        m = self.members.get(member_id)
        return m is not None and m.incarnation == incarnation

    def settled(self) -> bool:
        """True when every member consumes exactly its assignment (no rebalance under way)."""
        return all(set(self.owned.get(m, ())) == set(self.assignment.get(m, ()))
                   for m in self.members)

    # -- the file ------------------------------------------------------------------

    def encode(self) -> bytes:
        """The state file's bytes: an xxh64 digest, then msgpack."""
        def tps(m: Mapping[str, tuple[TopicPartition, ...]]) -> dict[str, list[list[Any]]]:
            return {k: [[tp.topic, tp.partition] for tp in v] for k, v in m.items()}
        body = msgpack.packb({
            "v": _VERSION, "generation": self.generation, "protocol": self.protocol,
            "members": {k: [list(m.topics), m.incarnation, m.instance_id, m.client_id,
                            list(m.assignors), m.session_timeout_ms, m.departed_ms]
                        for k, m in self.members.items()},
            "assignment": tps(self.assignment), "owned": tps(self.owned),
            "fenced": dict(self.fenced), "partitions": dict(self.partitions)})
        return xxhash.xxh64_digest(body) + body

    @classmethod
    def decode(cls, data: bytes) -> GroupState:
        """Parse a state file; ValueError if it is damaged (any field of the wrong type)."""
        if len(data) < 8 or xxhash.xxh64_digest(data[8:]) != data[:8]:
            raise ValueError("checksum mismatch")
        try:
            d = msgpack.unpackb(data[8:], max_bin_len=0, max_str_len=1 << 20,
                                max_array_len=1 << 20, max_map_len=1 << 20)
        except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
            raise ValueError(f"malformed state: {exc}") from None
        _want(isinstance(d, dict) and d.get("v") == _VERSION, "unknown state version")
        generation, protocol = d.get("generation"), d.get("protocol")
        _want(_is_int(generation) and generation >= 0, "generation")
        _want(protocol is None or isinstance(protocol, str), "protocol")
        members = {}
        for k, v in _str_map(d.get("members"), "members").items():
            _want(isinstance(v, list) and len(v) == 7, "member")
            topics, inc, inst, client, assignors, session, departed = v
            _want(_strs(topics) and isinstance(inc, str) and (inst is None or isinstance(inst, str))
                  and isinstance(client, str) and _strs(assignors) and bool(assignors)
                  and _is_int(session) and session > 0
                  and (departed is None or _is_int(departed)), f"member {k!r}")
            members[k] = MemberState(tuple(topics), inc, inst, client, tuple(assignors), session,
                                     departed)

        def tps(name: str) -> dict[str, tuple[TopicPartition, ...]]:
            out = {}
            for k, v in _str_map(d.get(name), name).items():
                _want(isinstance(v, list) and all(
                    isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
                    and _is_int(x[1]) and x[1] >= 0 for x in v), name)
                out[k] = tuple(TopicPartition(t, p) for t, p in v)
            return out
        fenced = _str_map(d.get("fenced"), "fenced")
        _want(all(isinstance(v, str) for v in fenced.values()), "fenced")
        counts = _str_map(d.get("partitions", {}), "partitions")
        _want(all(_is_int(v) and v >= 0 for v in counts.values()), "partitions")
        return cls(generation, protocol, members, tps("assignment"), tps("owned"), fenced, counts)


def _want(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"malformed state: bad {what}")


def _is_int(x: Any) -> bool:
    return type(x) is int and -(1 << 63) <= x < (1 << 64)


def _strs(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(t, str) for t in x)


def _str_map(x: Any, what: str) -> dict[str, Any]:
    _want(isinstance(x, dict) and all(isinstance(k, str) for k in x), what)
    return x


def _protocol(members: Mapping[str, MemberState], current: str | None) -> str | None:
    """The assignor the group uses: of those every member supports, the one most members
    prefer (Kafka's vote); a tie keeps the current one, else goes to the earlier name.

    So a rolling restart that moves every member to a new first choice
    (listing the old one second) moves the group to it.
    """
    if not members:
        return None
    shared = set.intersection(*(set(m.assignors) for m in members.values()))
    if not shared:
        return None
    votes = dict.fromkeys(sorted(shared), 0)
    for m in members.values():
        votes[next(a for a in m.assignors if a in shared)] += 1
    return max(votes, key=lambda a: (votes[a], a == current, -sorted(shared).index(a)))


def reconcile(state: GroupState, live: Mapping[str, Mapping[str, Any]],
              partitions: Mapping[str, int], now_ms: int,
              assignors: Mapping[str, Assignor] | None = None, *,
              since: GroupState | None = None) -> GroupState:
    """The group's next state, given who is alive now: the rebalance, as a pure function.

    ``live``: the live members' descriptions by id (``incarnation``,
    ``heartbeat_ms``), as GroupMembers.live() gives them.  ``partitions``:
    the partition count of each subscribed topic.  Dead members leave with
    their claims; a static member's place is kept for its session timeout;
    a member whose heartbeat is older than its session timeout is fenced.
    The assignor's target is then given out, except partitions another
    member still claims.  The generation moves when a rebalance starts: the
    members, their subscriptions, the protocol or the partition counts
    change (handing over a released partition completes the rebalance of
    the same generation).  ``since``: the state to compare with for that,
    when ``state`` already carries a member's own change (its join, leave or
    new subscription).  Returns ``state`` itself when nothing changes.
    """
    members = dict(state.members)
    owned = dict(state.owned)
    fenced = {m: inc for m, inc in state.fenced.items()
              if live.get(m, _EMPTY).get("incarnation") == inc}
    for mid, ms in state.members.items():
        info = live.get(mid)
        inc = None if info is None else info.get("incarnation", ms.incarnation)
        if inc == ms.incarnation:
            assert info is not None
            if now_ms - int(info.get("heartbeat_ms", now_ms)) > ms.session_timeout_ms:
                del members[mid]
                owned.pop(mid, None)
                fenced[mid] = ms.incarnation
            elif ms.departed_ms is not None:
                members[mid] = dataclasses.replace(ms, departed_ms=None)
            continue
        if ms.instance_id is not None:
            if info is not None:
                continue  # restarted: the new incarnation adopts this entry when it joins
            if ms.departed_ms is None:
                members[mid] = dataclasses.replace(ms, departed_ms=now_ms)
                continue
            if now_ms - ms.departed_ms <= ms.session_timeout_ms:
                continue
        del members[mid]
        owned.pop(mid, None)
    for mid in list(owned):
        if mid not in members:
            del owned[mid]

    protocol = _protocol(members, state.protocol)
    assignment: dict[str, tuple[TopicPartition, ...]] = {}
    counts = {t: partitions[t] for m in members.values() for t in m.topics if t in partitions}
    assignor = (assignors or {}).get(protocol) if protocol is not None else None
    if assignor is None and protocol in ASSIGNORS:
        assignor = ASSIGNORS[protocol]()
    if members and protocol is not None and assignor is None:
        # A user's assignor this process does not have (only its members do):
        # everyone keeps what it claims until a member that knows it decides.
        assignment = {mid: tuple(sorted(owned.get(mid, ()))) for mid in members}
    elif members and assignor is not None:
        subs = {mid: Subscription(frozenset(ms.topics), owned.get(mid, ()), state.generation)
                for mid, ms in members.items()}
        target = assignor.assign(counts, subs)
        claimed = {tp: mid for mid, tps in owned.items() for tp in tps}
        for mid in members:
            free = tuple(sorted(tp for tp in target.get(mid, ()) if claimed.get(tp, mid) == mid))
            if not assignor.cooperative and len(free) < len(target.get(mid, ())):
                free = ()  # eager: the whole assignment at once, when all of it is free
            assignment[mid] = free
    before = state if since is None else since
    generation = before.generation
    if (protocol != before.protocol or counts != dict(before.partitions)
            or {k: m.topics for k, m in members.items()}
            != {k: m.topics for k, m in before.members.items()}):
        generation += 1
    new = GroupState(generation, protocol, members, assignment, owned, fenced, counts)
    return state if new == state else new


# -- the state file, its lock, and waking watchers -----------------------------------------------

_signals: weakref.WeakKeyDictionary[FileSystem, dict[str, AppendSignal]] = \
    weakref.WeakKeyDictionary()
_signals_lock = threading.Lock()


def _signal(fs: FileSystem, path: str) -> AppendSignal:
    """The in-process signal of one group's changes (memory logs have no inotify)."""
    with _signals_lock:
        return _signals.setdefault(fs, {}).setdefault(path, AppendSignal())


class GroupStore:
    """One group's state file: read (cached by its stamp), and changed under the group lock."""

    def __init__(self, log: Log, group_id: str) -> None:
        self.log = log
        self.fs = log.fs
        self.group_id = group_id
        self.path = os.path.join(log.path, GROUPS_DIR, _dir_name(group_id))
        self.members_path = os.path.join(self.path, "members")
        self.signal = _signal(self.fs, self.path)
        self._file_lock: Any = None
        self._mutex = threading.RLock()  # this object's users, between themselves
        self._cached: tuple[Any, GroupState] | None = None

    def _stamp(self) -> Any:
        try:
            return self.fs.stamp(os.path.join(self.path, _STATE))
        except FileNotFoundError:
            return None

    def read(self) -> GroupState:
        """The current state (an empty group if there is none, or it is damaged)."""
        stamp = self._stamp()
        cached = self._cached
        if cached is not None and cached[0] == stamp:
            return cached[1]
        state = GroupState()
        if stamp is not None:
            path = os.path.join(self.path, _STATE)
            try:
                f = self.fs.open(path)
            except FileNotFoundError:
                return self.read()
            try:
                size = f.size()
                data = f.pread(min(size, MAX_STATE_BYTES), 0)
            finally:
                f.close()
            try:
                if size > MAX_STATE_BYTES:
                    raise ValueError(f"{size} bytes")
                state = GroupState.decode(data)
            except ValueError as exc:
                log_.warning("group %r: state file damaged (%s); starting from an empty group",
                             self.group_id, exc)
        self._cached = (stamp, state)
        return state

    @property
    def stamp(self) -> Any:
        """The state file's stamp at the last :meth:`read` (changes with every write)."""
        return self._cached[0] if self._cached else None

    def locked(self, timeout: float | None = None) -> _Locked:
        """``with store.locked():`` changes of this group are excluded (every process).

        With ``timeout`` (seconds), StromTimeoutError if the lock is not had
        by then (its holder may be a stopped process).
        """
        return _Locked(self, timeout)

    def write(self, state: GroupState) -> None:
        """Replace the state (call with the lock held)."""
        self.fs.write_atomic(os.path.join(self.path, _STATE), state.encode(), durable=False)
        self.signal.fire()

    def update(self, change: Callable[[GroupState], GroupState],
               timeout: float | None = None) -> GroupState:
        """Apply ``change`` to the current state under the lock; write it if it differs."""
        with self.locked(timeout):
            state = self.read()
            new = change(state)
            if new is not state and new != state:
                self.write(new)
            return new

    def close(self) -> None:
        """Close the lock file this object keeps open (it opens it again if used)."""
        with self._mutex:
            if self._file_lock is not None:
                self._file_lock.close()
                self._file_lock = None

    def waiter(self) -> TailWaiter:
        """A waiter that wakes on this group's changes (any process)."""
        self.fs.makedirs(self.members_path)
        waiter = self.fs.tail_waiter(self.signal)
        waiter.watch(self.path, IN_MOVED_TO)  # a new state (not its temp file's close)
        waiter.watch(self.members_path, _GROUP_EVENTS)
        return waiter

    def remove(self) -> None:
        """Forget the group's state (call with no live member).

        The lock files stay: another process may hold one open, and a lock
        on a removed file would exclude nobody.
        """
        with self.locked():
            self.fs.unlink(os.path.join(self.path, _STATE))
            self._cached = None
            self.signal.fire()


class _Locked:
    __slots__ = ("store", "timeout")

    def __init__(self, store: GroupStore, timeout: float | None) -> None:
        self.store = store
        self.timeout = timeout

    def _timed_out(self) -> StromTimeoutError:
        return StromTimeoutError(
            f"group {self.store.group_id!r}: its lock was not free for {self.timeout} s (is a "
            f"member process stopped while holding it?)")

    def _acquire(self, lock: Any) -> None:
        if self.timeout is None:
            lock.acquire()
            return
        deadline = time.monotonic() + self.timeout
        pause = 0.0002
        while not lock.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise self._timed_out()
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def __enter__(self) -> GroupStore:
        store = self.store
        if not store._mutex.acquire(timeout=-1 if self.timeout is None else self.timeout):
            raise self._timed_out()
        try:
            while True:
                if store._file_lock is None:
                    store.fs.makedirs(store.path)
                    store._file_lock = store.fs.lock(os.path.join(store.path, _STATE_LOCK))
                self._acquire(store._file_lock)
                if store._file_lock.is_current():
                    break
                # The directory was removed and made again: lock the file that is there now.
                store._file_lock.close()
                store._file_lock = None
        except BaseException:
            store._mutex.release()
            raise
        return store

    def __exit__(self, *exc: object) -> None:
        try:
            self.store._file_lock.release()
        finally:
            self.store._mutex.release()


def partition_counts(log: Log, topics: Iterable[str]) -> dict[str, int]:
    """The partition count of each existing topic among ``topics``."""
    out = {}
    for t in set(topics):
        try:
            out[t] = len(log.topic(t).partitions)
        except UnknownTopicOrPartitionError:
            pass
    return out


# -- one consumer's membership ---------------------------------------------------------------------

_memberships: weakref.WeakSet[Membership] = weakref.WeakSet()


def _forget_after_fork() -> None:
    """In a forked child: let go of the parent's group locks.

    A child holding copies of the descriptors would keep a dead parent's
    membership alive (an flock lasts while any copy is open).  The child
    never was the member: it closes its copies and never acts for it.
    """
    for m in list(_memberships):
        m._stop.set()
        m._forked = True
        if m._member is not None:
            m._member._lock.close()
        if m.store._file_lock is not None:
            m.store._file_lock.close()
            m.store._file_lock = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class Membership:
    """One consumer's place in a group: its liveness file, its watcher thread, its claims.

    The consumer calls :meth:`sync_view` and :meth:`update_claims` from its
    own thread; the watcher thread keeps the group reconciled, writes
    heartbeats, and calls ``on_change`` when the state changed.
    """

    def __init__(self, log: Log, group_id: str, topics: Iterable[str], *,
                 assignors: tuple[str, ...] = ("cooperative-sticky",),
                 instance_id: str | None = None, client_id: str = "",
                 session_timeout_ms: int = 10_000, heartbeat_interval_ms: int = 3_000,
                 max_poll_interval_ms: int = 300_000,
                 assignor_objects: Mapping[str, Assignor] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.log = log
        self.group_id = group_id
        self.store = GroupStore(log, group_id)
        self.members = GroupMembers(log, group_id)
        self.topics = tuple(sorted(set(topics)))
        self.assignors = tuple(assignors)
        self._assignor_objects = dict(assignor_objects or {})
        self.instance_id = instance_id
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_ms = heartbeat_interval_ms
        self.max_poll_ms = max_poll_interval_ms
        self._on_change = on_change
        self._member: Member | None = None
        self.incarnation = ""
        self.member_id = ""
        self.changed = True  # the consumer's next look syncs
        self._last_poll = monotonic_ms()
        #: True while the consumer waits inside poll() (not stuck, however long).
        self.waiting = False
        self._seen_stamp: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiter: TailWaiter | None = None
        self._forked = False
        self._join()
        _memberships.add(self)
        self._thread = threading.Thread(target=self._watch, name=f"strom-group-{group_id}",
                                        daemon=True)
        self._thread.start()

    # -- joining and leaving ---------------------------------------------------------------

    def _me(self) -> MemberState:
        return MemberState(self.topics, self.incarnation, self.instance_id, self.client_id,
                           self.assignors, self.session_timeout_ms)

    def _join(self) -> None:
        """Take a member file and enter the group state (adopting a static id's old place)."""
        self.incarnation = uuid.uuid4().hex
        self._member = self.members.join(
            {"incarnation": self.incarnation, "client_id": self.client_id,
             "instance_id": self.instance_id, "topics": list(self.topics)},
            member_id=self.instance_id)
        self.member_id = self._member.member_id

        def enter(state: GroupState) -> GroupState:
            others = {k: v for k, v in state.members.items() if k != self.member_id}
            protocol = _protocol(others, state.protocol)
            if others and protocol not in self.assignors:
                raise InconsistentGroupProtocolError(
                    f"group {self.group_id!r} uses assignor {protocol!r}; this consumer offers "
                    f"{list(self.assignors)}")
            members = {**state.members, self.member_id: self._me()}
            fenced = {k: v for k, v in state.fenced.items() if k != self.member_id}
            entered = dataclasses.replace(state, members=members, fenced=fenced)
            return self._reconcile(entered, since=state)
        try:
            self.store.update(enter)
        except BaseException:
            self._member.leave()
            raise
        self.changed = True

    def _reconcile(self, state: GroupState, live: Mapping[str, Any] | None = None, *,
                   since: GroupState | None = None) -> GroupState:
        if live is None:
            live = self.members.live()
        topics = {t for m in state.members.values() for t in m.topics}
        return reconcile(state, live, partition_counts(self.log, topics), monotonic_ms(),
                         self._assignor_objects, since=since)

    def rejoin(self) -> None:
        """After being put out of the group: a fresh member file and a fresh entry."""
        if self._member is not None:
            self._member.leave()
        self._join()

    def set_topics(self, topics: Iterable[str]) -> None:
        """A new subscription: the group rebalances."""
        topics = tuple(sorted(set(topics)))
        if topics == self.topics:
            return
        self.topics = topics

        def change(state: GroupState) -> GroupState:
            if not state.is_member(self.member_id, self.incarnation):
                return state
            members = {**state.members, self.member_id: self._me()}
            return self._reconcile(dataclasses.replace(state, members=members), since=state)
        self.store.update(change)

    def refresh(self) -> None:
        """Reconcile now (topics or partitions may have appeared)."""
        state = self.store.read()
        if self._reconcile(state) is not state:
            self.store.update(self._reconcile)

    def _without_me(self, state: GroupState, fence: bool = False) -> GroupState:
        """``state`` after this member leaves it (put out alive with ``fence``), reconciled."""
        if not self.in_group(state):
            return state
        members = {k: v for k, v in state.members.items() if k != self.member_id}
        owned = {k: v for k, v in state.owned.items() if k != self.member_id}
        fenced = {**state.fenced, self.member_id: self.incarnation} if fence else state.fenced
        return self._reconcile(dataclasses.replace(state, members=members, owned=owned,
                                                   fenced=fenced), since=state)

    def close(self, leave: bool = True) -> None:
        """Stop the watcher; ``leave`` (dynamic members) removes this member at once."""
        self._stop.set()
        if self._forked:
            return  # a forked child's copy: the member is its parent
        if self._waiter is not None:
            self._waiter.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._member is None or self._member.left:
            return
        if leave and self.instance_id is None:
            try:
                self.store.update(self._without_me)
            except LogClosedError:
                pass  # the others see the member file go
            except (OSError, StromError) as exc:
                log_.warning("group %r: leaving: %s", self.group_id, exc)
        self._member.leave()
        self.store.signal.fire()  # in this process, as inotify tells the others
        self.store.close()
        self.members.close()

    # -- what the consumer calls ----------------------------------------------------------------

    def polled(self) -> None:
        """The consumer is polling (for max_poll_interval_ms)."""
        self._last_poll = monotonic_ms()

    def _check_process(self) -> None:
        if self._forked:
            raise IllegalStateError("a group consumer cannot be used in a forked child process; "
                                    "create a new Consumer there")

    def state(self) -> GroupState:
        """The group state now (clears ``changed``)."""
        self._check_process()
        self.changed = False
        return self.store.read()

    def in_group(self, state: GroupState) -> bool:
        """True if this member (this incarnation) belongs to the group in ``state``."""
        return state.is_member(self.member_id, self.incarnation)

    def update_claims(self, release: Iterable[TopicPartition], claim: Iterable[TopicPartition],
                      generation: int) -> tuple[GroupState, set[TopicPartition]]:
        """Give up ``release``; take those of ``claim`` that the current generation allows.

        A partition is claimed only if ``generation`` is still current, it is
        in this member's assignment, and no other member claims it.  Returns
        the state written and the partitions claimed.
        """
        release = set(release)
        claim = set(claim)
        granted: set[TopicPartition] = set()

        def change(state: GroupState) -> GroupState:
            granted.clear()
            if not self.in_group(state):
                return state
            mine = set(state.owned.get(self.member_id, ())) - release
            if state.generation == generation:
                others = {tp for m, tps in state.owned.items() if m != self.member_id for tp in tps}
                target = set(state.assignment.get(self.member_id, ()))
                granted.update(tp for tp in claim if tp in target and tp not in others)
                mine |= granted
            owned = {**state.owned, self.member_id: tuple(sorted(mine))}
            return self._reconcile(dataclasses.replace(state, owned=owned))
        new = self.store.update(change, LOCK_TIMEOUT_S)
        self.changed = True  # look again: the generation may have moved meanwhile
        return new, set(granted)

    def fenced_commit(self, tps: Iterable[TopicPartition], commit: Callable[[], None]) -> None:
        """Run ``commit`` under the group lock if this member claims every one of ``tps``.

        CommitFailedError otherwise, as Kafka's coordinator refuses a commit
        from a member of an old generation.
        """
        self._check_process()
        with self.store.locked(LOCK_TIMEOUT_S):
            state = self.store.read()
            if not self.in_group(state):
                raise CommitFailedError(
                    f"commit refused: this consumer is no longer a member of group "
                    f"{self.group_id!r} (its partitions were reassigned); it rejoins at the next "
                    f"poll")
            mine = set(state.owned.get(self.member_id, ()))
            lost = sorted(tp for tp in tps if tp not in mine)
            if lost:
                raise CommitFailedError(
                    f"commit refused: group {self.group_id!r} member {self.member_id!r} does not "
                    f"own {[f'{tp.topic}-{tp.partition}' for tp in lost]} (reassigned in a "
                    f"rebalance)")
            commit()

    # -- the watcher thread ---------------------------------------------------------------------

    def _watch(self) -> None:
        waiter = self._waiter = self.store.waiter()
        next_beat = 0
        try:
            while not self._stop.is_set():
                try:
                    token = waiter.prepare()
                except OSError:  # closed under us (interpreter exit)
                    break
                now = monotonic_ms()
                if now >= next_beat and self._member is not None:
                    self._member.heartbeat(now)
                    next_beat = now + self.heartbeat_ms
                try:
                    deadline = self._tick(now)
                except LogClosedError:
                    break  # the log was closed under its consumers: nothing left to watch
                except Exception:  # keep watching: the next wake tries again
                    log_.exception("group %r: watcher", self.group_id)
                    deadline = now + 100
                if self._stop.is_set():
                    break
                waiter.wait(token, max(0, min(next_beat, deadline) - monotonic_ms()) / 1000)
        finally:
            waiter.close()

    def _tick(self, now: int) -> int:
        """Reconcile if anything changed; wake the consumer on a new state; the next deadline."""
        if not self.waiting and now - self._last_poll > self.max_poll_ms:
            self._leave_stuck(now)
        state = self.store.read()
        live = self.members.live()
        if self._reconcile(state, live) is not state:
            before = state
            try:
                state = self.store.update(self._reconcile, _WATCHER_LOCK_S)
            except StromTimeoutError:
                return now + 5  # busy (or held by a stopped process): beat, and try again soon
            for mid in state.fenced.keys() - before.fenced.keys():
                if mid != self.member_id:
                    log_.warning("group %r: member %s sent no heartbeat for its session timeout: "
                                 "put out of the group", self.group_id, mid)
        stamp = self.store.stamp
        if stamp != self._seen_stamp:
            self._seen_stamp = stamp
            self.changed = True
            if self._on_change is not None:
                self._on_change()
        deadline = self._last_poll + self.max_poll_ms + 1
        for mid, m in state.members.items():
            if m.departed_ms is not None:
                deadline = min(deadline, m.departed_ms + m.session_timeout_ms + 1)
            elif mid in live and mid != self.member_id:  # look again when its session runs out
                beat = int(live[mid].get("heartbeat_ms", now))
                deadline = min(deadline, max(beat + m.session_timeout_ms + 1, now + 1))
        return deadline

    def _leave_stuck(self, now: int) -> None:
        """No poll for max_poll_interval_ms: give up membership (and claims) for the others."""
        try:
            new = self.store.update(lambda state: self._without_me(state, fence=True),
                                    _WATCHER_LOCK_S)
        except StromTimeoutError:
            return  # the next tick tries again
        if self.member_id in new.fenced:
            log_.warning("group %r: member %s did not poll for %d ms (max_poll_interval_ms): "
                         "left the group", self.group_id, self.member_id, now - self._last_poll)
        self._last_poll = now  # once per interval

    def __repr__(self) -> str:
        return f"<strom Membership {self.member_id!r} of {self.group_id!r}>"

