"""The progress bar for long work: drawn on a terminal's stderr, or in a Jupyter notebook.

It redraws at most ten times a second, so calling :meth:`update` in a loop is
cheap, and it stays silent when stderr is neither a terminal nor a notebook's
(unless forced with ``CMM_PROGRESS=1``), so logs and CI output are not flooded
with carriage returns. In a notebook, whose stderr is no terminal, the same
bar is drawn by tqdm: its widget where ipywidgets is installed, else its text
bar, which a notebook redraws in place.
"""
from __future__ import annotations

import os
import sys
import time


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where stderr shows in the notebook but is no terminal)."""
    if "ipykernel" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def interactive(stream=None) -> bool:
    """Whether a person is watching ``stream`` (stderr): a terminal, a notebook, or ``CMM_PROGRESS=1``."""
    stream = stream or sys.stderr
    return stream.isatty() or (stream is sys.stderr and in_notebook()) or os.environ.get("CMM_PROGRESS") == "1"


def _notebook_bar(total: float, label: str, unit: str):
    """tqdm's bar for a notebook: the widget when ipywidgets can draw it, else the text bar on stderr."""
    try:
        import ipywidgets  # noqa: F401  (tqdm.notebook needs it, and only warns when it is absent)
        from tqdm.notebook import tqdm
    except ImportError:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=label, unit=unit or "it", file=sys.stderr, mininterval=0.1, leave=True)


class Progress:
    def __init__(self, total: float, label: str = "", unit: str = "", stream=None,
                 enabled: bool | None = None, width: int = 30):
        self.total = max(float(total), 1e-12)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = interactive(self.stream)
        self.enabled = enabled
        # A notebook's stderr is no terminal: tqdm draws there instead (a terminal, or CMM_PROGRESS=1, draws here).
        self._tqdm = _notebook_bar(total, label, unit) if enabled and self.stream is sys.stderr and \
            not self.stream.isatty() and in_notebook() else None
        self.width = width
        self.done = 0.0
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, advance: float = 1.0) -> None:
        self.done += advance
        if self._tqdm is not None:
            self._tqdm.update(int(advance) if float(advance).is_integer() else advance)   # "55130/55130", not ".0"
            return
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
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: float, label: str) -> Progress:
    """A bar on a terminal or in a notebook (or with CMM_PROGRESS=1): what the readers count on."""
    return Progress(total, label=label)
