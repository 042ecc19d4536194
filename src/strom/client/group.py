"""ConsumerGroup: look at a consumer group, move its offsets, delete it, run it in processes.

Theory of operation
-------------------
A group is its state file (strom.group.coordinator: generation, members,
assignment, claims), its members' liveness files (strom.group.members) and
its committed offsets (strom.group.offsets).  A ConsumerGroup joins none of
them: it reads them, as Kafka's ``kafka-consumer-groups`` tool asks the
coordinator, and changes offsets only while the group is *empty*.

Empty means no process is attached to the group: no live member file (a
member, one joining, or one put out of the group and about to rejoin) and,
once the state is reconciled with that, no member left in it.  A static
member (``group_instance_id``) that went away keeps its place, and so the
group is not empty, for its ``session_timeout_ms``, as in Kafka.  The check
and the change run under the group's lock, the one a joining consumer takes
to enter the state, and a consumer reads its committed offsets only after it
has claimed partitions under that lock: so no consumer can start from an
offset that a reset is replacing.

Describing.  ``describe()`` reports the stored state with the members that
are alive (or static and within their session), and the group's state in
Kafka's words: "Dead" (no members, no committed offsets: no such group),
"Empty" (no members), "Stable" (every member consumes exactly its
assignment) or "Rebalancing" (Kafka's PreparingRebalance and
CompletingRebalance: partitions are being handed over, a member is joining,
or a dead one is yet to be removed).

Running.  ``run(topics, handler, processes=N)`` is the parallel consumer
that a group makes possible: N worker processes, each a Consumer in this
group, calling ``handler`` on every record and committing after each polled
batch it handled (at-least-once: a worker that dies between handling and
committing leaves those records to be handled again by the partition's
next owner).  Workers are started with the "spawn" method, not fork: the
parent may have threads (a fork copies their locks in whatever state they
are in), and a fresh interpreter opens the log by its path like any other
process.  The supervisor (the calling thread) waits on the workers'
sentinels and report pipes; a worker that dies (a signal, or a non-zero
exit: the handler raised) is restarted, and the group gives its partitions
to the others meanwhile.  Each worker watches its control pipe in a thread:
"stop", end of file (the supervisor died: orphans do not go on consuming)
or a SIGTERM makes it finish the batch in hand, commit and exit cleanly (so a
worker stopped by SIGTERM is not restarted).  Workers ignore SIGINT: a
Ctrl-C reaches the whole process group, and the supervisor stops them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..config import validate_topic_name
from ..errors import (CommitFailedError, GroupNotEmptyError, IllegalArgumentError,
                      IllegalStateError, StromError, UnknownTopicOrPartitionError)
from ..group.coordinator import GroupState, GroupStore, monotonic_ms, partition_counts, reconcile
from ..group.members import GroupMembers
from ..group.offsets import offset_store
from ..records import OffsetAndMetadata, TopicPartition
from ..storage import FileSystem, Log, Partition
from .consumer import Consumer

__all__ = ["ConsumerGroup", "GroupDescription", "MemberDescription", "PartitionLag", "RunResult",
           "MAX_PROCESSES"]

log_ = logging.getLogger("strom.group")

#: The most worker processes one run() starts: far beyond any machine's cores
#: (each is an interpreter of some 30 MB); a slip such as 10**6 fails here
#: instead of exhausting the machine.
MAX_PROCESSES = 1024
#: How long stopping workers may take to finish their batch, commit and close
#: before they are killed (their uncommitted records are handled again later).
_STOP_TIMEOUT_S = 30.0
#: The longest a worker's poll waits before it looks at its idle deadline
#: again; a stop request wakes it at once.
_POLL_SLICE_MS = 1000
#: Options run() sets itself.
_RUN_RESERVED = ("group_id", "enable_auto_commit")


# -- value objects ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class MemberDescription:
    """One member of a group, as :meth:`ConsumerGroup.describe` reports it.

    ``host`` and ``pid`` are None for a static member whose process is gone
    but which keeps its place (and partitions) for its session timeout.
    ``assignment`` is what the member is to consume in this generation;
    ``owned`` what it consumes now (they differ while partitions move).
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str | None
    pid: int | None
    topics: tuple[str, ...]
    assignment: frozenset[TopicPartition]
    owned: frozenset[TopicPartition]


