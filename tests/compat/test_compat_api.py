"""strom.compat's public surface: kafka-python's names, all present and documented."""

from __future__ import annotations

import inspect

import pytest

import strom
import strom.compat
from strom.compat import admin, bootstrap, consumer, errors, producer, structs

MODULES = [strom.compat, admin, bootstrap, consumer, errors, producer, structs]

#: What ``from kafka import ...`` and ``from kafka.admin import ...`` give that the brief needs.
KAFKA_NAMES = ["KafkaProducer", "KafkaConsumer", "KafkaAdminClient", "TopicPartition",
               "OffsetAndMetadata", "OffsetAndTimestamp", "ConsumerRebalanceListener",
               "ConsumerRecord", "RecordMetadata", "NewTopic", "NewPartitions"]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_names_exist_and_are_documented(module):
    assert inspect.getdoc(module), module.__name__
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_the_drop_in_names():
    namespace = {name: getattr(strom.compat, name) for name in strom.compat.__all__}  # import *
    for name in KAFKA_NAMES:
        assert name in namespace, name
    assert namespace["KafkaProducer"].__mro__[1] is strom.Producer
    assert namespace["KafkaConsumer"].__mro__[1] is strom.Consumer
    for name in ("TopicPartition", "OffsetAndMetadata", "OffsetAndTimestamp", "ConsumerRecord",
                 "RecordMetadata", "ConsumerRebalanceListener"):
        assert namespace[name] is getattr(strom, name)  # one class, whichever name imports it
    assert structs.TopicPartition is strom.TopicPartition
    for name in ("KafkaAdminClient", "NewTopic", "NewPartitions", "ConfigResource",
                 "ConfigResourceType"):
        assert getattr(admin, name) is getattr(strom.compat, name)


def test_offset_and_metadata_takes_2x_and_3x_arguments():
    assert strom.compat.OffsetAndMetadata(5, "") == strom.compat.OffsetAndMetadata(5, "", -1)
    assert strom.compat.OffsetAndMetadata(5).metadata == ""
