"""Tests for the partitioners (src/strom/client/partitioner.py).

Layout of this file: murmur2 against Kafka's and kafka-python's published
vectors and against a literal port of the Java code, xxh3 against published
vectors and strom's pinned key -> partition table, properties of both hash
partitioners (range, determinism, spread), None keys and misuse, the sticky
partitioner (sticking, switching, spread over batches, threads), and the
resolver's accepted and rejected values.
"""

from __future__ import annotations

import functools
import random
import threading
from collections import Counter

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.client.partitioner import (
    PARTITIONER_NAMES,
    HashPartitioner,
    Murmur2Partitioner,
    StickyPartitioner,
    XxhashPartitioner,
    murmur2,
    resolve_partitioner,
)
from strom.errors import (
    InvalidConfigError,
    InvalidRecordError,
    StromError,
    UnknownTopicOrPartitionError,
)

HASH_PARTITIONERS = [XxhashPartitioner(), Murmur2Partitioner()]
ids = [type(p).__name__ for p in HASH_PARTITIONERS]

# -- murmur2 -----------------------------------------------------------------

# apache/kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2(): Utils.murmur2(bytes) as the signed int Java returns.
KAFKA_MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]

# dpkp/kafka-python, test/producer/test_partitioner.py (test_murmur2_java_compatibility;
# the same table is in the older test/test_partitioner.py): the partition among
# 1000 that Kafka's Java partitioner chooses for each key.
KAFKA_PYTHON_PARTITION_VECTORS = [
    (b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742),
]


