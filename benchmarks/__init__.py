"""strom's benchmarks: plain scripts, and one runner that sets strom beside its peers.

Each ``benchmarks/<name>.py`` is a plain script (STYLE.md habit 14) that
prints fixed-width tables with medians and the floor measured beside each
figure; ``python benchmarks/storage.py --quick`` runs one of them.

``python -m benchmarks`` (``__main__.py``) is the runner of issue 6: it
installs and starts the peers a Python user would pick instead of strom
(``install_peers.sh``, ``peers.py``), runs ``compare.py``'s workloads against
all of them in one run, and writes a markdown table, a JSON of every figure
and PNG plots (``plots.py``) to ``benchmarks/results/``.  ``--quick`` is a run
of about a minute, ``--smoke`` a seconds-long one for CI.

The scripts import each other by module name (``import storage``), so this
folder must be on ``sys.path``: running a script puts it there, and the
runner puts it there before it imports anything from it.
"""
