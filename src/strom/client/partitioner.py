"""Partitioners: which partition of a topic a record goes to.

A partitioner is any callable with kafka-python's (2.x) signature::

    partitioner(key_bytes, all_partitions, available) -> partition

``key_bytes`` is the serialized key (bytes, or None for a keyless record),
``all_partitions`` the topic's partition numbers in ascending order, and
``available`` those that can take writes now (in strom, all of them; an
empty sequence means "none known to be available", and kafka-python's own
partitioners then fall back to ``all_partitions``).  It returns one element of
``all_partitions``.  Users can pass kafka-python-style partitioners to the
producer unchanged.

Keyed records: which hash
-------------------------

Two hash partitioners are built in, both ``hash(key) % len(all_partitions)``
over the key's bytes:

* :class:`XxhashPartitioner` (the default: ``partitioner=None`` or
  ``"default"`` or ``"xxhash"``) uses XXH3-64 with seed 0.  XXH3's output
  has been frozen since xxHash 0.8.0 (2020) and is defined on bytes, not on
  machine words, so a key lands on the same partition on every platform,
  Python version and strom version.  strom already depends on xxhash (batch
  checksums), and the hash runs in C.
* :class:`Murmur2Partitioner` (``"murmur2"``) is bit-exact with the Java
  client's ``Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions``
  (``BuiltInPartitioner.partitionForKey``), which is also what kafka-python's
  ``DefaultPartitioner`` computes.  Choose it when the data may later move
  to a real Kafka cluster, or be produced there by Java/kafka-python/
  librdkafka (``murmur2_random``) clients, and keys must keep their
  partition: the same key then maps to the same partition number on both
  sides, so no reshuffling and no per-key reordering.

Why xxhash and not murmur2 as the default: the hash is per-record work on the
producer's hot path, and murmur2 has no C implementation in our
dependencies.  Measured on the development machine (CPython 3.11, one core,
random 16-byte key, median of 5 runs of 200,000 calls through a lambda that
alone costs 15 ns)::

    xxhash.xxh3_64_intdigest(key)                        32 ns/key
    murmur2(key)  (this module: word-wise, pure Python)  960 ns/key
    murmur2, a literal per-byte port of the Java code    3,000 ns/key
    XxhashPartitioner()(key, range(12), range(12))       170 ns/call
    Murmur2Partitioner()(key, range(12), range(12))      1,190 ns/call
    StickyPartitioner().partition("t", range(12))         90 ns/call

The producer's target of 2M records/s leaves 500 ns per record for
everything; murmur2 alone would take twice that, xxhash a few percent.  The
price of the default is that strom and Kafka place the same key on different
partitions: pass ``partitioner="murmur2"`` if that matters.  Changing a
topic's partitioner, like changing its partition count, moves keys.

A key of None given to a hash partitioner is treated as kafka-python's
``DefaultPartitioner`` treats it: a random partition among ``available``
(or among ``all_partitions`` when none is available), so
``Murmur2Partitioner()`` is a drop-in for kafka-python's default.  The
producer is meant not to rely on that: with a built-in hash partitioner
(an instance of :class:`HashPartitioner`), keyless records go to the
:class:`StickyPartitioner` instead; a user's own callable is called for
every record, keyless ones included, as kafka-python 2.x calls it.

Keyless records: sticky partitioning (KIP-480)
----------------------------------------------

Spreading keyless records at random (Kafka before 2.4) makes many small
batches, one per partition; sending them all to one partition until its batch
is complete makes few large ones, and the spread evens out over batches.
:class:`StickyPartitioner` keeps one partition per topic; the producer calls
:meth:`StickyPartitioner.on_new_batch` when the batch on that partition is
complete (closed by ``batch_size`` or ``linger_ms``), and the next keyless
record goes to a partition chosen at random among the available ones, never
the previous one when another exists (KIP-480's ``StickyPartitionCache``).
Kafka 3.3's KIP-794 (``BuiltInPartitioner``) switches after ``batch.size``
bytes instead and may weigh partitions by queue length; which event ends a
batch is the producer's choice, the partitioner only reacts to it.

Thread safety: the hash partitioners are stateless.  The sticky partitioner's
common path (the current partition is still valid) is one dict read, safe
without a lock; choosing or changing a partition happens under a lock, so
two threads never install different partitions for the same stuck one.  Two
threads may still place one record each on the partition being left while a
switch is under way, as in Java; that only makes one batch a record larger.
"""

