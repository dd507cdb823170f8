"""The comparison report of several runs: one table and one HTML page with its plots (``cmm compare``).

What :func:`write_report` writes into the output directory:

- ``comparison.md`` / ``comparison.json``: EPnL, MAP, RPT, PnLMAP, fills,
  the decision latency p50 / p99 (us; "n/a" for a strategy that declares its
  decision time instead of measuring it) and whether the run replayed data its
  models were fitted on ("in sample": "yes (train, val)", "no", or "n/a" for a
  strategy without a model bundle) per run;
- ``report.html``: the table and the PNGs beside it, a self-contained page
  (no scripts, no remote assets): ``equity.png`` and ``inventory.png`` (all
  runs over time), ``quotes.png`` (each recording run's inner bid and ask
  against the mid), ``weights.png`` (expert weights per decision, for runs
  with more than one expert) and ``regimes.png`` (the volatility regime of
  each decision over the mid).

The last three need a strategy's per-decision record (``decisions.npz``,
which the CMM family keeps); runs without one appear in the first two only.
Running the backtests is :mod:`runtime.compare`'s; this module only reads
their results.
"""
from __future__ import annotations

import html
import os
from typing import NamedTuple

import msgspec
import numpy as np

from analysis.metrics import Summary
from analysis.plots import PANELS, draw_panel, first_ts
from common.atomic import atomic_write
from common.stats import LatencyStats

COLUMNS = ("strategy", "EPnL", "MAP", "RPT", "PnLMAP", "fills", "latency p50 us", "latency p99 us", "in sample")
REGIME_COLOURS = {0: "#d8ecd8", 1: "#f6ecc8", 2: "#f3d0d0"}
REGIME_NAMES = {0: "low", 1: "mid", 2: "high"}


class Run(NamedTuple):
    """One run as the report shows it."""

    label: str
    config: str                          # the config file it ran
    out: str                             # its results directory
    summary: Summary
    latency: LatencyStats | None         # its measured decision latency, if it measured one
    ticks: np.ndarray                    # the engine's tick rows (ts, epnl, position, ...)
    decisions: dict[str, np.ndarray] | None   # the strategy's per-decision record, if it keeps one


def in_sample(summary: Summary) -> str | None:
    """A run's in-sample flag as the table shows it: "yes (the fitted splits it meets)", "no", or None (no
    model bundle, so no flag in its metrics.json)."""
    flag = getattr(summary, "in_sample", None)
    if flag is None:
        return None
    return f"yes ({', '.join(summary.in_sample_splits)})" if flag else "no"


def rows(runs: list[Run]) -> list[dict]:
    out = []
    for run in runs:
        s, latency = run.summary, run.latency
        out.append({"strategy": run.label, "EPnL": s.epnl, "MAP": s.map, "RPT": s.rpt, "PnLMAP": s.pnlmap,
                    "fills": s.n_fills, "latency p50 us": latency.p50 if latency else None,
                    "latency p99 us": latency.p99 if latency else None, "in sample": in_sample(s)})
    return out


def _cell(value, float_format: str = ",.2f") -> str:
    if value is None or isinstance(value, float) and not np.isfinite(value):
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return format(value, float_format) if isinstance(value, float) else str(value)


def markdown(table_rows: list[dict], columns, float_format: str = ",.2f") -> str:
    """The rows' ``columns`` as a Markdown table (aligned, so it also reads on a terminal)."""
    columns = list(columns)
    cells = [columns] + [[_cell(r.get(c), float_format) for c in columns] for r in table_rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row):
        return "| " + " | ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))) \
            + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def table(table_rows: list[dict]) -> str:
    """The comparison's rows as a Markdown table."""
    return markdown(table_rows, COLUMNS)


# -- plots -----------------------------------------------------------------------------------------

def _minutes(ts: np.ndarray, origin: int) -> np.ndarray:
    return (ts - origin) / 60e9


def _decisions(run: Run) -> dict[str, np.ndarray] | None:
    d = run.decisions
    return d if d is not None and len(d["ts"]) else None