@dataclasses.dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group at one moment: its state, assignor, generation and members (by member id).

    ``state`` is "Dead", "Empty", "Stable" or "Rebalancing" (see the module
    docstring); ``protocol`` the assignor in use (None with no members).
    """

    group_id: str
    state: str
    protocol: str | None
    generation: int
    members: tuple[MemberDescription, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionLag:
    """A partition's progress in a group: committed offset, log end offset, and the difference.

    ``committed`` and ``lag`` are None when the group has committed nothing
    for the partition.
    """

    committed: int | None
    end_offset: int
    lag: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """What :meth:`ConsumerGroup.run` did: records handled by each worker, and restarts.

    ``records[i]`` counts the records worker ``i`` handled over all its
    incarnations (a record handled again after a death counts again).
    """

    records: tuple[int, ...]
    restarts: int

    @property
    def total(self) -> int:
        """Records handled by all workers."""
        return sum(self.records)


# -- the group -------------------------------------------------------------------------------------

class ConsumerGroup:
    """A consumer group on a Log: describe it, see its lag, reset or delete its offsets, run it.

    ``ConsumerGroup(log, group_id)`` joins nothing; any number may exist, in
    any process, beside the group's consumers.  ``reset_offsets`` and
    ``delete`` need the group to be empty (GroupNotEmptyError otherwise), as
    Kafka requires.  ``run`` processes topics in parallel worker processes.
    """

    def __init__(self, log: Log, group_id: str) -> None:
        if not isinstance(log, Log):
            raise IllegalArgumentError(f"ConsumerGroup needs a strom Log, not "
                                       f"{type(log).__name__}")
        self._members = GroupMembers(log, group_id)  # checks group_id
        self._store = GroupStore(log, group_id)
        self._log = log
        self._group_id = group_id
        self._run_lock = threading.Lock()
        self._wake_fd: int | None = None  # a run() under way: stop() writes here

    @property
    def group_id(self) -> str:
        """The group's id."""
        return self._group_id

    @property
    def log(self) -> Log:
        """The Log the group lives on."""
        return self._log

    # -- looking ---------------------------------------------------------------------------

    def describe(self) -> GroupDescription:
        """The group's state, assignor, generation, and each member with its partitions."""
        state = self._store.read()
        live = self._members.live()
        now = monotonic_ms()
        members = []
        complete = True  # every member in the state is counted
        for mid, ms in sorted(state.members.items()):
            info = live.get(mid)
            if info is None and not _static_in_session(ms, now):
                complete = False  # dead: the next reconcile removes it
                continue
            members.append(MemberDescription(
                member_id=mid, group_instance_id=ms.instance_id, client_id=ms.client_id,
                host=None if info is None else info.get("host"),
                pid=None if info is None else info.get("pid"), topics=tuple(ms.topics),
                assignment=frozenset(state.assignment.get(mid, ())),
                owned=frozenset(state.owned.get(mid, ()))))
        joining = set(live) - set(state.members)
        if not members and not live:
            name = "Empty" if offset_store(self._log).group_offsets(self._group_id) else "Dead"
        elif complete and not joining and state.settled():
            name = "Stable"
        else:
            name = "Rebalancing"
        return GroupDescription(self._group_id, name, state.protocol if members else None,
                                state.generation, tuple(members))

    def lag(self, topics: Iterable[str] | None = None) -> dict[TopicPartition, PartitionLag]:
        """Per partition: the committed offset, the log end offset, and how far behind it is.

        Covers every partition of ``topics`` (UnknownTopicOrPartitionError if
        one does not exist), by default of the topics the group has committed
        offsets for or its members subscribe to.
        """
        committed = offset_store(self._log).group_offsets(self._group_id)
        if topics is None:
            names = {tp.topic for tp in committed}
            names.update(t for m in self._store.read().members.values() for t in m.topics)
            counts = partition_counts(self._log, names)  # topics deleted since: left out
        else:
            counts = {t: len(self._log.topic(t).partitions) for t in _topic_names(topics)}
        out = {}
        for tp in sorted(TopicPartition(t, i) for t, n in counts.items() for i in range(n)):
            end = self._end_offset(tp)
            c = committed.get(tp)
            out[tp] = PartitionLag(None if c is None else c.offset, end,
                                   None if c is None else max(0, end - c.offset))
        return out

    # -- changing offsets ------------------------------------------------------------------

    def reset_offsets(self, to: str | None = None, *, offset: int | None = None,
                      timestamp: int | None = None, shift_by: int | None = None,
                      topics: Iterable[str] | None = None,
                      partitions: Iterable[TopicPartition] | None = None,
                      dry_run: bool = False) -> dict[TopicPartition, int]:
        """Set the group's committed offsets; returns the new offset of each partition.

        Where to, exactly one of:

        * ``to="earliest"``: the first offset still in the log;
        * ``to="latest"``: the log end (only records appended later are read);
        * ``offset=n``: offset ``n``;
        * ``timestamp=ms``: the first record whose timestamp is >= ``ms``, or
          the log end if there is none;
        * ``shift_by=k``: the committed offset plus ``k`` (negative: back).

        Offsets are clamped to [log start, log end], as Kafka's tool does.
        Which partitions: ``partitions``, or every partition of ``topics``,
        or by default every partition of the topics the group has committed
        offsets for.  Raises GroupNotEmptyError while a consumer is attached
        to the group (close them first); ``dry_run=True`` computes the
        offsets without that check and commits nothing.
        """
        target = _reset_target(to, offset, timestamp, shift_by)
        if type(dry_run) is not bool:
            raise IllegalArgumentError(f"dry_run must be a bool, not {dry_run!r}")
        if dry_run:
            return self._reset_offsets(target, topics, partitions)
        with self._store.locked():
            self._check_empty("reset_offsets")
            new = self._reset_offsets(target, topics, partitions)
            if new:
                offset_store(self._log).commit(
                    self._group_id, {tp: OffsetAndMetadata(o) for tp, o in new.items()})
        return new

    def _reset_offsets(self, target: tuple[str, int], topics: Iterable[str] | None,
                       partitions: Iterable[TopicPartition] | None) -> dict[TopicPartition, int]:
        kind, value = target
        tps = self._reset_scope(topics, partitions)
        committed = offset_store(self._log).group_offsets(self._group_id)
        if kind == "shift_by":
            missing = sorted(tp for tp in tps if tp not in committed)
            if missing:
                raise IllegalArgumentError(
                    f"shift_by moves committed offsets, and group {self._group_id!r} has none for "
                    f"{[f'{tp.topic}-{tp.partition}' for tp in missing]}")
        out = {}
        for tp in tps:
            p = self._partition(tp)
            p.refresh()
            start, end = p.log_start_offset, p.log_end_offset
            if kind == "earliest":
                new = start
            elif kind == "latest":
                new = end
            elif kind == "offset":
                new = value
            elif kind == "timestamp":
                found = p.offset_for_timestamp(value)
                new = end if found is None else found[0]
            else:
                new = committed[tp].offset + value
            out[tp] = min(max(new, start), end)
        return out

    def _reset_scope(self, topics: Iterable[str] | None,
                     partitions: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        if topics is not None and partitions is not None:
            raise IllegalArgumentError("reset_offsets() takes topics or partitions, not both")
        if partitions is not None:
            out = set()
            for tp in partitions:
                if not (isinstance(tp, tuple) and len(tp) == 2 and type(tp[0]) is str
                        and type(tp[1]) is int):
                    raise IllegalArgumentError(
                        f"expected a TopicPartition(topic, partition), not {tp!r}")
                tp = TopicPartition(*tp)
                self._partition(tp)  # UnknownTopicOrPartitionError
                out.add(tp)
            return sorted(out)
        if topics is None:
            names = {tp.topic for tp in offset_store(self._log).group_offsets(self._group_id)}
            counts = partition_counts(self._log, names)
        else:
            counts = {t: len(self._log.topic(t).partitions) for t in _topic_names(topics)}
        return sorted(TopicPartition(t, i) for t, n in counts.items() for i in range(n))

    def delete(self) -> None:
        """Delete the group: its committed offsets and its state (idempotent).

        GroupNotEmptyError while a consumer is attached to the group.
        """
        with self._store.locked():
            self._check_empty("delete")
            offset_store(self._log).delete(self._group_id)
        self._store.remove()

    def _check_empty(self, what: str) -> None:
        """GroupNotEmptyError unless no process is attached (call with the group lock held).

        Reconciles the state first, as any member would: dead members leave,
        and a static member's absence starts its session clock.
        """
        live = self._members.live()
        if live:
            who = ", ".join(f"{mid} (pid {info.get('pid', '?')} on {info.get('host', '?')})"
                            for mid, info in sorted(live.items()))
            raise GroupNotEmptyError(f"{what}: group {self._group_id!r} has live members: {who}; "
                                     f"close its consumers first")
        state = self._store.read()
        new = self._reconcile(state)
        if new is not state:
            self._store.write(new)
        if new.members:
            waiting = ", ".join(f"{mid} (until {ms.session_timeout_ms} ms after it left)"
                                for mid, ms in sorted(new.members.items()))
            raise GroupNotEmptyError(
                f"{what}: group {self._group_id!r} keeps the places of static members that left: "
                f"{waiting}; retry after their session timeout, or start them again")

    def _reconcile(self, state: GroupState) -> GroupState:
        """The state as reconcile() makes it with no live member."""
        topics = {t for m in state.members.values() for t in m.topics}
        return reconcile(state, {}, partition_counts(self._log, topics), monotonic_ms())

    def _partition(self, tp: TopicPartition) -> Partition:
        topic = self._log.topic(tp.topic)
        if not 0 <= tp.partition < len(topic.partitions):
            raise UnknownTopicOrPartitionError(
                f"topic {tp.topic!r} has partitions 0..{len(topic.partitions) - 1}, "
                f"not {tp.partition}")
        return topic.partitions[tp.partition]

    def _end_offset(self, tp: TopicPartition) -> int:
        p = self._partition(tp)
        p.refresh()
        return p.log_end_offset

    # -- running ---------------------------------------------------------------------------

    def run(self, topics: str | Iterable[str], handler: Callable[[Any], Any], processes: int = 1,
            *, batch: bool = False, idle_timeout_ms: int | None = None,
            max_restarts: int | None = 10, **configs: Any) -> RunResult:
        """Consume ``topics`` in ``processes`` worker processes of this group; wait for them.

        Each worker opens the log by its path, subscribes a Consumer in this
        group and calls ``handler(record)`` for each record (with
        ``batch=True``, ``handler(records)`` once per poll, a list), then
        commits what it handled: at-least-once.  ``configs`` are Consumer
        options; ``auto_offset_reset`` is "earliest" unless given (a new
        group processes what is there, as in Kafka Streams).

        A worker that dies (killed, or its handler raised: it commits the
        records handled before the failing one, and exits) is restarted, at
        most ``max_restarts`` times in all (None: no limit); past that, the
        others are stopped and StromError is raised.  Returns when every
        worker has exited: each exits after ``idle_timeout_ms`` with no
        record; without it, when :meth:`stop` is called from another thread
        (or it gets a SIGTERM; it is not restarted then).  On
        KeyboardInterrupt the workers are stopped the same way (they finish
        their batch and commit; a second interrupt kills them) and the
        interrupt propagates.  If the calling process dies, its workers stop.

        ``handler`` and ``configs`` go to the workers by pickling: use a
        function (or an instance of a class) defined at module level, not a
        lambda or a nested function, and guard the script's entry point with
        ``if __name__ == "__main__":`` (workers import it, as with
        multiprocessing).  A ":memory:" log cannot be shared with other
        processes: IllegalArgumentError.
        """
        names = _topic_names(topics)
        if not names:
            raise IllegalArgumentError("run() needs at least one topic")
        for t in names:
            self._log.topic(t)  # UnknownTopicOrPartitionError now, not in every worker
        if type(self._log.fs) is not FileSystem:
            raise IllegalArgumentError(
                f"run() needs a log in a directory: worker processes open it by its path, and "
                f"{self._log.path!r} is on this process's own {type(self._log.fs).__name__} "
                f"(a ':memory:' log cannot be shared)")
        if not callable(handler):
            raise IllegalArgumentError(f"handler must be callable, not {type(handler).__name__}")
        if type(processes) is not int or not 1 <= processes <= MAX_PROCESSES:
            raise IllegalArgumentError(f"processes must be an int in 1..{MAX_PROCESSES}, "
                                       f"not {processes!r}")
        if type(batch) is not bool:
            raise IllegalArgumentError(f"batch must be a bool, not {batch!r}")
        if idle_timeout_ms is not None and (type(idle_timeout_ms) is not int
                                            or idle_timeout_ms < 0):
            raise IllegalArgumentError(f"idle_timeout_ms must be an int >= 0 or None, "
                                       f"not {idle_timeout_ms!r}")
        if max_restarts is not None and (type(max_restarts) is not int or max_restarts < 0):
            raise IllegalArgumentError(f"max_restarts must be an int >= 0 or None, "
                                       f"not {max_restarts!r}")
        reserved = sorted(k for k in configs if k in _RUN_RESERVED)
        if reserved:
            raise IllegalArgumentError(f"run() sets {reserved} itself (it commits after each "
                                       f"batch it handled)")
        configs = {"auto_offset_reset": "earliest", **configs, "group_id": self._group_id,
                   "enable_auto_commit": False}
        Consumer(self._log, **configs).close()  # InvalidConfigError here, not in every worker
        try:
            pickle.dumps(handler)
        except Exception as exc:
            raise IllegalArgumentError(
                f"run() sends the handler to worker processes by pickling, and it cannot be "
                f"pickled ({exc}): use a function or class defined at module level, not a lambda "
                f"or a nested function") from exc
        spec = _WorkerSpec(self._log.path, tuple(names), handler, batch, idle_timeout_ms, configs)
        try:
            payload = pickle.dumps(spec)
        except Exception as exc:
            raise IllegalArgumentError(f"run() sends the consumer configs to worker processes by "
                                       f"pickling, and they cannot be pickled ({exc})") from exc
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)  # stop() never blocks: one byte waiting is enough
        with self._run_lock:
            if self._wake_fd is not None:
                os.close(wake_r)
                os.close(wake_w)
                raise IllegalStateError(f"group {self._group_id!r}: this ConsumerGroup is "
                                        f"running already")
            self._wake_fd = wake_w
        supervisor = _Supervisor(self._group_id, payload, processes, max_restarts, wake_r)
        try:
            return supervisor.run()
        finally:
            with self._run_lock:
                self._wake_fd = None
                os.close(wake_w)
            os.close(wake_r)

    def stop(self) -> None:
        """Make a run() under way (in another thread) stop its workers and return.

        The workers finish the batch in hand, commit and close.  Nothing
        happens if no run() is under way.
        """
        with self._run_lock:
            if self._wake_fd is not None:
                try:
                    os.write(self._wake_fd, b"s")
                except BlockingIOError:
                    pass  # stop requests are waiting already

    def __repr__(self) -> str:
        return f"<strom.ConsumerGroup {self._group_id!r} on {self._log.path!r}>"


