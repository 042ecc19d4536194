"""KafkaAdminClient, NewTopic, NewPartitions, ConfigResource (src/strom/compat/admin.py).

Topics in the three create_topics forms (2.x NewTopic, 3.x names, 3.x
dict) with their errors, deletion, listing and description in 2.x and 3.x
keys; topic configs described and altered; groups listed, their offsets
read and deleted under both versions' names; what is not supported.
"""

from __future__ import annotations

import pytest

from strom.compat import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    NewPartitions,
    NewTopic,
    OffsetAndMetadata,
    TopicPartition,
    shared_log,
)
from strom.compat.errors import (
    GroupIdNotFoundError,
    IllegalStateError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    KafkaConfigurationError,
    NoError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    UnsupportedError,
)

TIMEOUT = 10  # seconds: the longest any wait may take before the test fails


@pytest.fixture
def admin():
    client = KafkaAdminClient(bootstrap_servers=["localhost:9092"])
    yield client
    client.close()


def partitions_of(name):
    return shared_log("localhost").topics()[name].partitions


# -- creating topics ----------------------------------------------------------------------


def test_create_with_new_topic_2x(admin):
    result = admin.create_topics(
        new_topics=[NewTopic(name="user-signups", num_partitions=3, replication_factor=3,
                             topic_configs={"cleanup.policy": "compact",
                                            "retention.ms": "604800000"})],
        validate_only=False)
    [entry] = result["topics"]
    assert (entry["name"], entry["error_code"], entry["num_partitions"]) == ("user-signups", 0, 3)
    assert entry["configs"]["cleanup.policy"]["value"] == "compact"
    assert partitions_of("user-signups") == 3
    desc = shared_log("localhost").describe_topic("user-signups")
    assert desc.config["cleanup.policy"] == "compact" and desc.config["retention.ms"] == 604800000


def test_new_topic_positional_2x_signature():
    topic = NewTopic("t", 2, 1)
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("t", 2, 1)
    assert topic.replica_assignments == {} and topic.topic_configs == {}
    assert "t" in repr(topic)


def test_create_with_names_3x(admin):
    admin.create_topics(["a", "b"])
    assert partitions_of("a") == partitions_of("b") == 1  # Kafka's default num.partitions


def test_create_with_dict_3x(admin):
    admin.create_topics({"orders": {"num_partitions": 4, "replication_factor": 1,
                                    "configs": {"retention.ms": 1000}},
                         "plain": {}})
    assert partitions_of("orders") == 4 and partitions_of("plain") == 1
    assert shared_log("localhost").describe_topic("orders").config["retention.ms"] == 1000


def test_replica_assignments_give_the_count(admin):
    admin.create_topics([NewTopic("r", replica_assignments={0: [1], 1: [2]})])
    assert partitions_of("r") == 2


def test_existing_topic(admin):
    admin.create_topics(["t"])
    with pytest.raises(TopicAlreadyExistsError, match="already exists"):
        admin.create_topics([NewTopic("t", 1, 1)])


def test_raise_errors_false_reports_codes_and_creates_the_rest(admin):
    admin.create_topics(["t"])
    result = admin.create_topics(["t", "fresh", "bad name"], raise_errors=False)
    codes = {e["name"]: e["error_code"] for e in result["topics"]}
    assert codes == {"t": 36, "fresh": 0, "bad name": 17}
    assert "fresh" in admin.list_topics()


def test_first_error_raised_after_the_others_are_created(admin):
    with pytest.raises(InvalidTopicError):
        admin.create_topics(["bad/name", "good"])
    assert "good" in admin.list_topics()


def test_validate_only_creates_nothing(admin):
    result = admin.create_topics([NewTopic("v", 2, 1)], validate_only=True)
    assert result["topics"][0]["error_code"] == 0
    assert "v" not in admin.list_topics()
    admin.create_topics(["v"])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics(["v"], validate_only=True)
    with pytest.raises(InvalidTopicError):
        admin.create_topics(["no!"], validate_only=True)


