"""PNG plots of a run: equity (EPnL) and inventory over time.

matplotlib's Agg backend renders without a display, so plots are made on
headless CI machines and servers alike. Long runs are thinned to a few
thousand points per line (min and max kept per bucket) so a plot of ten
million ticks takes as long as one of ten thousand.
"""
from __future__ import annotations

import os

import numpy as np

from common.atomic import atomic_write

MAX_POINTS = 4000


class Thinner:
    """:func:`thin` over chunks of a series of ``n`` points given in order: a bucket that spans two chunks
    keeps its running min and max (the first of equal values, as argmin and argmax do)."""

    def __init__(self, n: int, max_points: int = MAX_POINTS):
        self.whole = n <= max_points
        self.edges = np.linspace(0, n, max_points // 2 + 1).astype(np.int64) if not self.whole else None
        self.bucket = 0
        self.offset = 0
        self.best = None        # the open bucket's [lo value, lo index, lo x, hi value, hi index, hi x]
        self.xs, self.ys = [], []

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        o, self.offset = self.offset, self.offset + len(y)
        self.dtypes = x.dtype, y.dtype
        if self.whole:
            self.xs.append(x)
            self.ys.append(y)
            return
        edges = self.edges
        while self.bucket < len(edges) - 1 and edges[self.bucket] < self.offset:
            a, b = edges[self.bucket], edges[self.bucket + 1]
            lo = max(a, o) - o
            seg = y[lo:min(b, self.offset) - o]
            idx = np.flatnonzero(np.isfinite(seg))
            if len(idx):
                i, j = lo + idx[np.argmin(seg[idx])], lo + idx[np.argmax(seg[idx])]
                best = self.best
                if best is None:
                    self.best = [y[i], o + i, x[i], y[j], o + j, x[j]]
                else:
                    if y[i] < best[0]:
                        best[0:3] = y[i], o + i, x[i]
                    if y[j] > best[3]:
                        best[3:6] = y[j], o + j, x[j]
            if b > self.offset:
                break                       # the bucket goes on in the next chunk
            if self.best is not None:
                lo_y, lo_i, lo_x, hi_y, hi_i, hi_x = self.best
                points = {lo_i: (lo_x, lo_y), hi_i: (hi_x, hi_y)}
                for k in sorted(points):
                    self.xs.append(points[k][0])
                    self.ys.append(points[k][1])
            self.best = None
            self.bucket += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.whole:
            return (np.concatenate(self.xs), np.concatenate(self.ys)) if self.xs else (np.zeros(0), np.zeros(0))
        xd, yd = getattr(self, "dtypes", (np.float64, np.float64))
        return np.array(self.xs, dtype=xd), np.array(self.ys, dtype=yd)


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's min and max, so spikes survive the thinning."""
    t = Thinner(len(y), max_points)
    t.add(x, y)
    return t.result()


# The two panels of a run: the file each is written to, its tick column, its axis label.
PANELS = (("equity.png", "epnl", "EPnL (net of fees)"), ("inventory.png", "position", "position"))


def _save(fig, path: str) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def draw_lines(ax, lines: list[tuple[str | None, np.ndarray, np.ndarray]], column: str, ylabel: str) -> None:
    """One panel of ``column``: each ``(label, minutes, values)`` line (already thinned), labelled when named."""
    for label, x, y in lines:
        ax.plot(x, y, lw=0.8, label=label, drawstyle="steps-post" if column == "position" else "default",
                color=None if label is not None else "tab:blue" if column == "epnl" else "tab:orange")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if any(label is not None for label, _, _ in lines):
        ax.legend(fontsize=8)


def draw_panel(ax, runs: list[tuple[str | None, dict[str, np.ndarray]]], column: str, ylabel: str,
               origin: int) -> None:
    """One panel: ``column`` of each run's ticks against minutes from ``origin`` (ns), thinned, labelled."""
    draw_lines(ax, [(label, *thin((ticks["ts"] - origin) / 60e9, ticks[column])) for label, ticks in runs],
               column, ylabel)


def first_ts(runs) -> int:
    """The earliest first tick of ``(label, ticks)`` runs: where their common time axis starts (ns)."""
    starts = [int(ticks["ts"][0]) for _, ticks in runs if len(ticks["ts"])]
    return min(starts) if starts else 0


def plot_run(ticks, out_dir: str, title: str) -> list[str]:
    """Write equity.png and inventory.png into ``out_dir``; returns their paths. ``ticks``: a run's
    per-tick arrays, or its :class:`~analysis.results.Ticks` (read once, a chunk at a time).

    Drawn on matplotlib Figures of their own, not pyplot's: writing files never changes the backend of the
    process (a notebook's inline plots keep working after a run wrote its results)."""
    from matplotlib.figure import Figure

    from analysis.results import tick_chunks, tick_count
    n = tick_count(ticks)
    series = {column: Thinner(n) for _, column, _ in PANELS}
    first = None
    for chunk in tick_chunks(ticks):
        ts = chunk["ts"]
        if first is None and len(ts):
            first = ts[0]
        t = (ts - first) / 60e9 if len(ts) else ts.astype(float)
        for column, thinner in series.items():
            thinner.add(t, chunk[column])
    written = []
    for name, column, ylabel in PANELS:
        fig = Figure(figsize=(9, 3.6))
        ax = fig.subplots()
        draw_lines(ax, [(None, *series[column].result())], column, ylabel)
        ax.set_xlabel("minutes from the first tick")
        ax.set_title(title)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        _save(fig, path)
        written.append(path)
    return written


def figure(runs: list[tuple[str | None, dict[str, np.ndarray]]], title: str = ""):
    """Equity above inventory, one line per ``(label, ticks)`` run, on a shared time axis: a matplotlib Figure.

    Made through pyplot (so a notebook's inline backend is set up to show it) and closed there at once, so it
    is shown once, where it is returned or displayed, and never left open in pyplot."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9, 5.4))
    plt.close(fig)
    axes = fig.subplots(2, 1, sharex=True)
    origin = first_ts(runs)
    for ax, (_, column, ylabel) in zip(axes, PANELS):
        draw_panel(ax, runs, column, ylabel, origin)
    axes[-1].set_xlabel("minutes from the first tick")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return fig