def _static_in_session(ms: Any, now_ms: int) -> bool:
    """True for a static member that is away but keeps its place (its session has not run out)."""
    return ms.instance_id is not None and (
        ms.departed_ms is None or now_ms - ms.departed_ms <= ms.session_timeout_ms)


def _topic_names(topics: Any) -> list[str]:
    """``topics`` (a name, or names) as a sorted list of distinct, valid names."""
    if isinstance(topics, str):
        topics = [topics]
    try:
        names = list(topics)
    except TypeError:
        raise IllegalArgumentError(f"topics must be a name or names, not {topics!r}") from None
    for t in names:
        if type(t) is not str:
            raise IllegalArgumentError(f"topic names are str, not {type(t).__name__}")
        validate_topic_name(t)
    return sorted(set(names))


def _reset_target(to: Any, offset: Any, timestamp: Any, shift_by: Any) -> tuple[str, int]:
    """The one target reset_offsets() was given, as (kind, value)."""
    given = [(k, v) for k, v in (("to", to), ("offset", offset), ("timestamp", timestamp),
                                 ("shift_by", shift_by)) if v is not None]
    if len(given) != 1:
        raise IllegalArgumentError(
            "reset_offsets() takes exactly one of to='earliest'|'latest', offset=, timestamp= "
            f"and shift_by=, not {[k for k, _ in given] or 'none'}")
    kind, value = given[0]
    if kind == "to":
        if value not in ("earliest", "latest"):
            hint = f" (for an offset, say offset={value})" if type(value) is int else ""
            raise IllegalArgumentError(f"to must be 'earliest' or 'latest', not {value!r}{hint}")
        return value, 0
    if type(value) is not int or (kind != "shift_by" and value < 0):
        raise IllegalArgumentError(f"{kind} must be an int{' >= 0' if kind != 'shift_by' else ''}"
                                   f", not {value!r}")
    return kind, value


