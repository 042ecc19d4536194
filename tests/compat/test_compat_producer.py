"""KafkaProducer (src/strom/compat/producer.py).

Options of kafka-python 2.x and 3.x (accepted, honoured or ignored; unknown
ones refused), 3.x defaults, idempotence conflicts, codecs, transactions,
then sending: metadata, serializers (one that raises, tombstones),
bad input and limits, auto-created and unknown topics, close.
"""

from __future__ import annotations

import json

import pytest

import strom
from strom.client.producer import DEFAULTS
from strom.codec.batch import COMPRESSION_NONE, COMPRESSION_ZSTD
from strom.compat import (
    KafkaConsumer,
    KafkaProducer,
    RecordMetadata,
    TopicPartition,
    shared_log,
)
from strom.compat.errors import (
    IllegalStateError,
    KafkaConfigurationError,
    KafkaError,
    MessageSizeTooLargeError,
    UnknownTopicOrPartitionError,
    UnsupportedCodecError,
    UnsupportedError,
)
from strom.compat.producer import KAFKA_PYTHON_CONFIGS

TIMEOUT = 10  # seconds: the longest any wait may take before the test fails

#: kafka-python 2.x options (2.0.2) that 3.x dropped, and 3.x options 2.x never had.
ONLY_2X = {"buffer_memory", "sock_chunk_bytes", "sock_chunk_buffer_count",
           "api_version_auto_timeout_ms", "bootstrap_topics_filter"}
ONLY_3X = {"net", "proxy_url", "client_dns_lookup", "bootstrap_timeout_ms",
           "default_api_timeout_ms", "socket_connection_setup_timeout_ms",
           "socket_connection_setup_timeout_max_ms"}
#: A value each ignored option would plausibly be given in a real configuration.
IGNORED_VALUES = {"bootstrap_servers": "localhost:9092", "security_protocol": "SASL_SSL",
                  "sasl_mechanism": "PLAIN",
                  "api_version": (2, 8), "retries": 5, "request_timeout_ms": 40000,
                  "max_in_flight_requests_per_connection": 1, "ssl_check_hostname": False,
                  "socket_options": [], "metric_reporters": [], "enable_idempotence": False,
                  "transaction_timeout_ms": 60000, "transactional_id": None}


def records(topic, **configs):
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=100,
                             **configs)
    out = list(consumer)
    consumer.close()
    return out


# -- configuration ---------------------------------------------------------------------


def test_is_a_strom_producer():
    producer = KafkaProducer()
    assert isinstance(producer, strom.Producer)
    assert producer.config["bootstrap_servers"] == "localhost"
    producer.close()


def test_unknown_option_is_refused_by_name():
    with pytest.raises(KafkaConfigurationError, match=r"Unrecognized configs: \['ack', 'lingerms'\]"):
        KafkaProducer(bootstrap_servers="localhost", ack="all", lingerms=5)


@pytest.mark.parametrize("name", sorted(KAFKA_PYTHON_CONFIGS - DEFAULTS.keys()))
def test_every_network_option_of_either_version_is_accepted(name):
    value = IGNORED_VALUES.get(name, "x" if "ssl" in name or "sasl" in name else 1)
    producer = KafkaProducer(**{name: value})
    producer.send("t", b"v").get(TIMEOUT)
    producer.close()


def test_version_specific_options_are_known():
    assert ONLY_2X <= KAFKA_PYTHON_CONFIGS and ONLY_3X <= KAFKA_PYTHON_CONFIGS


def test_defaults_are_3x():
    assert KafkaProducer.DEFAULT_CONFIG["acks"] == "all"  # 2.x had 1
    producer = KafkaProducer()
    assert producer.config["acks"] == "all"
    producer.close()


@pytest.mark.parametrize("acks", [0, 1, -1, "all"])
def test_acks_values(acks):
    producer = KafkaProducer(acks=acks)
    meta = producer.send("t", b"v").get(TIMEOUT)
    assert meta.offset == (-1 if acks == 0 else 0)  # acks=0: kafka-python's -1
    producer.close()


@pytest.mark.parametrize("acks", [1, 0])
def test_explicit_idempotence_conflicts_with_acks(acks):
    with pytest.raises(KafkaConfigurationError, match="enable_idempotence=True is incompatible"):
        KafkaProducer(enable_idempotence=True, acks=acks)


@pytest.mark.parametrize("configs", [{"enable_idempotence": True},
                                     {"enable_idempotence": True, "acks": "all"},
                                     {"enable_idempotence": True, "acks": -1},
                                     {"enable_idempotence": False, "acks": 1},
                                     {"acks": 1}])
