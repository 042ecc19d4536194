"""PNG plots of a comparison report (``compare.run``): strom beside its peers.

``plot(report, out_stem)`` writes three charts and returns their paths:

* ``<out_stem>-produce.png``: records/s per system, one bar per API mode
  (per-record, batch), 100-byte values, 1 partition, log scale;
* ``<out_stem>-consume.png``: the same for consume;
* ``<out_stem>-latency.png``: produce-to-consume latency p50/p99/p999 per
  system at the fixed rate, µs, log scale.

strom's bars are orange, the peers' blue (shades tell the modes or
percentiles apart) and strom's names are bold.  A system that could not run
keeps its place as a grey band labelled "unavailable", with the reason
under the chart: a peer that is missing from a chart would read as a peer
that was never tried.  Titles carry the machine (cores, Python) and the
date from ``report["meta"]``.

Needs matplotlib (the ``bench`` extra); the Agg backend, so no display.
"""

from __future__ import annotations

import datetime
import math
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from storage import si  # benchmarks/storage.py: 3 significant figures with k/M

__all__ = ["plot"]

#: The configuration the charts show: the smallest values, one partition (the issue's headline case).
VALUE_BYTES = 100
PARTITIONS = 1
#: Shades, darkest first: one per mode or percentile.
STROM_COLORS = ("#c2410c", "#f97316", "#fdba74")
PEER_COLORS = ("#1e40af", "#3b82f6", "#93c5fd")
GAP_COLOR = "#e5e7eb"
#: A reason under the chart is cut to this many characters; the JSON has it whole.
REASON_CHARS = 110
DPI = 130


def _us(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.3g} s"
    if x >= 1e3:
        return f"{x / 1e3:.3g} ms"
    return f"{x:.3g} µs"


def _is_strom(system: str) -> bool:
    return system.startswith("strom")


def _facts(meta: dict) -> str:
    """"2 cores · CPython 3.11.7 · 2026-11-25 10:00 UTC", from whichever keys the report has."""
    cores = meta.get("cpus") or meta.get("cores") or meta.get("cpu_count")
    python = meta.get("python") or meta.get("python_version")
    date = meta.get("date") or meta.get("started")
    try:  # ISO 8601 from compare.run: shown to the minute, in UTC
        when = datetime.datetime.fromisoformat(str(date))
        if when.tzinfo is not None:
            when = when.astimezone(datetime.timezone.utc)
        date = f"{when:%Y-%m-%d %H:%M} UTC"
    except ValueError:
        pass
    parts = [f"{cores} cores" if cores else None, f"Python {python}".replace("Python CPython", "CPython")
             if python else None, str(date) if date else None]
    run = "smoke run" if meta.get("smoke") else "quick run" if meta.get("quick") else None
    return " · ".join(p for p in parts + [run] if p)


def _systems(rows: list[dict]) -> list[str]:
    """Every system in ``rows``, in order of first appearance, strom's first."""
    seen = list(dict.fromkeys(r["system"] for r in rows))
    return [s for s in seen if _is_strom(s)] + [s for s in seen if not _is_strom(s)]


def _headline(rows: list[dict], workload: str) -> tuple[list[dict], list[str]]:
    """Rows of ``workload`` at VALUE_BYTES and PARTITIONS, and every system that has a row of it at all."""
    of_workload = [r for r in rows if r["workload"] == workload]
    chosen = [r for r in of_workload if r.get("value_bytes") == VALUE_BYTES and r.get("partitions") == PARTITIONS]
    return chosen, _systems(of_workload)


def _unavailable(rows: list[dict], system: str) -> str | None:
    """The reason ``system`` could not run, if every one of its rows says it could not."""
    mine = [r for r in rows if r["system"] == system]
    if mine and all(r.get("unavailable") for r in mine):
        return mine[0]["unavailable"]
    return None


