"""The Producer: kafka-python's KafkaProducer, writing into a strom Log.

Theory of operation
-------------------
``send()`` does a handful of Python operations and returns: it picks a
partition, appends the key and value to the open batch of that partition
(plain lists) and returns a small future that points at the batch and the
record's index in it.  No object is created per record but that future (a
slotted object of two fields; a ``concurrent.futures.Future`` per record
would cap the producer near 140K records/s, research/peers.md).

The common record (``bytes`` value, ``bytes`` or no key, no headers,
partition or timestamp, on a producer without serializers, with the default
partitioner and acks 1 or "all") takes a fast path at the top of ``send()``:
the same decisions as the general path, without the checks that cannot fail
for it.  Everything else, and any fast-path record that opens or fills a
batch or meets a full buffer, goes through the general path.

A sender thread writes batches: a batch is ready when it holds
``batch_size`` bytes, when ``linger_ms`` has passed since its first record,
or when ``flush()``/``close()`` ask.  With ``linger_ms=0`` every batch is
ready at once, and batching comes for free from the time the sender needs
to wake: everything sent meanwhile goes out together.  The sender writes the
ready batches of a partition that were opened in the same millisecond (so
they share one timestamp) with one ``Partition.append`` (one ``pwritev``),
up to the topic's ``max.message.bytes``; for ``acks="all"`` it then calls
``Partition.flush`` once per partition: one ``fdatasync`` for everything
written to it in that round (group commit).  Then it resolves the batches'
futures with their base offsets.

Timestamps: a record sent without ``timestamp_ms`` gets the time at which
its batch was opened, read once from the log's clock; with ``linger_ms=0``
a batch opened while the previous batch of its partition still waits for
the sender takes that batch's time, so that the sender can write both with
one append.  The difference from the send time is at most ``linger_ms``
plus the sender's wake-up time, and the batch's timestamp column stays
empty (one int for all records).

acks: ``0`` resolves each future at ``send()`` with offset -1 (Kafka's
fire-and-forget; a write error is counted in ``metrics()`` but reaches no
future); ``1`` when the batch is written to the OS (survives kill -9);
``"all"`` (the default) when it is also fsync'd (survives power loss).

Thread-safe: many threads may share one producer.  Every change to the open
batches, the buffer count and the sticky partition happens under one lock,
fast path included; the lock is held for a few list appends.  (Going without
it would need the index read, the two appends and the two counters to be
one atomic step against other senders and against the sender thread taking
the batch; the GIL does not promise that, and free-threaded Pythons have no
GIL.)  The sender thread takes that lock once per round, and never queues
on it (``_lock_for_sender``).  ``close()`` sends what is pending, then stops
the sender thread.
"""

from __future__ import annotations

import atexit
import logging
import operator
import threading
import time
import weakref
from collections import deque
from functools import partial
from typing import Any, Callable, Sequence

from xxhash import xxh3_64_intdigest

from ..codec.batch import HEADER_SIZE
from ..errors import (IllegalStateError, InvalidConfigError, InvalidRecordError,
                      InvalidTopicError, RecordTooLargeError, StromError, StromTimeoutError,
                      UnknownTopicOrPartitionError, UnsupportedError)
from ..group.offsets import OFFSETS_TOPIC
from ..records import RecordMetadata, TopicPartition
from ..storage import Log
from .partitioner import HashPartitioner, StickyPartitioner, XxhashPartitioner, resolve_partitioner

__all__ = ["Producer", "FutureRecordMetadata"]

log_ = logging.getLogger("strom.producer")

_BYTES_LIKE = (bytes, bytearray, memoryview)
#: Bytes a record may add to its batch beyond its key and value when encoded (msgpack
#: headers of the key and value, at most 5 bytes each, and slack): used only to size
#: merged appends below max.message.bytes; the storage splits a batch it underestimates.
_RECORD_OVERHEAD = 16
#: How long the sender sleeps when it finds send() holding the lock (see _lock_for_sender).
_SENDER_BACKOFF_S = 0.00005

#: kafka-python's defaults where strom honours the option (acks: 3.x's "all").
DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 0,
    "batch_size": 16384,
    "compression_type": None,
    "key_serializer": None,
    "value_serializer": None,
    "partitioner": None,
    "max_request_size": 1048576,
    "buffer_memory": 33554432,
    "max_block_ms": 60000,
    "client_id": None,
    "allow_auto_create_topics": True,
}
#: Accepted so that configurations written for a networked client keep working;
#: they have no effect in-process (no network, no retries, one writer per append).
IGNORED = frozenset({
    "bootstrap_servers", "retries", "request_timeout_ms", "delivery_timeout_ms",
    "retry_backoff_ms", "retry_backoff_max_ms", "max_in_flight_requests_per_connection",
    "enable_idempotence", "security_protocol", "ssl_context", "ssl_check_hostname",
    "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_crlfile", "ssl_ciphers",
    "sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "sasl_kerberos_name",
    "sasl_kerberos_service_name", "sasl_kerberos_domain_name", "sasl_oauth_token_provider",
    "api_version", "api_version_auto_timeout_ms", "metadata_max_age_ms",
    "connections_max_idle_ms", "reconnect_backoff_ms", "reconnect_backoff_max_ms",
    "send_buffer_bytes", "receive_buffer_bytes", "socket_options", "metric_reporters",
    "metrics_enabled", "metrics_num_samples", "metrics_sample_window_ms", "selector",
    "sock_chunk_bytes", "sock_chunk_buffer_count", "kafka_client", "wakeup_timeout_ms",
    "transaction_timeout_ms",
})
_UNSUPPORTED = {
    "transactional_id": "transactions are not supported yet",
}
#: Producers not yet closed: flushed when the interpreter exits, as kafka-python
#: does, so records sent just before the end of a script are not lost.
_LIVE: weakref.WeakSet[Producer] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for producer in list(_LIVE):
        try:
            producer.close(timeout=30)
        except Exception:  # exiting anyway: report, do not mask the exit
            log_.exception("closing a producer at exit failed")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise InvalidConfigError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