from __future__ import annotations

import functools
import inspect
import random
import struct
import threading
from collections.abc import Callable, Sequence

import xxhash

from ..errors import InvalidConfigError, InvalidRecordError, UnknownTopicOrPartitionError

__all__ = [
    "Partitioner",
    "murmur2",
    "HashPartitioner",
    "XxhashPartitioner",
    "Murmur2Partitioner",
    "StickyPartitioner",
    "resolve_partitioner",
    "PARTITIONER_NAMES",
]

#: The callable a producer calls for a record: kafka-python's signature.
Partitioner = Callable[[bytes | None, Sequence[int], Sequence[int]], int]

# -- murmur2, bit-exact with org.apache.kafka.common.utils.Utils.murmur2 -------

_M = 0x5BD1E995         # the mixing constant of MurmurHash2
_SEED = 0x9747B28C      # Kafka's fixed seed
_MASK32 = 0xFFFFFFFF    # Java's int arithmetic wraps at 32 bits; Python's does not
_SIGN32 = 0x80000000
# One compiled struct per whole-word count, so a key's words are read by one
# C call.  Keys have few distinct lengths; the cap bounds the cache if a caller
# hashes many sizes (a miss then costs one Struct() call, about 0.2 us).
_WORD_STRUCTS: dict[int, struct.Struct] = {}
_WORD_STRUCTS_MAX = 256


def _words(n_words: int) -> struct.Struct:
    s = _WORD_STRUCTS.get(n_words)
    if s is None:
        s = struct.Struct(f"<{n_words}I")
        if len(_WORD_STRUCTS) < _WORD_STRUCTS_MAX:
            _WORD_STRUCTS[n_words] = s
    return s


def _as_bytes(key: object) -> bytes:
    """``key`` as bytes: bytes, bytearray and memoryview are keys; anything else is an error."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise InvalidRecordError(
        f"a partitioning key must be bytes (serialize it first), not {type(key).__name__}")


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit MurmurHash2 of ``data``, as the signed int Java returns.

    Bit-exact with ``org.apache.kafka.common.utils.Utils.murmur2(byte[])``
    (seed ``0x9747b28c``), so ``(murmur2(key) & 0x7fffffff) % n`` is the
    partition Kafka's Java client and kafka-python choose for ``key``.
    ``data`` is bytes, bytearray or memoryview; anything else (a str in
    particular: encode it first) raises :class:`~strom.InvalidRecordError`.

    Python ints do not wrap, so each product is masked to 32 bits; Java's
    ``>>>`` on an int is then a plain right shift of the unsigned value.  The
    whole 4-byte words are read little-endian in one ``struct`` call, and the
    1-3 trailing bytes, which Java XORs in at shifts 0/8/16, are one
    little-endian int.
    """
    if type(data) is not bytes:
        data = _as_bytes(data)
    m, mask = _M, _MASK32
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    if whole:
        for k in _words(whole >> 2).unpack_from(data):
            k = (k * m) & mask
            h = ((h * m) & mask) ^ (((k ^ (k >> 24)) * m) & mask)
    if length & 3:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - 0x100000000 if h & _SIGN32 else h


# -- hash partitioners for keyed records --------------------------------------


def _no_partitions() -> UnknownTopicOrPartitionError:
    return UnknownTopicOrPartitionError("no partition to choose from: all_partitions is empty")


