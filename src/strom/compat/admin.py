"""KafkaAdminClient: kafka-python's admin client (``kafka.admin``) on a strom Log.

What it does for real, with kafka-python 3.x's return shapes (2.x returned
raw protocol responses, which have no meaning without a broker):

* topics: ``create_topics`` (a list of NewTopic, a list of names, or 3.x's
  ``{name: {"num_partitions": ..., "configs": {...}}}``), ``delete_topics``,
  ``list_topics``, ``describe_topics`` (each dict has 2.x's keys and 3.x's);
* topic configs: ``describe_configs`` and ``alter_configs`` with
  ``ConfigResource(ConfigResourceType.TOPIC, name, configs)``;
* groups, from their committed offsets: ``list_consumer_groups`` /
  ``list_groups``, ``list_consumer_group_offsets`` / ``list_group_offsets``,
  ``delete_consumer_groups`` / ``delete_groups``.

A topic has no replicas here: ``replication_factor`` is accepted (-1 or at
least 1) and ignored; every partition is led by node 0.  A group is known
once it has committed an offset (groups have no membership yet, so
``describe_consumer_groups`` is not supported and deleting a group does not
check for live members).  Adding partitions, deleting records, ACLs,
quotas, reassignments and the like raise :class:`strom.UnsupportedError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..config import TopicConfig, validate_topic_name
from ..errors import (
    IllegalStateError,
    InvalidConfigError,
    StromError,
    TopicExistsError,
    UnsupportedError,
)
from ..group.offsets import OFFSETS_TOPIC, offset_store
from ..records import OffsetAndMetadata, TopicPartition
from .bootstrap import resolve_log
from .errors import (
    GroupIdNotFoundError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    NoError,
    errno_of,
)

__all__ = [
    "KAFKA_PYTHON_CONFIGS",
    "ConfigResource",
    "ConfigResourceType",
    "KafkaAdminClient",
    "NewPartitions",
    "NewTopic",
]

#: Every KafkaAdminClient option of kafka-python 2.0 to 3.x; only bootstrap_servers and
#: client_id mean anything in-process.
KAFKA_PYTHON_CONFIGS = frozenset({
    "api_version", "api_version_auto_timeout_ms", "bootstrap_servers", "bootstrap_timeout_ms",
    "client_dns_lookup", "client_id", "connections_max_idle_ms", "default_api_timeout_ms",
    "kafka_client", "max_in_flight_requests_per_connection", "metadata_max_age_ms",
    "metric_reporters", "metrics_enabled", "metrics_num_samples", "metrics_sample_window_ms",
    "net", "proxy_url", "receive_buffer_bytes", "receive_message_max_bytes",
    "reconnect_backoff_max_ms", "reconnect_backoff_ms", "request_timeout_ms", "retry_backoff_ms",
    "sasl_kerberos_domain_name", "sasl_kerberos_name", "sasl_kerberos_service_name",
    "sasl_mechanism", "sasl_oauth_token_provider", "sasl_plain_password", "sasl_plain_username",
    "security_protocol", "selector", "send_buffer_bytes", "sock_chunk_buffer_count",
    "sock_chunk_bytes", "socket_connection_setup_timeout_max_ms",
    "socket_connection_setup_timeout_ms", "socket_options", "socks5_proxy", "ssl_cafile",
    "ssl_certfile", "ssl_check_hostname", "ssl_ciphers", "ssl_context", "ssl_crlfile",
    "ssl_keyfile", "ssl_password",
})
#: Kafka's broker default ``num.partitions``: a topic created without a count gets one.
DEFAULT_PARTITIONS = 1
#: The one node that leads every partition of an in-process log.
_NODE = 0


class NewTopic:
    """A topic to create: ``NewTopic(name, num_partitions=-1, replication_factor=-1,
    replica_assignments=None, topic_configs=None)`` (kafka-python's, deprecated in 3.x).

    ``num_partitions=-1`` means the default (1), or one partition per entry
    of ``replica_assignments``; the replicas themselves are ignored.
    """

    def __init__(self, name: str, num_partitions: int = -1, replication_factor: int = -1,
                 replica_assignments: Mapping[int, list[int]] | None = None,
                 topic_configs: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.num_partitions = num_partitions
        self.replication_factor = replication_factor
        self.replica_assignments = dict(replica_assignments or {})
        self.topic_configs = dict(topic_configs or {})

    def __repr__(self) -> str:
        return (f"NewTopic(name={self.name!r}, num_partitions={self.num_partitions}, "
                f"replication_factor={self.replication_factor}, "
                f"topic_configs={self.topic_configs!r})")


class NewPartitions:
    """A new partition count for ``create_partitions`` (which strom does not support yet)."""

    def __init__(self, total_count: int, new_assignments: list[list[int]] | None = None) -> None:
        self.total_count = total_count
        self.new_assignments = new_assignments


class ConfigResourceType(enum.IntEnum):
    """Kinds of config resources (kafka-python's numbers); strom has topic configs only."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class ConfigResource:
    """A resource whose configs to describe or alter: ``ConfigResource("topic", name, configs)``.

    ``resource_type`` is a ConfigResourceType or its name; ``configs`` is a
    list of keys (describe), or a dict of key to value or ``("SET"|"DELETE",
    value)`` (alter).
    """

    def __init__(self, resource_type: ConfigResourceType | str | int, name: str,
                 configs: Any = None) -> None:
        if not isinstance(resource_type, ConfigResourceType):
            try:
                resource_type = (ConfigResourceType(resource_type) if isinstance(resource_type, int)
                                 else ConfigResourceType[str(resource_type).upper()])
            except (KeyError, ValueError):
                raise InvalidConfigError(f"unknown config resource type {resource_type!r}") from None
        self.resource_type = resource_type
        self.name = name
        self.configs = configs

    def __repr__(self) -> str:
        return f"ConfigResource({self.resource_type!r}, {self.name!r}, {self.configs!r})"


def _topic_spec(item: Any) -> tuple[str, int, int, Mapping[int, Any], Mapping[str, Any]]:
    """(name, num_partitions, replication_factor, assignments, configs) of one create_topics entry."""
    if isinstance(item, NewTopic):
        return (item.name, item.num_partitions, item.replication_factor, item.replica_assignments,
                item.topic_configs)
    if isinstance(item, str):
        return item, -1, -1, {}, {}
    raise InvalidConfigError(f"create_topics takes NewTopic objects, topic names or a dict of "
                             f"name to options, not {type(item).__name__}")


def _config_entries(config: TopicConfig, keys: Iterable[str] | None,
                    config_filter: str) -> dict[str, dict[str, Any]]:
    """Config entries in kafka-python 3.x's describe_configs shape."""
    values = config.to_kafka()
    defaults = TopicConfig().to_kafka()
    if keys is not None:
        keys = list(keys)
        unknown = [k for k in keys if k not in values]
        if unknown:
            raise InvalidConfigError(f"Unrecognized configs: {unknown}")
    out = {}
    for key in (values if keys is None else keys):
        modified = values[key] != defaults[key]
        if keys is None and ((config_filter == "modified" and not modified)
                             or (config_filter == "default" and modified)):
            continue
        out[key] = {"value": str(values[key]), "read_only": False, "is_sensitive": False,
                    "config_source": "DYNAMIC_TOPIC_CONFIG" if modified else "DEFAULT_CONFIG"}
    return out


class KafkaAdminClient:
    """kafka-python's KafkaAdminClient: ``KafkaAdminClient(bootstrap_servers=..., **configs)``.

    Administers the Log that ``bootstrap_servers`` names (or ``log=``).
    Network options are accepted and ignored; unknown ones raise
    KafkaConfigurationError.  See the module documentation for what is
    supported.
    """

    def __init__(self, **configs: Any) -> None:
        unknown = sorted(k for k in configs if k not in KAFKA_PYTHON_CONFIGS and k != "log")
        if unknown:
            raise InvalidConfigError(f"Unrecognized configs: {unknown}")
        self.config = {"bootstrap_servers": configs.get("bootstrap_servers", "localhost"),
                       "client_id": configs.get("client_id", "strom-admin")}
        self._log = resolve_log(configs, stacklevel=2)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("the admin client is closed")

    def close(self) -> None:
        """Close the client (the shared Log stays open)."""
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topics ------------------------------------------------------------------

    def create_topics(self, new_topics: Any, timeout_ms: int | None = None,
                      validate_only: bool = False, raise_errors: bool = True,
                      wait_for_metadata: bool = False) -> dict[str, Any]:
        """Create topics: a list of NewTopic, a list of names, or ``{name: {options}}``.

        Options (3.x): ``num_partitions`` (-1: 1), ``replication_factor``
        (-1 or >= 1, ignored), ``assignments``, ``configs``.  Each topic is
        created or fails on its own; with ``raise_errors`` the first failure
        is raised afterwards (TopicAlreadyExistsError, InvalidTopicError,
        InvalidPartitionsError, KafkaConfigurationError...).  Returns
        ``{"topics": [{"name", "topic_id", "error_code", "error_message",
        "num_partitions", "replication_factor", "configs"}, ...]}``.
        """
        self._check_open()
        if isinstance(new_topics, Mapping):
            specs = []
            for name, options in new_topics.items():
                options = options or {}
                specs.append((name, options.get("num_partitions", -1),
                              options.get("replication_factor", -1),
                              options.get("assignments") or {}, options.get("configs") or {}))
        elif isinstance(new_topics, (str, bytes)) or not isinstance(new_topics, Iterable):
            raise InvalidConfigError(f"create_topics takes a list or a dict, not "
                                     f"{type(new_topics).__name__}")
        else:
            specs = [_topic_spec(item) for item in new_topics]
        if not specs:
            raise InvalidConfigError("create_topics was given no topics")
        results, first_error = [], None
        for name, partitions, replication, assignments, configs in specs:
            entry: dict[str, Any] = {"name": name, "topic_id": None, "error_code": 0,
                                     "error_message": None, "num_partitions": -1,
                                     "replication_factor": -1, "configs": {}}
            try:
                count = self._partition_count(partitions, assignments)
                if type(replication) is not int or not (replication == -1 or replication >= 1):
                    raise InvalidReplicationFactorError(
                        f"replication_factor must be -1 or at least 1, not {replication!r}")
                config = TopicConfig.from_kafka(configs)
                if validate_only:
                    validate_topic_name(name)
                    if name in self._log.topics():
                        raise TopicExistsError(f"topic {name!r} already exists")
                else:
                    info = self._log.create_topic(name, count, configs)
                    entry["topic_id"] = info.topic_id
                entry["num_partitions"] = count
                entry["replication_factor"] = 1 if replication == -1 else replication
                entry["configs"] = _config_entries(config, None, "all")
            except StromError as exc:
                entry["error_code"], entry["error_message"] = errno_of(exc), str(exc)
                first_error = first_error or exc
            results.append(entry)
        if first_error is not None and raise_errors:
            raise first_error
        return {"topics": results}

    @staticmethod
    def _partition_count(partitions: Any, assignments: Mapping[int, Any]) -> int:
        if type(partitions) is not int:
            raise InvalidPartitionsError(f"num_partitions must be an int, not {partitions!r}")
        if partitions == -1:
            return len(assignments) if assignments else DEFAULT_PARTITIONS
        if partitions < 1:
            raise InvalidPartitionsError(f"num_partitions must be -1 or at least 1, not "
                                         f"{partitions}")
        if assignments and len(assignments) != partitions:
            raise InvalidPartitionsError(f"{len(assignments)} replica assignments for "
                                         f"{partitions} partitions")
        return partitions

    def delete_topics(self, topics: Iterable[str], timeout_ms: int | None = None,
                      raise_errors: bool = True) -> dict[str, Any]:
        """Delete topics and all their data; UnknownTopicOrPartitionError for a missing one.

        Returns ``{"topics": [{"name", "error_code", "error_message"}, ...]}``.
        """
        self._check_open()
        if isinstance(topics, str):
            raise InvalidConfigError("delete_topics takes a list of topic names, not a str")
        results, first_error = [], None
        for name in topics:
            entry: dict[str, Any] = {"name": name, "error_code": 0, "error_message": None}
            try:
                self._log.delete_topic(name)
            except StromError as exc:
                entry["error_code"], entry["error_message"] = errno_of(exc), str(exc)
                first_error = first_error or exc
            results.append(entry)
        if first_error is not None and raise_errors:
            raise first_error
        return {"topics": results}

    def list_topics(self) -> list[str]:
        """Every topic name, the internal ``__consumer_offsets`` included (as Kafka lists it)."""
        self._check_open()
        return list(self._log.topics())

    def describe_topics(self, topics: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Metadata of ``topics`` (all if None): partitions, leader, replicas, isr.

        Each dict has kafka-python 2.x's keys (``topic``, ``partition``,
        ``leader``, ``replicas``, ``isr``) and 3.x's (``name``,
        ``partition_index``, ``leader_id``, ``replica_nodes``,
        ``isr_nodes``).  UnknownTopicOrPartitionError for a missing topic.
        """
        self._check_open()
        infos = self._log.topics()
        names = list(infos) if topics is None else list(topics)
        out = []
        for name in names:
            info = infos.get(name) if isinstance(name, str) else None
            if info is None:
                info = self._log.topic(name).info()  # raises for a bad or missing name
            partitions = [{
                "error_code": 0, "partition": i, "partition_index": i, "leader": _NODE,
                "leader_id": _NODE, "leader_epoch": 0, "replicas": [_NODE],
                "replica_nodes": [_NODE], "isr": [_NODE], "isr_nodes": [_NODE],
                "offline_replicas": [],
            } for i in range(info.partitions)]
            out.append({"error_code": 0, "topic": name, "name": name, "topic_id": info.topic_id,
                        "is_internal": name == OFFSETS_TOPIC, "partitions": partitions})
        return out

    def create_partitions(self, topic_partitions: Any, timeout_ms: int | None = None,
                          validate_only: bool = False, raise_errors: bool = True) -> Any:
        """Not supported: strom cannot add partitions to a topic yet (UnsupportedError)."""
        self._check_open()
        raise UnsupportedError("create_partitions: strom cannot add partitions to an existing "
                               "topic yet; create a new topic with the partition count you need")

    # -- topic configs -----------------------------------------------------------

    def _topic_resource(self, resource: Any) -> Any:
        if not isinstance(resource, ConfigResource):
            raise InvalidConfigError(f"expected a ConfigResource, not {type(resource).__name__}")
        if resource.resource_type is not ConfigResourceType.TOPIC:
            raise UnsupportedError(f"{resource.resource_type.name} configs: strom has topic "
                                   "configs only")
        return self._log.topic(resource.name)

    def describe_configs(self, config_resources: Iterable[ConfigResource],
                         include_synonyms: bool = False,
                         config_filter: str = "modified") -> dict[str, dict[str, Any]]:
        """Topic configs: ``{"topic": {name: {key: {"value": str, "config_source": ..., ...}}}}``.

        ``config_filter`` (3.x): "modified" (default: keys set on the
        topic), "all", "dynamic" (all: every topic config can be altered) or
        "default".  A resource's ``configs`` (a list of keys) selects keys
        whatever the filter.
        """
        self._check_open()
        filt = str(getattr(config_filter, "name", config_filter)).lower()
        if filt not in ("modified", "all", "dynamic", "default"):
            raise InvalidConfigError(f"config_filter {config_filter!r} is not 'modified', 'all', "
                                     "'dynamic' or 'default'")
        out: dict[str, dict[str, Any]] = {}
        for resource in config_resources:
            topic = self._topic_resource(resource)
            keys = None if resource.configs is None else list(resource.configs)
            out.setdefault("topic", {})[resource.name] = _config_entries(
                topic.config, keys, "all" if filt == "dynamic" else filt)
        return out

    def alter_configs(self, config_resources: Iterable[ConfigResource],
                      validate_only: bool = False, raise_on_unknown: bool = True,
                      incremental: bool | None = None) -> dict[str, dict[str, str]]:
        """Set (or, with ``("DELETE", None)``, reset to default) topic configs; keys not given stay.

        Returns ``{"topic": {name: "OK"}}``; an unknown key or a bad value
        raises KafkaConfigurationError and changes nothing of that topic.
        """
        self._check_open()
        defaults = TopicConfig().to_kafka()
        out: dict[str, dict[str, str]] = {}
        for resource in config_resources:
            topic = self._topic_resource(resource)
            if not isinstance(resource.configs, Mapping) or not resource.configs:
                raise InvalidConfigError("alter_configs needs each ConfigResource's configs as a "
                                         "non-empty dict of key to value")
            changes = {}
            for key, value in resource.configs.items():
                if isinstance(value, tuple):
                    op, value = value
                    op = str(getattr(op, "name", op)).upper()
                    if op in ("1", "DELETE"):
                        if key not in defaults:
                            raise InvalidConfigError(f"Unrecognized configs: [{key!r}]")
                        value = defaults[key]
                    elif op not in ("0", "SET"):
                        raise UnsupportedError(f"alter_configs: operation {op} on {key!r}; strom "
                                               "supports SET and DELETE")
                changes[key] = value
            TopicConfig.from_kafka(changes, base=topic.config)  # validate before writing
            if not validate_only:
                self._log.alter_topic(resource.name, changes)
            out.setdefault("topic", {})[resource.name] = "OK"
        return out

    # -- consumer groups ---------------------------------------------------------

    def list_consumer_groups(self, broker_ids: Any = None) -> list[tuple[str, str]]:
        """``[(group_id, "consumer"), ...]``: every group with committed offsets (kafka-python 2.x)."""
        self._check_open()
        return [(group, "consumer") for group in offset_store(self._log).groups()]

    def list_groups(self, broker_ids: Any = None, states_filter: Any = None,
                    types_filter: Any = None) -> list[dict[str, Any]]:
        """``[{"group_id", "protocol_type"}, ...]``: every group with committed offsets (3.x).

        Filtering by state needs group membership, which strom does not
        track yet: ``states_filter`` raises UnsupportedError.
        """
        self._check_open()
        if states_filter:
            raise UnsupportedError("list_groups(states_filter=...): strom does not track group "
                                   "membership or state yet")
        if types_filter and not {str(t).lower() for t in types_filter} & {"consumer", "classic"}:
            return []
        return [{"group_id": g, "protocol_type": "consumer"}
                for g in offset_store(self._log).groups()]

    def _group_offsets(self, group_id: str,
                       partitions: Iterable[TopicPartition] | None) -> dict[TopicPartition, OffsetAndMetadata]:
        if type(group_id) is not str:
            raise InvalidConfigError(f"group_id must be a str, not {type(group_id).__name__}")
        committed = offset_store(self._log).group_offsets(group_id)
        if partitions is None:
            return dict(sorted(committed.items()))
        out = {}
        for tp in partitions:
            tp = TopicPartition(*tp)
            out[tp] = committed.get(tp, OffsetAndMetadata(-1, "", -1))
        return out

    def list_consumer_group_offsets(self, group_id: str, group_coordinator_id: Any = None,
                                    partitions: Iterable[TopicPartition] | None = None
                                    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """``{TopicPartition: OffsetAndMetadata}`` committed by ``group_id`` (kafka-python 2.x).

        With ``partitions``, each one asked for is present; offset -1 means
        the group has committed nothing there.
        """
        self._check_open()
        return self._group_offsets(group_id, partitions)

    def list_group_offsets(self, group_specs: Any) -> dict[str, dict[TopicPartition, OffsetAndMetadata]]:
        """``{group_id: {TopicPartition: OffsetAndMetadata}}`` (3.x).

        ``group_specs`` is ``{group_id: [TopicPartition, ...] or None}``, a
        list of group ids, or one group id.
        """
        self._check_open()
        if isinstance(group_specs, str):
            group_specs = {group_specs: None}
        elif not isinstance(group_specs, Mapping):
            group_specs = {g: None for g in group_specs}
        if not group_specs:
            raise InvalidConfigError("list_group_offsets was given no groups")
        return {g: self._group_offsets(g, parts) for g, parts in group_specs.items()}

    def _delete_group(self, group_id: str) -> type:
        store = offset_store(self._log)
        if type(group_id) is not str or group_id not in store.groups():
            return GroupIdNotFoundError
        store.delete(group_id)
        return NoError

    def delete_consumer_groups(self, group_ids: Iterable[str],
                               group_coordinator_id: Any = None) -> list[tuple[str, type]]:
        """Delete groups' committed offsets: ``[(group_id, NoError or GroupIdNotFoundError)]`` (2.x).

        strom does not track group members yet, so a group whose consumers
        are running is deleted too (Kafka would answer NonEmptyGroupError).
        """
        self._check_open()
        return [(g, self._delete_group(g)) for g in _group_list(group_ids)]

    def delete_groups(self, group_ids: Iterable[str],
                      group_coordinator_id: Any = None) -> dict[str, str]:
        """Delete groups' committed offsets: ``{group_id: "OK" or "GroupIdNotFoundError"}`` (3.x)."""
        self._check_open()
        out = {}
        for g in _group_list(group_ids):
            result = self._delete_group(g)
            out[g] = "OK" if result is NoError else result.__name__
        return out


def _group_list(group_ids: Any) -> list[Any]:
    if isinstance(group_ids, (str, bytes)):
        raise InvalidConfigError("expected a list of group ids, not one str")
    return list(group_ids)


def _unsupported(name: str, why: str) -> Callable[..., Any]:
    def method(self: KafkaAdminClient, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError(f"KafkaAdminClient.{name}: {why}")
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Not supported: raises strom.UnsupportedError ({why})."
    return method


_NO_MEMBERSHIP = "strom does not track consumer group membership yet"
_NO_CLUSTER = "an in-process log has no brokers, replicas or cluster metadata"
_NO_SECURITY = "an in-process log has no ACLs, users or quotas"
for _name, _why in {
    "describe_consumer_groups": _NO_MEMBERSHIP,
    "describe_groups": _NO_MEMBERSHIP,
    "remove_group_members": _NO_MEMBERSHIP,
    "alter_group_offsets": _NO_MEMBERSHIP,
    "reset_group_offsets": _NO_MEMBERSHIP,
    "delete_group_offsets": _NO_MEMBERSHIP,
    "delete_records": "strom cannot move a partition's log start offset yet",
    "describe_cluster": _NO_CLUSTER,
    "describe_log_dirs": _NO_CLUSTER,
    "perform_leader_election": _NO_CLUSTER,
    "elect_leaders": _NO_CLUSTER,
    "alter_partition_reassignments": _NO_CLUSTER,
    "list_partition_reassignments": _NO_CLUSTER,
    "describe_acls": _NO_SECURITY,
    "create_acls": _NO_SECURITY,
    "delete_acls": _NO_SECURITY,
    "describe_user_scram_credentials": _NO_SECURITY,
    "alter_user_scram_credentials": _NO_SECURITY,
    "reset_configs": "use alter_configs with ('DELETE', None) values",
}.items():
    setattr(KafkaAdminClient, _name, _unsupported(_name, _why))
del _name, _why
