"""Committed offsets: durable, shared by every process on a data directory.

Theory of operation
-------------------
As in Kafka, committed offsets are records of an internal topic,
``__consumer_offsets``, compacted (the latest commit per key is all that
matters).  A commit of several partitions is one append, so it is atomic: a
crash leaves all of it or none.  It is written with acks="all" (fsync'd)
unless the committer asks for less.

Key and value are msgpack arrays with a leading kind tag, so other group
records can share the topic later::

    key   ["offset", group, topic, partition]
    value [offset, metadata, leader_epoch, commit_timestamp_ms]   (None: deleted)

Every process keeps its own view: an :class:`OffsetStore` per Log reads the
topic from where it last stopped before answering (one ``read`` at the log
end costs a few microseconds), so commits by other processes are seen at
once.  The topic is read through the storage layer's checksums; a record
whose structure is not the above (written by something other than a commit:
the checksums rule out damage) is skipped with a warning, never used.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Iterable, Mapping

import msgpack

from ..errors import StromError, UnknownTopicOrPartitionError
from ..records import OffsetAndMetadata, TopicPartition
from ..storage import Log, Partition

__all__ = ["OffsetStore", "offset_store", "OFFSETS_TOPIC"]

#: The internal topic holding committed offsets (Kafka's name).
OFFSETS_TOPIC = "__consumer_offsets"
log_ = logging.getLogger("strom.group")

#: A commit is one batch (atomic), so the topic takes batches of up to 16 MiB:
#: about 120,000 partitions committed at once.
_OFFSETS_CONFIG = {"cleanup.policy": "compact", "segment.bytes": 64 * 1024 * 1024,
                   "max.message.bytes": 16 * 1024 * 1024}
_KIND = "offset"

_stores: weakref.WeakKeyDictionary[Log, OffsetStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def offset_store(log: Log) -> OffsetStore:
    """The OffsetStore of ``log`` (one per Log object, made on first use)."""
    with _stores_lock:
        store = _stores.get(log)
        if store is None:
            store = _stores[log] = OffsetStore(log)
        return store


def _key(group: str, tp: TopicPartition) -> bytes:
    return msgpack.packb([_KIND, group, tp.topic, tp.partition])


class OffsetStore:
    """Committed offsets of every group of one Log.  Thread-safe."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._partition: Partition | None = None
        self._position = 0
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}

    def _offsets_partition(self, create: bool) -> Partition | None:
        if self._partition is None:
            try:
                topic = self._log.topic(OFFSETS_TOPIC)
            except UnknownTopicOrPartitionError:
                if not create:
                    return None
                try:
                    self._log.create_topic(OFFSETS_TOPIC, 1, _OFFSETS_CONFIG)
                except StromError:
                    pass  # another process created it meanwhile
                topic = self._log.topic(OFFSETS_TOPIC)
            self._partition = topic.partitions[0]
        return self._partition

    def _catch_up(self) -> None:
        """Apply every commit made since the last look (lock held)."""
        p = self._offsets_partition(create=False)
        if p is None:
            return
        pos = max(self._position, p.log_start_offset)
        while True:
            batches = p.read(pos)
            if not batches:
                break
            for batch in batches:
                offsets, _ts, keys, values, _h = batch.columns()
                for offset, key, value in zip(offsets, keys or (), values):
                    if offset >= pos:
                        self._apply(key, value, batch)
                pos = batch.next_offset
        self._position = pos

    def _apply(self, key: Any, value: Any, batch: Any) -> None:
        try:
            fields = msgpack.unpackb(key)
            if not (isinstance(fields, list) and fields and fields[0] == _KIND):
                return  # a record kind of a later version: not ours to read
            _, group, topic, partition = fields
            if not (type(group) is str and type(topic) is str and type(partition) is int
                    and partition >= 0):
                raise ValueError(f"bad key {fields!r}")
            tp = TopicPartition(topic, partition)
            if value is None:
                self._offsets.get(group, {}).pop(tp, None)
                return
            offset, metadata, epoch = msgpack.unpackb(value)[:3]
            if not (type(offset) is int and offset >= 0 and type(metadata) is str
                    and type(epoch) is int):
                raise ValueError("bad field types")
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # The batch passed its checksum, so these bytes were written like
            # this, by something other than a commit: skip them, use nothing.
            log_.warning("%s: ignoring a record that is not a commit (batch at offset %d): %s",
                         OFFSETS_TOPIC, batch.base_offset, exc)
            return
        self._offsets.setdefault(group, {})[tp] = OffsetAndMetadata(offset, metadata, epoch)

    def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata], *,
               acks: int | str = "all") -> None:
        """Store ``offsets`` for ``group`` in one atomic, durable append.

        RecordTooLargeError if they do not fit in one batch (commit fewer at a time).
        """
        if not offsets:
            return
        now = int(time.time() * 1000)
        keys = [_key(group, tp) for tp in offsets]
        values = [msgpack.packb([o.offset, o.metadata, o.leader_epoch, now]) for o in offsets.values()]
        with self._lock:
            p = self._offsets_partition(create=True)
            assert p is not None
            p.append(values, keys, acks=acks, atomic=True)
            self._catch_up()

    def flush(self) -> None:
        """fsync the commits appended so far (after commits with ``acks=1``)."""
        with self._lock:
            p = self._offsets_partition(create=False)
            if p is not None:
                p.flush()

    def delete(self, group: str, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Forget ``group``'s offsets (of ``partitions``, or all), durably."""
        with self._lock:
            self._catch_up()
            tps = list(self._offsets.get(group, {}) if partitions is None else partitions)
            if not tps:
                return
            p = self._offsets_partition(create=True)
            assert p is not None
            p.append([None] * len(tps), [_key(group, tp) for tp in tps], acks="all", atomic=True)
            self._catch_up()

    def committed(self, group: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        """The last offset ``group`` committed for ``tp``, or None."""
        with self._lock:
            self._catch_up()
            return self._offsets.get(group, {}).get(tp)

    def group_offsets(self, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
        """Every committed offset of ``group``."""
        with self._lock:
            self._catch_up()
            return dict(self._offsets.get(group, {}))

    def groups(self) -> list[str]:
        """Groups with at least one committed offset."""
        with self._lock:
            self._catch_up()
            return sorted(g for g, o in self._offsets.items() if o)