def _random_partition(all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """kafka-python's DefaultPartitioner for a None key: random available, else random of all."""
    if available:
        return random.choice(available)
    if not all_partitions:
        raise _no_partitions()
    return random.choice(all_partitions)


class HashPartitioner:
    """Base of the built-in partitioners that place a keyed record by a hash of its key.

    Instances are stateless, so one may be shared by any number of producers
    and threads; two instances of the same class are equal.  The producer
    recognises a built-in hash partitioner by this class and sends keyless
    records to its :class:`StickyPartitioner` instead.
    """

    __slots__ = ()
    #: The name :func:`resolve_partitioner` accepts for this partitioner.
    name = ""

    def hash(self, key_bytes: bytes) -> int:
        """A non-negative hash of the key's bytes; each subclass names its function."""
        raise NotImplementedError

    def __call__(self, key_bytes: bytes | None, all_partitions: Sequence[int],
                 available: Sequence[int] = ()) -> int:
        """The element of ``all_partitions`` for ``key_bytes`` (kafka-python's signature).

        A key that is not bytes, bytearray or memoryview raises
        :class:`~strom.InvalidRecordError`; an empty ``all_partitions``
        raises :class:`~strom.UnknownTopicOrPartitionError`; a None key gets
        a random available partition.
        """
        if key_bytes is None:
            return _random_partition(all_partitions, available)
        try:
            return all_partitions[self.hash(key_bytes) % len(all_partitions)]
        except ZeroDivisionError:  # checked here, off the common path
            raise _no_partitions() from None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class XxhashPartitioner(HashPartitioner):
    """strom's default: ``all_partitions[xxh3_64(key) % len(all_partitions)]``.

    XXH3-64 with seed 0, whose output is frozen by the xxHash project and
    independent of the platform, so a key's partition is stable across
    machines, Python versions and strom versions for a given partition count.
    It does *not* agree with Kafka's clients; see :class:`Murmur2Partitioner`.
    A None key gets a random available partition (see the module docstring).
    """

    __slots__ = ()
    name = "xxhash"

    def hash(self, key_bytes: bytes) -> int:
        """XXH3-64 (seed 0) of the key."""
        if type(key_bytes) is not bytes:
            key_bytes = _as_bytes(key_bytes)
        return xxhash.xxh3_64_intdigest(key_bytes)


class Murmur2Partitioner(HashPartitioner):
    """Kafka-compatible: ``all_partitions[(murmur2(key) & 0x7fffffff) % len(all_partitions)]``.

    The Java client's keyed rule and kafka-python's ``DefaultPartitioner``,
    None keys included (a random available partition), so records keep their
    partitions when the data moves to, or is mixed with, a real Kafka
    cluster.  About 7 times slower per call than :class:`XxhashPartitioner`,
    30 times per hash (pure Python; see the module docstring).
    """

    __slots__ = ()
    name = "murmur2"

    def hash(self, key_bytes: bytes) -> int:
        """Kafka's ``Utils.toPositive(Utils.murmur2(key))``."""
        return murmur2(key_bytes) & 0x7FFFFFFF


# -- keyless records ----------------------------------------------------------


class StickyPartitioner:
    """Sends a topic's keyless records to one partition until its batch is complete.

    KIP-480's uniform sticky partitioner, one current partition per topic.
    :meth:`partition` returns the topic's current partition while it is
    still among the candidates (``available``, or ``all_partitions`` when
    ``available`` is empty), and otherwise picks one at random.
    :meth:`on_new_batch` ends the current partition's turn: the next call to
    :meth:`partition` picks at random among the candidates other than the
    previous partition (the previous one only if it is the sole candidate).
    Over many batches every candidate is chosen equally often.

    Thread-safe; see the module docstring.  ``rng`` is a ``random.Random``
    to make the choices reproducible in tests; by default each instance has
    its own, seeded by the OS.
    """

    __slots__ = ("_current", "_avoid", "_lock", "_rng")

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._current: dict[str, int] = {}
        # topic -> the partition whose batch just completed; read once by the next pick
        self._avoid: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = rng if rng is not None else random.Random()

    def partition(self, topic: str, all_partitions: Sequence[int],
                  available: Sequence[int] = ()) -> int:
        """The partition for the next keyless record of ``topic``.

        ``all_partitions`` and ``available`` are as for a partitioner call;
        membership is tested on every call, so pass a ``range`` (constant
        time) rather than a long list where the topic has many partitions.
        """
        candidates = available or all_partitions
        current = self._current.get(topic)
        if current is not None and current in candidates:
            return current
        with self._lock:
            current = self._current.get(topic)
            if current is not None and current in candidates:
                return current  # another thread picked it while we waited
            current = self._pick(candidates, self._avoid.pop(topic, None))
            self._current[topic] = current
            return current

    def on_new_batch(self, topic: str, previous_partition: int) -> None:
        """The batch on ``previous_partition`` is complete: move ``topic``'s keyless records on.

        Ignored unless ``previous_partition`` is the topic's current
        partition, so a late or repeated call (another thread already moved
        the topic on) does not skip a partition's turn.  The new partition is
        chosen by the next :meth:`partition` call, from the candidates it is
        given then.
        """
        with self._lock:
            if self._current.get(topic) == previous_partition:
                del self._current[topic]
                self._avoid[topic] = previous_partition

    def current(self, topic: str) -> int | None:
        """The partition ``topic``'s keyless records go to now, or None if none is chosen yet."""
        return self._current.get(topic)

    def forget(self, topic: str) -> None:
        """Drop ``topic``'s state (after the topic is deleted); the next record picks afresh."""
        with self._lock:
            self._current.pop(topic, None)
            self._avoid.pop(topic, None)

    def _pick(self, candidates: Sequence[int], avoid: int | None) -> int:
        """A random element of ``candidates``, not ``avoid`` unless it is the only one."""
        if not isinstance(candidates, Sequence):  # a set or other collection: give it an order
            candidates = sorted(candidates)
        n = len(candidates)
        if n == 0:
            raise _no_partitions()
        if n > 1 and avoid is not None:
            try:
                skip = candidates.index(avoid)
            except ValueError:
                pass  # the previous partition is no longer a candidate: nothing to avoid
            else:
                i = self._rng.randrange(n - 1)  # a uniform index over the n - 1 others
                return candidates[i + 1 if i >= skip else i]
        return candidates[self._rng.randrange(n)]

    def __repr__(self) -> str:
        return f"StickyPartitioner(current={dict(self._current)!r})"


# -- configuration ------------------------------------------------------------

#: The names ``partitioner=`` accepts, and what each resolves to.  "default" is
#: xxhash: strom's default for keyed records (see the module docstring).
PARTITIONER_NAMES: dict[str, type[HashPartitioner]] = {
    "default": XxhashPartitioner,
    "xxhash": XxhashPartitioner,
    "murmur2": Murmur2Partitioner,
}


def resolve_partitioner(value: object = None) -> Partitioner:
    """The partitioner for the producer's ``partitioner=`` option.

    * ``None`` or ``"default"``: :class:`XxhashPartitioner` (strom's default);
    * ``"xxhash"`` or ``"murmur2"``: that built-in partitioner;
    * a :class:`HashPartitioner` subclass: an instance of it;
    * any other callable that accepts ``(key_bytes, all_partitions,
      available)`` positionally (kafka-python 2.x's signature, for example
      an instance of kafka-python's ``DefaultPartitioner``): returned as is.

    Anything else raises :class:`~strom.InvalidConfigError`: an unknown name,
    a non-callable (kafka-python 3.x's ``Partitioner`` objects with a
    ``partition(topic, key, ...)`` method are not supported yet), a class
    other than a built-in partitioner (pass an instance), or a callable that
    cannot take three positional arguments.
    """
    if value is None:
        return XxhashPartitioner()
    if isinstance(value, str):
        cls = PARTITIONER_NAMES.get(value)
        if cls is None:
            raise InvalidConfigError(
                f"unknown partitioner {value!r}; expected one of {sorted(PARTITIONER_NAMES)}, "
                "None, or a callable (key_bytes, all_partitions, available) -> partition")
        return cls()
    if isinstance(value, type):
        if issubclass(value, HashPartitioner) and value is not HashPartitioner:
            return value()
        raise InvalidConfigError(
            f"partitioner is the class {value.__name__}; pass an instance, or a function "
            "(key_bytes, all_partitions, available) -> partition")
    if isinstance(value, HashPartitioner):
        return value
    if not callable(value):
        hint = (" (kafka-python 3.x Partitioner objects with a partition() method are not "
                "supported; wrap it in a function)" if hasattr(value, "partition") else "")
        raise InvalidConfigError(
            f"partitioner must be None, a name or a callable, not {type(value).__name__}{hint}")
    # An object's own __call__, not the object: inspect.signature() of an instance whose
    # __call__ is a classmethod (kafka-python's DefaultPartitioner) drops one parameter too many.
    routine = inspect.isroutine(value) or isinstance(value, functools.partial)
    target = value if routine else value.__call__
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have no signature: trust the caller
        return value  # type: ignore[return-value]
    try:
        signature.bind(b"key", [0], [0])
    except TypeError as e:
        raise InvalidConfigError(
            f"partitioner {value!r} cannot be called as partitioner(key_bytes, all_partitions, "
            f"available): {e}") from None
    return value  # type: ignore[return-value]
