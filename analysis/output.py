"""The results directory a run writes: the same layout for backtests and paper trading.

- ``metrics.json``: the :class:`~analysis.metrics.Summary` (NaN written as null);
- ``ticks.npz``: per-tick arrays ``ts, mid, position, epnl, map, rpt`` and ``quoted``
  (bit 1: we had a live bid at the exchange, bit 2: a live ask);
- ``fills.csv`` and ``orders.csv``: one row per fill, per order;
- ``config.toml``: a copy of the config that produced them;
- ``equity.png`` and ``inventory.png``;
- ``decisions.npz``, for a strategy that records its decisions (CMM: quotes, weights, regimes).

The per-tick results (:class:`~analysis.results.Ticks`) are written a chunk at a time, straight from the
run's tick log (in memory, or a streamed run's spill file), to the same bytes as whole arrays would give.

Everything is written into a temporary directory beside the target, which
then replaces it, so a crash never leaves a half-written results directory; a
``.cmm-results`` marker says it is ours, and only such a directory is ever
replaced (:mod:`common.outdir`).
"""
from __future__ import annotations

import io
import os

import msgspec
import numpy as np

from common.outdir import replacing
from feeds.store import Chunked, write_npz

from engine.codes import REASON_NAMES, SIDE_NAMES, STATUS_NAMES, TIF_NAMES, TYPE_NAMES
from analysis.metrics import Summary
from analysis.plots import plot_run
from analysis.results import TICK_DTYPES, TICK_FIELDS, RunResult, Ticks

DECISIONS = "decisions.npz"


# Each table's code columns and the names they are written as, in fills.csv, orders.csv and data frames.
CODE_NAMES = {"side": SIDE_NAMES, "tif": TIF_NAMES, "type": TYPE_NAMES, "status": STATUS_NAMES, "reason": REASON_NAMES}


def named_columns(table: np.ndarray) -> dict[str, np.ndarray]:
    """A fills or orders table (FILL_DTYPE, ORDER_DTYPE) as columns, each code column as its names."""
    return {name: _names(CODE_NAMES[name], table[name]) if name in CODE_NAMES else table[name]
            for name in table.dtype.names}


def _names(names: dict[int, str], codes: np.ndarray) -> np.ndarray:
    """Each code's name, looked up once per distinct code (a run has millions of rows and a few codes)."""
    distinct, where = np.unique(codes, return_inverse=True)
    return np.array([names[int(c)] for c in distinct], dtype=object)[where.reshape(-1)]


def table_csv(table: np.ndarray) -> str:
    """A fills or orders table as CSV: the header, then a row per record (``fills.csv``, ``orders.csv``)."""
    columns = named_columns(table)
    out = io.StringIO()
    out.write(",".join(columns) + "\n")
    for row in zip(*(c.tolist() for c in columns.values())):
        out.write(",".join(_cell(name, value) for name, value in zip(columns, row)) + "\n")
    return out.getvalue()


def _cell(name: str, value) -> str:
    """Floats in full (repr), booleans as 0/1, an order's ``done_ts`` empty while it is live."""
    if name == "done_ts" and value < 0:
        return ""
    return repr(value) if isinstance(value, float) else str(int(value)) if isinstance(value, bool) else str(value)


def tick_members(ticks: dict[str, np.ndarray] | Ticks) -> dict[str, np.ndarray | Chunked]:
    """``ticks.npz``'s members: given arrays as they are, or a run's tick log worked out a chunk at a time
    (one pass over the log per column, working out that column only: :class:`~analysis.results.Ticks`), to
    the same bytes and without a second full copy of the per-tick results."""
    if isinstance(ticks, dict):
        return ticks

    def member(name):
        return Chunked(dtype=TICK_DTYPES[name], n=ticks.n,
                       chunks=lambda: (c[name] for c in ticks.chunks(names=(name,))))
    return {name: member(name) for name in TICK_FIELDS}


def write_results(out_dir: str, result: RunResult, summary: Summary, config_text: bytes | None,
                  title: str, decisions: dict[str, np.ndarray] | None = None) -> None:
    """Write the whole results directory, replacing a previous one of ours only once complete
    (:func:`common.outdir.replacing`: anything else at ``out_dir`` is refused)."""
    with replacing(out_dir) as tmp:
        with open(os.path.join(tmp, "metrics.json"), "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(msgspec.to_builtins(summary)), indent=2) + b"\n")
        with open(os.path.join(tmp, "ticks.npz"), "wb") as f:
            write_npz(f, tick_members(result.ticks))
        with open(os.path.join(tmp, "fills.csv"), "w") as f:
            f.write(table_csv(result.fills))
        with open(os.path.join(tmp, "orders.csv"), "w") as f:
            f.write(table_csv(result.orders))
        if config_text is not None:
            with open(os.path.join(tmp, "config.toml"), "wb") as f:
                f.write(config_text)
        if decisions is not None:
            with open(os.path.join(tmp, DECISIONS), "wb") as f:
                np.savez(f, **decisions)
        plot_run(result.ticks, tmp, title)
