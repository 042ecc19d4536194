"""Value objects of the public API: frozen, slotted, no behaviour."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

__all__ = ["TopicPartition", "RecordMetadata", "ConsumerRecord", "OffsetAndMetadata",
           "OffsetAndTimestamp", "TopicInfo", "TopicDescription", "PartitionInfo"]

#: ConsumerRecord.timestamp_type values (kafka-python's): set by the producer, or by the log.
CREATE_TIME = 0
LOG_APPEND_TIME = 1


class TopicPartition(NamedTuple):
    """A topic and a partition number (kafka-python's TopicPartition)."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a sent record was written (kafka-python 3.x's RecordMetadata fields).

    Sizes are -1 for a None key, value or header list; ``checksum`` is None
    (batches carry one checksum, records none).
    """

    topic: str
    partition: int
    topic_partition: TopicPartition
    offset: int
    timestamp: int
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int

    @property
    def log_start_offset(self) -> int:
        """-1: kafka-python 2.x's field, kept for code that reads it (3.x dropped it)."""
        return -1


class ConsumerRecord(NamedTuple):
    """One record as a consumer sees it (kafka-python 3.x's ConsumerRecord fields).

    ``timestamp_type`` is 0 (CreateTime: set by the producer) or 1
    (LogAppendTime: set by the log); ``headers`` is a list of ``(str, bytes)``
    tuples, or ``()`` when the record has none (one shared empty tuple, so a
    record without headers costs no extra object); sizes are the serialized sizes, -1 for None; ``leader_epoch`` is
    0 and ``checksum`` None (strom checksums batches, not records).  Use
    attribute access: kafka-python 2.x had no ``leader_epoch`` field.
    """

    topic: str
    partition: int
    leader_epoch: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: Any
    value: Any
    headers: list[tuple[str, bytes]]
    checksum: int | None
    serialized_key_size: int
    serialized_value_size: int
    serialized_header_size: int


class OffsetAndMetadata(NamedTuple):
    """A committed offset (the next one to read) with a free-form metadata string."""

    offset: int
    metadata: str = ""
    leader_epoch: int = -1


class OffsetAndTimestamp(NamedTuple):
    """An offset found by timestamp (``Consumer.offsets_for_times``)."""

    offset: int
    timestamp: int
    leader_epoch: int = -1


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionInfo:
    """A snapshot of one partition's extent."""

    partition: int
    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segments: int


@dataclasses.dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic's identity: name, partition count and the config it overrides."""

    name: str
    partitions: int
    config: dict[str, Any]
    topic_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic in full: every config value and every partition's extent."""

    name: str
    topic_id: str
    config: dict[str, Any]
    partitions: tuple[PartitionInfo, ...]

    @property
    def size_bytes(self) -> int:
        """Bytes on disk over all partitions."""
        return sum(p.size_bytes for p in self.partitions)
