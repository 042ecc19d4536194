"""The article's Python snippets run on strom with only their import line changed.

The snippets below are the article's code as printed (its text lost the
indentation, restored here); each test swaps ``from kafka import`` for
``from strom.compat import`` (and checks that nothing else changed), then
execs the code as the article's reader would run it: in memory, as
``bootstrap_servers=['localhost:9092']`` says, and on a directory through
``STROM_DATA_DIR``.

The article's consumers block for ever (no ``consumer_timeout_ms``) and
start at the log end (kafka-python's default ``auto_offset_reset``), as
services do; so, as in production, a producer thread keeps sending while
they run, and the test ends the loop from inside the functions the article
leaves to the reader (``process_for_analytics``, and ``print`` for the
online-learning loop) once enough records went through.  A watchdog wakes
a consumer that waits too long, so a failure cannot hang the run.
"""

from __future__ import annotations

import json
import random
import threading

import pytest

import strom
from strom.compat import DATA_DIR_ENV, KafkaProducer, close_shared_logs
from strom.compat.admin import ConfigResource, KafkaAdminClient, NewTopic

TIMEOUT = 30  # seconds before the watchdog ends a consumer loop that is stuck

ONLINE_LEARNING = """\
from kafka import KafkaConsumer
import json
import numpy as np
from sklearn.linear_model import SGDClassifier
# Online learning via Kafka stream
consumer = KafkaConsumer(
    'user-interactions',
    bootstrap_servers=['localhost:9092'],
    value_deserializer=lambda m: json.loads(m.decode('utf-8'))
)
model = SGDClassifier()
for message in consumer:
    feature_vector = np.array(message.value['features']).reshape(1, -1)
    label = message.value['clicked']
    model.partial_fit(feature_vector, label, classes=[0, 1])
    # Score for inference
    prediction = model.predict(feature_vector)[0]
    print(f"Prediction: {prediction}, Window: {message.key}")
"""

SIGNUP_PRODUCER = """\
from kafka import KafkaProducer
import json
producer = KafkaProducer(
    bootstrap_servers=['localhost:9092'],
    value_serializer=lambda v: json.dumps(v).encode('utf-8'),
    acks='all',
    compression_type='zstd'
)
def on_user_signup(user_id, email, signup_time):
    event = {
        'user_id': user_id,
        'email': email,
        'signup_time': signup_time,
        'event_type': 'user.signup'
    }
    producer.send('user-signups', key=user_id.encode(), value=event)
    producer.flush()
"""

SIGNUP_CONSUMERS = """\
from kafka import KafkaConsumer
import json
# Consumer for analytics
consumer_analytics = KafkaConsumer(
    'user-signups',
    group_id='analytics-group',
    bootstrap_servers=['localhost:9092'],
    value_deserializer=lambda m: json.loads(m.decode('utf-8'))
)
# Consumer for verification (same group, different partition)
consumer_verify = KafkaConsumer(
    'user-signups',
    group_id='analytics-group',
    bootstrap_servers=['localhost:9092'],
    value_deserializer=lambda m: json.loads(m.decode('utf-8'))
)
# They'll partition the work automatically
for msg in consumer_analytics:
    process_for_analytics(msg.value)
"""

SNIPPETS = {"online-learning": ONLINE_LEARNING, "signup-producer": SIGNUP_PRODUCER,
            "signup-consumers": SIGNUP_CONSUMERS}


def on_strom(snippet: str) -> str:
    """The snippet with its import line changed, and nothing else."""
    changed = snippet.replace("from kafka import ", "from strom.compat import ")
    diff = [(a, b) for a, b in zip(snippet.splitlines(), changed.splitlines()) if a != b]
    assert len(diff) == 1 and diff[0][0].startswith("from kafka import "), diff
    return changed


class Enough(Exception):
    """Raised from inside a snippet's loop once the test has seen what it needs."""


@pytest.fixture(params=["memory", "directory"])
def where(request, tmp_path, monkeypatch):
    if request.param == "directory":
        monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "log"))
        return tmp_path / "log"
    return None


