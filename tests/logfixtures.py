"""Fixtures shared by the client and group tests: logs in memory and in a directory, consumers.

``log_fixture(n)`` and ``two_logs_fixture(n)`` make fixtures for a topic
``t`` of ``n`` partitions (each test module picks its ``n``); ``consumers``
is a factory whose consumers are closed at the end of the test.
"""

from __future__ import annotations

from typing import Any

import pytest

import strom
from strom import StromError
from strom.storage import MemoryFileSystem


def log_fixture(partitions: int) -> Any:
    """A fixture: a log with topic ``t`` of ``partitions`` empty partitions, memory or directory."""
    @pytest.fixture(params=["memory", "directory"])
    def log(request: Any, tmp_path: Any) -> Any:
        lg = strom.open(":memory:" if request.param == "memory" else tmp_path / "data")
        lg.create_topic("t", partitions=partitions)
        yield lg
        lg.close()
    return log


def two_logs_fixture(partitions: int) -> Any:
    """A fixture: two Log objects on one log (a shared memory tree, or one directory)."""
    @pytest.fixture(params=["memory", "directory"])
    def two_logs(request: Any, tmp_path: Any) -> Any:
        if request.param == "memory":
            fs = MemoryFileSystem()
            opener = lambda: strom.open("/data", fs=fs)  # noqa: E731
        else:
            opener = lambda: strom.open(tmp_path / "data")  # noqa: E731
        a = opener()
        a.create_topic("t", partitions=partitions)
        b = opener()
        yield a, b
        b.close()
        a.close()
    return two_logs


@pytest.fixture
def consumers() -> Any:
    """Consumers made by a test (``consumers(log, *topics, listener=None, **config)``) are
    closed at its end."""
    made = []

    def make(lg: Any, *topics: str, listener: Any = None, **config: Any) -> strom.Consumer:
        c = strom.Consumer(lg, **config)
        made.append(c)
        if topics:
            c.subscribe(list(topics), listener=listener)
        return c

    yield make
    for c in made:
        try:
            c.close(autocommit=False)
        except StromError:
            pass