# -- the supervisor (the calling process) ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _WorkerSpec:
    """What every worker needs: pickled once by run(), sent to each worker."""

    path: str
    topics: tuple[str, ...]
    handler: Callable[[Any], Any]
    batch: bool
    idle_timeout_ms: int | None
    configs: Mapping[str, Any]


class _Slot:
    """One worker place: the process in it now, its pipes, and its counts over incarnations."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.control: Any = None  # supervisor -> worker: "stop" (or EOF: the supervisor died)
        self.reports: Any = None  # worker -> supervisor: ("handled", n), ("error"|"fatal", text)
        self.reports_open = False
        self.records = 0
        self.error: str | None = None  # the last failure the worker reported
        self.fatal = False  # it could not start: restarting would not help


class _Supervisor:
    """Starts the workers, restarts dead ones, stops them; run() in the calling thread."""

    def __init__(self, group_id: str, payload: bytes, processes: int,
                 max_restarts: int | None, wake_fd: int) -> None:
        import multiprocessing  # here: `import strom` need not load it
        self.ctx = multiprocessing.get_context("spawn")
        self.group_id = group_id
        self.payload = payload
        self.max_restarts = max_restarts
        self.wake_fd = wake_fd
        self.slots = [_Slot(i) for i in range(processes)]
        self.restarts = 0
        self.error: StromError | None = None
        self.stop_deadline: float | None = None  # set once stopping

    def run(self) -> RunResult:
        log_.info("group %r: starting %d worker process(es)", self.group_id, len(self.slots))
        interrupted = False
        try:
            for slot in self.slots:
                self.start(slot)
            while any(s.process is not None for s in self.slots):
                try:
                    self.step()
                except KeyboardInterrupt:
                    if self.stop_deadline is not None:
                        log_.warning("group %r: interrupted again: killing the workers",
                                     self.group_id)
                        raise
                    interrupted = True
                    self.begin_stop("interrupted")
        finally:
            self.close()
        if interrupted:
            raise KeyboardInterrupt
        if self.error is not None:
            raise self.error
        return RunResult(tuple(s.records for s in self.slots), self.restarts)

    def start(self, slot: _Slot) -> None:
        control_r, control_w = self.ctx.Pipe(duplex=False)
        reports_r, reports_w = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_worker_main,
                                   args=(self.payload, slot.index, control_r, reports_w),
                                   name=f"strom-worker-{slot.index}")
        try:
            process.start()
        finally:
            control_r.close()  # the worker's ends: only the worker may hold them
            reports_w.close()
        slot.process, slot.control, slot.reports, slot.reports_open = (
            process, control_w, reports_r, True)
        slot.error = None

    def step(self) -> None:
        """Wait for a report, a worker's exit, stop(), or the stop deadline; act on it."""
        from multiprocessing.connection import wait
        waiting: dict[Any, tuple[str, _Slot | None]] = {self.wake_fd: ("wake", None)}
        for s in self.slots:
            if s.process is not None:
                waiting[s.process.sentinel] = ("exit", s)
                if s.reports_open:
                    waiting[s.reports] = ("report", s)
        timeout = None
        if self.stop_deadline is not None:
            timeout = max(0.0, self.stop_deadline - time.monotonic())
        ready = wait(list(waiting), timeout)
        if not ready:
            for s in self.slots:
                if s.process is not None and s.process.is_alive():
                    log_.warning("group %r: worker %d (pid %d) did not stop within %.0f s: "
                                 "killing it", self.group_id, s.index, s.process.pid,
                                 _STOP_TIMEOUT_S)
                    s.process.kill()
            self.stop_deadline = time.monotonic() + _STOP_TIMEOUT_S
            return
        for obj in ready:
            what, slot = waiting[obj]
            if what == "wake":
                os.read(self.wake_fd, 64)
                self.begin_stop("stop() was called")
            elif what == "report":
                assert slot is not None
                self.drain(slot)
        for obj in ready:
            what, slot = waiting[obj]
            if what == "exit":
                assert slot is not None
                self.reap(slot)

    def drain(self, slot: _Slot) -> None:
        """Read every report the worker has sent so far."""
        while slot.reports_open:
            try:
                if not slot.reports.poll():
                    return
                kind, value = slot.reports.recv()
            except (EOFError, OSError):
                slot.reports_open = False
                return
            if kind == "handled":
                slot.records += value
            else:
                slot.error = value
                slot.fatal = kind == "fatal"

    def reap(self, slot: _Slot) -> None:
        """A worker exited: count what it reported, and restart it if it died."""
        process = slot.process
        process.join()
        self.drain(slot)
        slot.reports.close()
        slot.control.close()
        slot.process = slot.control = slot.reports = None
        code = process.exitcode
        if code == 0:
            log_.info("group %r: worker %d (pid %d) finished", self.group_id, slot.index,
                      process.pid)
            return
        died = (f"worker {slot.index} (pid {process.pid}) {_exit_text(code)}"
                + (f" ({slot.error})" if slot.error else ""))
        if self.stop_deadline is not None:
            log_.warning("group %r: while stopping, %s", self.group_id, died)
            return
        if slot.fatal:
            self.error = StromError(f"group {self.group_id!r}: {died}: it could not start, and "
                                    f"restarting it would not help")
            self.begin_stop("a worker could not start")
            return
        if self.max_restarts is not None and self.restarts >= self.max_restarts:
            self.error = StromError(f"group {self.group_id!r}: {died}; giving up after "
                                    f"{self.restarts} restart(s) "
                                    f"(max_restarts={self.max_restarts})")
            self.begin_stop("too many restarts")
            return
        self.restarts += 1
        log_.warning("group %r: %s; restarting it (restart %d%s)", self.group_id, died,
                     self.restarts,
                     "" if self.max_restarts is None else f" of at most {self.max_restarts}")
        self.start(slot)

    def begin_stop(self, why: str) -> None:
        """Ask every worker to finish its batch, commit and exit."""
        if self.stop_deadline is not None:
            return
        log_.info("group %r: %s: stopping the workers", self.group_id, why)
        self.stop_deadline = time.monotonic() + _STOP_TIMEOUT_S
        for s in self.slots:
            if s.control is not None:
                try:
                    s.control.send("stop")
                except OSError:
                    pass  # it is exiting: its sentinel says so next

    def close(self) -> None:
        """Kill and reap whatever still runs (after an error or a second interrupt)."""
        for s in self.slots:
            if s.process is not None:
                if s.process.is_alive():
                    s.process.kill()
                s.process.join()
                for conn in (s.control, s.reports):
                    conn.close()
                s.process = s.control = s.reports = None


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


