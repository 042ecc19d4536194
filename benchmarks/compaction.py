"""Compaction benchmark: how fast the log cleaner compacts a partition, beside strom's read speed.

Plain script (STYLE.md habit 14): prints fixed-width tables with medians,
the read speed of the same partition measured beside each cleaning figure in
the same round, and the ratio of the two.

    python benchmarks/compaction.py            # full run, about a minute, ~1 GB of disk; writes results/compaction-<date>.*
    python benchmarks/compaction.py --quick    # seconds-long smoke run (CI); writes nothing
    python benchmarks/compaction.py --profile  # also profile one clean (cProfile), top 15 functions

Each round of each case fills a fresh log: one partition of a topic with
``cleanup.policy=compact`` and ``segment.bytes`` of SEGMENT_BYTES, N records
(16-byte keys drawn from K distinct ones, 100-byte values; 546 a batch, as in
storage.py), appended with acks=1, then rolled so that every record is in a
sealed segment, and the log closed.  The log is reopened (``cleaner=False``:
no background thread), the partition is read whole, every batch decoded and
every key and value touched (storage.py's read figure), and then
``clean_partition(p, force=True)`` runs once, timed: both passes (the key
map, the copy), the writes and fdatasync of the cleaned files and the swaps.
records/s is ``records_read / seconds``, MB/s is ``bytes_read / seconds``
(bytes of the segment files read, compressed when the batches are).

Cases: plain batches with K = N/20 (every key written ~20 times, 95% of the
records to drop); the same data in zstd-compressed batches; and a mostly
unique key space (K = 20 N: ~97.5% of the records distinct, little to drop,
so nearly every batch is re-encoded).

Expected figures, written down before the first full run (2-vCPU VM,
Python 3.11; a 1M-record prototype of the article's signups, JSON values in
1 MiB segments, cleaned in 0.39 s, ~2.5 M records/s, fsyncs included):

* 100k keys, plain: pass 1 decodes each batch's keys column
  (``keys_and_offsets``: xxh3 ~4 ns + a bytes object per key ~30 ns) and
  ``dict.update(zip(keys, offsets))`` ~40 ns; pass 2 decodes whole batches
  (``columns()``, keys and values ~60 ns), ``map(le, map(latest.get, ...))``
  ~40 ns, and re-encodes the ~5% kept (packb ~27 ns each, spread: ~2 ns).
  About 180-220 ns a record plus fdatasync of ~12 MB: ~4-5 M records/s,
  0.3 of the read speed (15 M/s in results/storage-2026-11-25.txt).
* zstd: + decompression in both passes (~85 ns each) and compression of
  what is kept (~10 ns a record read): ~350 ns -> ~2.5-3 M records/s.
* mostly unique: a 2M-key map (dict growth, cache misses: ~100 ns a key)
  and nearly every record re-encoded (~40 ns) and written (~240 MB, its
  fdatasync ~0.1-0.2 s): ~350-400 ns -> ~2.5 M records/s.
* Target (the compaction issue): cleaning >= 1,000,000 records/s on one
  core (the cleaner is one thread).

Measured first (the VM shared with other test runs: load average ~2.4 on
2 CPUs): 2.1 M records/s with 100k keys, 1.95 M/s with zstd, 0.88 M/s
mostly unique (MISS); read 14 M/s.  Half to a third of the estimates.  The
surprise was the map: a line-level profile (py-spy) put ~45% of a 100k-key
clean on pass 2's per-record ``list(map(le, map(latest.get, keys, offsets),
offsets))`` and ~28% on pass 1's ``dict.update`` (~100 ns a record at 100k
keys, ~370 at 2M): every lookup lands on a key object and an offset int
allocated in pass 1 and scattered through memory, a few cache misses a
record instead of the ~40 ns budgeted.

What changed: in the dirty tail every key is in the map, so a record stays
exactly when its offset is its key's latest.  Pass 2 now bisects the sorted
latest offsets for each dirty batch: a batch with no survivor is skipped
undecoded, one whose records all survive is copied undecoded, and a partly
kept one picks its survivors with one ``itemgetter`` (cost per survivor,
not per record).  The per-record dict lookup is left for the clean head.

Measured after (results/compaction-2026-11-25.txt, quiet machine, load
~0.9): 5.0 M records/s with 100k keys, 4.3 M/s with zstd, 1.19 M/s mostly
unique, all >= 1 M: PASS; read 16 M/s, so cleaning runs at 0.07-0.45 of the
read speed.  Pass 1's ``dict.update`` is now the largest single cost (~60
ns a record at 10k keys), then the file work (closing, and so freeing, the
replaced segments' pages; fdatasync of the cleaned files).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import shutil
import statistics
import time

import storage as storage_bench  # benchmarks/storage.py: data, table helpers, machine facts

import strom
from strom.storage.cleaner import CleanResult, clean_partition

Table = storage_bench.Table
si = storage_bench.si
mb = storage_bench.mb

TOPIC = "bench"
KEY_BYTES = storage_bench.KEY_BYTES
VALUE_BYTES = storage_bench.VALUE_BYTES
RECORD_BYTES = storage_bench.RECORD_BYTES
RECORDS_PER_APPEND = storage_bench.RECORDS_PER_APPEND
read_partition = storage_bench.read_partition
#: About 8 sealed segments of the full run's 240 MB (the quick run's 24 MB: 4 MiB).
SEGMENT_BYTES = 32 * 1024 * 1024
QUICK_SEGMENT_BYTES = 4 * 1024 * 1024
TARGET_CLEAN = 1_000_000

CASES = (
    # name (K filled in), the key space K as a function of N, compression
    ("{k} keys", lambda n: n // 20, None),
    ("{k} keys, zstd", lambda n: n // 20, "zstd"),
    ("mostly unique, {k}-key space", lambda n: 20 * n, None),
)


def case_name(i: int, n: int) -> str:
    name, k_of, _ = CASES[i]
    return name.format(k=si(k_of(n)))


# -- data ------------------------------------------------------------------------

def make_keys(n: int, k: int, seed: int) -> list[bytes]:
    """``n`` 16-byte keys drawn uniformly from ``k`` distinct ones."""
    rnd = random.Random(seed)
    keys = [b"user-%011d" % rnd.randrange(k) for _ in range(n)]
    assert all(len(x) == KEY_BYTES for x in keys[:1000])
    return keys


def fill(directory: str, vbatches: list, kbatches: list, compression: str | None,
         segment_bytes: int) -> None:
    """A fresh log with one compacted partition holding every batch, all of it sealed."""
    log = strom.open(directory, cleaner=False)
    try:
        log.create_topic(TOPIC, partitions=1, config={"cleanup.policy": "compact",
                                                      "segment.bytes": segment_bytes})
        p = log.partition(TOPIC, 0)
        append = p.append
        for values, keys in zip(vbatches, kbatches):
            append(values, keys, acks=1, compression=compression)
        p.roll()
    finally:
        log.close()


def check_clean(p, result, n: int, distinct: int, error: type[BaseException]) -> None:
    """Raise ``error`` unless a forced clean of ``n`` records over ``distinct`` keys examined
    them all, kept one per key, and left a sound partition."""
    if result is None or result.records_read != n or result.records_kept != distinct:
        raise error(f"the clean examined {result and result.records_read} records and kept "
                    f"{result and result.records_kept}; expected {n} and {distinct}")
    problems = p.verify()
    if problems:
        raise error(f"the cleaned partition is damaged: {problems[:3]}")


def read_and_clean(directory: str, n: int, distinct: int) -> tuple[float, CleanResult]:
    """Reopen the filled log; time a whole read, then one forced clean (checked)."""
    log = strom.open(directory, cleaner=False)
    try:
        p = log.partition(TOPIC, 0)
        read_s = read_partition(p, n)
        result = clean_partition(p, force=True)
        check_clean(p, result, n, distinct, SystemExit)
    finally:
        log.close()
    return read_s, result


# -- the run ---------------------------------------------------------------------

def run(base: str, n: int, rounds: int, segment_bytes: int) -> dict:
    values, _keys, _timestamps = storage_bench.make_records(n)
    del _keys, _timestamps
    vb = storage_bench.batches_of(values, RECORDS_PER_APPEND)
    by_k: dict[int, tuple[list, int]] = {}  # cases with the same K share their keys
    for k in sorted({k_of(n) for _, k_of, _ in CASES}):
        keys = make_keys(n, k, seed=13 + k)
        by_k[k] = (storage_bench.batches_of(keys, RECORDS_PER_APPEND), len(set(keys)))
    del keys
    # The input stays out of the cyclic collector's sight (storage.py: run_table1).
    gc.collect()
    gc.freeze()
    warm = storage_bench.warm_page_cache(base, max(4 * n * RECORD_BYTES, 64 * 1024 * 1024))
    rows = [{"name": case_name(i, n), "compression": compression, "keys": k_of(n),
             "distinct": by_k[k_of(n)][1], "samples": []}
            for i, (_, k_of, compression) in enumerate(CASES)]
    for r in range(rounds):  # rounds outermost: a slow spell of the machine hits every case alike
        for row in rows:
            d = os.path.join(base, f"r{r}")
            fill(d, vb, by_k[row["keys"]][0], row["compression"], segment_bytes)
            row["samples"].append(read_and_clean(d, n, row["distinct"]))
            shutil.rmtree(d)
            gc.collect()
    gc.unfreeze()
    return {"n": n, "rounds": rounds, "rows": rows, "warm": warm, "segment_bytes": segment_bytes}


def profile_clean(base: str, n: int, segment_bytes: int, case: int,
                  top: int = 15) -> tuple[Table, list[str]]:
    """cProfile of one clean of ``CASES[case]``; its ``top`` functions by own time."""
    _, k_of, compression = CASES[case]
    name = case_name(case, n)
    values, _keys, _ts = storage_bench.make_records(n)
    keys = make_keys(n, k_of(n), seed=13 + k_of(n))
    d = os.path.join(base, "profile")
    fill(d, storage_bench.batches_of(values, RECORDS_PER_APPEND),
         storage_bench.batches_of(keys, RECORDS_PER_APPEND), compression, segment_bytes)
    del values, keys, _keys, _ts
    gc.collect()
    log = strom.open(d, cleaner=False)
    try:
        p = log.partition(TOPIC, 0)
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        result = clean_partition(p, force=True)
        prof.disable()
        wall = time.perf_counter() - t
    finally:
        log.close()
    shutil.rmtree(d)
    stats = pstats.Stats(prof).stats  # {(file, line, function): (cc, ncalls, own, cumulative, callers)}
    total = sum(v[2] for v in stats.values())
    t = Table(f"Table 3. cProfile of one clean, case \"{name}\", {n:,} records: the {top} functions "
              "with the most own time",
              [("function", "<"), ("calls", ">"), ("own s", ">"), ("own %", ">"), ("cum s", ">"),
               ("own ns/rec", ">")])
    for (file, line, func), (_cc, ncalls, own, cum, _callers) in sorted(
            stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]:
        where = func if file == "~" else f"{func} ({_short(file)}:{line})"
        t.add(where, f"{ncalls:,}", f"{own:.3f}", f"{own / total * 100:.1f}", f"{cum:.3f}",
              f"{own / n * 1e9:.0f}")
    cum = {func: v[3] for (file, _line, func), v in stats.items()
           if file.endswith((os.path.join("storage", "cleaner.py"),
                             os.path.join("storage", "partition.py")))}
    notes = [
        (f"cumulative: pass 1 (build_map) {cum.get('build_map', 0):.3f} s, pass 2 (clean_group) "
         f"{cum.get('clean_group', 0):.3f} s, of which the swaps (replace_segments) "
         f"{cum.get('replace_segments', 0):.3f} s."),
        (f"wall {wall:.2f} s under the profiler ({n / wall / 1e6:.2f} M records/s; the profiler adds "
         f"a cost per Python call), {total:.2f} s of own time in all; records kept "
         f"{result.records_kept:,} of {result.records_read:,}."),
        ("Built-ins show as {method ...}/<built-in ...>; their own time is C work called from the "
         "cleaner (msgpack, dict, xxhash, zstd, the file calls)."),
    ]
    return t, notes


def _short(path: str) -> str:
    parts = path.replace(os.sep, "/").split("/")
    if "strom" in parts:
        return "/".join(parts[parts.index("strom"):])
    return "/".join(parts[-2:])


# -- output ----------------------------------------------------------------------

def tables(res: dict) -> tuple[Table, list[str], Table, list[str], str]:
    n = res["n"]
    rounds = res["rounds"]
    t1 = Table(f"Table 1. clean_partition(force=True) of one partition of {n:,} records "
               f"({KEY_BYTES} B key + {VALUE_BYTES} B value, {RECORDS_PER_APPEND} a batch, all sealed), "
               f"median of {rounds} round(s)",
               [("case", "<"), ("rec/s", ">"), ("MB/s", ">"), ("ns/rec", ">"), ("min-max rec/s", ">"),
                ("clean s", ">"), ("read rec/s", ">"), ("clean/read", ">"), ("target", ">"), ("", "<")])
    t2 = Table("Table 2. the partition before and after the clean (median round)",
               [("case", "<"), ("records", ">"), ("distinct keys", ">"), ("kept", ">"),
                ("MB before", ">"), ("MB after", ">"), ("after/before", ">"), ("segs before", ">"),
                ("segs after", ">"), ("MB written", ">")])
    misses = []
    for row in res["rows"]:
        samples = row["samples"]
        rates = sorted(s[1].records_read / s[1].seconds for s in samples)
        clean_s = statistics.median(s[1].seconds for s in samples)
        rate = n / clean_s
        mid = sorted(samples, key=lambda s: s[1].seconds)[len(samples) // 2][1]
        read_rate = n / statistics.median(s[0] for s in samples)
        ok = rate >= TARGET_CLEAN
        if not ok:
            misses.append(row["name"])
        t1.add(row["name"], si(rate), f"{mid.bytes_read / mid.seconds / 1e6:,.0f}",
               f"{1e9 / rate:.0f}", f"{si(rates[0])}-{si(rates[-1])}", f"{clean_s:.3f}",
               si(read_rate), f"{rate / read_rate:.2f}", f">= {si(TARGET_CLEAN)}",
               "PASS" if ok else "MISS")
        t2.add(row["name"], f"{mid.records_read:,}", f"{row['distinct']:,}", f"{mid.records_kept:,}",
               mb(mid.bytes_before), mb(mid.bytes_after), f"{mid.bytes_after / mid.bytes_before:.3f}",
               mid.segments_before, mid.segments_after, mb(mid.bytes_written))
    notes1 = [
        ("rec/s = records_read / seconds of the clean (both passes, the cleaned files' writes and "
         "fdatasync, the swaps); MB/s = bytes_read / seconds (segment bytes, compressed for zstd). "
         "ns/rec = 1e9 / median rate."),
        ("read rec/s: the same partition read whole just before the clean, every batch decoded and "
         "every key and value touched (storage.py's read); clean/read = cleaning rate / read rate."),
        ("Each round fills a fresh log (acks=1), rolls it, closes it, reopens it with cleaner=False, "
         "reads it and cleans it; everything comes from the page cache (just written)."),
        "The cleaner is one thread: the rate is one core's.",
    ]
    notes2 = [
        (f"segment.bytes = {res['segment_bytes'] >> 20} MiB; segments counted with the active one "
         "(empty after the roll). A first clean groups segments by their size before the clean, so "
         "it does not merge them; the next clean does."),
    ]
    verdict = ("target: cleaning >= 1,000,000 records/s on one core: "
               + ("PASS (every case)" if not misses else f"MISS ({', '.join(misses)})"))
    return t1, notes1, t2, notes2, verdict


def header(args, fs_kind: str, load: tuple[float, float, float], warm: tuple[float, float]) -> list[str]:
    return [
        "strom compaction benchmark" + (" (--quick: a smoke run; one round, a small partition, "
                                        "figures indicative only)" if args.quick else ""),
        *storage_bench.machine_lines(fs_kind, args.dir is not None, load),
        (f"warm-up    page-cache writes in 64 KiB: first pass {warm[0]:,.0f} MB/s, "
         f"second pass {warm[1]:,.0f} MB/s"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI); writes no results")
    ap.add_argument("--records", type=int,
                    help="records per partition (default 2,000,000; 200,000 with --quick)")
    ap.add_argument("--rounds", type=int, help="rounds for the medians (default 5; 1 with --quick)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one clean (cProfile) and print its top 15 functions")
    ap.add_argument("--profile-case", type=int, default=0, choices=range(len(CASES)),
                    help="the case --profile cleans: its row in Table 1, from 0 (default 0)")
    ap.add_argument("--dir", help="where the data goes (default: a new directory in the system temp)")
    ap.add_argument("--no-save", action="store_true", help="do not write results/compaction-<date>.*")
    args = ap.parse_args()

    n = args.records or (200_000 if args.quick else 2_000_000)
    rounds = args.rounds or (1 if args.quick else 5)
    segment_bytes = QUICK_SEGMENT_BYTES if args.quick else SEGMENT_BYTES
    started = time.perf_counter()
    load = os.getloadavg()
    with storage_bench.scratch_dir(args.dir) as (base, fs_kind):
        res = run(base, n, rounds, segment_bytes)
        prof = profile_clean(base, n, segment_bytes, args.profile_case) if args.profile else None
    elapsed = time.perf_counter() - started

    t1, notes1, t2, notes2, verdict = tables(res)
    head = header(args, fs_kind, load, res["warm"])
    parts = [(t1, notes1), (t2, notes2)] + ([prof] if prof is not None else [])
    text = "\n\n".join(["\n".join(head)]
                       + [t.text() + "\n" + "\n".join("  " + s for s in notes) for t, notes in parts]
                       + [verdict, f"elapsed {elapsed:.1f} s"])
    print(text)
    if not args.quick and not args.no_save:
        md = "\n\n".join(["\n".join(["## " + head[0], ""] + ["- " + h for h in head[1:]])]
                         + [t.markdown() + "\n\n" + "\n".join("- " + s for s in notes)
                            for t, notes in parts]
                         + [f"**{verdict}**", f"elapsed {elapsed:.1f} s"])
        stem = storage_bench.results_stem("compaction")
        with open(stem + ".txt", "w") as f:
            f.write(text + "\n")
        with open(stem + ".md", "w") as f:
            f.write(md + "\n")
        print(f"\nwrote {os.path.relpath(stem, os.getcwd())}.txt and .md")


if __name__ == "__main__":
    main()
