"""The group layer: committed offsets now; membership, assignment and rebalancing next.

It sits above storage (it keeps its state in an internal topic) and below
the client layer, which uses it for ``Consumer.commit``/``committed``.
"""

from .offsets import OFFSETS_TOPIC, OffsetStore, offset_store

__all__ = ["OffsetStore", "offset_store", "OFFSETS_TOPIC"]
