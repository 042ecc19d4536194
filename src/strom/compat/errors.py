"""kafka-python's exception names (``kafka.errors``) on strom's one hierarchy.

``from kafka.errors import X`` becomes ``from strom.compat.errors import X``.
Where strom has a class for the same fault, the kafka-python name *is* that
class, so an ``except`` clause written for kafka-python catches what strom
raises: ``KafkaError`` is :class:`strom.StromError` (``except KafkaError``
catches everything strom raises on purpose), ``KafkaConfigurationError`` is
:class:`strom.InvalidConfigError`, ``KafkaTimeoutError`` is
:class:`strom.StromTimeoutError`, ``MessageSizeTooLargeError`` is
:class:`strom.RecordTooLargeError`, ``TopicAlreadyExistsError`` is
:class:`strom.TopicExistsError`, and so on.  Classes strom had no use for
before (codec, partition-count, replication-factor and group errors) are
defined here, each a StromError; those that stand for a Kafka protocol error
carry kafka-python's ``errno``, ``message`` and ``description``.

``BrokerResponseError`` and ``RetriableError`` are tuples of classes rather
than base classes: strom's own classes cannot derive from them, and a tuple
is what ``except`` and ``isinstance`` accept, so ``except
BrokerResponseError`` catches the same faults as with kafka-python.
``NoBrokersAvailable`` and ``KafkaConnectionError`` exist so that code that
catches them still runs; an in-process log has no broker to miss.
"""

from __future__ import annotations

from ..errors import (
    CommitFailedError,
    CorruptRecordError,
    InconsistentGroupProtocolError,
    IllegalArgumentError,
    IllegalStateError,
    InvalidConfigError,
    InvalidTopicError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StromError,
    StromTimeoutError,
    TopicExistsError,
    UnknownTopicOrPartitionError,
    UnsupportedError,
)

__all__ = [
    "BrokerResponseError",
    "CommitFailedError",
    "CorruptRecordError",
    "GroupIdNotFoundError",
    "IllegalArgumentError",
    "IllegalStateError",
    "InconsistentGroupProtocolError",
    "InvalidConfigurationError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "InvalidTopicError",
    "KafkaConfigurationError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaTimeoutError",
    "MessageSizeTooLargeError",
    "NoBrokersAvailable",
    "NoError",
    "NoOffsetForPartitionError",
    "NonEmptyGroupError",
    "OffsetOutOfRangeError",
    "RetriableError",
    "TopicAlreadyExistsError",
    "UnknownTopicOrPartitionError",
    "UnsupportedCodecError",
    "UnsupportedError",
    "errno_of",
]

# -- kafka-python names for strom's own classes --------------------------------

KafkaError = StromError
KafkaConfigurationError = InvalidConfigError
KafkaTimeoutError = StromTimeoutError
MessageSizeTooLargeError = RecordTooLargeError
TopicAlreadyExistsError = TopicExistsError
#: A topic config the log refuses (Kafka's INVALID_CONFIG, errno 40) is a bad config.
InvalidConfigurationError = InvalidConfigError


# -- classes strom had no use for before -------------------------------------------


class UnsupportedCodecError(InvalidConfigError):
    """A ``compression_type`` strom cannot write (it writes zstd or nothing)."""


class _ProtocolError(StromError):
    """A fault that Kafka's protocol names with an error code."""

    errno: int = -1
    message: str = "UNKNOWN_SERVER_ERROR"
    description: str = ""
    retriable = False


class InvalidPartitionsError(_ProtocolError, ValueError):
    """A partition count below 1 (or a topic asked to shrink)."""

    errno = 37
    message = "INVALID_PARTITIONS"
    description = "Number of partitions is invalid."


class InvalidReplicationFactorError(_ProtocolError, ValueError):
    """A replication factor that is neither -1 (the default) nor at least 1."""

    errno = 38
    message = "INVALID_REPLICATION_FACTOR"
    description = "Replication-factor is invalid."


class NonEmptyGroupError(_ProtocolError):
    """A group with live members cannot be deleted (errno 68)."""

    errno = 68
    message = "NON_EMPTY_GROUP"
    description = "The group is not empty."


class GroupIdNotFoundError(_ProtocolError):
    """No group of that id is known: it has no committed offsets (errno 69)."""

    errno = 69
    message = "GROUP_ID_NOT_FOUND"
    description = "The group id does not exist."


class NoError(_ProtocolError):
    """Not an error: the result of an admin operation that succeeded (errno 0)."""

    errno = 0
    message = "NO_ERROR"
    description = ""


class NoBrokersAvailable(StromError):
    """Never raised by strom: an in-process log has no broker to miss (kafka-python 2.x name)."""

    retriable = True


class KafkaConnectionError(StromError):
    """Never raised by strom: there is no connection to lose."""

    retriable = True


#: Catches (``except``/``isinstance``) every fault kafka-python reports with a Kafka error code.
BrokerResponseError = (OffsetOutOfRangeError, CorruptRecordError, UnknownTopicOrPartitionError,
                       RecordTooLargeError, InvalidTopicError, TopicExistsError,
                       InvalidConfigError, _ProtocolError)
#: Catches the faults worth retrying: timeouts (and the network errors strom never raises).
RetriableError = (StromTimeoutError, NoBrokersAvailable, KafkaConnectionError)

#: Kafka's error codes of strom's own classes (the new classes carry theirs as ``errno``).
_ERRNO: dict[type, int] = {
    OffsetOutOfRangeError: 1,
    CorruptRecordError: 2,
    UnknownTopicOrPartitionError: 3,
    RecordTooLargeError: 10,
    InvalidTopicError: 17,
    TopicExistsError: 36,
    InvalidConfigError: 40,
}


def errno_of(error: BaseException | type) -> int:
    """Kafka's error code for an exception (or class): 0 for NoError, -1 when Kafka has none."""
    cls = error if isinstance(error, type) else type(error)
    if issubclass(cls, _ProtocolError):
        return cls.errno
    for base in cls.__mro__:
        if base in _ERRNO:
            return _ERRNO[base]
    return -1