def java_murmur2(data: bytes) -> int:
    """A line-by-line port of Utils.murmur2 with Java's int semantics emulated, as an oracle."""

    def i32(x: int) -> int:  # Java int: wrap to 32 bits, signed
        x &= 0xFFFFFFFF
        return x - (1 << 32) if x & 0x80000000 else x

    def ushr(x: int, n: int) -> int:  # Java >>> on an int
        return (x & 0xFFFFFFFF) >> n

    length = len(data)
    seed = i32(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = i32(seed ^ length)
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = i32((data[i4 + 0] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8)
                + ((data[i4 + 2] & 0xFF) << 16) + ((data[i4 + 3] & 0xFF) << 24))
        k = i32(k * m)
        k = i32(k ^ ushr(k, r))
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4  # the switch falls through from case 3 to case 1
    if rest >= 3:
        h = i32(h ^ ((data[(length & ~3) + 2] & 0xFF) << 16))
    if rest >= 2:
        h = i32(h ^ ((data[(length & ~3) + 1] & 0xFF) << 8))
    if rest >= 1:
        h = i32(h ^ (data[length & ~3] & 0xFF))
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    h = i32(h ^ ushr(h, 15))
    return h


@pytest.mark.parametrize("data, expected", KAFKA_MURMUR2_VECTORS, ids=lambda v: repr(v)[:20])
def test_murmur2_matches_kafka_utils_test(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected
    assert java_murmur2(data) == expected  # the oracle itself is right


@pytest.mark.parametrize("data, partition", KAFKA_PYTHON_PARTITION_VECTORS)
def test_murmur2_partition_matches_kafka_python_vectors(data: bytes, partition: int) -> None:
    assert (murmur2(data) & 0x7FFFFFFF) % 1000 == partition
    assert Murmur2Partitioner()(data, list(range(1000)), list(range(1000))) == partition
    assert Murmur2Partitioner()(data, range(1000), ()) == partition


def test_murmur2_every_tail_length_matches_the_java_port() -> None:
    # Lengths 0..64 cover no words, every tail (0-3 bytes) and the struct cache.
    rng = random.Random(480)
    for length in range(65):
        for _ in range(20):
            data = rng.randbytes(length)
            assert murmur2(data) == java_murmur2(data), data


def test_murmur2_high_bytes_are_unsigned() -> None:
    # Java's data[i] is a signed byte masked with 0xff; a missed mask shows on 0x80..0xff.
    for data in (b"\x80", b"\xff" * 3, b"\xff" * 4, b"\x81" * 1000, bytes(range(256))):
        assert murmur2(data) == java_murmur2(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_murmur2_equals_java_port_and_is_a_signed_int32(data: bytes) -> None:
    h = murmur2(data)
    assert h == java_murmur2(data)
    assert -(2**31) <= h < 2**31


def test_murmur2_accepts_bytearray_and_memoryview() -> None:
    for data, _ in KAFKA_MURMUR2_VECTORS:
        assert murmur2(bytearray(data)) == murmur2(memoryview(data)) == murmur2(data)


@pytest.mark.parametrize("bad", ["21", "", 21, None, [1, 2]])
def test_murmur2_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(InvalidRecordError, match="must be bytes"):
        murmur2(bad)  # type: ignore[arg-type]


# -- xxh3 and strom's key -> partition mapping --------------------------------


def _llvm_test_buffer(size: int) -> bytes:
    # llvm/llvm-project, llvm/unittests/Support/xxhashTest.cpp (TEST(xxhashTest, xxh3)):
    # bytes from a 64-bit xorshift starting at x = 1.
    out = bytearray()
    x = 1
    for _ in range(size):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out.append(x & 0xFF)
    return bytes(out)


# Same file: xxh3_64bits(first `len` bytes of the buffer), seed 0.  The empty-input
# value 0x2d06800538d394c2 is also the xxHash project's own sanity-check vector.
LLVM_XXH3_VECTORS = [
    (0, 0x2D06800538D394C2), (1, 0xD0D496E05C553485), (2, 0x84D625EDB7055EAC),
    (3, 0x6EA2D59ACA5C3778), (4, 0xBF65290914E80242), (8, 0xABC1413DA6CD0209),
    (9, 0x8BC89400BFED51F6), (16, 0x7E46916754D7C9B8), (17, 0xED4BE912BA5F836D),
    (128, 0x06A146EE9A2DA378), (129, 0xBC7138129BF065DA), (2243, 0x0979F786A24EDDE7),
]


@pytest.mark.parametrize("length, expected", LLVM_XXH3_VECTORS)
def test_xxh3_is_the_frozen_reference_hash(length: int, expected: int) -> None:
    assert xxhash.xxh3_64_intdigest(_llvm_test_buffer(2243)[:length]) == expected


# strom's own promise, pinned: these keys map to these partitions on every platform
# and in every strom version.  A change here moves users' keys: it is a format change.
XXHASH_PARTITION_TABLE = [
    (b"", 10, 138),
    (b"a", 7, 719),
    (b"user_123", 9, 69),
    (b"orders-42", 10, 982),
    (bytes(range(16)), 3, 19),
]


@pytest.mark.parametrize("key, of_12, of_1000", XXHASH_PARTITION_TABLE)
def test_xxhash_partitions_are_pinned(key: bytes, of_12: int, of_1000: int) -> None:
    p = XxhashPartitioner()
    assert p(key, range(12), range(12)) == of_12
    assert p(key, list(range(1000)), []) == of_1000
    assert xxhash.xxh3_64_intdigest(key) % 12 == of_12


# -- properties of both hash partitioners -------------------------------------

partition_lists = st.lists(st.integers(0, 10_000), min_size=1, max_size=50, unique=True).map(sorted)


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=64), partitions=partition_lists)
def test_hash_partition_is_an_element_and_deterministic(partitioner: HashPartitioner,
                                                        key: bytes, partitions: list[int]) -> None:
    chosen = partitioner(key, partitions, partitions)
    assert chosen in partitions
    assert partitioner(key, partitions, partitions) == chosen
    assert type(partitioner)()(bytearray(key), partitions, []) == chosen  # a new instance agrees
    # `available` does not move a keyed record (Kafka's rule: keys keep their partition).
    assert partitioner(key, partitions, partitions[:1]) == chosen


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
@settings(max_examples=100, deadline=None)
@given(key=st.binary(max_size=64), n=st.integers(1, 2000))
def test_hash_partition_over_range_is_hash_mod_n(partitioner: HashPartitioner,
                                                key: bytes, n: int) -> None:
    if isinstance(partitioner, Murmur2Partitioner):
        expected = (murmur2(key) & 0x7FFFFFFF) % n
    else:
        expected = xxhash.xxh3_64_intdigest(key) % n
    assert partitioner(key, range(n), range(n)) == expected


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
@pytest.mark.parametrize("kind", ["random bytes", "sequential ids"])
def test_hash_spreads_keys_evenly(partitioner: HashPartitioner, kind: str) -> None:
    # Pearson's chi-square over 16 partitions (15 degrees of freedom: mean 15,
    # standard deviation 5.5).  The keys come from a fixed seed, so the test is
    # deterministic; the bound of 60 (p < 1e-6 for a uniform hash) would still
    # hold for almost any seed, and a broken hash (say, one partition taking
    # twice its share) scores in the thousands.
    n, count = 16, 32_000
    rng = random.Random(794)
    if kind == "random bytes":
        keys = [rng.randbytes(rng.randrange(1, 40)) for _ in range(count)]
    else:
        keys = [b"user-%d" % i for i in range(count)]
    counts = Counter(partitioner(key, range(n), range(n)) for key in keys)
    expected = count / n
    chi_square = sum((counts[p] - expected) ** 2 / expected for p in range(n))
    assert set(counts) == set(range(n))
    assert chi_square < 60, (chi_square, counts)


# -- None keys and misuse -------------------------------------------------------


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
def test_none_key_is_random_available_like_kafka_python(partitioner: HashPartitioner) -> None:
    # kafka-python's DefaultPartitioner: random.choice(available), else random.choice(all).
    assert partitioner(None, list(range(100)), [42]) == 42
    seen = {partitioner(None, list(range(4)), []) for _ in range(400)}
    assert seen == {0, 1, 2, 3}  # 400 draws miss one of 4 with probability 4 * 0.75**400
    seen = {partitioner(None, list(range(100)), [3, 7]) for _ in range(200)}
    assert seen == {3, 7}


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
@pytest.mark.parametrize("key", [b"k", None])
def test_no_partitions_is_an_error(partitioner: HashPartitioner, key: bytes | None) -> None:
    with pytest.raises(UnknownTopicOrPartitionError, match="empty"):
        partitioner(key, [], [])


@pytest.mark.parametrize("partitioner", HASH_PARTITIONERS, ids=ids)
@pytest.mark.parametrize("bad", ["user_123", 123, 1.5, ("a",)])
def test_non_bytes_key_is_an_error(partitioner: HashPartitioner, bad: object) -> None:
    with pytest.raises(InvalidRecordError) as info:
        partitioner(bad, range(3), range(3))  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError) and isinstance(info.value, StromError)


