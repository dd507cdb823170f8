"""The results directory a run writes: the same layout for backtests and paper trading.

- ``metrics.json``: the :class:`~analysis.metrics.Summary` (NaN written as null);
- ``ticks.npz``: per-tick arrays ``ts, mid, position, epnl, map, rpt`` and ``quoted``
  (bit 1: we had a live bid at the exchange, bit 2: a live ask);
- ``fills.csv`` and ``orders.csv``: one row per fill, per order;
- ``config.toml``: a copy of the config that produced them;
- ``equity.png`` and ``inventory.png``;
- ``decisions.npz``, for a strategy that records its decisions (CMM: quotes, weights, regimes).

A streamed run's per-tick results (:class:`~analysis.results.TickStream`) are written from its spill
file a chunk at a time, to the same bytes as a whole run's.

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
from analysis.results import TICK_FIELDS, RunResult, TickStream

DECISIONS = "decisions.npz"


def fills_csv(fills: np.ndarray) -> str:
    out = io.StringIO()
    out.write("order_id,side,exch_ts,local_ts,maker,price,qty,fee\n")
    for f in fills:
        out.write(f"{f['order_id']},{SIDE_NAMES[int(f['side'])]},{f['exch_ts']},{f['local_ts']},"
                  f"{int(f['maker'])},{float(f['price'])!r},{float(f['qty'])!r},{float(f['fee'])!r}\n")
    return out.getvalue()


def orders_csv(orders: np.ndarray) -> str:
    out = io.StringIO()
    out.write("order_id,side,price,qty,executed,tif,type,status,reason,submit_ts,done_ts\n")
    for o in orders:
        out.write(f"{o['order_id']},{SIDE_NAMES[int(o['side'])]},{float(o['price'])!r},{float(o['qty'])!r},"
                  f"{float(o['executed'])!r},"
                  f"{TIF_NAMES[int(o['tif'])]},{TYPE_NAMES[int(o['type'])]},{STATUS_NAMES[int(o['status'])]},"
                  f"{REASON_NAMES[int(o['reason'])]},{o['submit_ts']},{o['done_ts'] if o['done_ts'] >= 0 else ''}\n")
    return out.getvalue()


def tick_members(ticks: dict[str, np.ndarray] | TickStream) -> dict[str, np.ndarray | Chunked]:
    """``ticks.npz``'s members: a run's arrays, or a streamed run's columns read back a chunk at a time
    (one pass over its spill file per column), to the same bytes."""
    if isinstance(ticks, dict):
        return ticks
    dtypes = {name: column.dtype for name, column in next(ticks.chunks(1)).items()}

    def member(name):
        return Chunked(dtype=dtypes[name], n=ticks.n, chunks=lambda: (c[name] for c in ticks.chunks()))
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
            f.write(fills_csv(result.fills))
        with open(os.path.join(tmp, "orders.csv"), "w") as f:
            f.write(orders_csv(result.orders))
        if config_text is not None:
            with open(os.path.join(tmp, "config.toml"), "wb") as f:
                f.write(config_text)
        if decisions is not None:
            with open(os.path.join(tmp, DECISIONS), "wb") as f:
                np.savez(f, **decisions)
        plot_run(result.ticks, tmp, title)
