"""A drop-in for ``from kafka import ...`` (kafka-python) on strom logs.

Change a program's import line and it runs on strom::

    from strom.compat import KafkaProducer      # was: from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=["localhost:9092"], acks="all")

``bootstrap_servers`` chooses the log (strom.compat.bootstrap): a directory
path or a ``file:`` URL opens that directory; anything else, such as
``"localhost:9092"``, names an in-memory log shared by every client of this
process that gives the same addresses, with a warning, once per name, that
nothing is persisted, unless the environment variable ``STROM_DATA_DIR``
names a directory to open instead.  ``log=`` (a strom.Log) is strom's own
way to pass one.

Modules mirror kafka-python's: ``strom.compat.errors`` (``kafka.errors``),
``strom.compat.admin`` (``kafka.admin``), ``strom.compat.structs``
(``kafka.structs``).  The clients are strom's own (KafkaProducer is a
strom.Producer, KafkaConsumer a strom.Consumer) and take kafka-python's
options of 2.x and 3.x; the modules of each client say how options map
and where strom differs: transactions are not supported; a tombstone is
never passed to a (de)serializer; consumers of a group share its
partitions, across threads and processes, with cooperative rebalancing.
"""

from __future__ import annotations

from ..client.consumer import ConsumerRebalanceListener
from ..records import (
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RecordMetadata,
    TopicPartition,
)
from . import errors
from .admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)
from .bootstrap import DATA_DIR_ENV, InMemoryLogWarning, close_shared_logs, shared_log
from .consumer import KafkaConsumer
from .producer import KafkaProducer

__all__ = [
    "DATA_DIR_ENV",
    "ConfigResource",
    "ConfigResourceType",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "InMemoryLogWarning",
    "KafkaAdminClient",
    "KafkaConsumer",
    "KafkaProducer",
    "NewPartitions",
    "NewTopic",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "RecordMetadata",
    "TopicPartition",
    "close_shared_logs",
    "errors",
    "shared_log",
]