class _Batch:
    """The open (then in-flight) batch of one partition; futures point into it.

    ``keys`` and ``values`` are columns, one entry per record.  Timestamps and
    headers are rare, so only the records that have them are kept, by index.
    ``room`` is the number of bytes the batch may still take before it is
    full (``batch_size`` minus the sum of its records' sizes).
    """

    __slots__ = ("topic", "partition", "keys", "values", "timestamps", "headers", "room",
                 "created_ms", "created_s", "taken", "finished", "event", "base_offset", "error",
                 "callbacks")

    def __init__(self, topic: str, partition: int, created_ms: int, room: int) -> None:
        self.topic = topic
        self.partition = partition
        self.keys: list[Any] | tuple[Any, ...] = []  # a tuple once written
        self.values: list[Any] | tuple[Any, ...] = []
        self.timestamps: dict[int, int] | None = None  # index -> timestamp_ms given to send()
        self.headers: dict[int, list[Any]] | None = None  # index -> non-empty headers
        self.room = room
        self.created_ms = created_ms
        self.created_s = time.monotonic()
        self.taken = False  # True once the sender has taken it to write
        # True once written (or failed) and every callback has run.  The Event exists only
        # when someone waits: most batches complete without a waiter.
        self.finished = False
        self.event: threading.Event | None = None
        self.base_offset = -1
        self.error: BaseException | None = None
        self.callbacks: list[tuple[int, bool, Callable[..., Any], tuple]] | None = None

    def metadata(self, index: int) -> RecordMetadata:
        """The RecordMetadata of the record at ``index``."""
        ts = self.timestamps.get(index) if self.timestamps else None
        key = self.keys[index]
        value = self.values[index]
        headers = self.headers.get(index) if self.headers else None
        return RecordMetadata(
            self.topic, self.partition, TopicPartition(self.topic, self.partition),
            self.base_offset + index if self.base_offset >= 0 else -1,
            self.created_ms if ts is None else ts, None,
            -1 if key is None else len(key), -1 if value is None else len(value),
            -1 if not headers else sum(len(k.encode()) + len(v or b"") for k, v in headers))

    def wait(self, timeout: float | None) -> bool:
        """Wait until finished (up to ``timeout`` seconds); True if it is."""
        if self.finished:
            return True
        with _CALLBACK_LOCK:  # resolve() reads ``event`` under this lock after setting finished
            if self.finished:
                return True
            if self.event is None:
                self.event = threading.Event()
            event = self.event
        return event.wait(timeout)

    def resolve(self) -> None:
        """Run the callbacks, then mark finished (sender thread, after the write).

        As in Kafka's producer, callbacks run before the futures complete, so
        whoever returns from flush() or get() sees their effects.
        ``finished`` is set under the callback lock once no callback is left,
        so a callback added meanwhile is either run here or, seeing
        ``finished``, by its adder; a waiter either sees ``finished`` or left
        an Event that is set here.
        """
        while True:
            with _CALLBACK_LOCK:
                callbacks, self.callbacks = self.callbacks, None
                if not callbacks:
                    self.finished = True
                    event = self.event
                    break
            for index, is_errback, fn, args in callbacks:
                _run_callback(self, index, is_errback, fn, args)
        if event is not None:
            event.set()


def _run_callback(batch: _Batch, index: int, is_errback: bool, fn: Callable[..., Any],
                  args: tuple) -> None:
    try:
        if batch.error is None:
            if not is_errback:
                fn(*args, batch.metadata(index))
        elif is_errback:
            fn(*args, batch.error)
    except Exception:  # a callback's failure must not stop the sender
        log_.exception("producer callback %r raised", fn)