@pytest.mark.parametrize("topic, error", [
    (NewTopic("p", 0, 1), InvalidPartitionsError),
    (NewTopic("p", -2, 1), InvalidPartitionsError),
    (NewTopic("p", "3", 1), InvalidPartitionsError),
    (NewTopic("p", 2, 1, replica_assignments={0: [0]}), InvalidPartitionsError),
    (NewTopic("p", 1, 0), InvalidReplicationFactorError),
    (NewTopic("p", 1, -5), InvalidReplicationFactorError),
    (NewTopic("p", 1, 1, topic_configs={"retention.msec": 5}), KafkaConfigurationError),
    (NewTopic("p", 1, 1, topic_configs={"cleanup.policy": "shred"}), KafkaConfigurationError),
    (NewTopic("..", 1, 1), InvalidTopicError),
    (NewTopic(5, 1, 1), InvalidTopicError),
])
def test_bad_topics(admin, topic, error):
    with pytest.raises(error):
        admin.create_topics([topic])
    assert "p" not in admin.list_topics()


@pytest.mark.parametrize("value", ["t", None, 5, [], [b"t"], [("t", 1)]])
def test_bad_create_topics_argument(admin, value):
    with pytest.raises(KafkaConfigurationError):
        admin.create_topics(value)


# -- deleting, listing, describing ---------------------------------------------------------


def test_delete_topics(admin):
    admin.create_topics(["a", "b"])
    result = admin.delete_topics(["a"])
    assert result == {"topics": [{"name": "a", "error_code": 0, "error_message": None}]}
    assert admin.list_topics() == ["b"]
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics(["a"])
    result = admin.delete_topics(["a", "b"], raise_errors=False)
    assert [e["error_code"] for e in result["topics"]] == [3, 0]
    with pytest.raises(KafkaConfigurationError):
        admin.delete_topics("b")


def test_describe_topics_in_both_versions_keys(admin):
    admin.create_topics([NewTopic("t", 2, 1)])
    [desc] = admin.describe_topics(["t"])
    assert desc["topic"] == desc["name"] == "t" and not desc["is_internal"]
    p1 = desc["partitions"][1]
    assert (p1["partition"], p1["leader"], p1["replicas"], p1["isr"]) == (1, 0, [0], [0])  # 2.x
    assert (p1["partition_index"], p1["leader_id"], p1["replica_nodes"],
            p1["isr_nodes"]) == (1, 0, [0], [0])                                          # 3.x
    assert [d["name"] for d in admin.describe_topics()] == ["t"]
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.describe_topics(["missing"])


def test_internal_topic_is_listed_as_kafka_does(admin):
    admin.create_topics(["t"])
    assert admin.list_topics() == ["t"]  # no group has committed yet
    commit("g", {0: 0})
    assert "__consumer_offsets" in admin.list_topics()
    internal = [d for d in admin.describe_topics() if d["is_internal"]]
    assert [d["name"] for d in internal] == ["__consumer_offsets"]


def test_create_partitions_is_not_supported(admin):
    admin.create_topics(["t"])
    with pytest.raises(UnsupportedError, match="cannot add partitions"):
        admin.create_partitions({"t": NewPartitions(total_count=3)})
    assert NewPartitions(3).total_count == 3


# -- topic configs ------------------------------------------------------------------------