def test_hash_partitioners_compare_by_type() -> None:
    assert XxhashPartitioner() == XxhashPartitioner()
    assert Murmur2Partitioner() != XxhashPartitioner()
    assert len({XxhashPartitioner(), XxhashPartitioner(), Murmur2Partitioner()}) == 2
    assert repr(Murmur2Partitioner()) == "Murmur2Partitioner()"


# -- the sticky partitioner -----------------------------------------------------


def test_sticky_keeps_one_partition_until_a_new_batch() -> None:
    sticky = StickyPartitioner(rng=random.Random(1))
    assert sticky.current("t") is None
    first = sticky.partition("t", range(10))
    assert all(sticky.partition("t", range(10)) == first for _ in range(100))
    assert sticky.current("t") == first

    sticky.on_new_batch("t", first)
    second = sticky.partition("t", range(10))
    assert second != first
    assert all(sticky.partition("t", range(10), range(10)) == second for _ in range(100))


def test_sticky_never_repeats_the_previous_partition_when_another_exists() -> None:
    sticky = StickyPartitioner(rng=random.Random(2))
    for candidates in ([0, 1], range(3), list(range(10)), [5, 9, 11]):
        previous = sticky.partition("t", candidates)
        for _ in range(300):
            sticky.on_new_batch("t", previous)
            chosen = sticky.partition("t", candidates)
            assert chosen != previous and chosen in candidates
            previous = chosen
        sticky.forget("t")


def test_sticky_spreads_evenly_over_batches() -> None:
    sticky = StickyPartitioner(rng=random.Random(3))
    n, batches = 8, 8_000
    counts: Counter[int] = Counter()
    for _ in range(batches):
        p = sticky.partition("t", range(n))
        counts[p] += 1
        sticky.on_new_batch("t", p)
    assert set(counts) == set(range(n))
    # Each partition's share is 1/n; 1000 +- 15 % is over 5 standard deviations.
    assert all(850 < c < 1150 for c in counts.values()), counts


def test_sticky_single_partition_stays() -> None:
    sticky = StickyPartitioner()
    assert sticky.partition("t", [0]) == 0
    sticky.on_new_batch("t", 0)
    assert sticky.partition("t", [0]) == 0
    sticky.on_new_batch("t", 0)
    assert sticky.partition("t", range(1), [0]) == 0


