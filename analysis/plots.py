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


# The two panels of a run: the file each is written to, its tick column, its axis label.
PANELS = (("equity.png", "epnl", "EPnL (net of fees)"), ("inventory.png", "position", "position"))


def _save(fig, path: str) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def draw_panel(ax, runs: list[tuple[str | None, dict[str, np.ndarray]]], column: str, ylabel: str,
               origin: int) -> None:
    """One panel: ``column`` of each run's ticks against minutes from ``origin`` (ns), thinned, labelled."""
    for label, ticks in runs:
        x, y = thin((ticks["ts"] - origin) / 60e9, ticks[column])
        ax.plot(x, y, lw=0.8, label=label, drawstyle="steps-post" if column == "position" else "default",
                color=None if label is not None else "tab:blue" if column == "epnl" else "tab:orange")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if any(label is not None for label, _ in runs):
        ax.legend(fontsize=8)


def first_ts(runs) -> int:
    """The earliest first tick of ``(label, ticks)`` runs: where their common time axis starts (ns)."""
    starts = [int(ticks["ts"][0]) for _, ticks in runs if len(ticks["ts"])]
    return min(starts) if starts else 0


def plot_run(ticks: dict[str, np.ndarray], out_dir: str, title: str) -> list[str]:
    """Write equity.png and inventory.png into ``out_dir``; returns their paths.

    Drawn on matplotlib Figures of their own, not pyplot's: writing files never changes the backend of the
    process (a notebook's inline plots keep working after a run wrote its results)."""
    from matplotlib.figure import Figure

    runs = [(None, ticks)]
    written = []
    for name, column, ylabel in PANELS:
        fig = Figure(figsize=(9, 3.6))
        ax = fig.subplots()
        draw_panel(ax, runs, column, ylabel, first_ts(runs))
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
