"""A finished run's results, read out of the engine's state: per-tick results worked out a chunk at a time.

``collect`` reads the engine through :class:`engine.views.SimView` only; every consumer (metrics,
the results directory, tests) reads these tables instead. The per-tick results are never copied out
whole: the engine's compact tick log (mid, EPnL and a word of fills-so-far and quote flags, 20 bytes a
tick) is kept as it is, in place, with each tick's time read from the events (:class:`engine.views.HeldTicks`),
and :class:`Ticks` works ``TICK_FIELDS`` out of it a chunk at a time (:class:`TickColumns`): collecting a
run adds nothing a tick, where 49 bytes a tick of whole columns would double a long run's memory. A streamed run
(:mod:`runtime.stream`) keeps its tick log on disk and reads it back the same way (:class:`TickStream`).
Every consumer reads ``tick_chunks(result.ticks)`` and gets the same values either way; ``ticks[name]``
builds one whole column for a reader that wants it (a notebook, a test).
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping

import msgspec
import numpy as np

from common.spill import Spill
from engine.views import Account, HeldTicks, Sim, SimView, decode_ticks

TICK_FIELDS = ("ts", "mid", "position", "epnl", "map", "rpt", "quoted")  # quoted: QUOTED_BID | QUOTED_ASK bits
TICK_DTYPES = {name: np.dtype(np.int64 if name == "ts" else np.int8 if name == "quoted" else np.float64)
               for name in TICK_FIELDS}
# Rows of per-tick results worked out at once: ~4 MB of temporaries whatever the run's length, and few
# enough chunks (86 for 5.66M ticks) that the per-chunk Python costs nothing.
TICK_CHUNK = 1 << 16


class TickColumns:
    """The per-tick arrays, rebuilt from the engine's compact tick log with the kernel's own arithmetic,
    one chunk of the log after another.

    The engine stores mid, EPnL and fills-so-far per tick. The rest is exact: the position after ``j``
    fills is the running sum of signed fill quantities (the kernel's position += qty * side, same
    order); MAP is the running sum of |position| over (tick index + 1); RPT is EPnL over fills so far
    (0 before the first fill). The running sum so far is added into a chunk's first term, so the
    additions happen in the same order however the log is cut.
    """

    def __init__(self, fills: np.ndarray):
        self.held = np.zeros(len(fills) + 1)
        np.cumsum(fills["qty"] * fills["side"], out=self.held[1:])
        self.rows = 0
        self.sum_abs = None

    def columns(self, rows, names=TICK_FIELDS) -> dict[str, np.ndarray]:
        """``names`` (of ``TICK_FIELDS``) of the tick-log rows that follow those already given
        (:func:`engine.views.decode_ticks`): a pass that wants one column works out only that one."""
        log = decode_ticks(rows)
        n, done, epnl = len(log["epnl"]), log["fills"], log["epnl"]
        out = {name: log[name] for name in ("ts", "mid", "epnl", "quoted") if name in names}
        if "position" in names or "map" in names:
            out["position"] = self.held[done]
        if "map" in names:
            running = np.abs(out["position"])
            if n and self.sum_abs is not None:
                running[0] += self.sum_abs
            np.cumsum(running, out=running)
            if n:
                self.sum_abs = running[-1]
            running /= np.arange(self.rows + 1, self.rows + n + 1)
            out["map"] = running
        if "rpt" in names:
            out["rpt"] = np.zeros(n)
            np.divide(epnl, done, out=out["rpt"], where=done > 0)
        self.rows += n
        return {name: out[name] for name in names}


class Ticks(Mapping):
    """A run's per-tick results (``TICK_FIELDS``, ``n`` rows), worked out of its compact tick log on demand.

    :meth:`chunks` gives them ``chunk`` rows at a time, in order: what metrics, plots and ``ticks.npz`` read,
    so a long run never holds a second full copy. As a mapping, ``ticks[name]`` is one whole column
    (allocated once, ``n`` rows) for a reader that wants it whole; :func:`tick_arrays` gives them all."""

    n: int
    fills: np.ndarray
    chunk: int

    @abstractmethod
    def _rows(self, chunk: int) -> Iterator:
        """The tick-log rows, at most ``chunk`` at a time (each a ``decode_ticks`` input)."""

    def chunks(self, chunk: int | None = None, names=TICK_FIELDS) -> Iterator[dict[str, np.ndarray]]:
        """The columns ``names``, ``chunk`` rows at a time, in order."""
        cols = TickColumns(self.fills)
        for rows in self._rows(chunk or self.chunk):
            yield cols.columns(rows, names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in TICK_DTYPES:
            raise KeyError(name)
        return _whole(self.chunks(names=(name,)), self.n, (name,))[name]

    def __iter__(self) -> Iterator[str]:
        return iter(TICK_FIELDS)

    def __len__(self) -> int:
        return len(TICK_FIELDS)


def _whole(chunks: Iterator[dict[str, np.ndarray]], n: int, names) -> dict[str, np.ndarray]:
    """The columns ``names`` of ``n`` rows given in chunks, each filled into one array of its exact size."""
    out = {name: np.empty(n, dtype=TICK_DTYPES[name]) for name in names}
    k = 0
    for c in chunks:
        m = len(c[names[0]])
        for name in names:
            out[name][k:k + m] = c[name]
        k += m
    if k != n:
        raise AssertionError(f"the tick log promised {n} rows and gave {k}")
    return out


def _pieces(part, start: int, chunk: int) -> Iterator:
    """Tick-log rows of ``part`` (a live engine's spilled rows, or :class:`engine.views.HeldTicks`) from row
    ``start`` on, ``chunk`` rows at a time."""
    n = len(part)
    for a in range(start, n, chunk):
        yield part[a:a + chunk] if isinstance(part, np.ndarray) else part.rows(a, a + chunk)


class TickLog(Ticks):
    """A finished run's per-tick results from its tick log in memory, from tick ``start`` on: the rows a live
    engine spilled (if any), then those the engine's arrays hold, read in place (:meth:`SimView.tick_log`)."""

    def __init__(self, parts: list, fills: np.ndarray, start: int = 0, chunk: int = TICK_CHUNK):
        self.parts = parts
        self.fills = fills
        self.start = start
        self.chunk = chunk
        self.n = max(sum(len(p) for p in parts) - start, 0)

    def _rows(self, chunk: int) -> Iterator:
        skip = self.start
        for part in self.parts:
            yield from _pieces(part, min(skip, len(part)), chunk)
            skip = max(skip - len(part), 0)

    def after(self, ticks: int) -> TickLog:
        """The same results without their first ``ticks`` rows (their MAP restarts there)."""
        return TickLog(self.parts, self.fills, self.start + ticks, self.chunk)


class TickStream(Ticks):
    """A streamed run's per-tick results: the tick-log rows spilled to disk, then those the engine still
    held at the end, read back ``chunk`` rows at a time."""

    def __init__(self, spilled: Spill, held_log: HeldTicks, fills: np.ndarray, chunk: int = TICK_CHUNK):
        self.spilled = spilled
        self.held_log = held_log
        self.fills = fills
        self.n = spilled.rows + len(held_log)
        self.chunk = chunk

    def _rows(self, chunk: int) -> Iterator:
        yield from self.spilled.chunks(chunk)
        yield from _pieces(self.held_log, 0, chunk)


def tick_chunks(ticks: dict[str, np.ndarray] | Ticks) -> Iterator[dict[str, np.ndarray]]:
    """A run's per-tick arrays a chunk at a time: given arrays in one, a run's tick log as it works them out."""
    return iter([ticks]) if isinstance(ticks, dict) else ticks.chunks()


def tick_count(ticks: dict[str, np.ndarray] | Ticks) -> int:
    return len(ticks["ts"]) if isinstance(ticks, dict) else ticks.n


def tick_arrays(ticks: dict[str, np.ndarray] | Ticks) -> dict[str, np.ndarray]:
    """Every per-tick column whole, in one pass (a data frame's input)."""
    return ticks if isinstance(ticks, dict) else _whole(ticks.chunks(), ticks.n, TICK_FIELDS)


class RunResult(msgspec.Struct):
    ticks: dict[str, np.ndarray] | Ticks   # TICK_FIELDS, one row per market event seen locally
    fills: np.ndarray              # FILL_DTYPE, in execution order
    orders: np.ndarray             # ORDER_DTYPE: finished orders in completion order, then live ones
    account: Account
    orders_dropped: int = 0        # finished orders beyond the order log's capacity
    refused_orders: dict[str, int] = {}    # orders the engine refused before sending, by reason (SimView's)


def collect(S: Sim, spilled_ticks: np.ndarray | None = None) -> RunResult:
    """A finished run's results out of ``S`` (safe to keep after ``S`` is gone: the tick log and the events
    are kept by reference, the fills and orders copied). ``spilled_ticks``: the tick-log rows a live engine
    moved out of ``S`` (:meth:`engine.views.LiveSim.spilled_ticks`), which come first. Take it once the run
    has stopped."""
    view = SimView(S)
    fills = view.fills(0, view.n_fills)
    parts = [view.tick_log()] if spilled_ticks is None or len(spilled_ticks) == 0 else [spilled_ticks, view.tick_log()]
    return RunResult(ticks=TickLog(parts, fills), fills=fills, orders=view.order_table(), account=view.account(),
                     orders_dropped=view.orders_dropped, refused_orders=view.refused_orders)


def collect_streamed(S: Sim, spilled: Spill, chunk: int = TICK_CHUNK) -> RunResult:
    """:func:`collect` for a streamed run: the per-tick results stay in ``spilled`` (the live engine's
    spill file) and are read ``chunk`` rows at a time (:class:`TickStream`)."""
    view = SimView(S)
    fills = view.fills(0, view.n_fills)
    return RunResult(ticks=TickStream(spilled, view.tick_log(), fills, chunk), fills=fills,
                     orders=view.order_table(), account=view.account(), orders_dropped=view.orders_dropped,
                     refused_orders=view.refused_orders)


def after_warmup(result: RunResult, warm_ticks: int) -> RunResult:
    """The run without its first ``warm_ticks`` tick rows: the warm-up before a window's start, when no
    order was live, so EPnL there is 0 and the rows left keep their EPnL. MAP restarts at the window."""
    if warm_ticks <= 0:
        return result
    return msgspec.structs.replace(result, ticks=result.ticks.after(warm_ticks))
