"""A dependency-free progress bar for long work, drawn on stderr.

It redraws at most ten times a second, so calling :meth:`update` in a loop is
cheap, and it stays silent when stderr is not a terminal unless forced, so logs
and CI output are not flooded with carriage returns.
"""
from __future__ import annotations

import os
import sys
import time


class Progress:
    def __init__(self, total: float, label: str = "", unit: str = "", stream=None,
                 enabled: bool | None = None, width: int = 30):
        self.total = max(float(total), 1e-12)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() or os.environ.get("CMM_PROGRESS") == "1"
        self.enabled = enabled
        self.width = width
        self.done = 0.0
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, advance: float = 1.0) -> None:
        self.done += advance
        now = time.perf_counter()
        if self.enabled and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def set(self, done: float) -> None:
        self.update(done - self.done)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        filled = int(frac * self.width)
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {frac * 100:5.1f}% "
                          f"{elapsed:6.1f}s elapsed, {eta:6.1f}s left")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: float, label: str) -> Progress:
    """A bar on a terminal (or with CMM_PROGRESS=1): what the command line hands the readers to count on."""
    return Progress(total, label=label)
