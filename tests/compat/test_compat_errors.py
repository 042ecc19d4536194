"""kafka-python's error names (src/strom/compat/errors.py).

The names of faults strom already had are those very classes, so an
``except`` written for kafka-python catches what strom raises; the new
classes are StromErrors with kafka-python's error codes; the tuples
BrokerResponseError and RetriableError work in ``except`` and isinstance.
"""

from __future__ import annotations

import inspect

import pytest

import strom
from strom.compat import KafkaAdminClient, KafkaConsumer, KafkaProducer, errors

SAME_CLASS = {
    "KafkaError": strom.StromError,
    "KafkaConfigurationError": strom.InvalidConfigError,
    "KafkaTimeoutError": strom.StromTimeoutError,
    "IllegalStateError": strom.IllegalStateError,
    "IllegalArgumentError": strom.IllegalArgumentError,
    "CommitFailedError": strom.CommitFailedError,
    "NoOffsetForPartitionError": strom.NoOffsetForPartitionError,
    "OffsetOutOfRangeError": strom.OffsetOutOfRangeError,
    "CorruptRecordError": strom.CorruptRecordError,
    "UnknownTopicOrPartitionError": strom.UnknownTopicOrPartitionError,
    "MessageSizeTooLargeError": strom.RecordTooLargeError,
    "InvalidTopicError": strom.InvalidTopicError,
    "TopicAlreadyExistsError": strom.TopicExistsError,
    "InvalidConfigurationError": strom.InvalidConfigError,
    "UnsupportedError": strom.UnsupportedError,
}


@pytest.mark.parametrize("name", sorted(SAME_CLASS))
def test_kafka_name_is_stroms_class(name):
    assert getattr(errors, name) is SAME_CLASS[name]


@pytest.mark.parametrize("name", [n for n in errors.__all__ if n not in SAME_CLASS
                                  and inspect.isclass(getattr(errors, n))])
def test_new_classes_are_stromerrors_with_docs(name):
    cls = getattr(errors, name)
    assert issubclass(cls, strom.StromError)
    assert inspect.getdoc(cls)


def test_every_name_exists_and_is_documented():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
        else:
            assert isinstance(obj, tuple) and all(issubclass(c, BaseException) for c in obj), name


@pytest.mark.parametrize("cls, errno", [
    (errors.OffsetOutOfRangeError, 1), (errors.CorruptRecordError, 2),
    (errors.UnknownTopicOrPartitionError, 3), (errors.MessageSizeTooLargeError, 10),
    (errors.InvalidTopicError, 17), (errors.TopicAlreadyExistsError, 36),
    (errors.InvalidPartitionsError, 37), (errors.InvalidReplicationFactorError, 38),
    (errors.InvalidConfigurationError, 40), (errors.NonEmptyGroupError, 68),
    (errors.GroupIdNotFoundError, 69), (errors.NoError, 0), (errors.UnsupportedCodecError, 40),
    (errors.KafkaTimeoutError, -1), (ValueError, -1),
])
def test_errno(cls, errno):
    assert errors.errno_of(cls) == errno
    assert errors.errno_of(cls("x")) == errno


def test_new_classes_carry_kafka_python_attributes():
    assert errors.GroupIdNotFoundError.message == "GROUP_ID_NOT_FOUND"
    assert errors.NonEmptyGroupError.errno == 68
    assert errors.NoBrokersAvailable.retriable
    assert errors.TopicAlreadyExistsError.__name__ == "TopicExistsError"  # strom's own class


def test_argument_misuse_is_also_a_builtin_error():
    assert issubclass(errors.KafkaConfigurationError, ValueError)
    assert issubclass(errors.UnsupportedCodecError, errors.KafkaConfigurationError)
    assert issubclass(errors.InvalidPartitionsError, ValueError)
    assert issubclass(errors.UnsupportedError, NotImplementedError)
    assert issubclass(errors.KafkaTimeoutError, TimeoutError)


def test_kafka_error_catches_what_the_clients_raise():
    raised = []
    for attempt in (lambda: KafkaProducer(no_such_option=1),
                    lambda: KafkaConsumer(group_id=""),
                    lambda: KafkaProducer(transactional_id="tx"),
                    lambda: KafkaAdminClient().create_partitions({}),
                    lambda: KafkaProducer().send("bad topic!", b"v")):
        try:
            attempt()
        except errors.KafkaError as exc:
            raised.append(type(exc))
    assert len(raised) == 5


def test_broker_response_error_tuple_catches_protocol_faults():
    producer = KafkaProducer(allow_auto_create_topics=False)
    with pytest.raises(errors.BrokerResponseError):
        producer.send("missing", b"v")
    try:
        KafkaAdminClient().create_topics(["dup"])
        KafkaAdminClient().create_topics(["dup"])
    except errors.BrokerResponseError as exc:
        assert isinstance(exc, errors.TopicAlreadyExistsError)
    else:
        pytest.fail("no error")
    assert isinstance(errors.GroupIdNotFoundError("x"), errors.BrokerResponseError)
    assert not isinstance(errors.KafkaTimeoutError("x"), errors.BrokerResponseError)
    producer.close()


def test_retriable_error_tuple():
    assert isinstance(errors.KafkaTimeoutError("x"), errors.RetriableError)
    assert not isinstance(errors.KafkaConfigurationError("x"), errors.RetriableError)


def test_timeout_is_kafka_timeout_error():
    producer = KafkaProducer(linger_ms=60_000)
    future = producer.send("t", b"v")
    with pytest.raises(errors.KafkaTimeoutError):
        future.get(timeout=0.01)
    producer.close()
    assert future.get(timeout=0).offset == 0  # close() flushed it