def test_idempotence_without_conflict(configs):
    KafkaProducer(**configs).close()


@pytest.mark.parametrize("codec, stored", [("zstd", COMPRESSION_ZSTD), ("gzip", COMPRESSION_ZSTD),
                                           ("snappy", COMPRESSION_ZSTD), ("lz4", COMPRESSION_ZSTD),
                                           (None, COMPRESSION_NONE), ("none", COMPRESSION_NONE)])
def test_codecs(codec, stored):
    producer = KafkaProducer(compression_type=codec)
    producer.send("t", b"v" * 1000).get(TIMEOUT)
    producer.close()
    [batch] = shared_log("localhost").partition("t", 0).read(0)
    assert batch.compression == stored
    assert records("t")[0].value == b"v" * 1000


@pytest.mark.parametrize("codec", ["brotli", "", 4, "ZSTD2"])
def test_unknown_codec(codec):
    with pytest.raises(UnsupportedCodecError, match="compression_type"):
        KafkaProducer(compression_type=codec)
    assert issubclass(UnsupportedCodecError, KafkaConfigurationError)


@pytest.mark.parametrize("name, value, match", [
    ("acks", 2, "acks"), ("acks", True, "acks"), ("linger_ms", -1, "linger_ms"),
    ("batch_size", "big", "batch_size"), ("max_request_size", 0, "max_request_size"),
    ("value_serializer", "json", "value_serializer must be callable"),
    ("key_serializer", 5, "key_serializer must be callable"),
])
def test_bad_values(name, value, match):
    with pytest.raises(KafkaConfigurationError, match=match):
        KafkaProducer(**{name: value})


# -- transactions ------------------------------------------------------------------------


def test_transactional_id_is_not_supported():
    with pytest.raises(UnsupportedError, match="transactions are not supported") as info:
        KafkaProducer(transactional_id="tx-1")
    assert isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize("method, args", [
    ("init_transactions", ()), ("begin_transaction", ()), ("commit_transaction", ()),
    ("abort_transaction", ()),
    ("send_offsets_to_transaction", ({TopicPartition("t", 0): 1}, "group")),
])
def test_transaction_methods_are_not_supported(method, args):
    producer = KafkaProducer()
    with pytest.raises(UnsupportedError, match="transactions"):
        getattr(producer, method)(*args)
    producer.send("t", b"still works").get(TIMEOUT)
    producer.close()


# -- sending ----------------------------------------------------------------------------


def test_send_returns_record_metadata():
    producer = KafkaProducer(bootstrap_servers=["localhost:9092"])
    meta = producer.send("t", value=b"value", key=b"key", headers=[("h", b"1")],
                         timestamp_ms=1_700_000_000_000).get(timeout=TIMEOUT)
    assert isinstance(meta, RecordMetadata)
    assert (meta.topic, meta.partition, meta.offset, meta.timestamp) == ("t", 0, 0,
                                                                         1_700_000_000_000)
    assert meta.topic_partition == TopicPartition("t", 0)
    assert (meta.serialized_key_size, meta.serialized_value_size,
            meta.serialized_header_size) == (3, 5, 2)
    # kafka-python 3.x field order (2.x had log_start_offset after timestamp).
    assert RecordMetadata._fields[:5] == ("topic", "partition", "topic_partition", "offset",
                                          "timestamp")
    producer.close()


def test_callbacks_and_errbacks():
    producer = KafkaProducer()
    got, failed = [], []
    producer.send("t", b"v").add_callback(got.append).add_errback(failed.append)
    producer.flush()
    assert [m.offset for m in got] == [0] and not failed
    producer.close()