class FutureRecordMetadata:
    """The result of one ``send()``: kafka-python's FutureRecordMetadata.

    ``get(timeout)`` returns the RecordMetadata or raises the error that
    stopped the write; callbacks run in the sender thread (or at once, in
    the caller's thread, when added after the future is done).
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    @property
    def is_done(self) -> bool:
        """True once the record is written (or failed)."""
        return self._batch.finished

    def succeeded(self) -> bool:
        """True if done without an error."""
        return self._batch.finished and self._batch.error is None

    def failed(self) -> bool:
        """True if done with an error."""
        return self._batch.finished and self._batch.error is not None

    @property
    def exception(self) -> BaseException | None:
        """The error, if the future failed."""
        return self._batch.error if self._batch.finished else None

    @property
    def value(self) -> RecordMetadata | None:
        """The RecordMetadata, if the future succeeded."""
        return self._batch.metadata(self._index) if self.succeeded() else None

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait (up to ``timeout`` seconds) and return the RecordMetadata, or raise the error."""
        batch = self._batch
        if not batch.wait(timeout):
            raise StromTimeoutError(f"record not written within {timeout} s")
        if batch.error is not None:
            raise batch.error
        return batch.metadata(self._index)

    def _add(self, is_errback: bool, fn: Callable[..., Any], args: tuple) -> FutureRecordMetadata:
        batch = self._batch
        with _CALLBACK_LOCK:
            if not batch.finished:
                if batch.callbacks is None:
                    batch.callbacks = []
                batch.callbacks.append((self._index, is_errback, fn, args))
                return self
        _run_callback(batch, self._index, is_errback, fn, args)
        return self

    def add_callback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, record_metadata)`` when the record is written."""
        return self._add(False, fn, args)

    def add_errback(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, exception)`` if the write fails."""
        return self._add(True, fn, args)

    def add_both(self, fn: Callable[..., Any], *args: Any) -> FutureRecordMetadata:
        """Call ``fn`` on success and on failure."""
        self._add(False, fn, args)
        return self._add(True, fn, args)

    def __repr__(self) -> str:
        state = "done" if self.is_done else "pending"
        return f"<FutureRecordMetadata {self._batch.topic}-{self._batch.partition} {state}>"


_CALLBACK_LOCK = threading.Lock()


class _TopicState:
    """A topic as one producer sees it: its partitions, their open batches, the sticky choice.

    ``open`` has one slot more than the topic has partitions, always None, so
    that ``open[sticky]`` with ``sticky == -1`` (no keyless partition chosen
    yet) finds no batch.  ``sticky`` mirrors the producer's StickyPartitioner
    for this topic (its current partition, or -1): it is read and written
    only under the producer's lock, after every call that may change the
    partitioner's choice.
    """

    __slots__ = ("partitions", "all_partitions", "count", "open", "newest", "sticky", "first",
                 "keyed")

    def __init__(self, partitions: list[Any]) -> None:
        self.partitions = partitions
        self.all_partitions = range(len(partitions))
        self.count = len(partitions)
        self.open: list[_Batch | None] = [None] * (len(partitions) + 1)
        self.newest: list[_Batch | None] = [None] * len(partitions)  # last batch opened, per partition
        self.sticky = -1
        self.first = partitions[0]  # its config holds the topic's max.message.bytes
        self.keyed = partitions[0].config.compacts  # a compacted topic refuses keyless records


