"""A finished run's results, copied out of the engine's state into plain tables.

``collect`` reads the engine through :class:`engine.views.SimView` only; every consumer (metrics,
the results directory, tests) reads these tables instead. A streamed run (:mod:`runtime.stream`)
keeps its per-tick rows on disk: ``collect_streamed`` gives a :class:`TickStream` in place of the
per-tick arrays, which hands them out a chunk at a time with the same arithmetic (:class:`TickColumns`),
so every consumer reads ``tick_chunks(result.ticks)`` and gets the same values either way.
"""
from __future__ import annotations

from typing import Iterator

import msgspec
import numpy as np

from common.spill import Spill
from engine.views import Account, Sim, SimView, quotes_of, spilled_tick_log

TICK_FIELDS = ("ts", "mid", "position", "epnl", "map", "rpt", "quoted")  # quoted: QUOTED_BID | QUOTED_ASK bits
TICK_CHUNK = 1 << 20     # rows of per-tick results a streamed run holds at once


class TickColumns:
    """The per-tick arrays, rebuilt from the engine's compact tick log with the kernel's own arithmetic,
    one chunk of the log after another (a whole run is one chunk).

    The engine stores mid, EPnL and fills-so-far per tick. The rest is exact: the position after ``j``
    fills is the running sum of signed fill quantities (the kernel's position += qty * side, same
    order); MAP is the running sum of |position| over (tick index + 1); RPT is EPnL over fills so far
    (0 before the first fill). The running sum is carried from chunk to chunk as its first term, so
    the additions happen in the same order however the log is cut.
    """

    def __init__(self, fills: np.ndarray):
        self.held = np.zeros(len(fills) + 1)
        np.cumsum(fills["qty"] * fills["side"], out=self.held[1:])
        self.rows = 0
        self.sum_abs = None

    def columns(self, log: dict[str, np.ndarray], quoted: np.ndarray) -> dict[str, np.ndarray]:
        n, done, epnl = len(log["ts"]), log["fills"], log["epnl"]
        position = self.held[done]
        rpt = np.zeros(n)
        np.divide(epnl, done, out=rpt, where=done > 0)
        absq = np.abs(position)
        if self.sum_abs is None:
            running = np.cumsum(absq)
        else:
            running = np.cumsum(np.concatenate([[self.sum_abs], absq]))[1:]
        if n:
            self.sum_abs = running[-1]
        out = {"ts": log["ts"], "mid": log["mid"], "position": position, "epnl": epnl,
               "map": running / np.arange(self.rows + 1, self.rows + n + 1), "rpt": rpt, "quoted": quoted}
        self.rows += n
        return out


class TickStream:
    """A streamed run's per-tick results: the tick-log rows spilled to disk, then those the engine still
    held at the end; :meth:`chunks` gives them as ``TICK_FIELDS`` arrays, ``chunk`` rows at a time."""

    def __init__(self, spilled: Spill, held_log: dict[str, np.ndarray], held_quotes: np.ndarray,
                 fills: np.ndarray, chunk: int = TICK_CHUNK):
        self.spilled = spilled
        self.held_log = held_log
        self.held_quotes = held_quotes
        self.fills = fills
        self.n = spilled.rows + len(held_quotes)
        self.chunk = chunk

    def chunks(self, chunk: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        cols = TickColumns(self.fills)
        for rows in self.spilled.chunks(chunk or self.chunk):
            yield cols.columns(spilled_tick_log(rows), quotes_of(rows["nq"]))
        yield cols.columns(self.held_log, self.held_quotes)


def tick_chunks(ticks: dict[str, np.ndarray] | TickStream) -> Iterator[dict[str, np.ndarray]]:
    """A run's per-tick arrays a chunk at a time: a whole run's in one, a streamed run's as it reads them."""
    return iter([ticks]) if isinstance(ticks, dict) else ticks.chunks()


def tick_count(ticks: dict[str, np.ndarray] | TickStream) -> int:
    return len(ticks["ts"]) if isinstance(ticks, dict) else ticks.n


class RunResult(msgspec.Struct):
    ticks: dict[str, np.ndarray] | TickStream   # TICK_FIELDS, one row per market event seen locally
    fills: np.ndarray              # FILL_DTYPE, in execution order
    orders: np.ndarray             # ORDER_DTYPE: finished orders in completion order, then live ones
    account: Account
    orders_dropped: int = 0        # finished orders beyond the order log's capacity
    refused_orders: dict[str, int] = {}    # orders the engine refused before sending, by reason (SimView's)


def collect(S: Sim, spilled_ticks: np.ndarray | None = None) -> RunResult:
    """Copy a run's logs out of ``S`` (safe to keep after ``S`` is gone). ``spilled_ticks``: the tick-log
    rows a live engine moved out of ``S`` (:meth:`engine.views.LiveSim.spilled_ticks`)."""
    view = SimView(S)
    fills = view.fills(0, view.n_fills)
    ticks = TickColumns(fills).columns(view.tick_log(spilled_ticks), view.tick_quotes(spilled_ticks))
    return RunResult(ticks=ticks, fills=fills, orders=view.order_table(), account=view.account(),
                     orders_dropped=view.orders_dropped, refused_orders=view.refused_orders)


def collect_streamed(S: Sim, spilled: Spill, chunk: int = TICK_CHUNK) -> RunResult:
    """:func:`collect` for a streamed run: the per-tick results stay in ``spilled`` (the live engine's
    spill file) and are read ``chunk`` rows at a time (:class:`TickStream`)."""
    view = SimView(S)
    fills = view.fills(0, view.n_fills)
    return RunResult(ticks=TickStream(spilled, view.tick_log(), view.tick_quotes(), fills, chunk), fills=fills,
                     orders=view.order_table(), account=view.account(), orders_dropped=view.orders_dropped,
                     refused_orders=view.refused_orders)


def after_warmup(result: RunResult, warm_ticks: int) -> RunResult:
    """The run without its first ``warm_ticks`` tick rows: the warm-up before a window's start, when no
    order was live, so EPnL there is 0 and the rows left keep their EPnL. MAP restarts at the window."""
    if warm_ticks <= 0:
        return result
    ticks = {k: v[warm_ticks:] for k, v in result.ticks.items()}
    n = len(ticks["ts"])
    ticks["map"] = np.cumsum(np.abs(ticks["position"])) / np.arange(1, n + 1)
    return msgspec.structs.replace(result, ticks=ticks)