def test_sticky_ignores_a_stale_or_repeated_new_batch() -> None:
    sticky = StickyPartitioner(rng=random.Random(4))
    first = sticky.partition("t", range(10))
    sticky.on_new_batch("t", (first + 1) % 10)  # not the current partition: ignored
    assert sticky.partition("t", range(10)) == first
    sticky.on_new_batch("t", first)
    second = sticky.partition("t", range(10))
    sticky.on_new_batch("t", first)  # late repeat for the old partition: ignored
    assert sticky.partition("t", range(10)) == second
    sticky.on_new_batch("never-used", 3)  # no state: ignored, creates none
    assert sticky.current("never-used") is None


def test_sticky_leaves_a_partition_that_is_no_longer_available() -> None:
    sticky = StickyPartitioner(rng=random.Random(5))
    first = sticky.partition("t", range(10), range(10))
    others = [p for p in range(10) if p != first]
    assert sticky.partition("t", range(10), others) in others
    # Empty `available` means none known available: fall back to all partitions.
    assert sticky.partition("t", range(10), []) in range(10)
    # A topic that shrank (deleted and recreated) gets a partition that exists.
    assert sticky.partition("t", range(1), []) == 0


def test_sticky_prefers_available_after_a_new_batch() -> None:
    sticky = StickyPartitioner(rng=random.Random(6))
    for _ in range(200):
        p = sticky.partition("t", range(10), [2, 4, 6])
        assert p in (2, 4, 6)
        sticky.on_new_batch("t", p)
        assert sticky.partition("t", range(10), [2, 4, 6]) != p


def test_sticky_accepts_a_set_of_available_partitions() -> None:
    sticky = StickyPartitioner(rng=random.Random(7))
    p = sticky.partition("t", range(10), {1, 5})
    assert p in {1, 5}
    sticky.on_new_batch("t", p)
    assert sticky.partition("t", range(10), {1, 5}) == ({1, 5} - {p}).pop()


def test_sticky_state_is_per_topic() -> None:
    sticky = StickyPartitioner(rng=random.Random(8))
    a = sticky.partition("a", range(10))
    b = sticky.partition("b", range(10))
    sticky.on_new_batch("a", a)
    assert sticky.partition("b", range(10)) == b
    assert sticky.partition("a", range(10)) != a
    sticky.forget("a")
    assert sticky.current("a") is None and sticky.current("b") == b


def test_sticky_with_the_same_seed_makes_the_same_choices() -> None:
    def run(seed: int) -> list[int]:
        sticky = StickyPartitioner(rng=random.Random(seed))
        out = []
        for _ in range(50):
            out.append(sticky.partition("t", range(7)))
            sticky.on_new_batch("t", out[-1])
        return out

    assert run(9) == run(9)


def test_sticky_no_partitions_is_an_error() -> None:
    with pytest.raises(UnknownTopicOrPartitionError):
        StickyPartitioner().partition("t", [], [])


