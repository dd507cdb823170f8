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


def _save(fig, path: str) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def plot_run(ticks, out_dir: str, title: str) -> list[str]:
    """Write equity.png and inventory.png into ``out_dir``; returns their paths. ``ticks``: a run's
    per-tick arrays, or a streamed run's :class:`~analysis.results.TickStream` (read once, a chunk at a time)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.results import tick_chunks, tick_count
    n = tick_count(ticks)
    series = {"epnl": Thinner(n), "position": Thinner(n)}
    first = None
    for chunk in tick_chunks(ticks):
        ts = chunk["ts"]
        if first is None and len(ts):
            first = ts[0]
        t = (ts - first) / 1e9 / 60 if len(ts) else ts.astype(float)
        for column, thinner in series.items():
            thinner.add(t, chunk[column])
    written = []
    for name, column, ylabel in (("equity.png", "epnl", "EPnL (net of fees)"),
                                 ("inventory.png", "position", "position")):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        x, y = series[column].result()
        ax.plot(x, y, lw=0.8, color="tab:blue" if column == "epnl" else "tab:orange",
                drawstyle="steps-post" if column == "position" else "default")
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xlabel("minutes from the first tick")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        _save(fig, path)
        plt.close(fig)
        written.append(path)
    return written
