"""Per-topic configuration: Kafka's names, defaults, limits and validation.

A topic's config is given with Kafka's dotted names (``segment.bytes``,
``retention.ms``, ...) as ints or as strings (Kafka's admin tools send
strings).  Only keys strom honours are accepted; an unknown key is an error,
because a silently ignored typo (``retention.msec``) is how data outlives its
welcome or vanishes early.

Defaults follow Kafka except where noted:

* ``segment.bytes`` defaults to 128 MiB, not Kafka's 1 GiB: recovery after a
  crash re-checks at most the active segment past its last checkpoint, and a
  Python scan of 128 MiB takes about a tenth of a second.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidConfigError, InvalidTopicError

__all__ = ["TopicConfig", "validate_topic_name", "MAX_TOPIC_NAME_LENGTH", "MAX_PARTITIONS"]

#: Kafka's limit (249): a topic folder name plus a partition suffix must fit in 255 bytes.
MAX_TOPIC_NAME_LENGTH = 249
#: A bound on partitions per topic, so a typo cannot create a million folders.
MAX_PARTITIONS = 10_000
_LEGAL_TOPIC = re.compile(r"[A-Za-z0-9._-]+")

#: Largest int64, Kafka's "never" for *.lag.ms settings.
LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1


def validate_topic_name(name: object) -> str:
    """Return ``name`` if it is a legal topic name, else raise InvalidTopicError.

    Kafka's rule: 1 to 249 characters from ``[A-Za-z0-9._-]``, and not ``.``
    or ``..``.  The rule keeps every name inside the data directory: no path
    separator, no parent reference, no NUL.
    """
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidTopicError("topic name is empty")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name is {len(name)} characters; the limit is {MAX_TOPIC_NAME_LENGTH}")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name cannot be {name!r}")
    if not _LEGAL_TOPIC.fullmatch(name):
        bad = sorted({c for c in name if not _LEGAL_TOPIC.fullmatch(c)})
        raise InvalidTopicError(
            f"topic name {name!r} has illegal characters {bad!r}; legal are ASCII letters, "
            "digits, '.', '_' and '-'")
    return name


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    attr: str
    kind: type
    default: Any
    minimum: Any = None
    maximum: Any = None
    choices: tuple[str, ...] | None = None
    allow_minus_one: bool = False


_KEYS: dict[str, _Key] = {
    "cleanup.policy": _Key("cleanup_policy", str, "delete",
                           choices=("delete", "compact", "compact,delete")),
    "compression.type": _Key("compression_type", str, "producer",
                             choices=("producer", "uncompressed", "zstd")),
    "delete.retention.ms": _Key("delete_retention_ms", int, 86_400_000, 0, LONG_MAX),
    "index.interval.bytes": _Key("index_interval_bytes", int, 4096, 0, _INT_MAX),
    "max.compaction.lag.ms": _Key("max_compaction_lag_ms", int, LONG_MAX, 1, LONG_MAX),
    "max.message.bytes": _Key("max_message_bytes", int, 1_048_588, 64 + 16, 64 * 1024 * 1024),
    "message.timestamp.type": _Key("message_timestamp_type", str, "CreateTime",
                                   choices=("CreateTime", "LogAppendTime")),
    "min.cleanable.dirty.ratio": _Key("min_cleanable_dirty_ratio", float, 0.5, 0.0, 1.0),
    "min.compaction.lag.ms": _Key("min_compaction_lag_ms", int, 0, 0, LONG_MAX),
    "retention.bytes": _Key("retention_bytes", int, -1, 0, LONG_MAX, allow_minus_one=True),
    "retention.ms": _Key("retention_ms", int, 604_800_000, 0, LONG_MAX, allow_minus_one=True),
    "segment.bytes": _Key("segment_bytes", int, 128 * 1024 * 1024, 256, _INT_MAX),
    "segment.ms": _Key("segment_ms", int, 604_800_000, 1, LONG_MAX),
}


def _coerce(name: str, spec: _Key, value: Any) -> Any:
    if isinstance(value, bool):
        raise InvalidConfigError(f"{name}: expected {spec.kind.__name__}, got bool")
    if spec.kind is str:
        if not isinstance(value, str):
            raise InvalidConfigError(f"{name}: expected a string, got {type(value).__name__}")
        value = value.strip()
        if name == "cleanup.policy":
            value = ",".join(sorted(p.strip() for p in value.split(",")))
        if spec.choices is not None and value not in spec.choices:
            raise InvalidConfigError(f"{name}: {value!r} is not one of {list(spec.choices)}")
        return value
    try:
        if isinstance(value, str):
            value = spec.kind(value.strip())
        elif spec.kind is float and isinstance(value, (int, float)):
            value = float(value)
        elif spec.kind is int and isinstance(value, int):
            value = int(value)
        else:
            raise TypeError
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"{name}: expected {spec.kind.__name__}, got {value!r}") from None
    if value != value:  # NaN passes every range comparison
        raise InvalidConfigError(f"{name}: NaN is not a valid value")
    if spec.allow_minus_one and value == -1:
        return value
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidConfigError(f"{name}: {value} is below the minimum {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidConfigError(f"{name}: {value} is above the maximum {spec.maximum}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic's settings, validated; build with :meth:`from_kafka`.

    Attribute names are Kafka's with ``_`` for ``.``; ``-1`` means unlimited
    for ``retention.ms`` and ``retention.bytes``.
    """

    cleanup_policy: str = "delete"
    compression_type: str = "producer"
    delete_retention_ms: int = 86_400_000
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1_048_588
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    retention_bytes: int = -1
    retention_ms: int = 604_800_000
    segment_bytes: int = 128 * 1024 * 1024
    segment_ms: int = 604_800_000

    @classmethod
    def from_kafka(cls, config: Mapping[str, Any] | None = None,
                   base: TopicConfig | None = None) -> TopicConfig:
        """Validate a mapping of Kafka names over ``base`` (or the defaults)."""
        if config is None:
            return base or cls()
        if not isinstance(config, Mapping):
            raise InvalidConfigError(f"config must be a mapping, not {type(config).__name__}")
        changes = {}
        for name, value in config.items():
            spec = _KEYS.get(name)
            if spec is None:
                raise InvalidConfigError(
                    f"unknown topic config {name!r}; known: {', '.join(sorted(_KEYS))}")
            changes[spec.attr] = _coerce(name, spec, value)
        return dataclasses.replace(base or cls(), **changes)

    def to_kafka(self) -> dict[str, Any]:
        """Every setting, by Kafka name."""
        return {name: getattr(self, spec.attr) for name, spec in _KEYS.items()}

    def overrides(self) -> dict[str, Any]:
        """Only the settings that differ from the defaults, by Kafka name."""
        return {name: getattr(self, spec.attr) for name, spec in _KEYS.items()
                if getattr(self, spec.attr) != spec.default}

    @property
    def deletes(self) -> bool:
        """True when ``cleanup.policy`` includes ``delete`` (time/size retention)."""
        return "delete" in self.cleanup_policy.split(",")

    @property
    def compacts(self) -> bool:
        """True when ``cleanup.policy`` includes ``compact``."""
        return "compact" in self.cleanup_policy.split(",")


def _check_defaults() -> None:
    default = TopicConfig()
    for spec in _KEYS.values():
        assert getattr(default, spec.attr) == spec.default, spec.attr


_check_defaults()
