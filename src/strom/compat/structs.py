"""kafka-python's value types (``kafka.structs``): strom's own, which have the same fields.

``TopicPartition(topic, partition)``; ``OffsetAndMetadata(offset,
metadata="", leader_epoch=-1)`` takes 2.x's two arguments or 3.x's three;
``OffsetAndTimestamp(offset, timestamp, leader_epoch=-1)``.
"""

from __future__ import annotations

from ..records import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["OffsetAndMetadata", "OffsetAndTimestamp", "TopicPartition"]
