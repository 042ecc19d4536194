"""The benchmark runner: strom beside the peers a Python user would pick instead.

    python -m benchmarks              # full run, at most 15 minutes; writes results/compare-<date>.*
    python -m benchmarks --quick      # about a minute; writes results/compare-<date>-quick.*
    python -m benchmarks --smoke      # seconds (CI): strom, the floor and sqlite3 only; writes nothing
    python -m benchmarks --out DIR    # write the result files to DIR instead of benchmarks/results/

Steps: ``install_peers.sh`` (redis-server and the ``bench`` extra; skipped
with ``--no-install`` and ``--smoke``; if it fails the runner says why and
goes on, and the peers it would have installed report themselves
unavailable), then ``compare.run`` in a fresh scratch directory with a
progress bar on stderr, then the files:

* ``<stem>.json``: the whole report (``meta``, ``results``) and ``ratios``;
* ``<stem>.md``: the machine facts (cores, Python, date, load) and
  ``compare.markdown``'s tables, which are also printed;
* ``<stem>-produce.png``, ``-consume.png``, ``-latency.png`` (``plots.py``),
  unless ``--no-plots`` or matplotlib is missing.

``--smoke`` passes ``systems=`` and ``n=`` to ``compare.run`` when it takes
them; an older ``compare.run`` without them runs every peer at the quick size
and the report is filtered afterwards (said on stderr).  It exits with
status 1 if any strom figure is missing, so the suite cannot rot unseen.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The scripts here import each other by module name (compaction.py: `import storage
# as storage_bench`); `python -m benchmarks` runs from the repository root, where
# only the package is importable.  Putting the folder first makes both work.
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import storage as storage_bench  # benchmarks/storage.py: scratch_dir, results_stem, machine_lines

from strom.progress import ProgressBar

#: What --smoke runs: both strom rows and the two peers that need no server and no install.
SMOKE_SYSTEMS = ("strom (acks=1)", "strom (acks=all)", "floor (file loop)", "sqlite3")
#: Records per produce/consume in --smoke: enough to exercise every code path, seconds in all.
SMOKE_N = 2_000
#: install_peers.sh runs apt-get and pip; give up on it after this long rather than hang the run.
INSTALL_TIMEOUT_S = 900
INSTALL_SCRIPT = os.path.join(HERE, "install_peers.sh")


def install_peers() -> str | None:
    """Run install_peers.sh into this Python; ``None`` if it worked, else why not."""
    env = dict(os.environ, PYTHON=sys.executable)
    try:
        # Its output goes to stderr: stdout carries only the markdown tables.
        proc = subprocess.run(["bash", INSTALL_SCRIPT], check=False, env=env, stdin=subprocess.DEVNULL,
                              stdout=sys.stderr, stderr=sys.stderr, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"install_peers.sh did not finish in {INSTALL_TIMEOUT_S} s"
    except OSError as e:
        return f"install_peers.sh could not run: {e}"
    if proc.returncode != 0:
        return f"install_peers.sh exited with status {proc.returncode} (its output is above)"
    return None


def run_compare(compare, scratch: str, quick: bool, smoke: bool) -> tuple[dict, str | None]:
    """``compare.run`` with a progress bar; for --smoke, only SMOKE_SYSTEMS at SMOKE_N records.

    Returns the report and, when ``compare.run`` could not be told which
    systems to run, a note saying the report was filtered afterwards.
    """
    params = inspect.signature(compare.run).parameters
    kwargs: dict = {}
    note = None
    if smoke:
        if "systems" in params:
            kwargs["systems"] = SMOKE_SYSTEMS
        else:
            note = ("compare.run takes no systems= argument: every peer ran and the report was "
                    "filtered to " + ", ".join(SMOKE_SYSTEMS) + " afterwards")
        if "n" in params:
            kwargs["n"] = SMOKE_N
    bar = ProgressBar("compare", unit="steps")
    try:
        report = compare.run(scratch, quick or smoke, progress=bar, **kwargs)
    finally:
        bar.close()
    if smoke and "systems" not in kwargs:
        report["results"] = [r for r in report["results"] if r["system"] in SMOKE_SYSTEMS]
    return report, note


def missing_strom_figures(results: list[dict]) -> list[str]:
    """What a strom row lacks: it is unavailable, or has no rate (throughput) or no p99 (latency)."""
    problems = []
    strom_rows = [r for r in results if r["system"].startswith("strom")]
    if not strom_rows:
        return ["no strom rows in the report"]
    for r in strom_rows:
        what = (f"{r['system']} {r['workload']} {r.get('mode') or ''} "
                f"{r.get('value_bytes')} B x {r.get('partitions')} partition(s)").replace("  ", " ")
        if r.get("unavailable"):
            problems.append(f"{what}: unavailable: {r['unavailable']}")
        elif r["workload"] == "latency" and r.get("p99_us") is None:
            problems.append(f"{what}: no p99")
        elif r["workload"] != "latency" and r.get("records_per_s") is None:
            problems.append(f"{what}: no records/s")
    return problems


def fill_meta(meta: dict, fs_kind: str, dir_given: bool, load: tuple[float, float, float],
              args: argparse.Namespace, elapsed_s: float, install_problem: str | None) -> None:
    """The machine facts the markdown header and the plot titles show, beside what compare.run put there."""
    meta.setdefault("cpus", os.cpu_count())
    meta.setdefault("python", f"{platform.python_implementation()} {platform.python_version()}")
    meta.setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("quick", bool(args.quick))
    meta["smoke"] = bool(args.smoke)
    meta["machine_lines"] = storage_bench.machine_lines(fs_kind, dir_given, load)
    meta["elapsed_s"] = round(elapsed_s, 1)
    if install_problem:
        meta["install_problem"] = install_problem


def markdown_page(report: dict, body: str, notes: list[str]) -> str:
    meta = report["meta"]
    kind = (" (--smoke: a seconds-long CI run; figures meaningless)" if meta.get("smoke") else
            " (--quick: a short run; figures indicative only)" if meta.get("quick") else "")
    head = [f"## strom against its peers{kind}", ""] + ["- " + line for line in meta["machine_lines"]]
    tail = ["- " + n for n in notes] + [f"- elapsed {meta['elapsed_s']:.1f} s"]
    return "\n".join(head) + "\n\n" + body.rstrip() + "\n\n" + "\n".join(tail) + "\n"


def write_text(path: str, text: str) -> None:
    """Write by a temporary file and a rename, so a killed run leaves no half-written result."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a run of about a minute")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds-long CI run: strom, the floor and sqlite3, tiny n, no install; "
                         "writes files only with --out; exit status 1 if a strom figure is missing")
    ap.add_argument("--out", metavar="DIR", help="where the result files go (default benchmarks/results/)")
    ap.add_argument("--dir", help="parent of the scratch directory (default: the system temp)")
    ap.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    ap.add_argument("--no-install", action="store_true", help="do not run install_peers.sh first")
    args = ap.parse_args(argv)

    notes: list[str] = []
    install_problem = None
    if not (args.no_install or args.smoke):
        install_problem = install_peers()
        if install_problem:
            print(f"{install_problem}; going on: the peers it would have installed "
                  f"will report themselves unavailable", file=sys.stderr)
            notes.append(install_problem)

    import compare  # benchmarks/compare.py: the workloads, the peers' rows, the ratios and the tables

    started = time.perf_counter()
    load = os.getloadavg()
    with storage_bench.scratch_dir(args.dir) as (scratch, fs_kind):
        report, filter_note = run_compare(compare, scratch, args.quick, args.smoke)
    elapsed = time.perf_counter() - started
    if filter_note:
        print(filter_note, file=sys.stderr)
        notes.append(filter_note)

    report.setdefault("meta", {})
    fill_meta(report["meta"], fs_kind, args.dir is not None, load, args, elapsed, install_problem)
    report["ratios"] = compare.ratios(report["results"])
    page = markdown_page(report, compare.markdown(report), notes)
    print(page)

    if not args.smoke or args.out:
        stem = storage_bench.results_stem("compare")
        if args.out:
            stem = os.path.join(args.out, os.path.basename(stem))
        else:
            stem = os.path.relpath(stem)
        stem += "-smoke" if args.smoke else "-quick" if args.quick else ""
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        write_text(stem + ".json", json.dumps(report, indent=1) + "\n")
        write_text(stem + ".md", page)
        written = [stem + ".json", stem + ".md"]
        if args.no_plots:
            pass
        else:
            try:
                import plots  # benchmarks/plots.py; needs matplotlib (the bench extra)
            except ImportError as e:
                if e.name is None or not e.name.startswith("matplotlib"):
                    raise
                print("no plots: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
            else:
                written += plots.plot(report, stem)
        print("wrote " + ", ".join(written), file=sys.stderr)

    if args.smoke:
        problems = missing_strom_figures(report["results"])
        if problems:
            print("smoke run FAILED, strom figures missing:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