class Producer:
    """Publish records to a Log's topics, with kafka-python's KafkaProducer API.

    ``Producer(log, acks="all", linger_ms=0, batch_size=16384, compression_type=None,
    key_serializer=None, value_serializer=None, partitioner=None, max_request_size=1048576,
    buffer_memory=33554432, max_block_ms=60000)``; network options are accepted
    and ignored; an unknown option raises InvalidConfigError.
    """

    def __init__(self, log: Log, **configs: Any) -> None:
        if not isinstance(log, Log):
            raise InvalidConfigError(f"Producer needs a strom Log as its first argument, not "
                                     f"{type(log).__name__}")
        unknown = sorted(k for k in configs if k not in DEFAULTS and k not in IGNORED
                         and k not in _UNSUPPORTED)
        if unknown:
            raise InvalidConfigError(f"Unrecognized configs: {unknown}")
        for key, why in _UNSUPPORTED.items():
            if configs.get(key) is not None:
                raise UnsupportedError(f"{key}: {why}")
        config = {**DEFAULTS, **{k: v for k, v in configs.items() if k in DEFAULTS}}
        acks = config["acks"]
        if acks not in (0, 1, -1, "all") or isinstance(acks, bool):
            raise InvalidConfigError(f"acks must be 0, 1, -1 or 'all', not {acks!r}")
        self._acks = "all" if acks == -1 else acks
        self._durable = self._acks == "all"
        self._linger_s = _check_int("linger_ms", config["linger_ms"], 0) / 1000
        self._batch_size = _check_int("batch_size", config["batch_size"], 1)
        self._max_request_size = _check_int("max_request_size", config["max_request_size"], 1)
        self._buffer_memory = _check_int("buffer_memory", config["buffer_memory"], 1)
        self._max_block_s = _check_int("max_block_ms", config["max_block_ms"], 0) / 1000
        compression = config["compression_type"]
        if compression not in (None, "zstd", "none"):
            raise InvalidConfigError(f"compression_type {compression!r} is not supported; use None "
                                     "or 'zstd'")
        self._compression = "zstd" if compression == "zstd" else None
        self._key_serializer = self._serializer("key_serializer", config["key_serializer"])
        self._value_serializer = self._serializer("value_serializer", config["value_serializer"])
        # kafka-python 3.x Serializer objects: serialize(topic, headers, data).
        self._key_serialize3 = self._serialize3(config["key_serializer"])
        self._value_serialize3 = self._serialize3(config["value_serializer"])
        self._partitioner = resolve_partitioner(config["partitioner"])
        self._keyless_sticky = isinstance(self._partitioner, HashPartitioner)
        # The default partitioner inlined on the hot path (same result, a call less).
        self._xxhash = type(self._partitioner) is XxhashPartitioner
        self._sticky = StickyPartitioner()
        self._auto_create = bool(config["allow_auto_create_topics"])
        self.config = config
        self._log = log
        self._clock = log.clock
        self._topics: dict[str, _TopicState] = {}
        # The topics send()'s fast path may use: all of them when this producer's options
        # allow the fast path, none otherwise, and none once close() has begun.
        fast = (self._xxhash and self._key_serializer is None and self._value_serializer is None
                and self._acks != 0)
        self._fast: dict[str, _TopicState] = self._topics if fast else {}
        # The largest key + value the fast path accepts under max_request_size.
        self._fast_max = self._max_request_size - HEADER_SIZE
        self._lock = threading.Lock()  # taken directly on the hot path: Condition's wrapper costs more
        self._cond = threading.Condition(self._lock)  # send() threads waiting for buffer room
        # Wakes the sender.  Not a wait on _cond: a sender woken by a notify() from inside
        # send()'s critical section would queue on the lock that send() holds (see _run).
        self._wake = threading.Event()
        self._ready: list[_Batch] = []
        self._lingering: dict[int, _Batch] = {}  # id(batch) -> open batch with a linger deadline
        self._in_flight: set[_Batch] = set()
        self._pending_bytes = 0
        self._closing = False
        self._closed = False
        self._flush_all = 0
        self._metrics_lock = threading.Lock()  # not the send() lock: the sender takes it per round
        self._metrics = {"record-send-total": 0, "record-error-total": 0, "batch-total": 0,
                         "bytes-total": 0}
        self._sender = threading.Thread(target=self._run, name="strom-producer-sender", daemon=True)
        self._sender.start()
        _LIVE.add(self)

    @staticmethod
    def _serialize3(value: Any) -> Callable[[str, Any, Any], Any] | None:
        serialize = getattr(value, "serialize", None)
        return serialize if serialize is not None and callable(serialize) else None

    @staticmethod
    def _serializer(name: str, value: Any) -> Callable[..., Any] | None:
        if value is None:
            return None
        if Producer._serialize3(value) is not None:  # kafka-python 3.x Serializer: see _serialize3
            return value
        if not callable(value):
            raise InvalidConfigError(f"{name} must be callable, not {type(value).__name__}")
        return value

    # -- sending -------------------------------------------------------------

    def _topic_state(self, topic: str) -> _TopicState:
        if type(topic) is not str:
            raise InvalidRecordError(f"topic must be a str, not {type(topic).__name__}")
        if topic == OFFSETS_TOPIC:
            raise InvalidTopicError(f"{OFFSETS_TOPIC} is internal: consumers write it by committing")
        try:
            t = self._log.topic(topic)
        except UnknownTopicOrPartitionError:
            if not self._auto_create:
                raise
            try:
                self._log.create_topic(topic)
            except StromError:
                pass  # created meanwhile by someone else
            t = self._log.topic(topic)
        state = _TopicState(list(t.partitions))
        with self._cond:
            return self._topics.setdefault(topic, state)

    def send(self, topic: str, value: Any = None, key: Any = None,
             headers: Sequence[tuple[str, bytes]] | None = None, partition: int | None = None,
             timestamp_ms: int | None = None) -> FutureRecordMetadata:
        """Queue one record; returns a future of its RecordMetadata.

        ``value=None`` with a key is a tombstone (the value serializer is not
        called with None).  Raises InvalidRecordError for bad types,
        RecordTooLargeError above ``max_request_size``, IllegalStateError
        after close().
        """
        # The fast path: a bytes value, a bytes key or none, nothing else, on a producer whose
        # options allow it (see _fast).  It takes the decisions of _send() below: the same
        # size checks, the same partition (xxhash of the key, or the sticky one), the same
        # batch and buffer accounting.  Anything it does not handle at once (no open batch,
        # a batch this record fills, a full buffer) goes to _enqueue() under the same lock.
        # It needs no check for a closed producer: close() empties _fast first, and once the
        # sender has stopped no batch is open, so a record that got past the check ends in
        # _enqueue(), which refuses it.
        try:
            state = self._fast[topic]
        except (KeyError, TypeError):  # a topic not seen yet (or not a str), or no fast path
            return self._send(topic, value, key, headers, partition, timestamp_ms)
        if (value.__class__ is bytes and headers is None and partition is None
                and timestamp_ms is None):
            if key is None:
                if state.keyed:
                    return self._send(topic, value, key, headers, partition, timestamp_ms)
                size = len(value)
                chosen = None  # the sticky partition, read under the lock
            elif key.__class__ is bytes:
                size = len(value) + len(key)
                chosen = xxh3_64_intdigest(key) % state.count
            else:
                return self._send(topic, value, key, headers, partition, timestamp_ms)
            if (size <= self._fast_max
                    and size + HEADER_SIZE <= state.first.config.max_message_bytes):
                lock = self._lock
                lock.acquire()  # "with" costs twice as much as the two calls
                try:
                    batch = state.open[state.sticky if chosen is None else chosen]
                    if batch is not None:
                        room = batch.room - size
                        pending = self._pending_bytes + size
                        if room > 0 and pending <= self._buffer_memory:
                            batch.room = room
                            self._pending_bytes = pending
                            index = len(batch.values)
                            batch.values.append(value)
                            batch.keys.append(key)
                        else:
                            batch, index = self._enqueue(state, topic, chosen, key, value, size,
                                                         None, None)
                    else:
                        batch, index = self._enqueue(state, topic, chosen, key, value, size,
                                                     None, None)
                finally:
                    lock.release()
                future = _new_future(FutureRecordMetadata)
                future._batch = batch
                future._index = index
                return future
        return self._send(topic, value, key, headers, partition, timestamp_ms)

    def _send(self, topic: str, value: Any, key: Any, headers: Any, partition: Any,
              timestamp_ms: Any) -> FutureRecordMetadata:
        """send() for any record: serialize, check everything, then _enqueue()."""
        if self._closing:
            raise IllegalStateError("send() after close()")
        if key is None and value is None:
            raise InvalidRecordError("a record needs a key or a value")
        if key is not None and self._key_serializer is not None:
            key = (self._key_serializer(key) if self._key_serialize3 is None
                   else self._key_serialize3(topic, list(headers or ()), key))
        if value is not None and self._value_serializer is not None:
            value = (self._value_serializer(value) if self._value_serialize3 is None
                     else self._value_serialize3(topic, list(headers or ()), value))
        size = 0
        if value is not None:
            if value.__class__ is not bytes and not isinstance(value, _BYTES_LIKE):
                raise InvalidRecordError(f"value must be bytes (or set value_serializer), not "
                                         f"{type(value).__name__}")
            size = len(value)
        if key is not None:
            if key.__class__ is not bytes and not isinstance(key, _BYTES_LIKE):
                raise InvalidRecordError(f"key must be bytes (or set key_serializer), not "
                                         f"{type(key).__name__}")
            size += len(key)
        if headers is not None:
            try:
                if isinstance(headers, (str, bytes, bytearray)):
                    raise TypeError
                headers = list(headers)
            except TypeError:
                raise InvalidRecordError(f"headers must be a list of (str, bytes) tuples, not "
                                         f"{type(headers).__name__}") from None
            for h in headers:
                if not (isinstance(h, tuple) and len(h) == 2 and isinstance(h[0], str)
                        and (h[1] is None or isinstance(h[1], _BYTES_LIKE))):
                    raise InvalidRecordError(f"headers must be (str, bytes) tuples, got {h!r}")
                size += len(h[0].encode()) + len(h[1] or b"")
        if timestamp_ms is not None and type(timestamp_ms) is not int:
            raise InvalidRecordError(f"timestamp_ms must be an int, not {type(timestamp_ms).__name__}")
        if size + HEADER_SIZE > self._max_request_size:
            raise RecordTooLargeError(f"the record is {size} bytes serialized, above "
                                      f"max_request_size={self._max_request_size}")
        if type(topic) is not str:
            raise InvalidRecordError(f"topic must be a str, not {type(topic).__name__}")
        state = self._topics.get(topic) or self._topic_state(topic)
        if key is None and state.first.config.compacts:
            raise InvalidRecordError(f"topic {topic!r} is compacted: every record needs a key")
        topic_limit = state.first.config.max_message_bytes
        if size + HEADER_SIZE > topic_limit:  # alone in a batch it would still be refused
            raise RecordTooLargeError(f"the record is {size} bytes serialized, above the topic's "
                                      f"max.message.bytes={topic_limit}")
        if partition is None:
            if key is None and self._keyless_sticky:
                pass  # None: the sticky partition, chosen under the lock by _enqueue()
            elif key is not None and self._xxhash:
                partition = xxh3_64_intdigest(key) % state.count
            else:
                partition = self._partitioner(key, state.all_partitions, state.all_partitions)
                if type(partition) is not int and not isinstance(partition, bool):
                    try:  # numpy integers and the like
                        partition = operator.index(partition)
                    except TypeError:
                        pass  # refused just below
                if type(partition) is not int or not 0 <= partition < state.count:
                    raise UnknownTopicOrPartitionError(
                        f"partitioner {self._partitioner!r} chose partition {partition!r} of "
                        f"topic {topic!r}, which has partitions 0..{state.count - 1}")
        elif type(partition) is not int or not 0 <= partition < state.count:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} has partitions 0..{state.count - 1}, not {partition!r}")
        with self._lock:
            batch, index = self._enqueue(state, topic, partition, key, value, size, headers,
                                         timestamp_ms)
        if self._acks == 0:
            return _done_future(topic, batch.partition, key, value, timestamp_ms, headers,
                                batch.created_ms)
        return FutureRecordMetadata(batch, index)

    def _enqueue(self, state: _TopicState, topic: str, partition: int | None, key: Any,
                 value: Any, size: int, headers: list[Any] | None,
                 timestamp_ms: int | None) -> tuple[_Batch, int]:
        """Add one checked record to its partition's open batch (lock held): (batch, index).

        ``partition`` None means a keyless record for the sticky partitioner.
        Opens a batch when the partition has none, closes the batch when the
        record fills it, and waits (up to max_block_ms) while the buffer is full.
        """
        if self._closed:
            raise IllegalStateError("send() after close()")
        if self._pending_bytes + size > self._buffer_memory:
            self._wait_for_buffer(size)
            if self._closed:  # the sender finished while this thread waited: nobody would write
                raise IllegalStateError("send() after close()")
        if partition is None:
            partition = state.sticky
            if partition < 0:
                partition = state.sticky = self._sticky.partition(topic, state.all_partitions)
        batch = state.open[partition]
        if batch is None:
            # With linger_ms=0, a batch opened while the previous one of its partition still
            # waits for the sender takes that batch's timestamp: the sender then writes both
            # with one append (one timestamp for all), however many batch_size cut.
            newest = state.newest[partition]
            if newest is not None and not newest.taken and not self._linger_s:
                created_ms = newest.created_ms
            else:
                created_ms = self._clock.time_ms()
            batch = state.open[partition] = state.newest[partition] = _Batch(
                topic, partition, created_ms, self._batch_size)
            if self._linger_s:
                self._lingering[id(batch)] = batch
                if len(self._lingering) == 1:
                    self._wake.set()  # the sender may be asleep with no deadline
            else:
                self._ready.append(batch)
                if len(self._ready) == 1:
                    self._wake.set()
        index = len(batch.values)
        batch.values.append(value)
        batch.keys.append(key)
        if timestamp_ms is not None:
            if batch.timestamps is None:
                batch.timestamps = {}
            batch.timestamps[index] = timestamp_ms
        if headers:
            if batch.headers is None:
                batch.headers = {}
            batch.headers[index] = headers
        batch.room -= size
        self._pending_bytes += size
        if batch.room <= 0:
            state.open[partition] = None  # full: later records start a new batch
            if self._linger_s:
                del self._lingering[id(batch)]
                self._ready.append(batch)
                self._wake.set()
            if key is None and self._keyless_sticky:
                self._new_sticky_batch(state, topic, partition)
        return batch, index

    def _new_sticky_batch(self, state: _TopicState, topic: str, partition: int) -> None:
        """Tell the sticky partitioner a batch of ``partition`` is complete (lock held)."""
        self._sticky.on_new_batch(topic, partition)
        current = self._sticky.current(topic)
        state.sticky = -1 if current is None else current

    def send_batch(self, topic: str, values: Sequence[Any], keys: Sequence[Any] | None = None, *,
                   partition: int | None = None, timestamp_ms: int | None = None) -> dict[int, int]:
        """Write many records at once; returns ``{partition: offset of its first record}``.

        The bulk path for pipelines: values (and keys) go through the
        serializers, then straight to storage as columns, without a future
        per record; it returns after the write with the requested acks.
        Keyless records go to ``partition`` or one sticky partition; keyed
        records to ``partition`` if given, else each key's partition (found
        for all keys at once with the default partitioner).  Each partition's
        records are appended in their order, after every earlier ``send()``.
        """
        if self._closing:
            raise IllegalStateError("send_batch() after close()")
        if keys is not None and len(keys) != len(values):
            raise InvalidRecordError(f"{len(keys)} keys for {len(values)} values")
        if self._value_serializer is not None:
            ser = self._value_serializer
            if self._value_serialize3 is not None:
                ser = partial(self._value_serialize3, topic, [])
            values = [None if v is None else ser(v) for v in values]
        if keys is not None and self._key_serializer is not None:
            kser = self._key_serializer
            if self._key_serialize3 is not None:
                kser = partial(self._key_serialize3, topic, [])
            keys = [None if k is None else kser(k) for k in keys]
        state = self._topics.get(topic) or self._topic_state(topic)
        ts = self._clock.time_ms() if timestamp_ms is None else timestamp_ms
        groups: dict[int, tuple[Sequence[Any], Sequence[Any] | None]]
        if partition is not None:
            if type(partition) is not int or not 0 <= partition < state.count:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has partitions 0..{state.count - 1}, not {partition!r}")
            groups = {partition: (values, keys)}
        elif keys is None:
            with self._lock:
                sticky = state.sticky
                if sticky < 0:
                    sticky = state.sticky = self._sticky.partition(topic, state.all_partitions)
            groups = {sticky: (values, keys)}
        else:
            groups = self._group_by_partition(state, values, keys)
        self.flush()  # earlier send()s come first, per partition
        firsts = {}
        storage_acks = "all" if self._durable else 1
        for p, (vals, ks) in sorted(groups.items()):
            firsts[p] = state.partitions[p].append(
                vals, ks, ts, acks=storage_acks, compression=self._compression)
            with self._metrics_lock:
                self._metrics["record-send-total"] += len(vals)
            if keys is None and partition is None:
                with self._lock:
                    self._new_sticky_batch(state, topic, p)  # the next keyless batch goes elsewhere
        return firsts

    def _group_by_partition(self, state: _TopicState, values: Sequence[Any], keys: Sequence[Any]
                            ) -> dict[int, tuple[Sequence[Any], Sequence[Any] | None]]:
        """Each key's partition, then the records split by partition, with C iterators."""
        n = state.count
        parts: list[int] | None = None
        if type(self._partitioner) is XxhashPartitioner:
            try:  # one C pass for the hashes, one for the modulo
                parts = list(map(n.__rmod__, map(xxh3_64_intdigest, keys)))
            except TypeError:  # a None or non-bytes key: the partitioner's own rules
                parts = None
        if parts is None:
            part = self._partitioner
            allp = state.all_partitions
            parts = [part(k, allp, allp) for k in keys]
            for q in set(parts):
                if type(q) is not int or not 0 <= q < n:
                    raise UnknownTopicOrPartitionError(
                        f"the partitioner chose {q!r}; topic has partitions 0..{n - 1}")
        present = set(parts)
        if len(present) == 1:
            return {parts[0]: (values, keys)}
        # One C pass per column: list.append(bucket_of_partition, record).
        value_buckets: list[list[Any]] = [[] for _ in range(n)]
        key_buckets: list[list[Any]] = [[] for _ in range(n)]
        deque(map(list.append, map(value_buckets.__getitem__, parts), values), maxlen=0)
        deque(map(list.append, map(key_buckets.__getitem__, parts), keys), maxlen=0)
        return {q: (value_buckets[q], key_buckets[q]) for q in sorted(present)}

    def _wait_for_buffer(self, size: int) -> None:
        """Block (cond held) until the buffer has room, up to max_block_ms."""
        deadline = time.monotonic() + self._max_block_s
        self._flush_all += 1
        self._wake.set()
        try:
            while self._pending_bytes and self._pending_bytes + size > self._buffer_memory:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StromTimeoutError(
                        f"buffer_memory={self._buffer_memory} is full and did not drain within "
                        f"max_block_ms={int(self._max_block_s * 1000)}")
                self._cond.wait(left)
        finally:
            self._flush_all -= 1

    # -- the sender thread ---------------------------------------------------

    def _take(self) -> list[_Batch]:
        """Batches to write now (cond held); closes the open ones it takes."""
        now = time.monotonic()
        flush = self._flush_all or self._closing
        if self._lingering and (flush or self._linger_s):
            for key, batch in list(self._lingering.items()):
                if flush or now - batch.created_s >= self._linger_s:
                    del self._lingering[key]
                    self._ready.append(batch)
        ready, self._ready = self._ready, []
        for batch in ready:
            batch.taken = True
            state = self._topics[batch.topic]
            if state.open[batch.partition] is batch:
                state.open[batch.partition] = None
                if self._keyless_sticky and batch.keys.count(None) == len(batch.keys):
                    self._new_sticky_batch(state, batch.topic, batch.partition)
            self._in_flight.add(batch)
        return ready

    def _next_wake(self) -> float | None:
        if not self._lingering:
            return None
        oldest = min(b.created_s for b in self._lingering.values())
        return max(0.0, oldest + self._linger_s - time.monotonic())

    def _lock_for_sender(self) -> None:
        """Take the send() lock without queueing on it (sender thread).

        A thread that blocks on a lock must win the GIL back after it gets the
        lock; meanwhile send() finds the lock taken, blocks and hands over the
        GIL, and the two threads can go on handing both over every few records
        (measured: a third of the throughput, in batches of a dozen records).
        So the sender tries the lock and, when send() holds it, sleeps a moment
        (letting send() finish its few appends) instead of waiting in line.
        """
        lock = self._lock
        while not lock.acquire(False):
            time.sleep(_SENDER_BACKOFF_S)

    def _run(self) -> None:
        lock = self._lock
        wake = self._wake
        batch_size = self._batch_size
        metrics = self._metrics
        done: list[_Batch] = []
        sizes = 0
        while True:
            # One section under the send() lock per round: the last round's bookkeeping and
            # this round's batches (each section is a chance to find send() holding it).
            self._lock_for_sender()
            try:
                if done:
                    self._in_flight.difference_update(done)  # only now: flush() waits for them
                    self._pending_bytes -= sizes
                    done = []
                    self._cond.notify_all()  # send() threads waiting for buffer room
                batches = self._take()
                if not batches:
                    if self._closing and not self._lingering:
                        self._closed = True
                        self._cond.notify_all()
                        return
                    wake.clear()  # under the lock: work added after this sets it again
                    timeout = self._next_wake()
            finally:
                lock.release()
            if not batches:
                wake.wait(timeout)
                continue
            self._write(batches)
            sizes = records = errors = written = ok = 0
            for batch in batches:
                # Futures keep their batch for its metadata.  Tuples of bytes leave the
                # cyclic collector's sight after its next pass, lists never do: users who
                # keep millions of futures would have every key and value walked in each
                # full collection.
                batch.values = tuple(batch.values)
                batch.keys = tuple(batch.keys)
                size = batch_size - batch.room
                sizes += size
                if batch.error is None:
                    ok += 1
                    records += len(batch.values)
                    written += size
                else:
                    errors += len(batch.values)
            with self._metrics_lock:  # counted before the futures complete: flush() sees them
                metrics["record-send-total"] += records
                metrics["batch-total"] += ok
                metrics["bytes-total"] += written
                metrics["record-error-total"] += errors
            for batch in batches:
                batch.resolve()
            done = batches

    def _write(self, batches: list[_Batch]) -> None:
        """Write ``batches``, setting each one's base offset or error (sender thread).

        Per partition, runs of batches opened in the same millisecond and
        without timestamps of their own are written with one append, up to
        the topic's max.message.bytes; with acks="all" every append is made
        with acks=1 and the partition is then fsync'd once (Partition.flush),
        and a failed fsync fails every batch written to it in this round.
        """
        by_partition: dict[tuple[str, int], list[_Batch]] = {}
        for batch in batches:
            key = (batch.topic, batch.partition)
            group = by_partition.get(key)
            if group is None:
                by_partition[key] = [batch]
            else:
                group.append(batch)
        for (topic, p), group in by_partition.items():
            partition = self._topics[topic].partitions[p]
            written: list[_Batch] = []
            log_time = partition.config.message_timestamp_type == "LogAppendTime"
            for run in self._runs(group, partition.config.max_message_bytes):
                try:
                    now = partition.clock.time_ms() if log_time else None
                    base = partition.append(*self._columns(run), acks=1,
                                            compression=self._compression, append_time=now)
                    if now is not None:  # the metadata tells the time the log stamped
                        for batch in run:
                            batch.created_ms, batch.timestamps = now, None
                except BaseException as exc:  # the batches' futures carry any failure
                    self._fail(run, exc)
                    continue
                for batch in run:
                    batch.base_offset = base
                    base += len(batch.values)
                written += run
            if self._durable and written:
                try:
                    partition.flush()
                except BaseException as exc:
                    self._fail(written, exc)

    def _runs(self, group: list[_Batch], limit: int) -> list[list[_Batch]]:
        """``group`` (one partition's batches, in order) cut into runs written by one append each."""
        runs: list[list[_Batch]] = []
        run: list[_Batch] = []
        estimate = HEADER_SIZE
        batch_size = self._batch_size
        for batch in group:
            cost = batch_size - batch.room + _RECORD_OVERHEAD * len(batch.values)
            if run and (batch.timestamps or run[0].timestamps
                        or batch.created_ms != run[0].created_ms or estimate + cost > limit):
                runs.append(run)
                run = []
                estimate = HEADER_SIZE
            run.append(batch)
            estimate += cost
        if run:
            runs.append(run)
        return runs

    @staticmethod
    def _columns(run: list[_Batch]) -> tuple[list[Any], list[Any] | None, Any, list[Any] | None]:
        """The values, keys, timestamps and headers of a run of batches, for Partition.append."""
        first = run[0]
        if len(run) == 1:
            values, keys = first.values, first.keys
        else:
            values, keys = [], []
            for batch in run:
                values += batch.values
                keys += batch.keys
        timestamps: Any = first.created_ms
        if first.timestamps:  # a run with timestamps of its own is one batch
            timestamps = [timestamps] * len(values)
            for i, t in first.timestamps.items():
                timestamps[i] = t
        headers = None
        if any(batch.headers for batch in run):
            headers = [None] * len(values)
            start = 0
            for batch in run:
                if batch.headers:
                    for i, h in batch.headers.items():
                        headers[start + i] = h
                start += len(batch.values)
        return values, keys if keys.count(None) != len(keys) else None, timestamps, headers

    @staticmethod
    def _fail(batches: list[_Batch], exc: BaseException) -> None:
        if not isinstance(exc, StromError):
            log_.exception("unexpected error writing a batch", exc_info=exc)
        for batch in batches:
            batch.error = exc
            batch.base_offset = -1

    # -- flushing, closing, metadata -----------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Write every record sent so far and wait for it; StromTimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            waiting = set(self._in_flight) | set(self._ready) | set(self._lingering.values())
            if not waiting:
                return
            self._flush_all += 1
            self._wake.set()
        try:
            for batch in waiting:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.wait(left):
                    raise StromTimeoutError(f"flush did not finish within {timeout} s")
        finally:
            with self._cond:
                self._flush_all -= 1

    def close(self, timeout: float | None = None) -> None:
        """Send what is pending, then stop the sender thread (idempotent)."""
        with self._cond:
            if self._closing and self._closed:
                return
            self._closing = True
            self._fast = {}  # send() takes the general path, which refuses records now
            self._wake.set()
        self._sender.join(timeout)
        if self._sender.is_alive():
            raise StromTimeoutError(f"producer did not close within {timeout} s")

    def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of ``topic`` (created if missing and auto-create is on)."""
        state = self._topics.get(topic) or self._topic_state(topic)
        return set(state.all_partitions)

    def metrics(self, raw: bool = False) -> dict[str, dict[str, float]]:
        """A snapshot of counters: records and batches written, errors, bytes pending."""
        with self._metrics_lock:
            snapshot = dict(self._metrics)
        with self._cond:
            snapshot["buffer-pending-bytes"] = self._pending_bytes
            snapshot["buffer-available-bytes"] = self._buffer_memory - self._pending_bytes
        return {"producer-metrics": snapshot}

    def bootstrap_connected(self) -> bool:
        """Always True: the log is in this process."""
        return True

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<strom.Producer acks={self._acks!r} on {self._log.path!r}>"


_new_future = object.__new__  # send()'s fast path fills the two slots itself: no __init__ call


class _DoneBatch(_Batch):
    """A batch that is already done: acks=0 futures (offset -1)."""

    __slots__ = ()


def _done_future(topic: str, partition: int, key: Any, value: Any, timestamp_ms: int | None,
                 headers: Any, created_ms: int) -> FutureRecordMetadata:
    """An acks=0 future: done at once, offset -1, sizes and timestamp of the record."""
    batch = _DoneBatch(topic, partition, created_ms, 0)
    batch.keys.append(key)
    batch.values.append(value)
    if timestamp_ms is not None:
        batch.timestamps = {0: timestamp_ms}
    if headers:
        batch.headers = {0: headers}
    batch.finished = True
    return FutureRecordMetadata(batch, 0)