def _chart(title: str, ylabel: str, systems: list[str], series: list[str],
           value, reason_of, label, path: str) -> str:
    """A grouped bar chart on a log scale: one group per system, one bar per series.

    ``value(system, series)`` is a positive float or None; ``reason_of(system)``
    is why the system could not run, or None; ``label(v)`` prints a bar's value.
    """
    k = len(series)
    width = 0.8 / k
    height = 5.8
    fig, ax = plt.subplots(figsize=(max(7.5, 1.25 * len(systems) + 2.5), height))
    values = [v for s in systems for name in series if (v := value(s, name)) is not None and v > 0]
    if values:
        lo = 10 ** math.floor(math.log10(min(values)) - 0.15)
        hi = max(values) * 10 ** 0.8  # room for the labels above the bars, and the legend above those
    else:
        lo, hi = 1.0, 10.0
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    mid = math.sqrt(lo * hi)
    reasons = []
    for i, system in enumerate(systems):
        colors = STROM_COLORS if _is_strom(system) else PEER_COLORS
        reason = reason_of(system)
        if reason:
            ax.axvspan(i - 0.42, i + 0.42, color=GAP_COLOR, zorder=0)
            ax.text(i, mid, "unavailable", rotation=90, ha="center", va="center", fontsize=9, color="#4b5563")
            reasons.append(f"{system}: {reason}")
            continue
        for j, name in enumerate(series):
            x = i - 0.4 + width * (j + 0.5)
            v = value(system, name)
            if v is None or v <= 0:
                ax.text(x, lo * 1.15, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#6b7280")
                continue
            ax.bar(x, v, width=width * 0.92, color=colors[j % len(colors)], zorder=2)
            ax.text(x, v * 1.12, label(v), rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels([textwrap.fill(s, 14) for s in systems], fontsize=8.5)
    for tick, system in zip(ax.get_xticklabels(), systems):
        if _is_strom(system):
            tick.set_fontweight("bold")
            tick.set_color(STROM_COLORS[0])
    ax.set_xlim(-0.6, len(systems) - 0.4)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="major", color="#d1d5db", linewidth=0.6, zorder=1)
    ax.set_title(title, fontsize=11)
    handles = [Patch(color=PEER_COLORS[j % len(PEER_COLORS)], label=name) for j, name in enumerate(series)]
    handles.append(Patch(color=STROM_COLORS[0], label="strom (orange)"))
    ax.legend(handles=handles, fontsize=8, loc="upper right", ncol=len(handles), frameon=False)
    notes = [r if len(r) <= REASON_CHARS else r[:REASON_CHARS - 1] + "…" for r in reasons]
    bottom_in = 0.9 + 0.17 * len(notes)
    fig.set_size_inches(fig.get_figwidth(), height + 0.17 * len(notes))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.88, bottom=bottom_in / fig.get_figheight())
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize=7, color="#374151", va="bottom", ha="left")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _throughput(report: dict, workload: str, out_stem: str) -> str:
    rows, systems = _headline(report["results"], workload)
    modes = list(dict.fromkeys(r.get("mode") for r in rows)) or [None]
    # Per-record first: the call a user writes first, then the bulk API.
    modes.sort(key=lambda m: {"per-record": 0, "batch": 1}.get(m, 2))
    names = [m or workload for m in modes]
    rate = {(r["system"], r.get("mode") or workload): r.get("records_per_s") for r in rows}
    ns = sorted({r["n"] for r in rows if r.get("n")})
    n_text = f", {si(ns[0])} records" if len(ns) == 1 else ""
    title = (f"{workload.capitalize()} throughput, {VALUE_BYTES} B values, {PARTITIONS} partition{n_text}"
             f" (higher is better)\n{_facts(report.get('meta', {}))}")
    return _chart(title, "records/s (log scale)", systems, names,
                  value=lambda s, m: rate.get((s, m)),
                  reason_of=lambda s: _unavailable(rows, s) or (
                      _unavailable(report["results"], s) if not any(r["system"] == s for r in rows) else None),
                  label=si, path=f"{out_stem}-{workload}.png")


def _latency(report: dict, out_stem: str) -> str:
    rows, systems = _headline(report["results"], "latency")
    if not rows:  # no latency row at the headline configuration: show whatever was measured
        rows = [r for r in report["results"] if r["workload"] == "latency"]
    rates = [r.get("rate") for r in rows if r.get("rate")]
    # One fixed rate is the design; if a report has several, the commonest one is the chart's.
    rate = max(set(rates), key=rates.count) if rates else None
    if rate is not None:
        rows = [r for r in rows if r.get("rate") in (rate, None)]
    pcts = (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
    by = {r["system"]: r for r in rows}
    at = f" at {si(rate)} records/s" if rate else ""
    title = (f"Produce-to-consume latency{at}, {VALUE_BYTES} B values (lower is better)\n"
             f"{_facts(report.get('meta', {}))}")
    return _chart(title, "latency, µs (log scale)", systems, [p for p, _ in pcts],
                  value=lambda s, p: by.get(s, {}).get(dict(pcts)[p]),
                  reason_of=lambda s: _unavailable(report["results"] if s not in by else rows, s),
                  label=_us, path=f"{out_stem}-latency.png")


def plot(report: dict, out_stem: str) -> list[str]:
    """Write the produce, consume and latency charts of ``report`` as ``<out_stem>-*.png``; their paths."""
    return [_throughput(report, "produce", out_stem), _throughput(report, "consume", out_stem),
            _latency(report, out_stem)]
