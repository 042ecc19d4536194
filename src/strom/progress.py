"""A progress bar for long work (compaction, benchmarks), on stderr, with no dependency.

``progress=True`` in strom's long-running calls draws one of these;
``progress=callable`` gets ``(done, total)`` instead; ``None``/``False`` is silent.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

__all__ = ["ProgressBar", "progress_callback"]


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class ProgressBar:
    """A one-line bar redrawn at most ``hz`` times a second; ``close()`` ends the line."""

    def __init__(self, description: str, *, stream: TextIO | None = None, width: int = 30,
                 unit: str = "bytes", hz: float = 10.0) -> None:
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.unit = unit
        self.interval = 1.0 / hz
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        """Record progress (``done`` of ``total``) and redraw if it is time."""
        self.done, self.total = done, total
        now = time.monotonic()
        if now - self._last_draw >= self.interval or done >= total:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        total = max(self.total, 1)
        frac = min(max(self.done / total, 0.0), 1.0)
        filled = int(frac * self.width)
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.unit == "bytes":
            amount = f"{_human(self.done)}/{_human(self.total)} {_human(rate)}/s"
        else:
            amount = f"{self.done:,}/{self.total:,} {self.unit} {rate:,.0f}/s"
        self.stream.write(f"\r{self.description} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{frac:4.0%} {amount}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._drawn or self.done:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_callback(progress: Any, description: str) -> tuple[Callable[[int, int], Any] | None,
                                                                  ProgressBar | None]:
    """``(callback, bar)`` for a ``progress=`` argument: True draws a bar, a callable is used as is."""
    if progress is None or progress is False:
        return None, None
    if progress is True:
        bar = ProgressBar(description)
        return bar, bar
    if not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable(done, total), "
                        f"not {type(progress).__name__}")
    return progress, None
