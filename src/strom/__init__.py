"""strom: Apache Kafka's model (topics, partitions, offsets, retention) as an embeddable library.

A data directory is a log, the way an SQLite file is a database::

    import strom

    with strom.open("data") as log:
        log.create_topic("orders", partitions=3)
        p = log.partition("orders", 0)
        first = p.append([b"one", b"two"], keys=[b"k1", b"k2"])
        for offset, timestamp, key, value, headers in p.read_records(first):
            ...
"""

from .clock import Clock, ManualClock, SystemClock
from .codec.batch import RecordBatch
from .config import TopicConfig, validate_topic_name
from . import errors
from .errors import *  # noqa: F403 - every error class, as errors.__all__ lists them
from .records import (ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, PartitionInfo,
                      RecordMetadata, TopicDescription, TopicInfo, TopicPartition)
from .storage import Log, Partition, RecoveryResult, Topic
from .storage.cleaner import CleanResult
from .storage import open_log as open
from .client.producer import FutureRecordMetadata, Producer
from .client.consumer import Consumer, ConsumerRebalanceListener, RecordColumns
from .client.group import (ConsumerGroup, GroupDescription, MemberDescription, PartitionLag,
                           RunResult)

__version__ = "0.1.0"

__all__ = [
    "open",
    "Log",
    "Producer",
    "FutureRecordMetadata",
    "Consumer",
    "ConsumerRecord",
    "ConsumerRebalanceListener",
    "RecordColumns",
    "ConsumerGroup",
    "GroupDescription",
    "MemberDescription",
    "PartitionLag",
    "RunResult",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "TopicPartition",
    "RecordMetadata",
    "Topic",
    "Partition",
    "RecordBatch",
    "RecoveryResult",
    "CleanResult",
    "TopicConfig",
    "TopicInfo",
    "TopicDescription",
    "PartitionInfo",
    "validate_topic_name",
    "Clock",
    "SystemClock",
    "ManualClock",
    *errors.__all__,
    "__version__",
]
