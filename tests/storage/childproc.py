"""Helpers shared by the tests that run strom in child processes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

SRC = Path(__file__).resolve().parents[2] / "src"


def load_module(path: Path, name: str) -> ModuleType:
    """Import a child script by file path (independent of how pytest imports tests)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_env() -> dict[str, str]:
    """The environment for a child: this checkout's src first on PYTHONPATH."""
    env = dict(os.environ)
    parts = [str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
