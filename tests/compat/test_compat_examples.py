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


def signup_split(stdout: str) -> dict[str, tuple[set[int], int]]:
    """Each consumer's partitions and how many signups it processed, from the summary."""
    found = re.findall(r"^  (analytics|verification) consumer: partitions \[([\d, ]*)\], "
                       r"processed (\d+) signups?", stdout, re.MULTILINE)
    assert [name for name, _, _ in found] == ["analytics", "verification"], stdout
    return {name: ({int(p) for p in tps.split(", ") if p}, int(n)) for name, tps, n in found}


def committed_offsets(stdout: str) -> dict[int, int]:
    line = re.search(r"^analytics-group committed: (.*)$", stdout, re.MULTILINE).group(1)
    return {int(p): int(o) for p, o in re.findall(r"user-signups-(\d+)=(\d+)", line)}


def check_split(stdout: str, signups: int) -> dict[str, tuple[set[int], int]]:
    """The two consumers of the group split the partitions, and processed each signup once."""
    split = signup_split(stdout)
    (mine, analysed), (theirs, verified) = split["analytics"], split["verification"]
    assert mine and theirs and not mine & theirs, split  # each has a share; no partition twice
    assert mine | theirs == {0, 1, 2}, split
    assert analysed + verified == signups
    assert f"together: {signups} signup{'' if signups == 1 else 's'}, each new one once" in stdout
    return split


def test_signups_in_memory():
    out = run("article_signups.py", "--signups", "30")
    assert "strom log: memory" in out.stdout
    assert "created topic user-signups" in out.stdout
    assert "3 partitions, cleanup.policy=compact, retention.ms=604800000" in out.stdout
    assert "produced 30 signups" in out.stdout
    assert "analytics-group: 2 consumers share the 3 partitions of user-signups" in out.stdout
    split = check_split(out.stdout, 30)
    # Each consumer read exactly its own partitions: what it processed is what was
    # committed for them (the log was empty, so a committed offset counts records).
    committed = committed_offsets(out.stdout)
    assert sum(committed.values()) == 30
    for partitions, processed in split.values():
        assert sum(committed[p] for p in partitions) == processed
    # The analytics consumer's counts by email domain add up to what it processed.
    domains = re.search(r"analytics consumer: .*processed (\d+) signups? \((.*)\)", out.stdout)
    assert domains, out.stdout
    assert sum(int(n) for n in re.findall(r"(?:example\.com|mail\.org) (\d+)", domains[2])) \
        == int(domains[1])
    assert "InMemoryLogWarning" in out.stderr and "nothing written to it is persisted" in out.stderr


@pytest.mark.parametrize("how", ["option", "env"])
def test_signups_on_a_directory_twice(tmp_path, how):
    data = tmp_path / "log"
    args, env = (["--data-dir", str(data)], None) if how == "option" else ([], {DATA_DIR_ENV: str(data)})
    first = run("article_signups.py", "--signups", "20", *args, env=env)
    assert f"strom log: {data}" in first.stdout
    assert "InMemoryLogWarning" not in first.stderr
    check_split(first.stdout, 20)
    before = committed_offsets(first.stdout)
    assert sum(before.values()) == 20
    second = run("article_signups.py", "--signups", "5", *args, env=env)
    assert "topic user-signups exists (from an earlier run)" in second.stdout
    # The group resumes from its committed offsets: only the new signups are processed,
    # each once, by the consumer that owns its partition in this run.
    split = check_split(second.stdout, 5)
    after = committed_offsets(second.stdout)
    assert sum(after.values()) == 25
    for partitions, processed in split.values():
        assert sum(after[p] - before.get(p, 0) for p in partitions) == processed
    with strom.open(data) as log:
        desc = log.describe_topic("user-signups")
        assert len(desc.partitions) == 3
        assert desc.config["cleanup.policy"] == "compact"
        assert sum(p.log_end_offset for p in desc.partitions) == 25


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