def test_serializers_and_keyed_partitioning():
    shared_log("localhost").create_topic("keyed", partitions=4)
    producer = KafkaProducer(key_serializer=str.encode,
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    parts = {producer.send("keyed", key=f"user-{i % 5}", value={"n": i}).get(TIMEOUT).partition
             for i in range(50)}
    by_key = {}
    for i in range(50):
        by_key.setdefault(f"user-{i % 5}", set()).add(
            producer.send("keyed", key=f"user-{i % 5}", value={"n": i}).get(TIMEOUT).partition)
    assert all(len(p) == 1 for p in by_key.values())  # a key always goes to one partition
    assert parts <= {0, 1, 2, 3}
    producer.close()
    values = [json.loads(r.value) for r in records("keyed")]
    assert len(values) == 100


def test_a_serializer_that_raises_leaves_the_producer_working():
    def serializer(v):
        if v == "boom":
            raise ValueError("cannot serialize boom")
        return v.encode()

    producer = KafkaProducer(value_serializer=serializer)
    with pytest.raises(ValueError, match="cannot serialize boom"):
        producer.send("t", "boom")
    assert producer.send("t", "fine").get(TIMEOUT).offset == 0
    producer.close()
    assert [r.value for r in records("t")] == [b"fine"]


def test_serializer_returning_the_wrong_type():
    producer = KafkaProducer(value_serializer=lambda v: v)
    with pytest.raises(TypeError, match="value must be bytes"):
        producer.send("t", {"not": "bytes"})
    producer.send("t", b"ok").get(TIMEOUT)
    producer.close()


def test_tombstone_skips_the_serializers():
    calls = []

    def serializer(v):
        calls.append(v)
        return json.dumps(v).encode("utf-8")

    def deserializer(m):
        calls.append(m)
        return json.loads(m.decode("utf-8"))

    producer = KafkaProducer(value_serializer=serializer)
    producer.send("compacted", key=b"user-1", value={"email": "a@example.com"})
    producer.send("compacted", key=b"user-1", value=None).get(TIMEOUT)
    producer.close()
    assert calls == [{"email": "a@example.com"}]  # never serializer(None) -> b"null"
    p = shared_log("localhost").partition("compacted", 0)
    assert [r[3] for r in p.read_records(0)] == [b'{"email": "a@example.com"}', None]
    got = records("compacted", value_deserializer=deserializer)
    assert [(r.key, r.value) for r in got] == [(b"user-1", {"email": "a@example.com"}),
                                               (b"user-1", None)]
    assert got[1].serialized_value_size == -1
    assert calls == [{"email": "a@example.com"}, b'{"email": "a@example.com"}']


@pytest.mark.parametrize("kwargs, error", [
    ({"value": "text"}, TypeError),                        # str without a serializer
    ({"value": b"v", "key": 5}, TypeError),
    ({"value": b"v", "headers": [("h", "not-bytes")]}, TypeError),
    ({"value": b"v", "headers": "h"}, TypeError),
    ({"value": b"v", "headers": [(1, b"v")]}, TypeError),
    ({"value": b"v", "timestamp_ms": "now"}, TypeError),
    ({}, TypeError),                                        # neither key nor value
    ({"value": b"v", "partition": 7}, UnknownTopicOrPartitionError),
    ({"value": b"v", "partition": -1}, UnknownTopicOrPartitionError),
])
def test_bad_sends(kwargs, error):
    producer = KafkaProducer()
    with pytest.raises(error):
        producer.send("t", **kwargs)
    assert isinstance(pytest.raises(KafkaError, producer.send, "t", **kwargs).value, KafkaError)
    assert producer.send("t", b"after").get(TIMEOUT).offset == 0
    producer.close()


@pytest.mark.parametrize("topic", [5, None, "bad topic", "", "a" * 250, ".."])
def test_bad_topic_names(topic):
    producer = KafkaProducer()
    with pytest.raises((TypeError, ValueError)):
        producer.send(topic, b"v")
    producer.close()


def test_record_over_max_request_size():
    producer = KafkaProducer(max_request_size=1000)
    with pytest.raises(MessageSizeTooLargeError, match="max_request_size=1000"):
        producer.send("t", b"x" * 1000)
    assert producer.send("t", b"x" * 100).get(TIMEOUT).offset == 0
    producer.close()


def test_auto_created_topic_has_one_partition():
    producer = KafkaProducer()
    assert producer.partitions_for("new-topic") == {0}
    producer.close()


def test_unknown_topic_without_auto_create():
    producer = KafkaProducer(allow_auto_create_topics=False)
    with pytest.raises(UnknownTopicOrPartitionError, match="unknown topic 'nope'"):
        producer.send("nope", b"v")
    producer.close()


def test_close_then_send():
    producer = KafkaProducer(linger_ms=60_000)
    future = producer.send("t", b"pending")
    producer.close(timeout=TIMEOUT, null_logger=True)  # 3.x's keyword accepted
    assert future.get(0).offset == 0  # close flushed it
    with pytest.raises(IllegalStateError):
        producer.send("t", b"late")
    producer.close()  # idempotent
    assert producer.bootstrap_connected()
    assert producer.metrics()["producer-metrics"]["record-send-total"] == 1