def plots(runs: list[Run], out: str) -> list[tuple[str, str]]:
    """Write the PNGs into ``out``; (file name, caption) of each, in report order."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = first_ts([(run.label, run.ticks) for run in runs])
    written = []

    def save(fig, name, caption):
        fig.tight_layout()
        with atomic_write(os.path.join(out, name)) as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)
        written.append((name, caption))

    labelled = [(run.label, run.ticks) for run in runs]
    for (name, column, ylabel), caption in zip(PANELS, ("EPnL (net of fees) over time",
                                                        "Inventory (position) over time")):
        fig, ax = plt.subplots(figsize=(10, 4))
        draw_panel(ax, labelled, column, ylabel, origin)
        ax.set_xlabel("minutes")
        save(fig, name, caption)

    recorded = [(run, d) for run in runs if (d := _decisions(run)) is not None]
    if not recorded:
        return written
    fig, axes = plt.subplots(len(recorded), 1, figsize=(10, 2.6 * len(recorded)), sharex=True, squeeze=False)
    for ax, (run, d) in zip(axes[:, 0], recorded):
        t = _minutes(d["ts"], origin)
        ax.plot(t, d["mid"], color="0.3", lw=0.7, label="mid")
        ax.plot(t, d["bid"], color="tab:green", lw=0.7, drawstyle="steps-post", label="inner bid")
        ax.plot(t, d["ask"], color="tab:red", lw=0.7, drawstyle="steps-post", label="inner ask")
        ax.set_title(run.label, fontsize=9)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    axes[-1, 0].set_xlabel("minutes")
    save(fig, "quotes.png", "Inner quotes against the mid, per decision")

    weighted = [(run, d) for run, d in recorded if d["weights"].shape[1] > 1]
    if weighted:
        fig, axes = plt.subplots(len(weighted), 1, figsize=(10, 2.8 * len(weighted)), sharex=True, squeeze=False)
        for ax, (run, d) in zip(axes[:, 0], weighted):
            weights = np.nan_to_num(d["weights"]).T
            ax.stackplot(_minutes(d["ts"], origin), weights, labels=list(d["expert_names"]), step="post")
            ax.set_ylim(0, 1)
            ax.set_ylabel("weight")
            ax.set_title(run.label, fontsize=9)
            ax.legend(fontsize=6, ncol=5, loc="upper left")
        axes[-1, 0].set_xlabel("minutes")
        save(fig, "weights.png", "Expert weights per decision (zero outside the regime's experts)")

    run, d = recorded[0]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    t = _minutes(d["ts"], origin)
    regime = d["regime"]
    edges = np.flatnonzero(np.diff(regime)) + 1
    for start, stop in zip(np.r_[0, edges], np.r_[edges, len(regime)]):
        colour = REGIME_COLOURS.get(int(regime[start]))
        if colour:
            ax.axvspan(t[start], t[min(stop, len(t) - 1)], color=colour, lw=0)
    ax.plot(t, d["mid"], color="0.2", lw=0.7)
    handles = [matplotlib.patches.Patch(color=c, label=f"{REGIME_NAMES[r]} volatility")
               for r, c in REGIME_COLOURS.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", ncol=3)
    ax.set_xlabel("minutes")
    ax.set_ylabel("mid")
    ax.set_title(f"regime per decision ({run.label}; unshaded: not yet known)", fontsize=9)
    save(fig, "regimes.png", "Regime timeline")
    return written


# -- the report ------------------------------------------------------------------------------------

def write_html(path: str, table_rows: list[dict], figures: list[tuple[str, str]], runs: list[Run]) -> None:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in COLUMNS) + "</tr>"
                   for r in table_rows)
    configs = "".join(f"<li>{html.escape(r.label)}: <code>{html.escape(r.config)}</code> "
                      f"(results <code>{html.escape(os.path.relpath(r.out, os.path.dirname(path)))}</code>)</li>"
                      for r in runs)
    images = "".join(f'<h2>{html.escape(caption)}</h2><img src="{name}" alt="{html.escape(caption)}">'
                     for name, caption in figures)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CMM comparison</title>
<style>body{{font-family:sans-serif;max-width:1060px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>Strategy comparison</h1>
<p>EPnL net of fees; MAP the mean absolute position; RPT EPnL per fill; PnLMAP = EPnL / MAP. Decision latency is the
measured wall time of each decision, which the simulation charged before the decision's orders left.</p>
<table><tr>{head}</tr>{body}</table>
<ul>{configs}</ul>
{images}
</body></html>
"""
    with atomic_write(path, "w") as f:
        f.write(page)


def write_report(out: str, runs: list[Run]) -> str:
    """Write the comparison of ``runs`` into ``out``; returns the table."""
    table_rows = rows(runs)
    text = table(table_rows)
    with atomic_write(os.path.join(out, "comparison.md"), "w") as f:
        f.write(text + "\n")
    with atomic_write(os.path.join(out, "comparison.json")) as f:
        f.write(msgspec.json.format(msgspec.json.encode(table_rows), indent=2) + b"\n")
    write_html(os.path.join(out, "report.html"), table_rows, plots(runs, out), runs)
    return text
