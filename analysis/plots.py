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


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket's min and max, so spikes survive the thinning."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = []
    for a, b in zip(edges[:-1], edges[1:]):
        seg = y[a:b]
        finite = np.isfinite(seg)
        if not finite.any():
            continue
        idx = np.flatnonzero(finite)
        lo, hi = a + idx[np.argmin(seg[idx])], a + idx[np.argmax(seg[idx])]
        keep.extend(sorted({lo, hi}))
    keep = np.array(keep, dtype=np.int64)
    return x[keep], y[keep]


def _save(fig, path: str) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def plot_run(ticks: dict[str, np.ndarray], out_dir: str, title: str) -> list[str]:
    """Write equity.png and inventory.png into ``out_dir``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = ticks["ts"]
    t = (ts - ts[0]) / 1e9 / 60 if len(ts) else ts.astype(float)
    written = []
    for name, column, ylabel in (("equity.png", "epnl", "EPnL (net of fees)"),
                                 ("inventory.png", "position", "position")):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        x, y = thin(t, ticks[column])
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
