"""strom's exceptions: one root, split by who is at fault.

Every exception strom raises on purpose derives from :class:`StromError`.
Argument misuse (wrong types, bad names, bad configs) also derives from
``TypeError`` or ``ValueError`` so that ordinary Python handlers catch it.

Who is at fault:

* the caller: :class:`InvalidTopicError`, :class:`InvalidConfigError`,
  :class:`RecordTooLargeError`, :class:`InvalidRecordError`,
  :class:`TopicExistsError`, :class:`UnknownTopicOrPartitionError`,
  :class:`OffsetOutOfRangeError`, :class:`LogClosedError`,
  :class:`IllegalStateError`, :class:`IllegalArgumentError`,
  :class:`NoOffsetForPartitionError`, :class:`CommitFailedError`,
  :class:`RecordDeserializationError`, :class:`UnsupportedError`;
* the disk or another program: :class:`CorruptRecordError`,
  :class:`CorruptMetadataError`, :class:`StorageError`,
  :class:`PartitionFailedError`.
"""

from __future__ import annotations

__all__ = [
    "StromError",
    "InvalidTopicError",
    "InvalidConfigError",
    "InvalidRecordError",
    "RecordTooLargeError",
    "TopicExistsError",
    "UnknownTopicOrPartitionError",
    "UnknownTopicError",
    "OffsetOutOfRangeError",
    "LogClosedError",
    "IllegalStateError",
    "IllegalArgumentError",
    "NoOffsetForPartitionError",
    "CommitFailedError",
    "InconsistentGroupProtocolError",
    "GroupNotEmptyError",
    "RecordDeserializationError",
    "UnsupportedError",
    "StromTimeoutError",
    "CorruptionError",
    "CorruptRecordError",
    "CorruptMetadataError",
    "StorageError",
    "PartitionFailedError",
]


class StromError(Exception):
    """Root of every error strom raises on purpose."""


# -- the caller's fault ------------------------------------------------------


class InvalidTopicError(StromError, ValueError):
    """A topic name breaks Kafka's rule: ``[A-Za-z0-9._-]``, 1..249 chars, not ``.``/``..``."""


class InvalidConfigError(StromError, ValueError):
    """A configuration key is unknown or its value is out of range."""


class InvalidRecordError(StromError, TypeError):
    """A record field has the wrong type (keys and values are bytes or None)."""


class RecordTooLargeError(StromError, ValueError):
    """A record (or a batch) is larger than ``max.message.bytes`` allows."""


class TopicExistsError(StromError):
    """create_topic was asked for a name that already exists."""


class UnknownTopicOrPartitionError(StromError, KeyError):
    """The topic, or the partition number within it, does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain text
        return Exception.__str__(self)


UnknownTopicError = UnknownTopicOrPartitionError


class OffsetOutOfRangeError(StromError):
    """An offset below the log start offset or above the log end offset was asked for."""

    def __init__(self, message: str, *, offset: int | None = None,
                 log_start_offset: int | None = None, log_end_offset: int | None = None):
        super().__init__(message)
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class LogClosedError(StromError):
    """The log, topic or partition was used after close()."""


class IllegalStateError(StromError):
    """An object was used in a state that does not allow it (send() after close())."""


class IllegalArgumentError(StromError, ValueError, TypeError):
    """An argument a call cannot accept: a wrong type or a bad value (a negative offset).

    Both ``except ValueError`` and ``except TypeError`` catch it.
    """


class NoOffsetForPartitionError(StromError):
    """A consumer has no committed offset for a partition and ``auto_offset_reset`` is "none"."""

    def __init__(self, message: str, *, partitions: object = None):
        super().__init__(message)
        self.partitions = partitions


class CommitFailedError(StromError):
    """A commit was refused: the consumer no longer owns the partition (its group moved on)."""


class InconsistentGroupProtocolError(StromError):
    """A consumer offers none of the partition assignors its group's members use."""


class GroupNotEmptyError(IllegalStateError):
    """The operation needs a group with no live members (Kafka's NON_EMPTY_GROUP)."""


class RecordDeserializationError(StromError):
    """A consumer's key or value deserializer raised; the cause is chained.

    The position stays on the record (``offset``) so that nothing is skipped
    silently: seek past it to go on, as with Kafka's RecordDeserializationException.
    """

    def __init__(self, message: str, *, topic_partition: object = None, offset: int = -1):
        super().__init__(message)
        self.topic_partition = topic_partition
        self.offset = offset


class UnsupportedError(StromError, NotImplementedError):
    """A Kafka feature strom does not provide (yet), such as transactions."""


class StromTimeoutError(StromError, TimeoutError):
    """An operation did not finish in the time it was given (kafka-python's KafkaTimeoutError)."""


# -- the disk's (or another program's) fault ---------------------------------


class CorruptionError(StromError):
    """Bytes on disk fail their checks; carries the file and byte position."""

    def __init__(self, message: str, *, path: str | None = None, position: int | None = None):
        where = ""
        if path is not None:
            where = f" [{path}" + (f" @ byte {position}" if position is not None else "") + "]"
        super().__init__(message + where)
        self.path = path
        self.position = position


class CorruptRecordError(CorruptionError):
    """A record batch failed its checksum or structure checks."""


class CorruptMetadataError(CorruptionError):
    """A metadata or checkpoint file failed its checksum or could not be parsed."""


class StorageError(StromError):
    """An operating-system I/O error (EIO, ENOSPC, ...) stopped a storage operation.

    Nothing acknowledged before the error is lost; the failed operation was
    not acknowledged.  ``errno`` is the OS error number when there is one.
    """

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None):
        super().__init__(message)
        self.errno = errno
        self.path = path


class PartitionFailedError(StorageError):
    """A partition refuses writes after a failed fsync until the log is reopened.

    Linux may drop dirty pages after a writeback error and report it only once
    ("fsyncgate"), so a retried fsync could lie; reopening recovers the
    partition from what is really on disk.
    """