def keep_sending(send, stop: threading.Event, limit: int = 5000) -> threading.Thread:
    def run():
        for i in range(limit):
            if stop.is_set():
                return
            send(i)
            stop.wait(0.002)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_until(snippet: str, namespace: dict, consumer_name: str) -> None:
    """Exec ``snippet`` until it raises Enough; a watchdog wakes its consumer if it stalls."""
    def wake():
        consumer = namespace.get(consumer_name)
        if consumer is not None:
            consumer.wakeup()
    watchdog = threading.Timer(TIMEOUT, wake)
    watchdog.start()
    try:
        exec(compile(on_strom(snippet), "<article>", "exec"), namespace)  # noqa: S102 - the point
    except Enough:
        pass
    finally:
        watchdog.cancel()


def test_signup_pipeline(where):
    # Step 1 of the article is a kafka-topics.sh command; the admin client does the same.
    admin = KafkaAdminClient(bootstrap_servers=['localhost:9092'])
    admin.create_topics([NewTopic('user-signups', num_partitions=3, replication_factor=3,
                                  topic_configs={'cleanup.policy': 'compact',
                                                 'retention.ms': '604800000'})])
    producer_ns: dict = {}
    exec(compile(on_strom(SIGNUP_PRODUCER), "<article>", "exec"), producer_ns)  # noqa: S102
    sent = []

    def signup(i):
        user_id = f"user-{i:05d}"
        producer_ns["on_user_signup"](user_id, f"{user_id}@example.com", 1_700_000_000_000 + i)
        sent.append(user_id)

    processed = []

    def process_for_analytics(value):
        processed.append(value)
        if len(processed) == 40:
            raise Enough

    stop = threading.Event()
    sender = keep_sending(signup, stop)
    consumer_ns = {"process_for_analytics": process_for_analytics}
    try:
        run_until(SIGNUP_CONSUMERS, consumer_ns, "consumer_analytics")
    finally:
        stop.set()
        sender.join(TIMEOUT)
    assert len(processed) == 40
    assert all(v["event_type"] == "user.signup" and v["email"] == v["user_id"] + "@example.com"
               for v in processed)
    assert {v["user_id"] for v in processed} <= set(sent)
    for name in ("consumer_analytics", "consumer_verify"):
        consumer_ns[name].close()
    producer_ns["producer"].close()
    described = admin.describe_configs([ConfigResource("topic", "user-signups")])
    described = described["topic"]["user-signups"]
    assert described["cleanup.policy"]["value"] == "compact"
    admin.close()
    if where is not None:
        close_shared_logs()
        with strom.open(where) as log:
            total = sum(p.log_end_offset for p in log.describe_topic("user-signups").partitions)
            assert total == len(sent)


def test_online_learning(where):
    producer = KafkaProducer(bootstrap_servers=['localhost:9092'],
                             value_serializer=lambda v: json.dumps(v).encode('utf-8'))
    rng = random.Random(3)

    def interaction(i):
        features = [rng.uniform(-1, 1) for _ in range(4)]
        clicked = 1 if features[0] - features[1] > 0 else 0
        # partial_fit wants y as a 1-d array: the label travels as a one-element list.
        producer.send('user-interactions', key=f"window-{i // 10}".encode(),
                      value={'features': features, 'clicked': [clicked]})

    printed = []

    def print_(line):
        printed.append(line)
        if len(printed) == 50:
            raise Enough

    stop = threading.Event()
    sender = keep_sending(interaction, stop)
    namespace = {"print": print_}
    try:
        run_until(ONLINE_LEARNING, namespace, "consumer")
    finally:
        stop.set()
        sender.join(TIMEOUT)
    producer.close()
    namespace["consumer"].close()
    assert len(printed) == 50
    assert all(line.startswith("Prediction: ") and ", Window: b'window-" in line
               for line in printed)
    assert namespace["model"].classes_.tolist() == [0, 1]
    if where is not None:
        assert (where / "user-interactions").is_dir()
