"""A finished run's results, copied out of the engine's state into plain tables.

``collect`` reads the engine through :class:`engine.views.SimView` only; every consumer (metrics,
the results directory, tests) reads these tables instead.
"""
from __future__ import annotations

import msgspec
import numpy as np

from engine.views import Account, Sim, SimView

TICK_FIELDS = ("ts", "mid", "position", "epnl", "map", "rpt", "quoted")  # quoted: QUOTED_BID | QUOTED_ASK bits


class RunResult(msgspec.Struct):
    ticks: dict[str, np.ndarray]   # TICK_FIELDS, one row per market event seen locally
    fills: np.ndarray              # FILL_DTYPE, in execution order
    orders: np.ndarray             # ORDER_DTYPE: finished orders in completion order, then live ones
    account: Account
    orders_dropped: int = 0        # finished orders beyond the order log's capacity


def collect(S: Sim, spilled_ticks: np.ndarray | None = None) -> RunResult:
    """Copy a run's logs out of ``S`` (safe to keep after ``S`` is gone). ``spilled_ticks``: the tick-log
    rows a live engine moved out of ``S`` (:meth:`engine.views.LiveSim.spilled_ticks`)."""
    view = SimView(S)
    fills = view.fills(0, view.n_fills)
    return RunResult(ticks=_ticks(view, fills, spilled_ticks), fills=fills, orders=view.order_table(),
                     account=view.account(), orders_dropped=view.orders_dropped)


def _ticks(view: SimView, fills: np.ndarray, spilled: np.ndarray | None) -> dict[str, np.ndarray]:
    """The per-tick arrays, rebuilt from the engine's compact tick log with the kernel's own arithmetic.

    The engine stores mid, EPnL and fills-so-far per tick. The rest is exact: the position after ``j``
    fills is the running sum of signed fill quantities (the kernel's position += qty * side, same
    order); MAP is the running sum of |position| over (tick index + 1); RPT is EPnL over fills so far
    (0 before the first fill).
    """
    log = view.tick_log(spilled)
    n, done, epnl = len(log["ts"]), log["fills"], log["epnl"]
    held = np.zeros(len(fills) + 1)
    np.cumsum(fills["qty"] * fills["side"], out=held[1:])
    position = held[done]
    rpt = np.zeros(n)
    np.divide(epnl, done, out=rpt, where=done > 0)
    return {"ts": log["ts"], "mid": log["mid"], "position": position, "epnl": epnl,
            "map": np.cumsum(np.abs(position)) / np.arange(1, n + 1), "rpt": rpt, "quoted": view.tick_quotes(spilled)}


def after_warmup(result: RunResult, warm_ticks: int) -> RunResult:
    """The run without its first ``warm_ticks`` tick rows: the warm-up before a window's start, when no
    order was live, so EPnL there is 0 and the rows left keep their EPnL. MAP restarts at the window."""
    if warm_ticks <= 0:
        return result
    ticks = {k: v[warm_ticks:] for k, v in result.ticks.items()}
    n = len(ticks["ts"])
    ticks["map"] = np.cumsum(np.abs(ticks["position"])) / np.arange(1, n + 1)
    return msgspec.structs.replace(result, ticks=ticks)
