"""Docs cannot drift: every Python example in README.md, docs/getting-started.md,
docs/groups.md and docs/compaction.md runs, and the quickstart runs."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_blocks(path: pathlib.Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


README = ROOT / "README.md"
BLOCKS = python_blocks(README)
GUIDE = ROOT / "docs" / "getting-started.md"
GUIDE_BLOCKS = python_blocks(GUIDE)
#: Pages whose examples run, with the fewest examples each must have.
PAGES = {"groups.md": 4, "compaction.md": 3}
PAGE_BLOCKS = {page: python_blocks(ROOT / "docs" / page) for page in PAGES}


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write ./data
    code = compile(BLOCKS[index], f"README.md example {index + 1}", "exec")
    exec(code, {"__name__": "__readme__"})


def test_getting_started_has_examples():
    assert len(GUIDE_BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(GUIDE_BLOCKS)))
def test_getting_started_example_runs(index, tmp_path, monkeypatch):
    run_guide_block(GUIDE_BLOCKS[index], f"docs/getting-started.md example {index + 1}",
                    tmp_path, monkeypatch)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_examples(page):
    assert len(PAGE_BLOCKS[page]) >= PAGES[page]


@pytest.mark.parametrize("page,index", [(page, i) for page, blocks in PAGE_BLOCKS.items()
                                        for i in range(len(blocks))])
def test_page_example_runs(page, index, tmp_path, monkeypatch):
    run_guide_block(PAGE_BLOCKS[page][index], f"docs/{page} example {index + 1}",
                    tmp_path, monkeypatch)


def run_guide_block(block: str, name: str, tmp_path: pathlib.Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Run one example of a guide in its own directory, as a reader would."""
    monkeypatch.chdir(tmp_path)
    # A block that starts another Python process needs strom importable there too.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src")] + ([path] if path else [])))
    # kafka-python-style servers name a log shared by the whole process; keep this
    # test's records out of every other test's.
    data_dir = tmp_path / "strom-data"
    data_dir.mkdir()
    monkeypatch.setenv("STROM_DATA_DIR", str(data_dir))
    code = compile(block, name, "exec")
    exec(code, {"__name__": "__guide__"})


def test_quickstart_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert "appended 10,000 records" in out.stdout
    assert "read 10,000 records back" in out.stdout
