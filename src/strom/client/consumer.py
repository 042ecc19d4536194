"""The Consumer: kafka-python's KafkaConsumer, reading a strom Log.

Theory of operation
-------------------
Each assigned partition has a *position*: the offset of the next record to
hand out.  A fetch reads whole batches from the position
(``max_partition_fetch_bytes`` at a time), decodes them as columns (one
msgpack call per batch) and builds the partition's ConsumerRecords in one
pass of C iterators (``map``/``zip``: no Python frame per record).  Records
not yet handed out wait in the partition's buffer; ``poll()`` takes up to
``max_records`` from the buffers, a partition at a time in turn, so one
busy partition does not starve the others.

Iteration (``for record in consumer``) hands out whole buffers through a
generator (``yield from`` a list iterator: about 20 ns a record), and works
out the position only when someone asks (``position``, ``commit``, ``seek``):
the list iterator knows how many records are left.

Waiting.  With nothing to read, ``poll`` and iteration wait on the Log's
append signal: an append in this process wakes them at once, and an append
by another process through the consumer's tail waiter (its own inotify
descriptor on the partition directories, waited on with ``select`` in the
consumer's thread; storage/notify.py).  No sleep loop, no thread in between.

Offsets.  Without a ``group_id`` nothing is committed; positions start from
``auto_offset_reset``.  With one, positions start from the group's committed
offsets (kept durably in the log: strom.group.offsets), commits are fsync'd,
and ``enable_auto_commit`` commits the positions every
``auto_commit_interval_ms`` at poll and iteration boundaries and at close.
Groups.  Consumers that subscribe with the same ``group_id`` share the
partitions, in one process or many (strom.group.coordinator): each joins
the group's state, its watcher thread reconciles the group when a member
comes, goes or dies, and the consumer applies its new assignment at its
next poll, calling the rebalance listener.  With the default
cooperative-sticky assignor only moving partitions are revoked; commits are
accepted only for partitions the consumer still owns (CommitFailedError).

A position past the log end or below its start (a seek too far, or records
removed by retention) is reset by ``auto_offset_reset`` at the next fetch,
as in Kafka; with "none" the fetch raises OffsetOutOfRangeError.
"""

from __future__ import annotations

import abc
import collections
import concurrent.futures
import gc
import logging
import re
import time
import weakref
from itertools import repeat
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from ..errors import (CommitFailedError, IllegalArgumentError, IllegalStateError, InvalidConfigError,
                      LogClosedError, NoOffsetForPartitionError, OffsetOutOfRangeError,
                      RecordDeserializationError, StromError,
                      UnknownTopicOrPartitionError)
from ..config import validate_topic_name
from ..group.assignors import ASSIGNORS, Assignor, resolve_assignor
from ..group.coordinator import LOCK_TIMEOUT_S, GroupStore, Membership, monotonic_ms
from ..group.members import GroupMembers
from ..group.offsets import OFFSETS_TOPIC, offset_store
from ..records import (LOG_APPEND_TIME, ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp,
                       TopicPartition)
from ..storage import Log, Partition

__all__ = ["Consumer", "ConsumerRebalanceListener", "RecordColumns", "DEFAULTS", "IGNORED"]

log_ = logging.getLogger("strom.consumer")

#: kafka-python's defaults where strom honours the option.
DEFAULTS: dict[str, Any] = {
    "group_id": None,
    "group_instance_id": None,
    "client_id": None,
    "auto_offset_reset": "latest",
    "enable_auto_commit": True,
    "auto_commit_interval_ms": 5000,
    "default_offset_commit_callback": None,
    "max_poll_records": 500,
    "key_deserializer": None,
    "value_deserializer": None,
    "consumer_timeout_ms": float("inf"),
    "fetch_max_wait_ms": 500,
    "max_partition_fetch_bytes": 1048576,
    "fetch_max_bytes": 52428800,
    "exclude_internal_topics": True,
    "isolation_level": "read_uncommitted",
    "commit_acks": "all",
    "partition_assignment_strategy": ("cooperative-sticky",),
    "session_timeout_ms": 10000,
    "heartbeat_interval_ms": 3000,
    "max_poll_interval_ms": 300000,
}
#: Accepted so that configurations written for a networked client keep working;
#: they have no effect in-process.
IGNORED = frozenset({
    "bootstrap_servers", "fetch_min_bytes", "request_timeout_ms", "retry_backoff_ms",
    "retry_backoff_max_ms", "reconnect_backoff_ms", "reconnect_backoff_max_ms",
    "max_in_flight_requests_per_connection", "check_crcs", "metadata_max_age_ms",
    "receive_buffer_bytes", "send_buffer_bytes", "socket_options",
    "sock_chunk_bytes", "sock_chunk_buffer_count", "security_protocol", "ssl_context",
    "ssl_check_hostname", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile",
    "ssl_password", "ssl_ciphers", "api_version", "api_version_auto_timeout_ms",
    "connections_max_idle_ms", "metric_reporters", "metrics_enabled", "metrics_num_samples",
    "metrics_sample_window_ms", "metric_group_prefix", "selector", "sasl_mechanism",
    "sasl_plain_username", "sasl_plain_password", "sasl_kerberos_name",
    "sasl_kerberos_service_name", "sasl_kerberos_domain_name", "sasl_oauth_token_provider",
    "client_rack", "enable_incremental_fetch_sessions", "kafka_client", "legacy_iterator",
    "leader_epoch", "net", "allow_auto_create_topics",
})
_RESETS = {"earliest": "earliest", "smallest": "earliest", "latest": "latest",
           "largest": "latest", "none": "none"}
#: How often a subscription to missing topics or a pattern looks for new topics.
_METADATA_REFRESH_S = 0.1

_tuple_new = tuple.__new__


class RecordColumns(NamedTuple):
    """The records of one partition from :meth:`Consumer.poll_columns`, one list per field.

    ``offsets`` may be a ``range``; ``keys`` and ``headers`` are None when no
    record has one; ``timestamp_type`` is 0 (CreateTime) or 1
    (LogAppendTime) for the whole batch, or a list when batches differ.
    """

    offsets: Sequence[int]
    timestamps: list[int]
    keys: list[Any] | None
    values: list[Any]
    headers: list[Any] | None
    timestamp_type: int | list[int]


