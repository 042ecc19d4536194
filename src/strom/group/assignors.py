"""Partition assignors: who in a group reads which partition (Kafka's four, by name).

An assignor is a pure function of the group's state: the partition count of
each topic, and each member's :class:`Subscription` (the topics it wants,
the partitions it owns now, the generation it owned them in).  It returns
each member's partitions.  Membership, generations and the rebalance
protocol live elsewhere; keeping assignment pure makes it easy to test
exhaustively.

* ``range`` (Kafka's RangeAssignor): per topic, members in id order get
  consecutive ranges; the first ``n % m`` get one extra.
* ``roundrobin``: every partition of every topic, in order, dealt to the
  members subscribed to its topic in turn.
* ``sticky``: as balanced as round robin, moving as few partitions as
  possible from their current owners.
* ``cooperative-sticky`` (the default, as in Kafka's clients since 3.x):
  sticky's target, but a partition that changes owner is only revoked in
  this round and given to its new owner in the next, so no member ever
  reads a partition another still owns, and partitions that stay put are
  consumed throughout (KIP-429).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidConfigError
from ..records import TopicPartition

__all__ = ["Subscription", "Assignor", "RangeAssignor", "RoundRobinAssignor", "StickyAssignor",
           "CooperativeStickyAssignor", "ASSIGNORS", "resolve_assignor"]


@dataclasses.dataclass(frozen=True)
class Subscription:
    """What a member brings to a rebalance: its topics, and what it owns now (and since when)."""

    topics: frozenset[str]
    owned: tuple[TopicPartition, ...] = ()
    generation: int = -1


Assignment = dict[str, list[TopicPartition]]


class Assignor(abc.ABC):
    """Maps a group's subscriptions to each member's partitions."""

    #: The name Kafka's clients use for this strategy.
    name: str = ""
    #: True when partitions move in two rounds (revoke, then assign).
    cooperative = False

    @abc.abstractmethod
    def assign(self, partitions: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> Assignment:
        """Each member's partitions; ``partitions`` is the partition count of each topic."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _topic_partitions(partitions: Mapping[str, int], topics: Iterable[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in sorted(set(topics)) if t in partitions
            for p in range(partitions[t])]


def _owners(partitions: Mapping[str, int],
            subscriptions: Mapping[str, Subscription]) -> dict[TopicPartition, str]:
    """Each partition's current owner: the newest generation's claim wins (ties: the lower id).

    Claims on partitions that no longer exist, or of topics the member no
    longer subscribes to, lapse.
    """
    owner: dict[TopicPartition, tuple[int, str]] = {}
    for member, sub in sorted(subscriptions.items()):
        for tp in sub.owned:
            if tp.topic in sub.topics and 0 <= tp.partition < partitions.get(tp.topic, 0):
                best = owner.get(tp)
                if best is None or sub.generation > best[0]:
                    owner[tp] = (sub.generation, member)
    return {tp: member for tp, (_gen, member) in owner.items()}


class RangeAssignor(Assignor):
    """Per topic, consecutive ranges in member id order; the first ``n % m`` members get one more."""

    name = "range"

    def assign(self, partitions: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> Assignment:
        out: Assignment = {m: [] for m in subscriptions}
        topics = sorted({t for s in subscriptions.values() for t in s.topics if t in partitions})
        for topic in topics:
            members = sorted(m for m, s in subscriptions.items() if topic in s.topics)
            n, m = partitions[topic], len(members)
            per, extra = divmod(n, m)
            start = 0
            for i, member in enumerate(members):
                count = per + (1 if i < extra else 0)
                out[member].extend(TopicPartition(topic, p) for p in range(start, start + count))
                start += count
        return out


class RoundRobinAssignor(Assignor):
    """All partitions in (topic, partition) order, dealt in turn to the members subscribed to each."""

    name = "roundrobin"

    def assign(self, partitions: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> Assignment:
        out: Assignment = {m: [] for m in subscriptions}
        members = sorted(subscriptions)
        if not members:
            return out
        all_topics = {t for s in subscriptions.values() for t in s.topics}
        i = 0
        for tp in _topic_partitions(partitions, all_topics):
            for _ in range(len(members)):  # the next member (in turn) subscribed to this topic
                member = members[i % len(members)]
                i += 1
                if tp.topic in subscriptions[member].topics:
                    out[member].append(tp)
                    break
        return out


class StickyAssignor(Assignor):
    """Balanced like round robin; keeps every partition where it is unless balance needs it moved.

    Current owners are taken from the subscriptions.  A partition claimed by
    two members goes to the one with the newer generation (the other's claim
    is stale).  Balance: no member may hold two partitions more than another
    member that could take one of them.
    """

    name = "sticky"

    def assign(self, partitions: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> Assignment:
        out: Assignment = {m: [] for m in subscriptions}
        if not subscriptions:
            return out
        wanted = {tp for s in subscriptions.values() for tp in _topic_partitions(partitions, s.topics)}
        owner = _owners(partitions, subscriptions)
        for tp, member in sorted(owner.items()):
            out[member].append(tp)
        unassigned = sorted(wanted - owner.keys())
        # Give each unassigned partition to the least loaded member that can take it.
        for tp in unassigned:
            takers = [m for m, s in subscriptions.items() if tp.topic in s.topics]
            out[min(takers, key=lambda m: (len(out[m]), m))].append(tp)
        # Move one partition at a time from the most to the least loaded
        # member that can take it, until no move makes the spread smaller.
        while True:
            moved = False
            for giver in sorted(out, key=lambda m: (-len(out[m]), m)):
                for tp in sorted(out[giver], reverse=True):
                    takers = [m for m, s in subscriptions.items()
                              if m != giver and tp.topic in s.topics
                              and len(out[m]) + 1 < len(out[giver])]
                    if takers:
                        taker = min(takers, key=lambda m: (len(out[m]), m))
                        out[giver].remove(tp)
                        out[taker].append(tp)
                        moved = True
                        break
                if moved:
                    break
            if not moved:
                break
        for member in out:
            out[member].sort()
        return out


class CooperativeStickyAssignor(StickyAssignor):
    """Sticky's target, reached in two rounds: a moving partition is revoked first, assigned next.

    In this round a partition whose current owner is another member is left
    out of the assignment (its owner gives it up); once it is free, the next
    round gives it to its new owner.
    """

    name = "cooperative-sticky"
    cooperative = True

    def assign(self, partitions: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> Assignment:
        target = super().assign(partitions, subscriptions)
        owners = _owners(partitions, subscriptions)
        return {member: [tp for tp in tps if owners.get(tp, member) == member]
                for member, tps in target.items()}


#: The assignors by Kafka name.
ASSIGNORS: dict[str, type[Assignor]] = {
    cls.name: cls for cls in (RangeAssignor, RoundRobinAssignor, StickyAssignor,
                              CooperativeStickyAssignor)}


def resolve_assignor(spec: Any) -> Assignor:
    """An Assignor from a name (``"range"``, ...), an Assignor class or instance."""
    if isinstance(spec, Assignor):
        return spec
    if isinstance(spec, type) and issubclass(spec, Assignor):
        return spec()
    if isinstance(spec, str) and spec in ASSIGNORS:
        return ASSIGNORS[spec]()
    raise InvalidConfigError(f"unknown partition assignment strategy {spec!r}; use one of "
                             f"{sorted(ASSIGNORS)} or an Assignor")
