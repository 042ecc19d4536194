"""The group layer: membership, assignment, rebalancing, committed offsets.

It sits above storage (it keeps committed offsets in an internal topic and
group state in the data directory) and below the client layer, whose
Consumer joins groups and commits through it.
"""

from .assignors import (ASSIGNORS, Assignor, CooperativeStickyAssignor, RangeAssignor,
                        RoundRobinAssignor, StickyAssignor, Subscription, resolve_assignor)
from .coordinator import GroupState, GroupStore, Membership, MemberState, reconcile
from .members import GroupMembers, Member
from .offsets import OFFSETS_TOPIC, OffsetStore, offset_store

__all__ = ["OffsetStore", "offset_store", "OFFSETS_TOPIC", "Assignor", "Subscription",
           "RangeAssignor", "RoundRobinAssignor", "StickyAssignor", "CooperativeStickyAssignor",
           "ASSIGNORS", "resolve_assignor", "GroupMembers", "Member", "GroupState", "GroupStore",
           "Membership", "MemberState", "reconcile"]