class ConsumerRebalanceListener(abc.ABC):
    """Callbacks on assignment changes, with kafka-python's names.

    ``on_partitions_revoked`` runs before partitions are taken away (commit
    there), ``on_partitions_assigned`` after new ones are given, and
    ``on_partitions_lost`` when partitions were lost without a chance to
    commit (it calls ``on_partitions_revoked`` unless overridden).  They run
    in the consumer's thread, inside ``poll()``/iteration or ``close()``.
    """

    @abc.abstractmethod
    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Partitions about to be taken from this consumer."""

    @abc.abstractmethod
    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions just given to this consumer."""

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Partitions lost without a revoke (defaults to on_partitions_revoked)."""
        self.on_partitions_revoked(lost)


def _assignors(spec: Any) -> dict[str, Any]:
    """``partition_assignment_strategy`` as {name: Assignor}, in preference order.

    Names ("range", "roundrobin", "sticky", "cooperative-sticky"), strom
    Assignor classes or instances, or any class with one of those ``name``s
    (kafka-python's assignor classes).
    """
    if isinstance(spec, (str, type)) or not isinstance(spec, (list, tuple)):
        spec = [spec]
    if not spec:
        raise InvalidConfigError("partition_assignment_strategy must name at least one assignor")
    out: dict[str, Any] = {}
    for item in spec:
        name = getattr(item, "name", None)
        if name in ASSIGNORS and not isinstance(item, Assignor) and not (
                isinstance(item, type) and issubclass(item, Assignor)):
            item = name  # kafka-python's class of that name: strom's own does the same
        assignor = resolve_assignor(item)
        out[assignor.name] = assignor
    return out


def _check_tp(tp: Any) -> TopicPartition:
    if not (isinstance(tp, tuple) and len(tp) == 2 and type(tp[0]) is str and type(tp[1]) is int):
        raise IllegalArgumentError(f"expected a TopicPartition(topic, partition), not {tp!r}")
    return tp if type(tp) is TopicPartition else TopicPartition(*tp)


def _sizes(column: list[Any] | None, n: int) -> Any:
    """Serialized sizes of a key or value column: len() each, -1 for None."""
    if column is None:
        return repeat(-1, n)
    try:
        return list(map(len, column))  # C speed when no record is None
    except TypeError:
        return [-1 if x is None else len(x) for x in column]


def _header_sizes(headers: list[Any] | None, n: int) -> Any:
    if headers is None:
        return repeat(-1, n)
    return [-1 if not h else sum(len(k.encode()) + len(v or b"") for k, v in h) for h in headers]


class _ObjectDeserializer:
    """A kafka-python 3.x Deserializer: called as ``deserialize(topic, headers, data)``."""

    __slots__ = ("deserialize",)

    def __init__(self, deserialize: Callable[[str, Any, bytes], Any]) -> None:
        self.deserialize = deserialize


def _deserializer(name: str, value: Any) -> Callable[..., Any] | _ObjectDeserializer | None:
    if value is None:
        return None
    deserialize = getattr(value, "deserialize", None)
    if deserialize is not None and callable(deserialize):  # kafka-python 3.x Deserializer
        return _ObjectDeserializer(deserialize)
    if not callable(value):
        raise InvalidConfigError(f"{name} must be callable, not {type(value).__name__}")
    return value


def _deserialize(fn: Any, column: Sequence[Any], tp: TopicPartition, offsets: Sequence[int],
                 what: str, headers: Sequence[Any] | None = None) -> list[Any]:
    """``fn`` over a column, None left as None; a failure names the record's offset.

    A 3.x Deserializer object gets the topic and each record's headers too.
    """
    if type(fn) is _ObjectDeserializer:
        deserialize, topic = fn.deserialize, tp.topic

        def one(x: bytes, h: Any) -> Any:
            return deserialize(topic, [tuple(p) for p in h] if h else [], x)
    else:
        def one(x: bytes, h: Any) -> Any:
            return fn(x)
    try:
        if type(fn) is not _ObjectDeserializer:  # the common case: one call per record, no zip
            return [None if x is None else fn(x) for x in column]
        return [None if x is None else one(x, h)
                for x, h in zip(column, headers if headers is not None else repeat(None))]
    except Exception as exc:
        for offset, x, h in zip(offsets, column, headers if headers is not None else repeat(None)):
            if x is not None:
                try:
                    one(x, h)
                except Exception:
                    break
        else:
            offset = -1
        raise RecordDeserializationError(
            f"the {what} deserializer failed on {tp.topic}-{tp.partition} at offset {offset}: "
            f"{exc!r}; seek past it to go on", topic_partition=tp, offset=offset) from exc


class _PartitionState:
    """One assigned partition: its position and the records fetched but not handed out."""

    __slots__ = ("tp", "partition", "position", "buffer", "index", "buffer_end", "paused",
                 "reset", "committed")

    def __init__(self, tp: TopicPartition, partition: Partition) -> None:
        self.tp = tp
        self.partition = partition
        self.position: int | None = None  # None: to be found (committed offset or reset policy)
        self.buffer: list[ConsumerRecord] = []
        self.index = 0
        self.buffer_end = 0  # the offset after the buffer's last batch
        self.paused = False
        self.reset: str | None = None  # a reset policy forced by seek_to_beginning/end
        self.committed: int | None = None  # last position committed by auto-commit

    def clear(self) -> None:
        self.buffer = []
        self.index = 0


class Consumer:
    """Read records from a Log's topics, with kafka-python's KafkaConsumer API.

    ``Consumer(log, *topics, group_id=None, auto_offset_reset="latest",
    enable_auto_commit=True, auto_commit_interval_ms=5000, max_poll_records=500,
    key_deserializer=None, value_deserializer=None, consumer_timeout_ms=inf,
    fetch_max_wait_ms=500, max_partition_fetch_bytes=1048576, commit_acks="all", ...)``.
    Topics given here are subscribed.  Network options are accepted and
    ignored; an unknown option raises InvalidConfigError.  A consumer is
    meant for one thread at a time (as kafka-python's), except ``wakeup()``
    and ``close()``, which any thread may call.

    ``commit_acks`` (strom's own) is the durability of commits: "all"
    (fsync'd, the default), or 1 (survives kill -9, not power loss).
    ``fetch_max_wait_ms`` bounds each wait of an iteration between
    housekeeping (auto-commit, new topics); appends end a wait at once.
    """

    def __init__(self, log: Log, *topics: str, **configs: Any) -> None:
        if not isinstance(log, Log):
            raise InvalidConfigError(f"Consumer needs a strom Log as its first argument, not "
                                     f"{type(log).__name__}")
        unknown = sorted(k for k in configs if k not in DEFAULTS and k not in IGNORED)
        if unknown:
            raise InvalidConfigError(f"Unrecognized configs: {unknown}")
        config = {**DEFAULTS, **{k: v for k, v in configs.items() if k in DEFAULTS}}
        group_id = config["group_id"]
        if group_id is not None and (type(group_id) is not str or not group_id):
            raise InvalidConfigError(f"group_id must be a non-empty str or None, not {group_id!r}")
        reset = config["auto_offset_reset"]
        if reset not in _RESETS:
            raise InvalidConfigError(f"auto_offset_reset must be 'earliest', 'latest' or 'none', "
                                     f"not {reset!r}")
        if config["isolation_level"] not in ("read_uncommitted", "read_committed"):
            raise InvalidConfigError(f"isolation_level {config['isolation_level']!r} is not "
                                     "'read_uncommitted' or 'read_committed'")
        for name in ("auto_commit_interval_ms", "max_poll_records", "fetch_max_wait_ms",
                     "max_partition_fetch_bytes", "fetch_max_bytes"):
            value = config[name]
            if type(value) is not int or value < (1 if name != "fetch_max_wait_ms" else 0):
                raise InvalidConfigError(f"{name} must be a positive int, not {value!r}")
        timeout = config["consumer_timeout_ms"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidConfigError(f"consumer_timeout_ms must be a number >= 0, not {timeout!r}")
        if config["commit_acks"] not in (0, 1, "all", -1) or isinstance(config["commit_acks"], bool):
            raise InvalidConfigError(f"commit_acks must be 0, 1 or 'all', not {config['commit_acks']!r}")
        for name in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"):
            value = config[name]
            if type(value) is not int or value < 1:
                raise InvalidConfigError(f"{name} must be a positive int, not {value!r}")
        if config["heartbeat_interval_ms"] >= config["session_timeout_ms"]:
            raise InvalidConfigError("heartbeat_interval_ms must be lower than session_timeout_ms")
        instance = config["group_instance_id"]
        if instance is not None and (type(instance) is not str or not instance):
            raise InvalidConfigError(f"group_instance_id must be a non-empty str or None, not "
                                     f"{instance!r}")
        self._assignors = _assignors(config["partition_assignment_strategy"])
        self.config = config
        self._log = log
        self._group_id: str | None = group_id
        self._reset = _RESETS[reset]
        self._auto_commit = bool(config["enable_auto_commit"]) and group_id is not None
        self._auto_commit_s = config["auto_commit_interval_ms"] / 1000
        self._next_auto_commit = time.monotonic() + self._auto_commit_s
        self._max_poll_records = config["max_poll_records"]
        self._fetch_bytes = min(config["max_partition_fetch_bytes"], config["fetch_max_bytes"])
        self._timeout_s = timeout / 1000
        self._wait_slice_s = max(config["fetch_max_wait_ms"], 1) / 1000
        self._key_deserializer = _deserializer("key_deserializer", config["key_deserializer"])
        self._value_deserializer = _deserializer("value_deserializer", config["value_deserializer"])
        self._commit_callback = config["default_offset_commit_callback"]
        self._waiter = log.tail_waiter()
        self._states: dict[TopicPartition, _PartitionState] = {}
        self._fetchable: list[_PartitionState] = []
        self._rr = 0
        self._subscription: set[str] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._listener: ConsumerRebalanceListener | None = None
        self._manual = False
        self._metadata_due = 0.0
        self._iterator: Iterator[ConsumerRecord] | None = None
        self._iter_state: tuple[_PartitionState, list[ConsumerRecord], Iterator[Any], int] | None = None
        self._wakeup = False
        self._pending_error: StromError | None = None
        self._closed = False
        self._membership: Membership | None = None
        self._leave_at_gc: Any = None
        self._outside_store: GroupStore | None = None  # commits outside a group (assign())
        self._generation = -1
        self._metrics = {"records-consumed-total": 0, "bytes-consumed-total": 0, "fetch-total": 0,
                         "commit-total": 0}
        if topics:
            self.subscribe(topics)

    # -- subscription and assignment -----------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("the consumer is closed")

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None,
                  listener: ConsumerRebalanceListener | None = None) -> None:
        """Consume ``topics`` (or every topic matching the regex ``pattern``), all partitions.

        ``pattern`` matches from the start of a name, as kafka-python's does
        (``re.match``); it picks up topics created later.

        Replaces any earlier subscription.  Raises IllegalStateError after
        ``assign()``, IllegalArgumentError with neither topics nor pattern.
        """
        self._check_open()
        if self._manual:
            raise IllegalStateError("subscribe() after assign(): call unsubscribe() first")
        if isinstance(topics, str):
            topics = [topics]
        topics = list(topics)
        if not topics and pattern is None:
            raise IllegalArgumentError("subscribe() needs topics or a pattern")
        if topics and pattern is not None:
            raise IllegalArgumentError("subscribe() takes topics or a pattern, not both")
        for t in topics:
            if type(t) is not str:
                raise IllegalArgumentError(f"topic names are str, not {type(t).__name__}")
            validate_topic_name(t)  # before anything changes
        if listener is not None and not isinstance(listener, ConsumerRebalanceListener):
            raise IllegalArgumentError("listener must be a ConsumerRebalanceListener")
        self._listener = listener
        if pattern is not None:
            try:
                self._pattern = re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise IllegalArgumentError(f"bad subscription pattern {pattern!r}: {exc}") from None
            self._subscription = set()
        else:
            self._pattern = None
            self._subscription = set(topics)
        self._metadata_due = 0.0
        self._update_subscription()

    def subscription(self) -> set[str] | None:
        """The subscribed topic names (for a pattern: those matched so far), or None."""
        return None if self._subscription is None else set(self._subscription)

    def unsubscribe(self) -> None:
        """Drop the subscription or manual assignment (auto-commit commits first)."""
        self._check_open()
        self._maybe_auto_commit(force=True)
        self._set_assignment([])
        self._leave_group()
        self._subscription = None
        self._pattern = None
        self._manual = False

    def _leave_group(self) -> None:
        if self._membership is not None:
            self._leave_at_gc.detach()
            self._membership.close()
            self._membership = None
            self._generation = -1

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions`` (no group rebalancing); ``assign([])`` unassigns."""
        self._check_open()
        if self._subscription is not None:
            raise IllegalStateError("assign() after subscribe(): call unsubscribe() first")
        tps = [_check_tp(tp) for tp in partitions]
        for tp in tps:
            self._partition(tp)  # UnknownTopicOrPartitionError now, not at the first fetch
        self._manual = bool(tps)
        self._set_assignment(tps)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads."""
        return set(self._states)

    def _partition(self, tp: TopicPartition) -> Partition:
        topic = self._log.topic(tp.topic)
        if not 0 <= tp.partition < len(topic.partitions):
            raise UnknownTopicOrPartitionError(
                f"topic {tp.topic!r} has partitions 0..{len(topic.partitions) - 1}, not {tp.partition}")
        return topic.partitions[tp.partition]

    def _update_subscription(self) -> None:
        """Assign every partition of the subscribed topics (this consumer is the group)."""
        if self._subscription is None:
            return
        now = time.monotonic()
        self._metadata_due = now + _METADATA_REFRESH_S
        if self._pattern is not None:
            names = [n for n in self._log.topics() if self._pattern.match(n)
                     and not (self.config["exclude_internal_topics"] and n == OFFSETS_TOPIC)]
            self._subscription = set(names)
        tps = []
        missing = False
        for name in sorted(self._subscription):
            try:
                topic = self._log.topic(name)
            except UnknownTopicOrPartitionError:
                missing = True
                continue
            tps.extend(TopicPartition(name, i) for i in range(len(topic.partitions)))
        if not missing and self._pattern is None:
            self._metadata_due = float("inf")
        if self._group_id is None:
            self._set_assignment(tps)
            return
        m = self._membership
        if m is None:
            c = self.config
            m = self._membership = Membership(
                self._log, self._group_id, self._subscription,
                assignors=tuple(self._assignors), assignor_objects=self._assignors,
                instance_id=c["group_instance_id"], client_id=c["client_id"] or "strom",
                session_timeout_ms=c["session_timeout_ms"],
                heartbeat_interval_ms=c["heartbeat_interval_ms"],
                max_poll_interval_ms=c["max_poll_interval_ms"], on_change=self._waiter.wake)
            self._leave_at_gc = weakref.finalize(self, m.close)
        else:
            m.set_topics(self._subscription)
            m.refresh()
        self._group_sync()

    def _group_sync(self) -> None:
        """Apply the group's current assignment: revoke, release, claim, assign (KIP-429)."""
        m = self._membership
        assert m is not None
        eager = not self._assignors[next(iter(self._assignors))].cooperative
        for _ in range(8):
            state = m.state()
            if not m.in_group(state):  # put out of the group (max_poll_interval_ms, session)
                if self._states:
                    self._drop(set(self._states), "on_partitions_lost")
                self._generation = -1
                m.rejoin()
                continue
            if state.protocol in self._assignors:
                eager = not self._assignors[state.protocol].cooperative
            target = set(state.assignment.get(m.member_id, ()))
            local = set(self._states)
            revoke = local if eager and state.generation != self._generation else local - target
            if revoke:
                self._drop(revoke, "on_partitions_revoked")
                local -= revoke
            release = set(state.owned.get(m.member_id, ())) - local
            claim = target - local
            if release or claim:
                new, granted = m.update_claims(release, claim, state.generation)
                if granted:
                    self._add(sorted(granted))
                if new.generation != state.generation or granted != claim:
                    continue  # the group moved meanwhile: look again
            self._generation = state.generation
            return

    def _set_assignment(self, tps: list[TopicPartition]) -> None:
        old = set(self._states)
        revoked = old - set(tps)
        if revoked:
            self._drop(revoked, "on_partitions_revoked")
        self._add([tp for tp in tps if tp not in old])

    def _drop(self, tps: set[TopicPartition], callback: str) -> None:
        """Stop consuming ``tps``: as kafka-python, auto-commit, then the listener, then let go."""
        self._abandon_iteration()
        if callback == "on_partitions_revoked":
            self._maybe_auto_commit(force=True, only=tps)
        if self._listener is not None and self._subscription is not None:
            self._call_listener(callback, tps)
        for tp in tps:
            self._waiter.unwatch(self._states.pop(tp).partition.path)
        self._refetchable()

    def _add(self, tps: list[TopicPartition]) -> None:
        """Start consuming ``tps`` (positions from committed offsets at the first fetch)."""
        if not tps:
            return
        self._abandon_iteration()
        for tp in tps:
            p = self._partition(tp)
            self._states[tp] = _PartitionState(tp, p)
            self._waiter.watch(p.path)
        self._refetchable()
        if self._listener is not None and self._subscription is not None:
            self._call_listener("on_partitions_assigned", set(tps))

    def _call_listener(self, name: str, tps: set[TopicPartition]) -> None:
        try:
            getattr(self._listener, name)(tps)
        except Exception:  # as in kafka-python: a listener's failure is logged, not raised
            log_.exception("rebalance listener %s raised", name)

    def _refetchable(self) -> None:
        self._fetchable = [s for s in self._states.values() if not s.paused]
        self._rr = 0

    def topics(self) -> set[str]:
        """Names of the log's topics (internal ones hidden by ``exclude_internal_topics``)."""
        self._check_open()
        names = set(self._log.topics())
        if self.config["exclude_internal_topics"]:
            names.discard(OFFSETS_TOPIC)
        return names

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """Partition numbers of ``topic``, or None if it does not exist."""
        self._check_open()
        try:
            return set(range(len(self._log.topic(topic).partitions)))
        except UnknownTopicOrPartitionError:
            return None

    # -- positions ------------------------------------------------------------

    def _state(self, tp: Any) -> _PartitionState:
        tp = _check_tp(tp)
        st = self._states.get(tp)
        if st is None:
            raise IllegalStateError(f"partition {tp.topic}-{tp.partition} is not assigned to this "
                                    "consumer")
        return st

    def _resolve(self, st: _PartitionState) -> int:
        """The position of ``st``, finding it from the committed offset or the reset policy."""
        if st.position is not None:
            return st.position
        policy = st.reset
        if policy is None and self._group_id is not None:
            committed = offset_store(self._log).committed(self._group_id, st.tp)
            if committed is not None:
                st.position = st.committed = committed.offset
                return st.position
        policy = policy or self._reset
        p = st.partition
        p.refresh()
        if policy == "earliest":
            st.position = p.log_start_offset
        elif policy == "latest":
            st.position = p.log_end_offset
        else:
            raise NoOffsetForPartitionError(
                f"no committed offset for {st.tp.topic}-{st.tp.partition} and auto_offset_reset "
                "is 'none'", partitions={st.tp})
        st.reset = None
        return st.position

    def _live_position(self, st: _PartitionState) -> int:
        """The position, counting records handed out by an iteration under way."""
        it = self._iter_state
        if it is not None and it[0] is st:
            _, records, iterator, end = it
            consumed = len(records) - iterator.__length_hint__()
            return records[consumed].offset if consumed < len(records) else end
        return self._resolve(st)

    def _abandon_iteration(self) -> None:
        """Stop handing out the current chunk; its unread records are fetched again later."""
        it = self._iter_state
        if it is None:
            return
        st = it[0]
        st.position = self._live_position(st)
        st.clear()
        collections.deque(it[2], maxlen=0)  # exhaust: the generator moves to a new fetch
        self._iter_state = None

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record this consumer will hand out for ``partition``."""
        self._check_open()
        return self._live_position(self._state(partition))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record to hand out (checked at the next fetch)."""
        self._check_open()
        st = self._state(partition)
        if type(offset) is not int or offset < 0:
            raise IllegalArgumentError(f"offset must be an int >= 0, not {offset!r}")
        if self._iter_state is not None and self._iter_state[0] is st:
            self._abandon_iteration()
        st.position = offset
        st.reset = None
        st.clear()

    def _seek_to(self, policy: str, partitions: tuple[Any, ...]) -> None:
        self._check_open()
        states = [self._state(tp) for tp in partitions] if partitions else list(self._states.values())
        if not states and not partitions:
            raise IllegalStateError("no partitions are assigned")
        self._abandon_iteration()
        for st in states:
            st.position = None
            st.reset = policy
            st.clear()

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Move to the first offset still in the log (all assigned partitions if none given)."""
        self._seek_to("earliest", partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Move to the log end: only records appended from now on are handed out."""
        self._seek_to("latest", partitions)

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop handing out records of ``partitions`` (no rebalance; positions kept)."""
        self._check_open()
        states = [self._state(tp) for tp in partitions]
        for st in states:
            if self._iter_state is not None and self._iter_state[0] is st:
                self._abandon_iteration()
            st.paused = True
        self._refetchable()

    def resume(self, *partitions: TopicPartition) -> None:
        """Hand out records of paused ``partitions`` again."""
        self._check_open()
        for st in [self._state(tp) for tp in partitions]:
            st.paused = False
        self._refetchable()

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return {tp for tp, st in self._states.items() if st.paused}

    # -- offsets in the log -------------------------------------------------------

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset still in the log, per partition (positions do not move)."""
        self._check_open()
        out = {}
        for tp in partitions:
            p = self._partition(_check_tp(tp))
            p.refresh()
            out[tp] = p.log_start_offset
        return out

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next appended record will get, per partition."""
        self._check_open()
        out = {}
        for tp in partitions:
            p = self._partition(_check_tp(tp))
            p.refresh()
            out[tp] = p.log_end_offset
        return out

    def highwater(self, partition: TopicPartition) -> int | None:
        """The log end offset of an assigned partition (as of the last fetch)."""
        st = self._states.get(_check_tp(partition))
        return None if st is None else st.partition.log_end_offset

    def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                          ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the first record with a timestamp >= the given one (ms), or None."""
        self._check_open()
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, ts in timestamps.items():
            if type(ts) is not int or ts < 0:
                raise IllegalArgumentError(f"timestamps are ints >= 0 (ms), not {ts!r}")
            found = self._partition(_check_tp(tp)).offset_for_timestamp(ts)
            out[tp] = None if found is None else OffsetAndTimestamp(found[0], found[1])
        return out

    # -- committing -------------------------------------------------------------

    def _store(self) -> Any:
        if self._group_id is None:
            raise IllegalStateError("committed offsets need a group_id")
        return offset_store(self._log)

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Durably commit ``offsets`` (default: the positions of every assigned partition).

        A committed offset is the next one to read (the last processed + 1).
        """
        self._commit(offsets)

    def _commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None
                ) -> dict[TopicPartition, OffsetAndMetadata]:
        self._check_open()
        store = self._store()
        if offsets is None:
            todo = {st.tp: OffsetAndMetadata(self._live_position(st))
                    for st in self._states.values() if st.position is not None}
        else:
            todo = {}
            for tp, o in offsets.items():
                tp = _check_tp(tp)
                if type(o) is int:
                    o = OffsetAndMetadata(o)
                if not (isinstance(o, tuple) and type(o[0]) is int and o[0] >= 0):
                    raise IllegalArgumentError(f"commit offsets are OffsetAndMetadata or ints >= 0, "
                                               f"not {o!r}")
                if type(o) is not OffsetAndMetadata:
                    o = OffsetAndMetadata(*o)
                todo[tp] = o
        self._store_commit(store, todo)
        self._metrics["commit-total"] += 1
        for tp, o in todo.items():
            st = self._states.get(tp)
            if st is not None:
                st.committed = o.offset
        return todo

    def _store_commit(self, store: Any, todo: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Append the commit; a group member's only for partitions it still owns.

        A member appends under the group lock, but fsyncs after letting it
        go (the commit returns after both): the lock is held for
        microseconds, not for a disk flush.
        """
        acks = self.config["commit_acks"]
        if self._membership is None:
            self._outside_commit(store, todo, acks)
            return
        durable = acks in ("all", -1)
        self._membership.fenced_commit(
            todo, lambda: store.commit(self._group_id, todo, acks=1 if durable else acks))
        if durable:
            store.flush()

    def _outside_commit(self, store: Any, todo: Mapping[TopicPartition, OffsetAndMetadata],
                        acks: Any) -> None:
        """A commit by a consumer outside the group (assign()): only while it has no member.

        As Kafka's coordinator answers UNKNOWN_MEMBER_ID to a commit from a
        non-member of a group with members, so a manually assigned consumer
        cannot overwrite a live member's progress.
        """
        group_store = self._outside_store
        if group_store is None:
            group_store = self._outside_store = GroupStore(self._log, self._group_id)
        if not self._log.fs.exists(group_store.path):
            store.commit(self._group_id, todo, acks=acks)  # a group that never had a member
            return
        with group_store.locked(LOCK_TIMEOUT_S):
            members = GroupMembers(self._log, self._group_id)
            try:
                holders = sorted(members.live())
            finally:
                members.close()
            now = monotonic_ms()
            holders += sorted(  # static members away, whose places are kept for them
                mid for mid, ms in group_store.read().members.items()
                if ms.instance_id is not None and mid not in holders and (
                    ms.departed_ms is None or now - ms.departed_ms <= ms.session_timeout_ms))
            if holders:
                raise CommitFailedError(
                    f"commit refused: group {self._group_id!r} has members "
                    f"({', '.join(holders)}) and this consumer, using assign(), is not one "
                    f"of them; give it a group_id of its own")
            store.commit(self._group_id, todo, acks=acks)

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None,
                     callback: Callable[[Any, Any], None] | None = None) -> concurrent.futures.Future:
        """Commit (at once: a commit is one local append) and report to ``callback(offsets, result)``."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        callback = callback or self._commit_callback
        try:
            committed = self._commit(offsets)
        except StromError as exc:
            future.set_exception(exc)
            if callback is not None:
                callback(offsets, exc)
        else:
            future.set_result(None)
            if callback is not None:
                callback(committed if offsets is None else offsets, None)
        return future

    def committed(self, partition: TopicPartition, metadata: bool = False
                  ) -> int | OffsetAndMetadata | None:
        """The group's committed offset of ``partition`` (OffsetAndMetadata with ``metadata``)."""
        self._check_open()
        found = self._store().committed(self._group_id, _check_tp(partition))
        if found is None:
            return None
        return found if metadata else found.offset

    def _maybe_auto_commit(self, force: bool = False,
                           only: set[TopicPartition] | None = None) -> None:
        if not self._auto_commit:
            return
        now = time.monotonic()
        if not force and now < self._next_auto_commit:
            return
        self._next_auto_commit = now + self._auto_commit_s
        todo = {}
        for st in self._states.values():
            if st.position is None or (only is not None and st.tp not in only):
                continue
            pos = self._live_position(st)
            if pos != st.committed:
                todo[st.tp] = OffsetAndMetadata(pos)
        if not todo:
            return
        try:
            self._store_commit(offset_store(self._log), todo)
        except StromError as exc:
            log_.warning("auto-commit of %s failed: %s", sorted(todo), exc)
            if self._commit_callback is not None:
                self._commit_callback(todo, exc)
            return
        self._metrics["commit-total"] += 1
        for tp, o in todo.items():
            self._states[tp].committed = o.offset
        if self._commit_callback is not None:
            self._commit_callback(todo, None)

    # -- fetching ---------------------------------------------------------------

    def _read(self, st: _PartitionState) -> tuple[list[Any], int]:
        """Batches at the position of ``st`` (resetting an out-of-range one), and the position."""
        position = -1
        try:
            position = self._resolve(st)
            return st.partition.read(position, self._fetch_bytes), position
        except LogClosedError:
            if self._log.closed:
                raise
            self._topic_gone(st)
            return [], position
        except OffsetOutOfRangeError:
            if self._reset == "none":
                raise
            log_.info("%s-%d: offset %d is out of range; resetting to %s",
                      st.tp.topic, st.tp.partition, position, self._reset)
            st.position = None
            st.reset = self._reset
            position = self._resolve(st)
            return st.partition.read(position, self._fetch_bytes), position

    def _topic_gone(self, st: _PartitionState) -> None:
        """The topic of ``st`` was deleted: a subscription lets it go, an assignment raises."""
        if self._states.get(st.tp) is not st:
            return
        if self._subscription is None:
            raise UnknownTopicOrPartitionError(
                f"topic {st.tp.topic!r} of assigned partition {st.tp.partition} was deleted")
        self._update_subscription()

    def _fill(self, st: _PartitionState) -> bool:
        """Fetch records at the position into the buffer; True if there are any."""
        batches, position = self._read(st)
        if not batches:
            return False
        self._metrics["fetch-total"] += 1
        # Thousands of new tuples would run the cyclic GC every 700 of them,
        # each run walking the records built so far (half the cost of a
        # fetch); records cannot form cycles, so it waits until they are built.
        gc_was_on = gc.isenabled()
        if gc_was_on:
            gc.disable()
        end = batches[-1].next_offset
        stop = None
        try:
            while True:
                try:
                    records = self._build(st.tp, batches, position, stop)
                    break
                except RecordDeserializationError as exc:
                    if exc.offset <= position:
                        raise  # the next record is the bad one: the caller must decide
                    # Hand out the records before the bad one; the fetch after them raises.
                    stop = end = exc.offset
        finally:
            if gc_was_on:
                gc.enable()
        st.buffer_end = end
        st.buffer = records
        st.index = 0
        if not records:  # only records below the position (or a batch emptied by compaction)
            st.position = st.buffer_end
            return False
        return True

    def _build(self, tp: TopicPartition, batches: list[Any], position: int,
               stop: int | None = None) -> list[ConsumerRecord]:
        """ConsumerRecords of ``batches`` from ``position`` (to before ``stop``), built with C iterators."""
        out: list[ConsumerRecord] = []
        topic, partition = tp
        kd, vd = self._key_deserializer, self._value_deserializer
        nbytes = 0
        for batch in batches:
            offsets, timestamps, keys, values, headers = batch.columns()
            n = len(values)
            if offsets[0] < position:  # the first batch may begin before the position
                skip = (position - offsets[0] if type(offsets) is range
                        else sum(1 for o in offsets if o < position))
                offsets, timestamps, values = offsets[skip:], timestamps[skip:], values[skip:]
                keys = keys[skip:] if keys is not None else None
                headers = headers[skip:] if headers is not None else None
                n -= skip
                if not n:
                    continue
            if stop is not None and offsets[-1] >= stop:
                n = sum(1 for o in offsets if o < stop)
                offsets, timestamps, values = offsets[:n], timestamps[:n], values[:n]
                keys = keys[:n] if keys is not None else None
                headers = headers[:n] if headers is not None else None
                if not n:
                    break
            nbytes += batch.size
            key_sizes = _sizes(keys, n)
            value_sizes = _sizes(values, n)
            header_sizes = _header_sizes(headers, n)
            if headers is None:
                # One shared empty tuple: a list per record would keep every record
                # tracked by the cyclic GC (and cost 15% of iteration speed).
                headers_col: Any = repeat((), n)
            else:
                headers_col = [[tuple(h) for h in hs] if hs else () for hs in headers]
            if keys is None:
                keys = repeat(None, n)
            elif kd is not None:
                keys = _deserialize(kd, keys, tp, offsets, "key", headers)
            if vd is not None:
                values = _deserialize(vd, values, tp, offsets, "value", headers)
            ts_type = LOG_APPEND_TIME if batch.log_append_time else 0
            out.extend(map(_tuple_new, repeat(ConsumerRecord, n), zip(
                repeat(topic, n), repeat(partition, n), repeat(0, n), offsets, timestamps,
                repeat(ts_type, n), keys, values, headers_col, repeat(None, n), key_sizes,
                value_sizes, header_sizes)))
        self._metrics["bytes-consumed-total"] += nbytes
        return out

    def _take(self, st: _PartitionState, limit: int) -> list[ConsumerRecord]:
        """Up to ``limit`` buffered records of ``st`` (fetching if the buffer is empty)."""
        if st.index >= len(st.buffer) and not self._fill(st):
            return []
        buf, i = st.buffer, st.index
        j = min(i + limit, len(buf))
        records = buf if i == 0 and j == len(buf) else buf[i:j]
        st.index = j
        st.position = buf[j].offset if j < len(buf) else st.buffer_end
        if j == len(buf):
            st.clear()
        self._metrics["records-consumed-total"] += len(records)
        return records

    def _fetch(self, limit: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records from the assigned, unpaused partitions, in turn, up to ``limit`` in all."""
        return self._in_turn(self._take, limit, len)

    def _in_turn(self, take: Callable[[_PartitionState, Any], Any], limit: int | None,
                 size: Callable[[Any], int]) -> dict[TopicPartition, Any]:
        """``take(state, records left)`` from each fetchable partition in turn, until ``limit``.

        The next call starts after the last partition that gave records, so a
        busy partition does not starve the others.  A partition that fails
        after others gave records ends the round: their records are handed
        out, and the error is raised at the next poll.
        """
        out: dict[TopicPartition, Any] = {}
        states = self._fetchable
        k = len(states)
        start = self._rr
        for j in range(k):
            if limit is not None and limit <= 0:
                break
            st = states[(start + j) % k]
            try:
                got = take(st, limit)
            except StromError as exc:
                if not out:
                    raise
                self._pending_error = exc
                break
            if got:
                out[st.tp] = got
                self._rr = (start + j + 1) % k
                if limit is not None:
                    limit -= size(got)
        return out

    def _housekeeping(self) -> None:
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc
        m = self._membership
        if m is not None:
            m.polled()
            if m.changed:
                self._group_sync()
        if time.monotonic() >= self._metadata_due:
            self._update_subscription()
        if self._auto_commit:
            self._maybe_auto_commit()

    def _wait(self, seen: int, deadline: float | None) -> bool:
        """Wait for an append after ``seen`` until ``deadline``; False once the deadline passed."""
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return False
        left = self._wait_slice_s if deadline is None else min(deadline - now, self._wait_slice_s)
        if self._metadata_due != float("inf"):  # looking for topics: look again soon
            left = min(left, _METADATA_REFRESH_S)
        if self._auto_commit:  # wake when the next auto-commit is due
            left = min(left, max(0.0, self._next_auto_commit - now))
        m = self._membership
        if m is None:
            self._waiter.wait(seen, left)
            return True
        m.waiting = True  # waiting in poll is not being stuck (max_poll_interval_ms)
        try:
            self._waiter.wait(seen, left)
        finally:
            m.waiting = False
            m.polled()
        return True

    @staticmethod
    def _check_poll_args(timeout_ms: Any, max_records: Any) -> tuple[float, int]:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms < 0:
            raise IllegalArgumentError(f"timeout_ms must be a number >= 0, not {timeout_ms!r}")
        if type(max_records) is not int or max_records < 1:
            raise IllegalArgumentError(f"max_records must be an int >= 1, not {max_records!r}")
        return timeout_ms, max_records

    def poll(self, timeout_ms: int = 0, max_records: int | None = None,
             update_offsets: bool = True) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records from the assigned partitions: ``{TopicPartition: [ConsumerRecord, ...]}``.

        Returns as soon as any record is there, or ``{}`` after ``timeout_ms``
        (0: look once).  At most ``max_records`` (default ``max_poll_records``)
        in all.  Runs auto-commit and picks up new topics of a subscription.
        """
        self._check_open()
        timeout_ms, max_records = self._check_poll_args(
            timeout_ms, self._max_poll_records if max_records is None else max_records)
        self._abandon_iteration()
        deadline = time.monotonic() + timeout_ms / 1000
        saved = None if update_offsets else {tp: (st.position, st.buffer, st.index)
                                               for tp, st in self._states.items()}
        while True:
            self._housekeeping()
            seen = self._waiter.prepare()
            records = self._fetch(max_records)
            if records or self._closed or self._wakeup:
                self._wakeup = False
                break
            if not self._wait(seen, deadline):
                break
        if saved is not None:
            for tp, (position, buffer, index) in saved.items():
                st = self._states.get(tp)
                if st is not None:  # (closed or unassigned meanwhile: nothing to restore)
                    st.position, st.buffer, st.index = position, buffer, index
        return records

    def poll_columns(self, timeout_ms: int = 0, max_records: int | None = None
                     ) -> dict[TopicPartition, RecordColumns]:
        """Like :meth:`poll`, but each partition's records as columns, without an object per record.

        The bulk path: one list each of offsets, timestamps, keys and values
        per partition, as decoded from the batches (deserializers applied).
        ``max_records`` is unlimited by default: each partition gives what one
        fetch reads (``max_partition_fetch_bytes``).
        """
        self._check_open()
        timeout_ms, _ = self._check_poll_args(timeout_ms, 1)
        if max_records is not None:
            _, max_records = self._check_poll_args(0, max_records)
        self._abandon_iteration()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self._housekeeping()
            seen = self._waiter.prepare()
            out = self._fetch_columns(max_records)
            if out or self._closed or self._wakeup:
                self._wakeup = False
                return out
            if not self._wait(seen, deadline):
                return out

    def _fetch_columns(self, limit: int | None) -> dict[TopicPartition, RecordColumns]:
        """Columns of the assigned, unpaused partitions, in turn, up to ``limit`` records in all."""
        return self._in_turn(self._columns, limit, lambda cols: len(cols.values))

    def _columns(self, st: _PartitionState, limit: int | None) -> RecordColumns | None:
        """The next records of ``st`` as columns, advancing its position."""
        if st.index < len(st.buffer):  # records left by poll(): hand them out first
            recs = self._take(st, limit or len(st.buffer))
            keys = [r.key for r in recs]
            types = {r.timestamp_type for r in recs}
            return RecordColumns(
                [r.offset for r in recs], [r.timestamp for r in recs],
                keys if any(x is not None for x in keys) else None, [r.value for r in recs],
                [r.headers for r in recs] if any(r.headers for r in recs) else None,
                types.pop() if len(types) == 1 else [r.timestamp_type for r in recs])
        batches, position = self._read(st)
        if not batches:
            return None
        self._metrics["fetch-total"] += 1
        cols = [b.columns() for b in batches]
        counts = []
        if len(cols) == 1 and cols[0].offsets[0] >= position:
            offsets, timestamps, keys, values, headers = cols[0]
            counts.append(len(values))
        else:
            offsets, timestamps, values = [], [], []
            keys = [] if any(c.keys is not None for c in cols) else None
            headers = [] if any(c.headers is not None for c in cols) else None
            dense = all(type(c.offsets) is range for c in cols) and all(
                a.offsets.stop == b.offsets.start for a, b in zip(cols, cols[1:]))
            for c in cols:
                n = len(c.values)
                skip = 0
                if c.offsets[0] < position:
                    skip = sum(1 for o in c.offsets if o < position)
                counts.append(n - skip)
                if not dense:
                    offsets.extend(c.offsets[skip:])
                timestamps.extend(c.timestamps[skip:])
                values.extend(c.values[skip:])
                if keys is not None:
                    keys.extend(c.keys[skip:] if c.keys is not None else repeat(None, n - skip))
                if headers is not None:
                    headers.extend(c.headers[skip:] if c.headers is not None
                                   else repeat(None, n - skip))
            if dense:  # consecutive offsets stay a range: no int object per record
                offsets = range(cols[-1].offsets.stop - len(values), cols[-1].offsets.stop)
        next_offset = batches[-1].next_offset
        if limit is not None and len(values) > limit:
            next_offset = offsets[limit]
            offsets, timestamps, values = offsets[:limit], timestamps[:limit], values[:limit]
            keys = keys[:limit] if keys is not None else None
            headers = headers[:limit] if headers is not None else None
        while values:
            try:
                keys, values = self._deserialize_columns(st.tp, offsets, keys, values, headers)
                break
            except RecordDeserializationError as exc:
                if exc.offset <= offsets[0]:
                    raise  # the next record is the bad one: the caller must decide
                n = sum(1 for o in offsets if o < exc.offset)  # hand out those before it
                offsets, timestamps, values = offsets[:n], timestamps[:n], values[:n]
                keys = keys[:n] if keys is not None else None
                headers = headers[:n] if headers is not None else None
                next_offset = exc.offset
        st.position = next_offset
        if not values:
            return None
        if headers is not None:
            headers = [[tuple(h) for h in hs] if hs else () for hs in headers]
        types = [LOG_APPEND_TIME if b.log_append_time else 0 for b in batches]
        if len(set(types)) == 1:
            ts_type: Any = types[0]
        else:  # batches differ: one type per record
            ts_type = []
            for t, count in zip(types, counts):
                ts_type.extend(repeat(t, count))
            del ts_type[len(values):]
        self._metrics["records-consumed-total"] += len(values)
        self._metrics["bytes-consumed-total"] += sum(b.size for b in batches)
        return RecordColumns(offsets, timestamps, keys, values, headers, ts_type)

    def _deserialize_columns(self, tp: TopicPartition, offsets: Sequence[int], keys: Any,
                             values: list[Any], headers: Any) -> tuple[Any, list[Any]]:
        kd, vd = self._key_deserializer, self._value_deserializer
        if kd is not None and keys is not None:
            keys = _deserialize(kd, keys, tp, offsets, "key", headers)
        if vd is not None:
            values = _deserialize(vd, values, tp, offsets, "value", headers)
        return keys, values

    # -- iteration ----------------------------------------------------------------

    def __iter__(self) -> Iterator[ConsumerRecord]:
        if self._iterator is None:
            self._iterator = self._records()
        return self._iterator

    def __next__(self) -> ConsumerRecord:
        return next(self.__iter__())

    def _next_chunk(self) -> tuple[_PartitionState, list[ConsumerRecord]] | None:
        """The buffered records of the next partition in turn (fetching), or None."""
        states = self._fetchable
        k = len(states)
        start = self._rr
        for j in range(k):
            st = states[(start + j) % k]
            records = self._take(st, 1 << 62)
            if records:
                self._rr = (start + j + 1) % k
                return st, records
        return None

    def _records(self) -> Iterator[ConsumerRecord]:
        """The iteration generator: whole chunks through ``yield from``, position worked out lazily."""
        try:
            deadline = None
            while not self._closed:
                self._housekeeping()
                seen = self._waiter.prepare()
                chunk = self._next_chunk()
                if chunk is None:
                    if self._wakeup:
                        self._wakeup = False
                        return
                    if deadline is None and self._timeout_s != float("inf"):
                        deadline = time.monotonic() + self._timeout_s
                    if not self._wait(seen, deadline):
                        return  # consumer_timeout_ms passed with no record
                    continue
                deadline = None
                st, records = chunk
                iterator = iter(records)
                self._iter_state = (st, records, iterator, st.position)
                yield from iterator
                self._iter_state = None
        finally:
            self._iterator = None
            self._iter_state = None

    # -- lifecycle, metrics --------------------------------------------------------

    def wakeup(self) -> None:
        """Make a blocked ``poll()`` return (empty) or an iteration stop, from any thread."""
        self._wakeup = True
        self._waiter.wake()

    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None:
        """Commit (with auto-commit on), revoke the assignment, stop iteration (idempotent)."""
        if self._closed:
            return
        try:
            if autocommit:
                self._maybe_auto_commit(force=True)
            if self._states and self._listener is not None and self._subscription is not None:
                self._call_listener("on_partitions_revoked", set(self._states))
        finally:
            if self._iter_state is not None:
                collections.deque(self._iter_state[2], maxlen=0)  # iteration stops here
                self._iter_state = None
            for st in self._states.values():
                self._waiter.unwatch(st.partition.path)
            self._states.clear()
            self._fetchable = []
            self._leave_group()
            if self._outside_store is not None:
                self._outside_store.close()
            self._closed = True
            self._waiter.wake()
            self._waiter.close()

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def metrics(self, raw: bool = False) -> dict[str, dict[str, Any]]:
        """Counters (records, bytes, fetches, commits) and each partition's lag."""
        lag = {}
        for tp, st in self._states.items():
            if st.position is not None:
                lag[f"{tp.topic}-{tp.partition}"] = max(
                    0, st.partition.log_end_offset - self._live_position(st))
        return {"consumer-fetch-manager-metrics": dict(self._metrics), "records-lag": lag}

    def bootstrap_connected(self) -> bool:
        """Always True: the log is in this process."""
        return True

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<strom.Consumer group_id={self._group_id!r} partitions={len(self._states)} "
                f"on {self._log.path!r}>")
