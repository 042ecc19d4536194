"""TopicConfig: Kafka's names, defaults, limits and validation (src/strom/config.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strom
from strom.config import (LONG_MAX, MAX_PARTITIONS, MAX_TOPIC_NAME_LENGTH, TopicConfig,
                          validate_topic_name)
from strom.errors import InvalidConfigError, InvalidTopicError, StromError

INT_MAX = 2**31 - 1

#: Kafka's defaults, except segment.bytes (128 MiB, see config.py's docstring).
DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": 86_400_000,
    "index.interval.bytes": 4096,
    "max.compaction.lag.ms": LONG_MAX,
    "max.message.bytes": 1_048_588,
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": 0.5,
    "min.compaction.lag.ms": 0,
    "retention.bytes": -1,
    "retention.ms": 604_800_000,
    "segment.bytes": 128 * 1024 * 1024,
    "segment.ms": 604_800_000,
}

#: (key, smallest accepted, largest accepted) for every numeric key.
LIMITS = [
    ("delete.retention.ms", 0, LONG_MAX),
    ("index.interval.bytes", 0, INT_MAX),
    ("max.compaction.lag.ms", 1, LONG_MAX),
    ("max.message.bytes", 80, 64 * 1024 * 1024),
    ("min.compaction.lag.ms", 0, LONG_MAX),
    ("retention.bytes", 0, LONG_MAX),
    ("retention.ms", 0, LONG_MAX),
    ("segment.bytes", 256, INT_MAX),
    ("segment.ms", 1, LONG_MAX),
]


def attr(key: str) -> str:
    return key.replace(".", "_")


# -- defaults ---------------------------------------------------------------------


def test_defaults_match_kafka():
    config = TopicConfig()
    assert config.to_kafka() == DEFAULTS
    assert TopicConfig.from_kafka() == config
    assert TopicConfig.from_kafka(None) == config
    assert TopicConfig.from_kafka({}) == config
    for key, value in DEFAULTS.items():
        assert getattr(config, attr(key)) == value


def test_default_flags():
    config = TopicConfig()
    assert config.deletes and not config.compacts


def test_config_is_frozen():
    config = TopicConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.segment_bytes = 1  # type: ignore[misc]


def test_public_name():
    assert strom.TopicConfig is TopicConfig


# -- overrides(), to_kafka() ---------------------------------------------------------


def test_overrides_empty_for_defaults():
    assert TopicConfig().overrides() == {}


def test_overrides_only_changed_keys():
    config = TopicConfig.from_kafka({"segment.bytes": 1024, "retention.ms": -1,
                                     "cleanup.policy": "compact"})
    assert config.overrides() == {"segment.bytes": 1024, "retention.ms": -1,
                                  "cleanup.policy": "compact"}
    full = config.to_kafka()
    assert set(full) == set(DEFAULTS)
    assert full["segment.bytes"] == 1024 and full["retention.ms"] == -1
    assert full["index.interval.bytes"] == 4096


def test_override_equal_to_default_is_not_an_override():
    config = TopicConfig.from_kafka({"segment.ms": DEFAULTS["segment.ms"]})
    assert config.overrides() == {}


def test_from_kafka_over_base_keeps_the_rest():
    base = TopicConfig.from_kafka({"segment.bytes": 1024, "retention.bytes": 5000})
    new = TopicConfig.from_kafka({"retention.bytes": 6000}, base=base)
    assert new.segment_bytes == 1024 and new.retention_bytes == 6000
    assert base.retention_bytes == 5000  # the base is not changed
    assert TopicConfig.from_kafka(None, base=base) == base
    assert TopicConfig.from_kafka({}, base=base) == base


def test_to_kafka_round_trips():
    config = TopicConfig.from_kafka({"segment.bytes": 1024, "cleanup.policy": "compact,delete",
                                     "min.cleanable.dirty.ratio": 0.25,
                                     "message.timestamp.type": "LogAppendTime"})
    assert TopicConfig.from_kafka(config.to_kafka()) == config
    assert TopicConfig.from_kafka(config.overrides()) == config


_overrides = st.fixed_dictionaries({}, optional={
    "segment.bytes": st.integers(256, INT_MAX),
    "segment.ms": st.integers(1, LONG_MAX),
    "retention.ms": st.integers(-1, LONG_MAX),
    "retention.bytes": st.integers(-1, LONG_MAX),
    "index.interval.bytes": st.integers(0, INT_MAX),
    "max.message.bytes": st.integers(80, 64 * 1024 * 1024),
    "cleanup.policy": st.sampled_from(["delete", "compact", "compact,delete", "delete,compact"]),
    "compression.type": st.sampled_from(["producer", "uncompressed", "zstd"]),
    "min.cleanable.dirty.ratio": st.floats(0.0, 1.0),
    "message.timestamp.type": st.sampled_from(["CreateTime", "LogAppendTime"]),
})


@settings(max_examples=200, deadline=None)
@given(_overrides)
def test_overrides_round_trip_property(config):
    parsed = TopicConfig.from_kafka(config)
    assert TopicConfig.from_kafka(parsed.overrides()) == parsed
    assert TopicConfig.from_kafka(parsed.to_kafka()) == parsed
    as_strings = {k: str(v) for k, v in config.items()}  # Kafka's admin tools send strings
    assert TopicConfig.from_kafka(as_strings) == parsed


# -- value forms -----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("604800000", 604_800_000),
    (" 1000 ", 1000),
    ("-1", -1),
    (1000, 1000),
])
def test_ints_given_as_strings(value, expected):
    assert TopicConfig.from_kafka({"retention.ms": value}).retention_ms == expected


@pytest.mark.parametrize("value, expected", [
    ("delete", "delete"),
    ("compact", "compact"),
    ("compact,delete", "compact,delete"),
    ("delete,compact", "compact,delete"),
    (" delete , compact ", "compact,delete"),
])
def test_cleanup_policy_forms(value, expected):
    config = TopicConfig.from_kafka({"cleanup.policy": value})
    assert config.cleanup_policy == expected
    assert config.deletes == ("delete" in expected)
    assert config.compacts == ("compact" in expected)


@pytest.mark.parametrize("value, expected", [(0, 0.0), (1, 1.0), ("0.25", 0.25), (0.75, 0.75)])
def test_float_forms(value, expected):
    config = TopicConfig.from_kafka({"min.cleanable.dirty.ratio": value})
    assert config.min_cleanable_dirty_ratio == expected
    assert isinstance(config.min_cleanable_dirty_ratio, float)


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("key, low, high", LIMITS)
def test_limits_accepted_at_the_limit(key, low, high):
    assert getattr(TopicConfig.from_kafka({key: low}), attr(key)) == low
    assert getattr(TopicConfig.from_kafka({key: high}), attr(key)) == high
    assert getattr(TopicConfig.from_kafka({key: str(high)}), attr(key)) == high


@pytest.mark.parametrize("key, low, high", LIMITS)
def test_limits_rejected_one_past(key, low, high):
    below = low - 1 if key not in ("retention.ms", "retention.bytes") else -2
    for value in (below, high + 1, str(high + 1)):
        with pytest.raises(InvalidConfigError):
            TopicConfig.from_kafka({key: value})


@pytest.mark.parametrize("key", ["retention.ms", "retention.bytes"])
def test_minus_one_means_unlimited(key):
    assert getattr(TopicConfig.from_kafka({key: -1}), attr(key)) == -1
    assert getattr(TopicConfig.from_kafka({key: "-1"}), attr(key)) == -1


@pytest.mark.parametrize("key", [k for k, _, _ in LIMITS if k not in ("retention.ms", "retention.bytes")])
def test_minus_one_is_not_special_elsewhere(key):
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({key: -1})


@pytest.mark.parametrize("value", [-0.01, 1.01, "1.5", "-0.5", float("inf"), float("-inf")])
def test_ratio_limits(value):
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({"min.cleanable.dirty.ratio": value})


@pytest.mark.parametrize("value", [float("nan"), "nan", "NaN"])
def test_ratio_rejects_nan(value):
    # NaN compares False with both limits; a ratio that is not a number is not in [0, 1].
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({"min.cleanable.dirty.ratio": value})


@pytest.mark.parametrize("config", [
    {"retention.msec": 1},                         # the typo the module docstring warns of
    {"segment_bytes": 1024},                       # attribute name, not Kafka's
    {"unclean.leader.election.enable": "true"},    # a Kafka key strom does not honour
    {"": 1},
    {1: 1},
])
def test_unknown_key(config):
    with pytest.raises(InvalidConfigError, match="unknown"):
        TopicConfig.from_kafka(config)


@pytest.mark.parametrize("key, value", [
    ("segment.bytes", 1.5),
    ("segment.bytes", 1024.0),
    ("segment.bytes", "1.5"),
    ("segment.bytes", "abc"),
    ("segment.bytes", ""),
    ("segment.bytes", None),
    ("segment.bytes", True),
    ("segment.bytes", False),
    ("segment.bytes", [1024]),
    ("segment.bytes", b"1024"),
    ("retention.ms", "7d"),
    ("min.cleanable.dirty.ratio", True),
    ("min.cleanable.dirty.ratio", None),
    ("min.cleanable.dirty.ratio", "half"),
    ("cleanup.policy", 1),
    ("cleanup.policy", None),
    ("cleanup.policy", True),
    ("cleanup.policy", ["delete"]),
    ("cleanup.policy", "remove"),
    ("cleanup.policy", ""),
    ("cleanup.policy", "Delete"),
    ("cleanup.policy", "delete,,compact"),
    ("compression.type", "gzip"),
    ("compression.type", "ZSTD"),
    ("message.timestamp.type", "createtime"),
    ("message.timestamp.type", 0),
])
def test_wrong_type_or_choice(key, value):
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({key: value})


@pytest.mark.parametrize("config", [[("segment.bytes", 1024)], "segment.bytes=1024", 5, b"x"])
def test_config_must_be_a_mapping(config):
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka(config)  # type: ignore[arg-type]


def test_invalid_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        TopicConfig.from_kafka({"segment.bytes": 1})
    with pytest.raises(StromError):
        TopicConfig.from_kafka({"segment.bytes": 1})


def test_one_bad_key_rejects_the_whole_config():
    base = TopicConfig.from_kafka({"segment.bytes": 1024})
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_kafka({"segment.bytes": 2048, "retention.ms": -5}, base=base)
    assert base.segment_bytes == 1024


def test_error_message_names_the_key():
    with pytest.raises(InvalidConfigError, match="segment.bytes"):
        TopicConfig.from_kafka({"segment.bytes": 255})


# -- topic names (validate_topic_name lives here too) ----------------------------------------


def test_topic_name_limit_constants():
    assert MAX_TOPIC_NAME_LENGTH == 249
    assert MAX_PARTITIONS == 10_000


@pytest.mark.parametrize("name", ["a", "orders", "a.b-c_D9", "." * 3, "-", "_", "x" * 249])
def test_valid_topic_names(name):
    assert validate_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a\\b", "a\x00b", "x" * 250,
                                  "a b", "ü", "a~b", "a:b", "\n", 1, None, b"abc"])
def test_invalid_topic_names(name):
    with pytest.raises(InvalidTopicError):
        validate_topic_name(name)

