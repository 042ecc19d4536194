"""The group layer: committed offsets, partition assignors, member liveness; rebalancing next.

It sits above storage (it keeps its state in an internal topic) and below
the client layer, which uses it for ``Consumer.commit``/``committed``.
"""

from .assignors import (ASSIGNORS, Assignor, CooperativeStickyAssignor, RangeAssignor,
                        RoundRobinAssignor, StickyAssignor, Subscription, resolve_assignor)
from .members import GroupMembers, Member
from .offsets import OFFSETS_TOPIC, OffsetStore, offset_store

__all__ = ["OffsetStore", "offset_store", "OFFSETS_TOPIC", "Assignor", "Subscription",
           "RangeAssignor", "RoundRobinAssignor", "StickyAssignor", "CooperativeStickyAssignor",
           "ASSIGNORS", "resolve_assignor", "GroupMembers", "Member"]
