"""The article's signup pipeline ("Setting Up Your First Production-Ready Pipeline"), on strom.

Steps 2 and 3 are the article's kafka-python code with one change, the
import line (``from kafka import ...`` became ``from strom.compat import
...``), plus the few arguments and lines the article leaves implicit,
each marked "added" with the reason.  Step 1, a ``kafka-topics.sh``
command in the article, is done here with the admin client.

Run::

    python examples/article_signups.py                  # in memory
    python examples/article_signups.py --data-dir DIR   # kept in DIR (or set STROM_DATA_DIR)

``bootstrap_servers=['localhost:9092']`` names an in-memory log shared by
the clients of this process (strom warns once that nothing is persisted);
with ``--data-dir`` the same code keeps the topic, the signups and the
group's committed offsets in DIR, and a second run picks up from there.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

from strom.compat import KafkaConsumer, KafkaProducer
from strom.compat.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
)
from strom.compat.errors import TopicAlreadyExistsError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="keep the log in this directory (default: in memory, "
                        "or STROM_DATA_DIR when set)")
    parser.add_argument("--signups", type=int, default=100, help="signups in each of two waves")
    args = parser.parse_args()
    if args.data_dir:
        # The article's code says bootstrap_servers=['localhost:9092']; this makes that name
        # open the directory instead of an in-memory log, without touching the code.
        os.environ["STROM_DATA_DIR"] = args.data_dir
    where = os.environ.get("STROM_DATA_DIR") or "memory ('localhost:9092', this process only)"
    print(f"strom log: {where}")

    # -- Step 1: create the topic ----------------------------------------------------
    # kafka-topics.sh --create --topic user-signups --partitions 3 --replication-factor 3
    #   --bootstrap-server localhost:9092 --config cleanup.policy=compact
    #   --config retention.ms=604800000
    admin = KafkaAdminClient(bootstrap_servers=['localhost:9092'])
    try:
        admin.create_topics([NewTopic('user-signups', num_partitions=3, replication_factor=3,
                                      topic_configs={'cleanup.policy': 'compact',
                                                     'retention.ms': '604800000'})])
        print("created topic user-signups")
    except TopicAlreadyExistsError:  # a second run on the same directory
        print("topic user-signups exists (from an earlier run)")
    [topic] = admin.describe_topics(['user-signups'])
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, 'user-signups',
                                                     ['cleanup.policy', 'retention.ms'])])
    shown = ", ".join(f"{k}={v['value']}" for k, v in configs['topic']['user-signups'].items())
    print(f"  {len(topic['partitions'])} partitions, {shown}")

    # -- Step 2: producer code (the article's, import line changed) -------------------
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

    # -- Step 3: two consumers, one group (the article's, import line changed) --------
    # Consumer for analytics
    consumer_analytics = KafkaConsumer(
        'user-signups',
        group_id='analytics-group',
        bootstrap_servers=['localhost:9092'],
        value_deserializer=lambda m: json.loads(m.decode('utf-8')),
        consumer_timeout_ms=1000,       # added: end the loop after 1 s without a signup
        auto_offset_reset='earliest'    # added: the group's first run reads what is there
    )

    # Consumer for verification (same group, different partition)
    consumer_verify = KafkaConsumer(
        'user-signups',
        group_id='analytics-group',
        bootstrap_servers=['localhost:9092'],
        value_deserializer=lambda m: json.loads(m.decode('utf-8')),
        consumer_timeout_ms=1000,       # added, as above
        auto_offset_reset='earliest'    # added, as above
    )

    analytics: collections.Counter[str] = collections.Counter()
    verified: list[str] = []

    def process_for_analytics(signup):  # added: the article leaves it to the reader
        analytics[signup['email'].split('@')[1]] += 1

    def verify(signup):  # added, likewise
        verified.append(signup['user_id'])

    # Wave 1 of signups (added: the article's producer is called by a signup service).
    run = int(time.time())
    started = time.perf_counter()
    for i in range(args.signups):
        on_user_signup(f"user-{run}-{i:04d}", f"user{i}@{('example.com', 'mail.org')[i % 2]}",
                       int(time.time() * 1000))
    produce_s = time.perf_counter() - started

    # They'll partition the work automatically
    for msg in consumer_analytics:
        process_for_analytics(msg.value)

    # Added: strom's consumer groups have one member for now, so each consumer of
    # 'analytics-group' is assigned all three partitions, not a share of them.  The
    # group's committed offsets still make the two consumers process each signup
    # once between them: analytics commits what it read when it closes, and the
    # verification consumer resumes from there with wave 2.
    consumer_analytics.close()
    for i in range(args.signups):
        on_user_signup(f"user-{run}-{args.signups + i:04d}", f"late{i}@example.com",
                       int(time.time() * 1000))
    for msg in consumer_verify:
        verify(msg.value)
    consumer_verify.close()
    producer.close()

    # -- Summary ----------------------------------------------------------------------
    total = sum(analytics.values())
    print(f"produced {2 * args.signups} signups in two waves (acks='all', zstd, a flush per "
          f"signup; wave 1 in {produce_s * 1000:.0f} ms)")
    print(f"analytics consumer processed {total} signups: "
          + ", ".join(f"{d} {n}" for d, n in sorted(analytics.items())))
    print(f"verification consumer processed {len(verified)} signups (resumed from the "
          "group's committed offsets)")
    offsets = admin.list_consumer_group_offsets('analytics-group')
    print("analytics-group committed: "
          + ", ".join(f"{tp.topic}-{tp.partition}={om.offset}" for tp, om in sorted(offsets.items())))
    admin.close()


if __name__ == "__main__":
    main()
