"""A model test of the Consumer: random operations compared with plain lists.

The model keeps, per partition, every (key, value) ever appended (index =
offset), the log start offset, the consumer's position, the group's
committed offset and whether the partition is paused.  After every step:

* each record handed out (poll, poll_columns, next) is the model's record
  at the model's position, so records come in offset order and each
  position is handed out at most once;
* position() equals the model's, and committed() equals the model's.

Retention may remove records below a position.  The next fetch then resets
the position to the log start (auto_offset_reset="earliest"); records
already fetched before the removal may still be handed out first, as in
Kafka.  So for a position below the log start the consumer may be at either
the model's position or the log start, and its next record at either; the
model follows the consumer to whichever it took.

The machine runs on ``strom.open(":memory:")`` and on a directory; the
directory machine may also close and reopen the whole Log.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import strom
from strom import TopicPartition

TOPIC = "m"
GROUP = "g"
PARTITIONS = 3
#: Small segments, so that appends roll and retention has whole segments to remove.
TOPIC_CONFIG = {"segment.bytes": 256, "retention.ms": -1, "retention.bytes": -1}
#: Bounds every wait for a producer's future (none is expected to wait).
TIMEOUT_S = 10

partitions = st.integers(0, PARTITIONS - 1)
partition_sets = st.lists(partitions, unique=True, max_size=PARTITIONS)


def tp(p: int) -> TopicPartition:
    return TopicPartition(TOPIC, p)


class ConsumerMachine(RuleBasedStateMachine):
    """A consumer of a group over a three-partition topic, against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.log = self.open_log()
        self.log.create_topic(TOPIC, partitions=PARTITIONS, config=TOPIC_CONFIG)
        self.records: list[list[tuple[bytes | None, bytes]]] = [[] for _ in range(PARTITIONS)]
        self.start = [0] * PARTITIONS
        self.pos = [0] * PARTITIONS
        self.committed: list[int | None] = [None] * PARTITIONS
        self.paused: set[int] = set()
        self.counter = 0
        self.producer: strom.Producer | None = None
        self.auto_commit = False
        self.consumer = self.new_consumer(auto_commit=False)

    # -- helpers ----------------------------------------------------------------------

    def open_log(self) -> strom.Log:
        raise NotImplementedError

    def new_consumer(self, auto_commit: bool) -> strom.Consumer:
        """A consumer of the group; the model's positions start from the committed offsets."""
        self.auto_commit = auto_commit
        consumer = strom.Consumer(self.log, TOPIC, group_id=GROUP, auto_offset_reset="earliest",
                                  enable_auto_commit=auto_commit,
                                  auto_commit_interval_ms=3_600_000, consumer_timeout_ms=0,
                                  commit_acks=1)
        self.pos = [self.start[p] if c is None else c for p, c in enumerate(self.committed)]
        self.paused = set()
        return consumer

    def end(self, p: int) -> int:
        return len(self.records[p])

    def available(self) -> int:
        """Records the consumer must be able to hand out now (unpaused partitions)."""
        return sum(self.end(p) - max(self.pos[p], self.start[p])
                   for p in range(PARTITIONS) if p not in self.paused)

    def check_run(self, p: int, offsets: list[int], keys: list, values: list) -> None:
        """Records of partition ``p`` just handed out: the model's, from the model's position."""
        assert p not in self.paused, f"paused partition {p} handed out {offsets}"
        assert offsets, "an empty run of records"
        first = offsets[0]
        if first != self.pos[p]:
            # Only a position below the log start may move, and only to the log start.
            assert self.pos[p] < self.start[p] and first == self.start[p], (
                f"partition {p}: records from {first}, expected {self.pos[p]} "
                f"(log start {self.start[p]})")
            event("records from the log start after retention passed the position")
        elif first < self.start[p]:
            event("records fetched before retention handed out")
        assert offsets == list(range(first, first + len(offsets))), offsets
        event("records handed out")
        expected = self.records[p][first:first + len(offsets)]
        assert list(zip(keys, values)) == expected
        self.pos[p] = first + len(offsets)

    def ensure_producer(self) -> strom.Producer:
        if self.producer is None:
            self.producer = strom.Producer(self.log, acks=1, linger_ms=0)
        return self.producer

    # -- appending ------------------------------------------------------------------------

    @initialize(batches=st.lists(st.tuples(partitions, st.integers(1, 8)), max_size=12))
    def fill(self, batches: list[tuple[int, int]]) -> None:
        """Start with some records, so that most runs read, seek and retain something."""
        for p, n in batches:
            self.append(p, n, keyed=n % 2 == 0, via="partition")

    @rule(p=partitions, n=st.integers(1, 8), keyed=st.booleans(),
          via=st.sampled_from(["partition", "send_batch", "send"]))
    def append(self, p: int, n: int, keyed: bool, via: str) -> None:
        values = [b"%d:%06d:" % (p, self.counter + i) + b"v" * 24 for i in range(n)]
        keys = [b"k%d" % (self.counter + i) for i in range(n)] if keyed else None
        self.counter += n
        if via == "partition":
            first = self.log.partition(TOPIC, p).append(values, keys, acks=1)
            assert first == self.end(p)
        elif via == "send_batch":
            self.ensure_producer().send_batch(TOPIC, values, keys, partition=p)
        else:
            producer = self.ensure_producer()
            futures = [producer.send(TOPIC, v, key=None if keys is None else keys[i], partition=p)
                       for i, v in enumerate(values)]
            producer.flush(timeout=TIMEOUT_S)
            offsets = [f.get(timeout=TIMEOUT_S).offset for f in futures]
            assert offsets == list(range(self.end(p), self.end(p) + n))
        self.records[p].extend(zip(keys or [None] * n, values))

    @rule(keep=st.sampled_from([0, 300, 800]))
    def retention(self, keep: int) -> None:
        """Remove old segments down to about ``keep`` bytes per partition."""
        self.log.alter_topic(TOPIC, {"retention.bytes": keep})
        self.log.enforce_retention()
        self.log.alter_topic(TOPIC, {"retention.bytes": -1})
        for p in range(PARTITIONS):
            start = self.log.partition(TOPIC, p).log_start_offset
            assert self.start[p] <= start <= self.end(p)
            if start > self.pos[p]:
                event("retention passed a position")
            self.start[p] = start

    # -- consuming ------------------------------------------------------------------------

    @rule(max_records=st.integers(1, 20))
    def poll(self, max_records: int) -> None:
        available = self.available()
        got = self.consumer.poll(timeout_ms=0, max_records=max_records)
        total = sum(len(records) for records in got.values())
        assert total <= max_records
        if available:
            assert total, f"{available} records available, poll returned none"
        for part, records in got.items():
            assert part.topic == TOPIC and all(r.partition == part.partition for r in records)
            self.check_run(part.partition, [r.offset for r in records], [r.key for r in records],
                           [r.value for r in records])

    @rule(max_records=st.integers(1, 10))
    def peek(self, max_records: int) -> None:
        """poll(update_offsets=False): the records at the positions, which do not move."""
        before = list(self.pos)
        got = self.consumer.poll(timeout_ms=0, max_records=max_records, update_offsets=False)
        for part, records in got.items():
            self.check_run(part.partition, [r.offset for r in records], [r.key for r in records],
                           [r.value for r in records])
        self.pos = before

    @rule(max_records=st.none() | st.integers(1, 20))
    def poll_columns(self, max_records: int | None) -> None:
        available = self.available()
        got = self.consumer.poll_columns(timeout_ms=0, max_records=max_records)
        total = sum(len(cols.values) for cols in got.values())
        if max_records is not None:
            assert total <= max_records
        if available:
            assert total, f"{available} records available, poll_columns returned none"
        for part, cols in got.items():
            n = len(cols.values)
            keys = list(cols.keys) if cols.keys is not None else [None] * n
            self.check_run(part.partition, list(cols.offsets), keys, list(cols.values))

    @rule(k=st.integers(1, 15))
    def iterate(self, k: int) -> None:
        for _ in range(k):
            available = self.available()
            try:
                r = next(self.consumer)
            except StopIteration:
                assert available == 0, f"iteration stopped with {available} records available"
                return
            assert r.topic == TOPIC
            self.check_run(r.partition, [r.offset], [r.key], [r.value])

    # -- positions ----------------------------------------------------------------------------

    @rule(p=partitions, data=st.data())
    def seek(self, p: int, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start[p], self.end(p)), label="offset")
        self.consumer.seek(tp(p), offset)
        self.pos[p] = offset

    @rule(ps=partition_sets)
    def seek_to_beginning(self, ps: list[int]) -> None:
        self.consumer.seek_to_beginning(*map(tp, ps))
        for p in ps or range(PARTITIONS):
            self.pos[p] = self.start[p]

    @rule(ps=partition_sets)
    def seek_to_end(self, ps: list[int]) -> None:
        self.consumer.seek_to_end(*map(tp, ps))
        for p in ps or range(PARTITIONS):
            self.pos[p] = self.end(p)

    @rule(ps=partition_sets)
    def pause(self, ps: list[int]) -> None:
        self.consumer.pause(*map(tp, ps))
        self.paused |= set(ps)

    @rule(ps=partition_sets)
    def resume(self, ps: list[int]) -> None:
        self.consumer.resume(*map(tp, ps))
        self.paused -= set(ps)

    # -- committing ------------------------------------------------------------------------------

    @rule()
    def commit(self) -> None:
        self.consumer.commit()
        self.committed = list(self.pos)

    @rule(data=st.data(), ps=st.lists(partitions, unique=True, min_size=1, max_size=PARTITIONS))
    def commit_offsets(self, data: st.DataObject, ps: list[int]) -> None:
        offsets = {p: data.draw(st.integers(0, self.end(p)), label=f"offset {p}") for p in ps}
        self.consumer.commit({tp(p): o for p, o in offsets.items()})
        for p, o in offsets.items():
            self.committed[p] = o

    @rule(autocommit=st.booleans(), next_auto_commit=st.booleans())
    def reopen_consumer(self, autocommit: bool, next_auto_commit: bool) -> None:
        """Close the consumer and start another of the group: it resumes from the commits."""
        self.consumer.close(autocommit=autocommit)
        if autocommit and self.auto_commit:
            self.committed = list(self.pos)
        self.consumer = self.new_consumer(auto_commit=next_auto_commit)

    # -- invariants ----------------------------------------------------------------------------------

    @invariant()
    def positions_match(self) -> None:
        for p in range(PARTITIONS):
            got = self.consumer.position(tp(p))
            if got != self.pos[p]:
                assert self.pos[p] < self.start[p] and got == self.start[p], (
                    f"partition {p}: position {got}, model {self.pos[p]} "
                    f"(log start {self.start[p]})")
                self.pos[p] = got  # the fetch below the log start reset it

    @invariant()
    def committed_match(self) -> None:
        for p in range(PARTITIONS):
            assert self.consumer.committed(tp(p)) == self.committed[p]

    @invariant()
    def assignment_and_pauses_match(self) -> None:
        assert self.consumer.assignment() == {tp(p) for p in range(PARTITIONS)}
        assert self.consumer.paused() == {tp(p) for p in self.paused}

    def teardown(self) -> None:
        try:
            self.consumer.close(autocommit=False)
            if self.producer is not None:
                self.producer.close(timeout=TIMEOUT_S)
        finally:
            self.log.close()