def test_sticky_threads_agree_on_one_partition_after_a_switch() -> None:
    # Many threads see the same batch complete and then all route their next
    # record: exactly one switch happens, and everyone gets the same partition.
    sticky = StickyPartitioner()
    threads_n = 16

    def worker(barrier: threading.Barrier, previous: int, results: list[int]) -> None:
        barrier.wait()
        sticky.on_new_batch("t", previous)
        results.append(sticky.partition("t", range(10)))

    for _ in range(50):
        previous = sticky.partition("t", range(10))
        barrier = threading.Barrier(threads_n)
        results: list[int] = []
        threads = [threading.Thread(target=worker, args=(barrier, previous, results))
                   for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert len(results) == threads_n
        assert len(set(results)) == 1 and results[0] != previous


def test_sticky_under_contention_smoke() -> None:
    sticky = StickyPartitioner()
    partitions = range(20)
    errors: list[BaseException] = []
    seen: set[int] = set()
    per_thread = 5_000

    def hammer(topic: str) -> None:
        try:
            for _ in range(per_thread):
                p = sticky.partition(topic, partitions)
                seen.add(p)
                sticky.on_new_batch(topic, p)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=("t" if i % 2 else "u",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert seen <= set(partitions) and len(seen) == len(partitions)
    assert sticky.current("t") in partitions or sticky.current("t") is None


# -- resolving the producer's `partitioner=` option -----------------------------


class KafkaPythonDefaultPartitioner:
    """kafka-python 2.x's DefaultPartitioner as written in dpkp/kafka-python,
    kafka/partitioner/default.py (the murmur2 import made ours): the shape of
    callable a kafka-python user passes as ``partitioner=``."""

    @classmethod
    def __call__(cls, key, all_partitions, available):  # type: ignore[no-untyped-def]
        if key is None:
            if available:
                return random.choice(available)
            return random.choice(all_partitions)
        idx = murmur2(key)
        idx &= 0x7FFFFFFF
        idx %= len(all_partitions)
        return all_partitions[idx]


@pytest.mark.parametrize("value, expected", [
    (None, XxhashPartitioner()),
    ("default", XxhashPartitioner()),
    ("xxhash", XxhashPartitioner()),
    ("murmur2", Murmur2Partitioner()),
    (XxhashPartitioner, XxhashPartitioner()),
    (Murmur2Partitioner, Murmur2Partitioner()),
])
def test_resolve_names_and_classes(value: object, expected: HashPartitioner) -> None:
    resolved = resolve_partitioner(value)
    assert resolved == expected and type(resolved) is type(expected)


def test_resolve_default_is_documented_as_xxhash() -> None:
    assert PARTITIONER_NAMES["default"] is XxhashPartitioner
    assert resolve_partitioner() == resolve_partitioner("default") == XxhashPartitioner()


def test_resolve_returns_callables_as_given() -> None:
    instance = Murmur2Partitioner()
    assert resolve_partitioner(instance) is instance

    def first_byte(key_bytes, all_partitions, available):  # type: ignore[no-untyped-def]
        if key_bytes is None:
            return available[0] if available else all_partitions[0]
        return all_partitions[key_bytes[0] % len(all_partitions)]

    assert resolve_partitioner(first_byte) is first_byte
    assert resolve_partitioner(first_byte)(b"\x05", range(3), range(3)) == 2
    def anything(*args):  # type: ignore[no-untyped-def]  # a variadic callable binds too
        return 0

    assert resolve_partitioner(anything) is anything
    bound = functools.partial(lambda topic, key, all_partitions, available: 0, "t")
    assert resolve_partitioner(bound) is bound

    class Wrong:
        def __call__(self, key_bytes):  # type: ignore[no-untyped-def]
            return 0

    with pytest.raises(InvalidConfigError, match="cannot be called as partitioner"):
        resolve_partitioner(Wrong())


def test_resolve_accepts_a_kafka_python_partitioner_unchanged() -> None:
    theirs = KafkaPythonDefaultPartitioner()
    resolved = resolve_partitioner(theirs)
    assert resolved is theirs
    # ... and it agrees with ours on keyed records: the point of Murmur2Partitioner.
    ours = Murmur2Partitioner()
    rng = random.Random(10)
    for _ in range(500):
        key = rng.randbytes(rng.randrange(0, 30))
        n = rng.randrange(1, 64)
        assert resolved(key, list(range(n)), list(range(n))) == ours(key, range(n), range(n))
    for key, partition in KAFKA_PYTHON_PARTITION_VECTORS:
        assert resolved(key, list(range(1000)), []) == partition


class KafkaPython3StylePartitioner:
    """kafka-python 3.x's Partitioner shape: an object with partition(topic, key, ...)."""

    def partition(self, topic, key, serialized_key, value,  # type: ignore[no-untyped-def]
                  serialized_value, cluster):
        return 0


@pytest.mark.parametrize("bad, message", [
    ("fnv1a", "unknown partitioner 'fnv1a'"),
    ("XXHASH", "unknown partitioner"),  # names are exact, like Kafka's config values
    ("", "unknown partitioner"),
    (b"xxhash", "not bytes"),
    (42, "not int"),
    (KafkaPython3StylePartitioner(), "3.x"),
    (HashPartitioner, "class HashPartitioner"),
    (KafkaPythonDefaultPartitioner, "pass an instance"),
    (lambda key: 0, "cannot be called as partitioner"),
    (lambda key, all_partitions, available, topic: 0, "cannot be called as partitioner"),
])
def test_resolve_rejects(bad: object, message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message) as info:
        resolve_partitioner(bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, StromError)
