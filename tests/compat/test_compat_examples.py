"""The article's pipelines in examples/ run as real programs, in memory and on a directory."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import strom
from strom.compat import DATA_DIR_ENV

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != DATA_DIR_ENV}
    environ["PYTHONPATH"] = str(ROOT / "src")
    environ.update(env or {})
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                         text=True, check=False, timeout=180, env=environ, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out


def test_signups_in_memory():
    out = run("article_signups.py", "--signups", "30")
    assert "strom log: memory" in out.stdout
    assert "created topic user-signups" in out.stdout
    assert "3 partitions, cleanup.policy=compact, retention.ms=604800000" in out.stdout
    assert "produced 60 signups in two waves" in out.stdout
    assert "analytics consumer processed 30 signups: example.com 15, mail.org 15" in out.stdout
    assert "verification consumer processed 30 signups" in out.stdout
    committed = re.search(r"analytics-group committed: (.*)", out.stdout).group(1)
    assert sum(int(x) for x in re.findall(r"=(\d+)", committed)) == 60
    assert "InMemoryLogWarning" in out.stderr and "nothing written to it is persisted" in out.stderr


@pytest.mark.parametrize("how", ["option", "env"])
def test_signups_on_a_directory_twice(tmp_path, how):
    data = tmp_path / "log"
    args, env = (["--data-dir", str(data)], None) if how == "option" else ([], {DATA_DIR_ENV: str(data)})
    first = run("article_signups.py", "--signups", "20", *args, env=env)
    assert f"strom log: {data}" in first.stdout
    assert "InMemoryLogWarning" not in first.stderr
    second = run("article_signups.py", "--signups", "5", *args, env=env)
    assert "topic user-signups exists (from an earlier run)" in second.stdout
    # The group resumes from its committed offsets: only the new signups are processed.
    assert "analytics consumer processed 5 signups" in second.stdout
    assert "verification consumer processed 5 signups" in second.stdout
    with strom.open(data) as log:
        desc = log.describe_topic("user-signups")
        assert len(desc.partitions) == 3
        assert desc.config["cleanup.policy"] == "compact"
        assert sum(p.log_end_offset for p in desc.partitions) == 50


def test_online_learning_in_memory():
    out = run("article_online_learning.py", "--events", "150")
    assert "strom log: memory" in out.stdout
    assert len(re.findall(r"^Prediction: [01], Window: b'window-\d+'$", out.stdout, re.MULTILINE)) == 150
    assert "learned online from 150 interactions" in out.stdout
    accuracy, baseline = map(float, re.search(
        r"accuracy on 1000 held-out interactions: ([\d.]+) \(always guessing the commoner "
        r"label: ([\d.]+)\)", out.stdout).groups())
    assert accuracy > baseline + 0.1  # it did learn


def test_online_learning_on_a_directory(tmp_path):
    data = tmp_path / "log"
    run("article_online_learning.py", "--events", "60", "--data-dir", str(data))
    again = run("article_online_learning.py", "--events", "40", "--data-dir", str(data))
    # No group, earliest offset: the second run learns from the first run's events too.
    assert "learned online from 100 interactions" in again.stdout
    with strom.open(data) as log:
        assert log.partition("user-interactions", 0).log_end_offset == 100