class MemoryMachine(ConsumerMachine):
    def open_log(self) -> strom.Log:
        return strom.open(":memory:")


class DirectoryMachine(ConsumerMachine):
    def open_log(self) -> strom.Log:
        if not hasattr(self, "tmp"):
            self.tmp = tempfile.mkdtemp(prefix="strom-consumer-model-")
        return strom.open(os.path.join(self.tmp, "data"))

    @rule(autocommit=st.booleans())
    def reopen_log(self, autocommit: bool) -> None:
        """Close everything and open the directory again: records and commits are all there."""
        self.consumer.close(autocommit=autocommit)
        if autocommit and self.auto_commit:
            self.committed = list(self.pos)
        if self.producer is not None:
            self.producer.close(timeout=TIMEOUT_S)
            self.producer = None
        self.log.close()
        self.log = self.open_log()
        for p in range(PARTITIONS):
            part = self.log.partition(TOPIC, p)
            assert (part.log_start_offset, part.log_end_offset) == (self.start[p], self.end(p))
        self.consumer = self.new_consumer(auto_commit=autocommit)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# The directory machine fsyncs at every topic creation, config change and reopen:
# fewer, equally long runs keep the two at a similar cost.
TestConsumerModelInMemory = MemoryMachine.TestCase
TestConsumerModelInMemory.settings = settings(max_examples=100, stateful_step_count=50,
                                              deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
TestConsumerModelOnDisk = DirectoryMachine.TestCase
TestConsumerModelOnDisk.settings = settings(max_examples=30, stateful_step_count=50,
                                            deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
