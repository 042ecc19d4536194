"""The article's signup pipeline on a compacted topic: a million updates, ten thousand users.

The article creates ``user-signups`` with ``cleanup.policy=compact`` because
"Kafka keeps the latest value for each key. For signups, this means we
always have the latest user state."  This module holds strom to that
sentence at the article's scale of use: its producer (JSON values, acks
"all", zstd) writes 1,000,000 updates of 10,000 users (keys ``user_<n>``,
each value carrying the user's version counter) and deletes a few hundred
users (tombstones, some of whom sign up again later) into three partitions
of small segments; a plain model, a dict user -> latest value, is kept on
the producer's side.

It proves, with a fresh consumer from the beginning rebuilding the table
each time, that:

* before any compaction the consumer sees every user's whole history, in
  order, and the table it rebuilds equals the model;
* a compaction of the sealed segments only (``roll=False``, what the
  background cleaner does) keeps exactly the latest record of each key below
  the active segment and every record of the active segment, at their
  offsets and timestamps, and the rebuilt table still equals the model;
* ``compact(roll=True)`` leaves exactly one record per user, 10,000 in all,
  the latest one at its original offset and timestamp, in a small fraction
  of the bytes; the rebuilt table equals the model, deleted users present
  with the value None;
* a deleted user's tombstone survives every clean until delete.retention.ms
  after the first clean that saw it (a ManualClock), and a clean at that
  time removes it, leaving the user absent and everyone else unchanged.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

import strom
from strom import ManualClock

T0 = 1_700_000_000_000
TOPIC = "user-signups"
PARTITIONS = 3
USERS = 10_000
#: Updates with a value (signups and changes); the deletions come on top.
UPDATES = 1_000_000
DELETIONS = 300
#: Deleted users in this set may sign up again later; the others stay deleted.
RETURNING = 1_000
#: Records per send_batch call (about 670 per partition: one batch each).
CHUNK = 2_000
#: zstd packs these values about 15:1 (~10 MB in all): 128 KiB segments
#: make ~25 segments per partition.
SEGMENT_BYTES = 128 * 1024
DELETE_RETENTION_MS = 86_400_000  # Kafka's default, one day
DOMAINS = ("example.com", "mail.org", "corp.net")


def make_stream(seed: int = 20_240_601):
    """The updates in order: ``[(user, version or None)]``; None is a deletion.

    Every user signs up once first (version 1); then each step updates a
    random user that exists (or a returning one that was deleted), and at
    DELETIONS random steps a random existing user is deleted.  A user's
    version counts its records, the deletion included.
    """
    rnd = random.Random(seed)
    order = list(range(USERS))
    rnd.shuffle(order)
    stream = [(u, 1) for u in order]
    version = [1] * USERS
    deleted = [False] * USERS
    returning = set(rnd.sample(range(USERS), RETURNING))
    deletion_steps = set(rnd.sample(range(UPDATES - USERS), DELETIONS))
    for step in range(UPDATES - USERS):
        if step in deletion_steps:
            u = rnd.randrange(USERS)
            while deleted[u]:
                u = rnd.randrange(USERS)
            version[u] += 1
            deleted[u] = True
            stream.append((u, None))
        u = rnd.randrange(USERS)
        while deleted[u] and u not in returning:
            u = rnd.randrange(USERS)
        version[u] += 1
        deleted[u] = False
        stream.append((u, version[u]))
    return stream


def event(user: int, version: int, signup_time: int) -> dict:
    """The article's signup event, plus the user's version counter."""
    return {
        'user_id': f"user_{user}",
        'email': f"user{user}.{version}@{DOMAINS[version % len(DOMAINS)]}",
        'signup_time': signup_time,
        'event_type': 'user.signup' if version == 1 else 'user.updated',
        'version': version,
    }


def produce(log, clock, stream):
    """Send the stream through the article's producer in send_batch chunks.

    Returns the model: key -> latest value (None for a deleted user), and
    key -> the versions of its records in order (None for a deletion).
    """
    producer = strom.Producer(
        log,
        value_serializer=lambda v: json.dumps(v).encode('utf-8'),
        acks='all',
        compression_type='zstd',
    )
    latest: dict[bytes, dict | None] = {}
    history: dict[bytes, list] = defaultdict(list)
    keys = [f"user_{u}".encode() for u in range(USERS)]
    previous = {}
    for start in range(0, len(stream), CHUNK):
        now = clock.time_ms()
        values, chunk_keys = [], []
        for u, version in stream[start:start + CHUNK]:
            key = keys[u]
            if version is None:
                value = None
                history[key].append(None)
            else:
                value = event(u, version, now)
                history[key].append(version)
            latest[key] = value
            values.append(value)
            chunk_keys.append(key)
        firsts = producer.send_batch(TOPIC, values, chunk_keys)
        for p, first in firsts.items():  # each partition's offsets follow on
            assert first == previous.get(p, 0)
        ends = {p: log.partition(TOPIC, p).log_end_offset for p in firsts}
        previous.update(ends)
        clock.advance(10)
    producer.close()
    return latest, history


class Read:
    """What a fresh consumer read from the beginning: the rebuilt table and every record."""

    def __init__(self, log) -> None:
        consumer = strom.Consumer(
            log, TOPIC,
            auto_offset_reset='earliest',
            value_deserializer=lambda m: json.loads(m.decode('utf-8')),
            consumer_timeout_ms=200,
        )
        self.table: dict[bytes, dict | None] = {}
        #: key -> [(partition, offset, timestamp, version or None)] in the order read
        self.records: dict[bytes, list] = defaultdict(list)
        self.count = 0
        for msg in consumer:
            self.table[msg.key] = msg.value
            self.records[msg.key].append((msg.partition, msg.offset, msg.timestamp,
                                          None if msg.value is None else msg.value['version']))
            self.count += 1
        consumer.close()
        # The consumer read each record once and stopped at the end, not short of it:
        # what it read is what the partitions hold.
        assert len(self.offsets()) == self.count
        assert self.offsets() == stored_offsets(log)

    def offsets(self) -> set[tuple[int, int]]:
        return {(p, o) for recs in self.records.values() for p, o, _, _ in recs}


def partitions(log):
    return [log.partition(TOPIC, i) for i in range(PARTITIONS)]


def stored_offsets(log) -> set[tuple[int, int]]:
    """Every record's (partition, offset), read from the partitions' batches directly."""
    found = set()
    for p in partitions(log):
        offset = p.log_start_offset
        while batches := p.read(offset):
            for b in batches:
                found.update((p.partition, o) for o in b.columns().offsets)
            offset = batches[-1].next_offset
    return found


def log_bytes(log) -> int:
    return sum(p.info().size_bytes for p in partitions(log))


def assert_sound(log) -> None:
    for p in partitions(log):
        assert p.verify() == [], (p.partition, p.verify())


def test_signup_pipeline_keeps_latest_state_of_every_user(tmp_path):
    clock = ManualClock(T0)
    log = strom.open(tmp_path / "data", clock=clock, cleaner=False)
    try:
        # Step 1 of the article, with small segments and a known delete.retention.ms.
        log.create_topic(TOPIC, partitions=PARTITIONS, config={
            "cleanup.policy": "compact", "retention.ms": 604_800_000,
            "segment.bytes": SEGMENT_BYTES, "delete.retention.ms": DELETE_RETENTION_MS})
        stream = make_stream()
        latest, history = produce(log, clock, stream)
        produced = len(stream)
        assert produced == UPDATES + DELETIONS
        assert len(latest) == USERS
        deleted = {k for k, v in latest.items() if v is None}
        # Some deleted users came back, most did not: both kinds are in the stream.
        assert 200 <= len(deleted) < DELETIONS
        assert sum(1 for h in history.values() if None in h[:-1] and h[-1] is not None) > 0
        segments = [len(p.segments) for p in partitions(log)]
        assert min(segments) >= 10, segments
        bytes_before = log_bytes(log)

        # Before any compaction: every user's whole history, in order, and the latest state.
        before = Read(log)
        assert before.count == produced
        assert before.table == latest
        assert {k: [v for *_, v in recs] for k, recs in before.records.items()} == history
        last = {k: recs[-1][:3] for k, recs in before.records.items()}  # (partition, offset, ts)

        # Background-style clean (roll=False): the sealed segments only.
        active = {p.partition: (p.segments[-1].base_offset, p.log_end_offset)
                  for p in partitions(log)}
        assert all(base > 0 and end > base for base, end in active.values())
        result = log.compact(TOPIC)
        assert_sound(log)
        expected = set()
        for key, recs in before.records.items():
            sealed = [(p, o) for p, o, _, _ in recs if o < active[p][0]]
            if sealed:
                expected.add(sealed[-1])  # the key's latest record below the active segment
            expected.update((p, o) for p, o, _, _ in recs if o >= active[p][0])
        after_background = Read(log)
        assert after_background.offsets() == expected
        assert after_background.count == len(expected) == result.records_kept + sum(
            end - base for base, end in active.values())
        assert after_background.table == latest
        assert {k: recs[-1][:3] for k, recs in after_background.records.items()} == last
        for key, recs in after_background.records.items():  # what stays is the history's tail
            versions = [v for *_, v in recs]
            assert versions == history[key][len(history[key]) - len(versions):], key
        assert {p.partition: p.log_end_offset for p in partitions(log)} == \
            {i: end for i, (_, end) in active.items()}
        assert result.tombstones_removed == 0

        # compact(roll=True): one record per user, the latest, at its offset and time.
        result = log.compact(TOPIC, roll=True)
        assert_sound(log)
        compacted = Read(log)
        assert compacted.count == USERS
        assert all(len(recs) == 1 for recs in compacted.records.values())
        assert {k: recs[0][:3] for k, recs in compacted.records.items()} == last
        assert compacted.table == latest  # deleted users present, as None
        assert {k for k, v in compacted.table.items() if v is None} == deleted
        assert result.records_kept == USERS and result.tombstones_removed == 0
        assert result.bytes_after == log_bytes(log)
        assert log_bytes(log) * 20 < bytes_before, (log_bytes(log), bytes_before)

        # The tombstones stay until delete.retention.ms after the clean that first saw them.
        first_clean = clock.time_ms()
        clock.set(first_clean + DELETE_RETENTION_MS - 1)
        result = log.compact(TOPIC, roll=True)
        assert_sound(log)
        assert result.tombstones_removed == 0
        kept = Read(log)
        assert kept.count == USERS and kept.table == latest

        clock.set(first_clean + DELETE_RETENTION_MS)
        result = log.compact(TOPIC, roll=True)
        assert_sound(log)
        assert result.tombstones_removed == len(deleted)
        final = Read(log)
        assert final.count == USERS - len(deleted)
        assert final.table == {k: v for k, v in latest.items() if v is not None}
        assert not deleted & final.table.keys()
        assert {k: recs[0][:3] for k, recs in final.records.items()} == \
            {k: v for k, v in last.items() if k not in deleted}
        # Offsets never move: the log still ends where the producer left it.
        assert {p.partition: p.log_end_offset for p in partitions(log)} == \
            {i: end for i, (_, end) in active.items()}
    finally:
        log.close()
