"""Helpers shared by the tests that run strom in child processes.

A child script speaks by lines: commands on its stdin, answers on its
stdout, ``done ...`` last.  :class:`Child` starts one and talks to it;
:func:`children_fixture` makes a pytest fixture that kills whatever a test
left running.
"""

from __future__ import annotations

import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: A child that prints nothing for this long is hung: fail.
CHILD_TIMEOUT_S = 60.0


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


class LineChild:
    """A child script that only talks: its stdout lines go to :meth:`on_line` as they come.

    The parent selects on ``fd`` and calls :meth:`feed`; stderr goes to a
    temporary file, read back by :meth:`died_on_its_own`.
    """

    def __init__(self, script: Path, args: list[Any], env: dict[str, str], name: str) -> None:
        self.name = name
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(script), *map(str, args)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.fd = self.proc.stdout.fileno()
        self.started = time.monotonic()
        self.eof = False
        self.killed = False
        self._buf = b""

    def on_line(self, line: bytes) -> None:
        """One whole line the child wrote (without its newline)."""
        raise NotImplementedError

    def feed(self) -> bool:
        """Read what the pipe holds (call when select says it is readable); False at end of file."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.eof = True
            return False
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self.on_line(line)
        return True

    def kill(self) -> None:
        """SIGKILL, reap, and read every line it wrote before it died."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.killed = True
        self.proc.wait(timeout=CHILD_TIMEOUT_S)
        while not self.eof:
            self.feed()
        assert not self._buf, f"{self.name} left a partial line {self._buf!r}"

    def died_on_its_own(self, what: str = "before it was killed") -> str:
        """Its exit code and stderr, for a failure message."""
        self.stderr.seek(0)
        return (f"{self.name} exited with {self.proc.returncode} {what}:\n"
                + self.stderr.read().decode(errors="replace"))

    def close(self) -> None:
        """Kill it if it still runs; close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        self.stderr.close()


def kill_by_plans(children: list[LineChild], plans: list[Any], what: str = "children") -> None:
    """Kill each child when its plan says so; return once all are dead, their pipes drained.

    A plan has ``due(child, now) -> bool`` (kill it now) and ``wait(child,
    now) -> float | None`` (how long until it may be due without a line from
    the child; None: only a line can make it due).  A child that exits by
    itself, or a run that outlasts CHILD_TIMEOUT_S, fails the test.  Every
    child is closed at the end.
    """
    sel = selectors.DefaultSelector()
    try:
        for c in children:
            sel.register(c.fd, selectors.EVENT_READ, c)
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not all(c.killed for c in children):
            now = time.monotonic()
            assert now < deadline, f"{what} hung: neither printing nor dying"
            for c, plan in zip(children, plans):
                if not c.killed and plan.due(c, now):
                    sel.unregister(c.fd)
                    c.kill()
            waits = [w for c, plan in zip(children, plans) if not c.killed
                     for w in [plan.wait(c, now)] if w is not None]
            for key, _ in sel.select(max(0.0, min(waits)) if waits else 0.05):
                c = key.data
                c.feed()
                if c.eof:
                    c.proc.wait(timeout=CHILD_TIMEOUT_S)
                    pytest.fail(c.died_on_its_own())
        for c in children:
            assert c.proc.returncode == -signal.SIGKILL, c.died_on_its_own()
    finally:
        sel.close()
        for c in children:
            c.close()


class Child:
    """A child script spoken to by lines on stdin and stdout."""

    def __init__(self, script: Path, *args: Any) -> None:
        self.proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], bufsize=0,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=child_env())
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""

    def line(self, timeout: float = CHILD_TIMEOUT_S) -> str:
        """The next line the child prints (fails on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                self.fail(f"printed nothing for {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                self.fail("exited early")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def send(self, text: str) -> None:
        """Write one command line."""
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def ask(self, command: str) -> Any:
        """Send one command and return the child's JSON answer."""
        self.send(command)
        return json.loads(self.line())

    def finish(self) -> str:
        """Wait for the child's ``done ...`` line and its exit; returns the text after ``done``."""
        line = self.line()
        try:
            _out, err = self.proc.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if self.proc.returncode != 0 or not line.startswith("done"):
            self.fail(f"printed {line[:200]!r}", err)
        return line[len("done "):]

    def fail(self, what: str, err: bytes | None = None) -> None:
        """Fail the test with the child's stderr."""
        if err is None:
            self.proc.kill()
            _out, err = self.proc.communicate()
        pytest.fail(f"child {self.proc.args[2:]} {what} (status {self.proc.returncode}):\n"
                    + err.decode(errors="replace"))

    def all_threads_asleep(self) -> bool:
        """True when every thread of the child is blocked (state S); True where /proc is missing."""
        task_dir = f"/proc/{self.proc.pid}/task"
        try:
            tasks = os.listdir(task_dir)
        except OSError:
            return True
        for task in tasks:
            try:
                with open(f"{task_dir}/{task}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue  # the thread ended meanwhile
            if state != "S":
                return False
        return True

    def wait_until_blocked(self) -> None:
        """Return once every thread of the child sleeps (it is blocked in a wait)."""
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not self.all_threads_asleep():
            if time.monotonic() > deadline:
                self.fail("never blocked")
            time.sleep(0.001)

    def kill(self) -> None:
        """Kill the child if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.selector.close()


def children_fixture(script: Path) -> Callable[[], Iterator[Callable[..., Child]]]:
    """A pytest fixture starting ``script`` children (``start(*args)``), killed after the test."""

    @pytest.fixture
    def children() -> Iterator[Callable[..., Child]]:
        started: list[Child] = []

        def start(*args: Any, script: Path = script) -> Child:
            c = Child(script, *args)
            started.append(c)
            return c

        yield start
        for c in started:
            c.kill()

    return children
