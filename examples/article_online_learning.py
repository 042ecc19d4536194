"""The article's online-learning consumer ("AI and Machine Learning Pipelines"), on strom.

The consumer loop is the article's kafka-python code with one change, the
import line (``from kafka import KafkaConsumer`` became ``from
strom.compat import KafkaConsumer``), plus what the article leaves
implicit, each marked "added" with the reason.  The article shows no
producer; here a thread plays the recommendation service, sending
synthetic 'user-interactions' events (a feature vector and whether the
user clicked) while the model learns from them one at a time.

Run (needs numpy and scikit-learn: ``pip install -e '.[examples]'``)::

    python examples/article_online_learning.py                  # in memory
    python examples/article_online_learning.py --data-dir DIR   # kept in DIR (or STROM_DATA_DIR)

The consumer has no group and starts at the earliest offset, so a second
run on the same directory learns from the events of earlier runs too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time

import numpy as np
from sklearn.linear_model import SGDClassifier

from strom.compat import KafkaConsumer, KafkaProducer

#: The hidden preference the synthetic users click by (the model has to learn it).
TRUE_WEIGHTS = [1.5, -2.0, 0.5, 1.0, -0.5]


def interaction(rng: random.Random) -> dict:
    """One synthetic event: features, and ``clicked`` drawn from a logistic model of them."""
    features = [round(rng.uniform(-1, 1), 4) for _ in TRUE_WEIGHTS]
    score = sum(w * x for w, x in zip(TRUE_WEIGHTS, features))
    clicked = 1 if rng.random() < 1 / (1 + np.exp(-4 * score)) else 0
    # The label travels as a one-element list: the article's loop passes it straight to
    # SGDClassifier.partial_fit, which needs y as a 1-d array (a bare 0/1 is refused).
    return {'features': features, 'clicked': [clicked]}


def produce_interactions(events: int, seed: int) -> None:
    """The recommendation service: ``events`` interactions, keyed by a 50-event window."""
    producer = KafkaProducer(
        bootstrap_servers=['localhost:9092'],
        value_serializer=lambda v: json.dumps(v).encode('utf-8'),
        acks='all',
    )
    rng = random.Random(seed)
    for i in range(events):
        producer.send('user-interactions', key=f"window-{i // 50}".encode(),
                      value=interaction(rng))
    producer.close()  # flushes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="keep the log in this directory (default: in memory, "
                        "or STROM_DATA_DIR when set)")
    parser.add_argument("--events", type=int, default=200, help="interactions to send")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.data_dir:
        # The article's code says bootstrap_servers=['localhost:9092']; this makes that name
        # open the directory instead of an in-memory log, without touching the code.
        os.environ["STROM_DATA_DIR"] = args.data_dir
    where = os.environ.get("STROM_DATA_DIR") or "memory ('localhost:9092', this process only)"
    print(f"strom log: {where}")

    # Added: the stream the article's consumer reads, produced while it learns.
    service = threading.Thread(target=produce_interactions, args=(args.events, args.seed))
    service.start()
    started = time.perf_counter()
    seen = 0  # added: counted for the summary

    # -- The article's code (import line changed) ---------------------------------------
    # Online learning via Kafka stream
    consumer = KafkaConsumer(
        'user-interactions',
        bootstrap_servers=['localhost:9092'],
        value_deserializer=lambda m: json.loads(m.decode('utf-8')),
        consumer_timeout_ms=2000,       # added: end the loop 2 s after the last event
        auto_offset_reset='earliest'    # added: also learn from events sent before the
    )                                   # consumer's first fetch (the default is 'latest')

    model = SGDClassifier()

    for message in consumer:
        feature_vector = np.array(message.value['features']).reshape(1, -1)
        label = message.value['clicked']
        model.partial_fit(feature_vector, label, classes=[0, 1])

        # Score for inference
        prediction = model.predict(feature_vector)[0]
        print(f"Prediction: {prediction}, Window: {message.key}")
        seen += 1  # added

    # -- Summary (added) -----------------------------------------------------------------
    elapsed = time.perf_counter() - started
    service.join()
    consumer.close()
    rng = random.Random(args.seed + 1)
    held_out = [interaction(rng) for _ in range(1000)]
    labels = [e['clicked'][0] for e in held_out]
    accuracy = model.score(np.array([e['features'] for e in held_out]), np.array(labels))
    baseline = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    print(f"learned online from {seen} interactions in {elapsed:.1f} s (one partial_fit each; "
          "the loop ends 2 s after the last one)")
    print(f"accuracy on {len(labels)} held-out interactions: {accuracy:.2f} (always guessing "
          f"the commoner label: {baseline:.2f})")


if __name__ == "__main__":
    main()
