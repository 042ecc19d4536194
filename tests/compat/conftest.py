"""Each compat test starts with no shared logs and no STROM_DATA_DIR, and leaves none behind.

The in-memory warning is silenced here (every in-memory test would raise
it); the tests of the warning itself catch it with ``pytest.warns``.
"""

from __future__ import annotations

import warnings

import pytest

from strom.compat import DATA_DIR_ENV, InMemoryLogWarning, close_shared_logs


@pytest.fixture(autouse=True)
def fresh_shared_logs(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    close_shared_logs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InMemoryLogWarning)
        yield
    close_shared_logs()