def test_describe_configs_filters(admin):
    admin.create_topics({"t": {"configs": {"cleanup.policy": "compact"}}})
    resource = ConfigResource(ConfigResourceType.TOPIC, "t")
    modified = admin.describe_configs([resource])["topic"]["t"]
    assert modified == {"cleanup.policy": {"value": "compact", "read_only": False,
                                           "is_sensitive": False,
                                           "config_source": "DYNAMIC_TOPIC_CONFIG"}}
    everything = admin.describe_configs([resource], config_filter="all")["topic"]["t"]
    assert everything["retention.ms"]["value"] == "604800000"
    assert everything["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
    assert admin.describe_configs([resource], config_filter="dynamic")["topic"]["t"] == everything
    defaults = admin.describe_configs([resource], config_filter="default")["topic"]["t"]
    assert "cleanup.policy" not in defaults and "retention.ms" in defaults
    chosen = admin.describe_configs([ConfigResource("topic", "t", ["retention.ms"])])
    assert list(chosen["topic"]["t"]) == ["retention.ms"]


@pytest.mark.parametrize("resource, error", [
    (ConfigResource("topic", "missing"), UnknownTopicOrPartitionError),
    (ConfigResource("broker", "0"), UnsupportedError),
    (ConfigResource("topic", "t", ["no.such.key"]), KafkaConfigurationError),
    ("t", KafkaConfigurationError),
])
def test_describe_configs_errors(admin, resource, error):
    admin.create_topics(["t"])
    with pytest.raises(error):
        admin.describe_configs([resource])


def test_describe_configs_bad_filter(admin):
    admin.create_topics(["t"])
    with pytest.raises(KafkaConfigurationError, match="config_filter"):
        admin.describe_configs([ConfigResource("topic", "t")], config_filter="static")


def test_config_resource_types():
    assert ConfigResource("TOPIC", "t").resource_type is ConfigResourceType.TOPIC
    assert ConfigResource(2, "t").resource_type is ConfigResourceType.TOPIC
    with pytest.raises(KafkaConfigurationError):
        ConfigResource("table", "t")


def test_alter_configs_set_and_delete(admin):
    admin.create_topics({"t": {"configs": {"cleanup.policy": "compact"}}})
    result = admin.alter_configs([ConfigResource("topic", "t", {"retention.ms": "1000"})])
    assert result == {"topic": {"t": "OK"}}
    config = shared_log("localhost").describe_topic("t").config
    assert config["retention.ms"] == 1000 and config["cleanup.policy"] == "compact"  # kept
    admin.alter_configs([ConfigResource("topic", "t", {"cleanup.policy": ("DELETE", None),
                                                       "segment.bytes": ("SET", 4096)})])
    config = shared_log("localhost").describe_topic("t").config
    assert config["cleanup.policy"] == "delete" and config["segment.bytes"] == 4096


def test_alter_configs_validate_only(admin):
    admin.create_topics(["t"])
    admin.alter_configs([ConfigResource("topic", "t", {"retention.ms": 5})], validate_only=True)
    assert shared_log("localhost").describe_topic("t").config["retention.ms"] == 604800000


@pytest.mark.parametrize("configs, error", [
    ({"retention.msec": 5}, KafkaConfigurationError),
    ({"retention.ms": "soon"}, KafkaConfigurationError),
    ({"cleanup.policy": ("APPEND", "compact")}, UnsupportedError),
    ({"nope": ("DELETE", None)}, KafkaConfigurationError),
    ({}, KafkaConfigurationError),
    (["retention.ms"], KafkaConfigurationError),
])
def test_alter_configs_errors_change_nothing(admin, configs, error):
    admin.create_topics(["t"])
    before = shared_log("localhost").describe_topic("t").config
    with pytest.raises(error):
        admin.alter_configs([ConfigResource("topic", "t", configs)])
    assert shared_log("localhost").describe_topic("t").config == before


# -- groups -------------------------------------------------------------------------------


def commit(group, offsets):
    consumer = KafkaConsumer(group_id=group)
    consumer.commit({TopicPartition("t", p): OffsetAndMetadata(o, "") for p, o in offsets.items()})
    consumer.close()


@pytest.fixture
def groups(admin):
    admin.create_topics([NewTopic("t", 2, 1)])
    commit("billing", {0: 5, 1: 7})
    commit("search", {0: 1})


def test_list_groups_both_versions(admin, groups):
    assert sorted(admin.list_consumer_groups()) == [("billing", "consumer"),
                                                    ("search", "consumer")]
    assert admin.list_groups() == [{"group_id": "billing", "protocol_type": "consumer"},
                                   {"group_id": "search", "protocol_type": "consumer"}]
    assert admin.list_groups(types_filter=["share"]) == []
    with pytest.raises(UnsupportedError, match="membership"):
        admin.list_groups(states_filter=["Stable"])


def test_group_offsets_both_versions(admin, groups):
    t0, t1 = TopicPartition("t", 0), TopicPartition("t", 1)
    assert admin.list_consumer_group_offsets("billing") == {t0: OffsetAndMetadata(5, "", -1),
                                                            t1: OffsetAndMetadata(7, "", -1)}
    assert admin.list_consumer_group_offsets("search", partitions=[t0, t1]) == {
        t0: OffsetAndMetadata(1, "", -1), t1: OffsetAndMetadata(-1, "", -1)}  # -1: none
    assert admin.list_consumer_group_offsets("nobody") == {}
    assert admin.list_group_offsets({"billing": [t1], "search": None}) == {
        "billing": {t1: OffsetAndMetadata(7, "", -1)}, "search": {t0: OffsetAndMetadata(1, "", -1)}}
    assert admin.list_group_offsets("search") == admin.list_group_offsets(["search"])
    with pytest.raises(KafkaConfigurationError):
        admin.list_group_offsets({})
    with pytest.raises(KafkaConfigurationError):
        admin.list_consumer_group_offsets(5)


def test_delete_groups_both_versions(admin, groups):
    assert admin.delete_consumer_groups(["billing", "ghost"]) == [("billing", NoError),
                                                                  ("ghost", GroupIdNotFoundError)]
    assert admin.delete_groups(["search", "billing"]) == {"search": "OK",
                                                          "billing": "GroupIdNotFoundError"}
    assert admin.list_consumer_groups() == []
    with pytest.raises(KafkaConfigurationError, match="list of group ids"):
        admin.delete_groups("billing")
    consumer = KafkaConsumer("t", group_id="billing", auto_offset_reset="earliest")
    assert consumer.committed(TopicPartition("t", 0)) is None
    consumer.close()


# -- the client itself --------------------------------------------------------------------


def test_unknown_option_and_network_options():
    with pytest.raises(KafkaConfigurationError, match=r"Unrecognized configs: \['brokers'\]"):
        KafkaAdminClient(brokers="x")
    KafkaAdminClient(bootstrap_servers="localhost:9092", client_id="me", request_timeout_ms=5,
                     security_protocol="SSL", api_version=(2, 8)).close()


def test_closed_client(admin):
    admin.close()
    with pytest.raises(IllegalStateError, match="closed"):
        admin.list_topics()
    with KafkaAdminClient() as other:
        assert other.list_topics() == []


UNSUPPORTED = ["describe_consumer_groups", "describe_groups", "remove_group_members",
               "alter_group_offsets", "reset_group_offsets", "delete_group_offsets",
               "delete_records", "describe_cluster", "describe_log_dirs",
               "perform_leader_election", "elect_leaders", "alter_partition_reassignments",
               "list_partition_reassignments", "describe_acls", "create_acls", "delete_acls",
               "describe_user_scram_credentials", "alter_user_scram_credentials",
               "reset_configs"]


@pytest.mark.parametrize("method", UNSUPPORTED)
def test_unsupported_methods_say_so(admin, method):
    with pytest.raises(UnsupportedError, match=f"KafkaAdminClient.{method}: ") as info:
        getattr(admin, method)(["x"])
    assert isinstance(info.value, NotImplementedError)
    assert "Not supported" in getattr(KafkaAdminClient, method).__doc__


def test_producer_sees_topics_the_admin_created(admin):
    admin.create_topics([NewTopic("wide", 5, 1)])
    producer = KafkaProducer()
    assert producer.partitions_for("wide") == {0, 1, 2, 3, 4}
    producer.close()