# -- a worker (a spawned process) ------------------------------------------------------------------

def _worker_main(payload: bytes, index: int, control: Any, reports: Any) -> None:
    """A worker process: a Consumer in the group, handling and committing until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
    try:
        spec: _WorkerSpec = pickle.loads(payload)
        log = Log(spec.path)
    except BaseException as exc:
        reports.send(("fatal", _exc_text(exc)))
        raise
    try:
        try:
            consumer = Consumer(log, *spec.topics, **spec.configs)
        except BaseException as exc:
            reports.send(("fatal", _exc_text(exc)))
            raise
        stop = threading.Event()
        # SIGTERM (a service manager stopping every process of the service) stops this worker
        # as "stop" does.  The handler only writes a byte: waking the consumer takes locks that
        # the interrupted code may hold, so the control thread does that.
        term_r, term_w = os.pipe()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: os.write(term_w, b"t"))
        threading.Thread(target=_listen, args=(control, term_r, stop, consumer), daemon=True,
                         name="strom-worker-control").start()
        try:
            _consume(consumer, spec, stop, reports)
        finally:
            consumer.close(autocommit=False)  # what was handled is committed already
    finally:
        log.close()


def _listen(control: Any, term_fd: int, stop: threading.Event, consumer: Consumer) -> None:
    """The worker's control thread: on "stop", SIGTERM or the supervisor's death, wake the consumer.

    The supervisor's death closes its end of the control pipe: end of file.
    """
    from multiprocessing.connection import wait
    wait([control, term_fd])
    stop.set()
    consumer.wakeup()


def _consume(consumer: Consumer, spec: _WorkerSpec, stop: threading.Event, reports: Any) -> None:
    handler = spec.handler
    idle_s = None if spec.idle_timeout_ms is None else spec.idle_timeout_ms / 1000
    last = time.monotonic()
    while not stop.is_set():
        wait_ms: float = _POLL_SLICE_MS
        if idle_s is not None:
            left = last + idle_s - time.monotonic()
            if left <= 0:
                return
            wait_ms = min(wait_ms, left * 1000)
        polled = consumer.poll(timeout_ms=wait_ms)
        if not polled:
            continue
        done: dict[TopicPartition, int] = {}
        handled = 0
        try:
            if spec.batch:
                records = [r for rs in polled.values() for r in rs]
                handler(records)
                handled = len(records)
                done = {tp: rs[-1].offset + 1 for tp, rs in polled.items()}
            else:
                for tp, rs in polled.items():
                    for r in rs:
                        handler(r)
                        handled += 1
                        done[tp] = r.offset + 1
        except BaseException as exc:
            _commit(consumer, done)  # what was handled before the failure
            reports.send(("handled", handled))
            reports.send(("error", f"the handler raised {_exc_text(exc)}"))
            raise
        _commit(consumer, done)
        reports.send(("handled", handled))
        last = time.monotonic()


def _commit(consumer: Consumer, done: Mapping[TopicPartition, int]) -> None:
    if not done:
        return
    try:
        consumer.commit({tp: OffsetAndMetadata(o) for tp, o in done.items()})
    except CommitFailedError as exc:
        log_.warning("%s: their new owner handles those records again", exc)


def _exc_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
