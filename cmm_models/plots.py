"""The probe's heatmap as a PNG: one panel overall, then one per regime.

Rows are layers (shallow at the top), columns are tasks, each cell the share of
that task's sensitivity its layer holds, printed as well as coloured so the PNG
reads without a colour bar. Dashed lines mark the shallow / middle / deep groups.
Figures are drawn on matplotlib's Agg canvas directly, with no pyplot state, so
it works headless and from threads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.atomic import atomic_write

from cmm_models.probe import ProbeMap, layer_groups


def plot_probe(probe: ProbeMap, path: str | Path, title: str = "probe: layer x task attribution") -> Path:
    """Write the heatmap PNG to ``path`` and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("all", probe.samples, probe.attribution)]
    panels += [(name, r.samples, r.attribution) for name, r in probe.regimes.items()]
    fig = Figure(figsize=(2.0 + 2.4 * len(panels), 2.0 + 0.45 * probe.layers), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    bounds = [layers[0] - 0.5 for layers in layer_groups(probe.layers).values()][1:] if probe.layers >= 3 else []
    vmax = max(max(float(np.max(a)) for _, _, a in panels), 1e-12)  # one scale, so panels compare
    image = None
    for ax, (name, samples, attribution) in zip(axes, panels):
        a = np.asarray(attribution, dtype=float)
        image = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        for (layer, task), value in np.ndenumerate(a):
            ax.text(task, layer, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 * vmax else "white")
        for y in bounds:
            ax.axhline(y, color="white", lw=1.0, ls="--")
        ax.set_xticks(range(len(probe.tasks)), probe.tasks, rotation=30, ha="right")
        ax.set_yticks(range(probe.layers), [f"layer {i}" for i in range(probe.layers)] if ax is axes[0] else [])
        ax.set_title(f"{name} (n={samples})", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of task sensitivity")
    fig.suptitle(f"{title}  (eps={probe.eps}, draws={probe.draws})", fontsize=10)
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    return path
