"""KafkaConsumer: kafka-python's consumer class on a strom Log.

It is a :class:`strom.Consumer` built from kafka-python's arguments alone:
``KafkaConsumer(*topics, bootstrap_servers=..., **configs)``.

* ``bootstrap_servers`` picks the Log (see :mod:`strom.compat.bootstrap`);
  ``log=`` (strom's own) gives one directly.
* Every option of kafka-python 2.x and 3.x is accepted: those strom
  honours keep their meaning and defaults (``auto_offset_reset="latest"``:
  a consumer started after the producer sees only what comes next, unless
  its group has committed offsets or it asks for "earliest"); network
  and security options are ignored; a name neither version knows raises
  ``KafkaConfigurationError("Unrecognized configs: [...]")``.
* Deserializers are never called for a tombstone: its value stays None.
* Consumers of a group share its partitions, in one process or many
  (docs/groups.md).  ``partition_assignment_strategy`` takes strom's
  assignor names or kafka-python's assignor classes; the default is
  cooperative-sticky (kafka-python's is range then roundrobin), so a
  rebalance moves only the partitions that change owner.
* ``close()`` commits (with auto-commit on) and leaves the shared Log open.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..client.consumer import DEFAULTS, IGNORED, Consumer
from ..errors import InvalidConfigError
from .bootstrap import resolve_log

__all__ = ["KAFKA_PYTHON_CONFIGS", "KafkaConsumer"]

#: Every KafkaConsumer option of kafka-python 2.0 to 3.x (union of their DEFAULT_CONFIGs).
KAFKA_PYTHON_CONFIGS = frozenset({
    "allow_auto_create_topics", "api_version", "api_version_auto_timeout_ms",
    "auto_commit_interval_ms", "auto_offset_reset", "bootstrap_servers", "bootstrap_timeout_ms",
    "check_crcs", "client_dns_lookup", "client_id", "client_rack", "connections_max_idle_ms",
    "consumer_timeout_ms", "default_api_timeout_ms", "default_offset_commit_callback",
    "enable_auto_commit", "enable_incremental_fetch_sessions", "exclude_internal_topics",
    "fetch_max_bytes", "fetch_max_wait_ms", "fetch_min_bytes", "group_id", "group_instance_id",
    "heartbeat_interval_ms", "isolation_level", "kafka_client", "key_deserializer",
    "legacy_iterator", "max_in_flight_requests_per_connection", "max_partition_fetch_bytes",
    "max_poll_interval_ms", "max_poll_records", "metadata_max_age_ms", "metric_group_prefix",
    "metric_reporters", "metrics_enabled", "metrics_num_samples", "metrics_sample_window_ms",
    "net", "partition_assignment_strategy", "proxy_url", "receive_buffer_bytes",
    "receive_message_max_bytes", "reconnect_backoff_max_ms", "reconnect_backoff_ms",
    "request_timeout_ms", "retry_backoff_ms", "sasl_kerberos_domain_name", "sasl_kerberos_name",
    "sasl_kerberos_service_name", "sasl_mechanism", "sasl_oauth_token_provider",
    "sasl_plain_password", "sasl_plain_username", "security_protocol", "selector",
    "send_buffer_bytes", "session_timeout_ms", "sock_chunk_buffer_count", "sock_chunk_bytes",
    "socket_connection_setup_timeout_max_ms", "socket_connection_setup_timeout_ms",
    "socket_options", "socks5_proxy", "ssl_cafile", "ssl_certfile", "ssl_check_hostname",
    "ssl_ciphers", "ssl_context", "ssl_crlfile", "ssl_keyfile", "ssl_password",
    "value_deserializer",
})
#: kafka-python options with no effect in-process that strom.Consumer does not list itself.
_IGNORED_HERE = KAFKA_PYTHON_CONFIGS - DEFAULTS.keys() - IGNORED - {"bootstrap_servers"}


def consumer_configs(configs: dict[str, Any]) -> dict[str, Any]:
    """Check kafka-python consumer ``configs``; return those to hand to strom.Consumer."""
    unknown = sorted(k for k in configs if k not in KAFKA_PYTHON_CONFIGS and k not in DEFAULTS
                     and k not in IGNORED and k != "log")
    if unknown:
        raise InvalidConfigError(f"Unrecognized configs: {unknown}")
    return {k: v for k, v in configs.items() if k not in _IGNORED_HERE}


class KafkaConsumer(Consumer):
    """kafka-python's KafkaConsumer: ``KafkaConsumer(*topics, bootstrap_servers=..., **configs)``.

    A :class:`strom.Consumer` on the Log that ``bootstrap_servers`` names
    (or on ``log=``), subscribed to ``topics``: iterate it, or ``poll()``,
    ``commit()``, ``seek()``... as with kafka-python.  See the module
    documentation for how options map.
    """

    #: The options strom honours, with their defaults (kafka-python's).
    DEFAULT_CONFIG: ClassVar[dict[str, Any]] = {"bootstrap_servers": "localhost", **DEFAULTS}

    def __init__(self, *topics: str, **configs: Any) -> None:
        configs = consumer_configs(configs)
        servers = configs.get("bootstrap_servers", "localhost")
        log = resolve_log(configs, stacklevel=2)
        super().__init__(log, *topics, **configs)
        self.config["bootstrap_servers"] = servers
