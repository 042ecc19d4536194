"""KafkaProducer: kafka-python's producer class on a strom Log.

It is a :class:`strom.Producer` (same send path, same futures, same
``RecordMetadata``), built from kafka-python's keyword arguments alone:

* ``bootstrap_servers`` picks the Log (see :mod:`strom.compat.bootstrap`);
  ``log=`` (strom's own) gives one directly.
* Every option of kafka-python 2.x and 3.x is accepted.  Those strom
  honours keep their meaning; network, security, retry and metadata options
  have nothing to act on in-process and are ignored; a name neither version
  knows raises ``KafkaConfigurationError("Unrecognized configs: [...]")``,
  which catches typos.
* Defaults are 3.x's where the versions differ: ``acks="all"`` (2.x had 1;
  an embedded log cannot lean on replicas, so the durable default stays).
  As in 3.x, ``enable_idempotence=True`` given together with an ``acks``
  other than "all" is refused.  Appends are exactly-once per ``send()``
  already: nothing is retried over a network.
* ``compression_type``: "zstd" as asked; "gzip", "snappy" and "lz4" are
  written as zstd too (compression is a storage detail here: consumers get
  the same bytes back); any other name raises UnsupportedCodecError.
* Transactions (``transactional_id`` and the transaction methods) raise
  :class:`strom.UnsupportedError`, which is also NotImplementedError.
* A tombstone stays a tombstone: ``send(topic, key=k, value=None)`` writes
  a null value without calling ``value_serializer`` (kafka-python 2.x would
  serialize None, so a JSON serializer wrote ``b"null"``).
* ``close()`` flushes; producers still open at interpreter exit are closed
  (flushed) by an exit hook, as kafka-python's are.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..client.producer import DEFAULTS, IGNORED, Producer
from ..errors import InvalidConfigError, UnsupportedError
from .bootstrap import _track_producer, resolve_log
from .errors import UnsupportedCodecError

__all__ = ["KAFKA_PYTHON_CONFIGS", "KafkaProducer"]

#: Every KafkaProducer option of kafka-python 2.0 to 3.x (union of their DEFAULT_CONFIGs).
KAFKA_PYTHON_CONFIGS = frozenset({
    "acks", "allow_auto_create_topics", "api_version", "api_version_auto_timeout_ms",
    "batch_size", "bootstrap_servers", "bootstrap_timeout_ms", "bootstrap_topics_filter",
    "buffer_memory", "client_dns_lookup", "client_id", "compression_type",
    "connections_max_idle_ms", "default_api_timeout_ms", "delivery_timeout_ms",
    "enable_idempotence", "kafka_client", "key_serializer", "linger_ms", "max_block_ms",
    "max_in_flight_requests_per_connection", "max_request_size", "metadata_max_age_ms",
    "metric_reporters", "metrics_enabled", "metrics_num_samples", "metrics_sample_window_ms",
    "net", "partitioner", "proxy_url", "receive_buffer_bytes", "receive_message_max_bytes",
    "reconnect_backoff_max_ms", "reconnect_backoff_ms", "request_timeout_ms", "retries",
    "retry_backoff_ms", "sasl_kerberos_domain_name", "sasl_kerberos_name",
    "sasl_kerberos_service_name", "sasl_mechanism", "sasl_oauth_token_provider",
    "sasl_plain_password", "sasl_plain_username", "security_protocol", "selector",
    "send_buffer_bytes", "sock_chunk_buffer_count", "sock_chunk_bytes",
    "socket_connection_setup_timeout_max_ms", "socket_connection_setup_timeout_ms",
    "socket_options", "socks5_proxy", "ssl_cafile", "ssl_certfile", "ssl_check_hostname",
    "ssl_ciphers", "ssl_context", "ssl_crlfile", "ssl_keyfile", "ssl_password",
    "transaction_timeout_ms", "transactional_id", "value_serializer",
})
#: kafka-python options with no effect in-process that strom.Producer does not list itself.
_IGNORED_HERE = KAFKA_PYTHON_CONFIGS - DEFAULTS.keys() - IGNORED - {
    "bootstrap_servers", "transactional_id", "transaction_timeout_ms"}
#: Codecs kafka-python offers that strom writes as zstd.
_ZSTD_ALIASES = frozenset({"gzip", "snappy", "lz4", "zstd"})
_NO_TRANSACTIONS = ("transactions are not supported by strom yet (no transactional_id, "
                    "init/begin/commit/abort_transaction or send_offsets_to_transaction)")


def producer_configs(configs: dict[str, Any]) -> dict[str, Any]:
    """Check kafka-python producer ``configs``; return those to hand to strom.Producer.

    Raises InvalidConfigError for unknown names, UnsupportedError for
    transactions and UnsupportedCodecError for a codec strom cannot write.
    """
    unknown = sorted(k for k in configs if k not in KAFKA_PYTHON_CONFIGS and k not in DEFAULTS
                     and k not in IGNORED and k != "log")
    if unknown:
        raise InvalidConfigError(f"Unrecognized configs: {unknown}")
    if configs.get("transactional_id") is not None:
        raise UnsupportedError(f"transactional_id={configs['transactional_id']!r}: "
                               f"{_NO_TRANSACTIONS}")
    if configs.get("enable_idempotence") is True and "acks" in configs and (
            configs["acks"] not in ("all", -1) or isinstance(configs["acks"], bool)):
        raise InvalidConfigError(f"enable_idempotence=True is incompatible with user-provided "
                                 f"acks={configs['acks']!r}")
    out = {k: v for k, v in configs.items()
           if k not in _IGNORED_HERE and k not in ("transactional_id", "transaction_timeout_ms")}
    codec = out.get("compression_type")
    if codec is not None:
        if not isinstance(codec, str) or codec.lower() not in _ZSTD_ALIASES | {"none"}:
            raise UnsupportedCodecError(f"compression_type {codec!r} is not supported; strom "
                                        "writes 'zstd' (also for 'gzip', 'snappy', 'lz4') or None")
        out["compression_type"] = None if codec.lower() == "none" else "zstd"
    return out


class KafkaProducer(Producer):
    """kafka-python's KafkaProducer: ``KafkaProducer(bootstrap_servers=..., **configs)``.

    A :class:`strom.Producer` on the Log that ``bootstrap_servers`` names
    (or on ``log=``).  ``send(topic, value=None, key=None, headers=None,
    partition=None, timestamp_ms=None)`` returns a FutureRecordMetadata;
    ``flush()``, ``close()``, ``partitions_for()`` and ``metrics()`` are
    strom.Producer's.  See the module documentation for how options map.
    """

    #: The options strom honours, with their defaults (kafka-python 3.x's where versions differ).
    DEFAULT_CONFIG: ClassVar[dict[str, Any]] = {"bootstrap_servers": "localhost", **DEFAULTS}

    def __init__(self, **configs: Any) -> None:
        configs = producer_configs(configs)
        servers = configs.get("bootstrap_servers", "localhost")
        log = resolve_log(configs, stacklevel=2)
        super().__init__(log, **configs)
        self.config["bootstrap_servers"] = servers
        _track_producer(self)

    def close(self, timeout: float | None = None, null_logger: bool = False) -> None:
        """Send what is pending, then stop (idempotent); the shared Log stays open."""
        super().close(timeout)

    # -- transactions: not supported -------------------------------------------

    def init_transactions(self) -> None:
        """Not supported: raises strom.UnsupportedError."""
        raise UnsupportedError(_NO_TRANSACTIONS)

    def begin_transaction(self) -> None:
        """Not supported: raises strom.UnsupportedError."""
        raise UnsupportedError(_NO_TRANSACTIONS)

    def commit_transaction(self) -> None:
        """Not supported: raises strom.UnsupportedError."""
        raise UnsupportedError(_NO_TRANSACTIONS)

    def abort_transaction(self) -> None:
        """Not supported: raises strom.UnsupportedError."""
        raise UnsupportedError(_NO_TRANSACTIONS)

    def send_offsets_to_transaction(self, offsets: Any, consumer_group_id: Any) -> None:
        """Not supported: raises strom.UnsupportedError."""
        raise UnsupportedError(_NO_TRANSACTIONS)
