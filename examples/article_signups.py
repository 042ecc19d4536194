"""The article's signup pipeline ("Setting Up Your First Production-Ready Pipeline"), on strom.

Steps 2 and 3 are the article's kafka-python code with one change, the
import line (``from kafka import ...`` became ``from strom.compat import
...``), plus the few arguments and lines the article leaves implicit,
each marked "added" with the reason.  Step 1, a ``kafka-topics.sh``
command in the article, is done here with the admin client.

Run::

    python examples/article_signups.py                  # in memory
    python examples/article_signups.py --data-dir DIR   # kept in DIR (or set STROM_DATA_DIR)

The two consumers of 'analytics-group' split the topic's three partitions
between them, as the article says ("Each consumer gets a subset of
partitions. Together they process all signups."): the example prints each
one's partitions and how many signups it processed, and checks that
together they processed every new signup once.

``bootstrap_servers=['localhost:9092']`` names an in-memory log shared by
the clients of this process (strom warns once that nothing is persisted);
with ``--data-dir`` the same code keeps the topic, the signups and the
group's committed offsets in DIR, and a second run processes only the
signups it adds, resuming from the offsets the first run committed.
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
    parser.add_argument("--signups", type=int, default=100, help="signups to produce in this run")
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
        consumer_timeout_ms=500,        # added: end the loop after 0.5 s without a signup
        auto_offset_reset='earliest'    # added: the group's first run reads what is there
    )

    # Consumer for verification (same group, different partition)
    consumer_verify = KafkaConsumer(
        'user-signups',
        group_id='analytics-group',
        bootstrap_servers=['localhost:9092'],
        value_deserializer=lambda m: json.loads(m.decode('utf-8')),
        consumer_timeout_ms=500,        # added, as above
        auto_offset_reset='earliest'    # added, as above
    )

    analytics: collections.Counter[str] = collections.Counter()
    analysed: list[str] = []
    verified: list[str] = []

    def process_for_analytics(signup):  # added: the article leaves it to the reader
        analytics[signup['email'].split('@')[1]] += 1
        analysed.append(signup['user_id'])

    def verify(signup):  # added, likewise
        verified.append(signup['user_id'])

    # Added: the signups (the article's producer is called by a signup service).
    run = int(time.time() * 1000)
    new_signups = [f"user-{run}-{i:04d}" for i in range(args.signups)]
    started = time.perf_counter()
    for i, user_id in enumerate(new_signups):
        on_user_signup(user_id, f"user{i}@{('example.com', 'mail.org')[i % 2]}",
                       int(time.time() * 1000))
    produce_s = time.perf_counter() - started

    # They'll partition the work automatically
    for msg in consumer_analytics:
        process_for_analytics(msg.value)

    # Added: the article leaves out the verification consumer's loop.  Here it runs
    # after the analytics loop, in the same thread; in a service each consumer would
    # run in its own thread or process.  Either way it reads only what the group gave
    # it: the analytics consumer, alone when it subscribed, took all three partitions,
    # and at its first poll gave up the one the group moved to the verification
    # consumer when that joined (a cooperative rebalance: the other two stay put).
    for msg in consumer_verify:
        verify(msg.value)

    # Added: what each consumer was given, before close() hands its partitions back.
    split = {'analytics': consumer_analytics.assignment(),
             'verification': consumer_verify.assignment()}
    consumer_analytics.close()  # commits what it processed (enable_auto_commit)
    consumer_verify.close()
    producer.close()

    # -- Summary ----------------------------------------------------------------------
    print(f"produced {args.signups} signups (acks='all', zstd, a flush per signup) "
          f"in {produce_s * 1000:.0f} ms")
    print(f"analytics-group: 2 consumers share the {len(topic['partitions'])} partitions "
          "of user-signups")

    def partitions(name):
        return sorted(tp.partition for tp in split[name])

    def signups(n):
        return f"{n} signup{'' if n == 1 else 's'}"

    domains = ", ".join(f"{d} {n}" for d, n in sorted(analytics.items()))
    print(f"  analytics consumer: partitions {partitions('analytics')}, processed "
          f"{signups(len(analysed))}" + (f" ({domains})" if domains else ""))
    print(f"  verification consumer: partitions {partitions('verification')}, processed "
          f"{signups(len(verified))}")
    together = analysed + verified
    # A signup of an earlier run processed again would show here as one not new.
    each_once = len(set(together)) == len(together) and set(together) == set(new_signups)
    print(f"  together: {signups(len(together))}, "
          + ("each new one once" if each_once else "NOT each new one once"))
    offsets = admin.list_consumer_group_offsets('analytics-group')
    print("analytics-group committed: " + ", ".join(
        f"{tp.topic}-{tp.partition}={om.offset}" for tp, om in sorted(offsets.items())))
    admin.close()
    if not each_once:
        raise SystemExit("the group did not process every new signup exactly once")


if __name__ == "__main__":
    main()
