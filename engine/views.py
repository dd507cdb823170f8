"""The engine seen from outside: named views of a run's state, and the calls that drive it.

A ``Sim`` keeps its state in plain arrays at index constants (:mod:`engine.state`): that is what keeps
the kernels fast and cacheable, and it is the engine's own business, free to change. Code outside
``engine/`` reads and drives a run through this module only:

- :class:`SimView`: one ``Sim``'s state under names (the clock, the local book, the account, the order
  slots, the fill, order and tick logs, the request stream), as numpy views of the engine's arrays and
  Python numbers read straight out of them. Nothing is copied on a wake-up's path; the logs are decoded
  here, once, into the record types below (:data:`FILL_DTYPE`, :data:`ORDER_DTYPE`, :class:`Request`),
  and the order slots can be read and written as records (:data:`SLOT_DTYPE`).
- the engine's API, re-exported: :class:`EngineConfig` and :func:`make_sim`, the live engine, the clock
  (``start``, ``elapse``, ``advance``...) and the order API (``submit``, ``cancel``, ``modify``...),
  which jitted strategies import from here, with the order-slot reads they need (:func:`order_id_at`).
"""
from __future__ import annotations

from operator import itemgetter

import msgspec
import numba as nb
import numpy as np

from engine.book import BEST_ASK, BEST_BID, apply_events
from engine.codes import INVALID_MAX, INVALID_MIN, R_BAD_QTY, R_PRICE_OUT_OF_RANGE, REASON_NAMES, REQUEST_NAMES
from engine.kernel import (END, E_BAD_QTY, E_NOT_FOUND, E_PRICE_OUT_OF_RANGE, E_REQUEST_PENDING, WOKE_END,
                           WOKE_EVENTS, WOKE_TIMER, WOKE_TOP, WOKE_WAIT, advance, advance_until, ask_qty_at,
                           balance, best_ask_tick, best_bid_tick, bid_qty_at, cancel, cancel_all, cancellable,
                           charge_compute, clear_inactive, elapse, fees, find, modify, n_slots, now, position,
                           progress_rows, requests_sent, run_to_end, set_compute_ns, start, submit, visible,
                           visible_slots, window)
from engine.live import LiveOptions, LiveSim, StreamOrdering, append_in_order
from engine.local import is_final
from engine.models.config import FeeConfig, LatencyConfig, QueueConfig, model_class
from engine.models.fees.registry import FEE_MODELS
from engine.models.latency.recorded import latency_table
from engine.models.queue.registry import QUEUE_MODELS
from common.config import ConfigError
from engine.state import (F_CASH, F_FEE, F_LBAL, F_LOT, F_LPOS, F_MULT, F_POS, F_SUM_ABS_Q, F_TICK, F_VALUE,
                          F_VOLUME, FL_ID, FL_LTS, FL_MAKER, FL_SIDE, FL_TICK, FL_XTS, FLF_FEE, FLF_PRICE, FLF_QTY,
                          I_CUR, I_IL, I_LB, I_NEXT_ID, I_NFILLS, I_NLOG_DROPPED, I_NORDLOG, I_NTICKS, I_NTRADES,
                          I_REFUSED_PRICE, I_REFUSED_QTY, I_RQ_HEAD, I_RQ_TAIL, I_SLOT_HWM, I_TICKS_SPILLED, I_UB, O_ID, O_INFLIGHT, O_LCLEARED, O_LREQ,
                          O_LSTATUS, O_LTICK, O_LTS, O_NCOLS, O_REASON, O_SIDE, O_SUBMIT_TS, O_TICK, O_TIF, O_TYPE, O_USED,
                          O_XSTATUS, O_XTS, OL_DONE_TS, OL_ID, OL_REASON, OL_SIDE, OL_STATUS, OL_SUBMIT_TS,
                          OL_TICK, OL_TIF, OL_TYPE, OLF_EXEC, OLF_QTY, OF_LEXEC, OF_LLEAVES, OF_LQTY, OF_NCOLS, OF_QTY,
                          OF_XEXEC, OF_XLEAVES, RQ_ID, RQ_KIND, RQ_SIDE, RQ_TICK, RQ_TS, TQ_ASK, TQ_BID,
                          TQ_SHIFT, EngineConfig, Sim, count_ticks, field, is_tick, make_sim, tick_range)
from feeds.events import EVENT_DTYPE, EXCH, LOCAL

__all__ = [
    # building a run
    "ConfigError", "EngineConfig", "Sim", "make_sim", "count_ticks", "tick_range", "latency_table",
    # the models a run names, and their settings
    "QueueConfig", "LatencyConfig", "FeeConfig", "QUEUE_MODELS", "FEE_MODELS", "model_class",
    "LiveOptions", "LiveSim", "StreamOrdering", "append_in_order", "HeldTicks", "decode_ticks",
    # the clock (jitted strategies and the Python session)
    "start", "elapse", "advance", "advance_until", "run_to_end", "now", "progress_rows", "window",
    "set_compute_ns", "requests_sent", "charge_compute",
    "END", "WOKE_END", "WOKE_TIMER", "WOKE_EVENTS", "WOKE_TOP", "WOKE_WAIT",
    # the order API and the reads jitted strategies make
    "submit", "cancel", "modify", "cancel_all", "clear_inactive", "find", "cancellable", "visible",
    "visible_slots", "n_slots", "lot_size", "order_id_at", "order_side_at", "order_tick_at", "is_final",
    "local_order_columns", "COL_ID", "COL_SIDE", "COL_TICK", "COL_STATUS", "COL_PENDING", "COL_LEAVES",
    "COL_EXECUTED",
    "best_bid_tick", "best_ask_tick", "bid_qty_at", "ask_qty_at", "position", "balance", "fees",
    "E_NOT_FOUND", "E_REQUEST_PENDING", "E_BAD_QTY", "E_PRICE_OUT_OF_RANGE",
    # named views
    "SimView", "Account", "SoFar", "Request", "FILL_DTYPE", "ORDER_DTYPE", "SLOT_DTYPE", "SLOT_SIZE_DTYPE",
    "QUOTED_BID", "QUOTED_ASK", "REQUEST_NAMES",
]

# ---- records decoded out of the engine's logs
FILL_DTYPE = np.dtype([("order_id", "i8"), ("side", "i1"), ("exch_ts", "i8"), ("local_ts", "i8"),
                       ("maker", "?"), ("price", "f8"), ("qty", "f8"), ("fee", "f8")])
ORDER_DTYPE = np.dtype([("order_id", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8"), ("executed", "f8"),
                        ("tif", "i1"), ("type", "i1"), ("status", "i1"), ("reason", "i1"),
                        ("submit_ts", "i8"), ("done_ts", "i8")])
# Bits of the tick log's ``quoted``: we had a live order on that side at the exchange.
QUOTED_BID, QUOTED_ASK = TQ_BID, TQ_ASK


def _columns(names_at: dict[str, int], ncols: int, fmt: str) -> np.dtype:
    """A record over one row of a 2-D table: each name reads the column at its index (a view, no copy)."""
    size = np.dtype(fmt).itemsize
    return np.dtype({"names": list(names_at), "formats": [fmt] * len(names_at),
                     "offsets": [size * i for i in names_at.values()], "itemsize": size * ncols})


# An order slot, every column: the strategy's view (``tick``, ``status``, ``pending``: the request in
# flight, ``cleared``: dropped from the view, ``ts``: the last response) and the exchange's (``x_*``).
SLOT_DTYPE = _columns({"id": O_ID, "side": O_SIDE, "x_tick": O_TICK, "tif": O_TIF, "type": O_TYPE,
                       "x_status": O_XSTATUS, "status": O_LSTATUS, "pending": O_LREQ, "in_flight": O_INFLIGHT,
                       "used": O_USED, "reason": O_REASON, "submit_ts": O_SUBMIT_TS, "x_ts": O_XTS,
                       "tick": O_LTICK, "cleared": O_LCLEARED, "ts": O_LTS}, O_NCOLS, "i8")
SLOT_SIZE_DTYPE = _columns({"x_qty": OF_QTY, "x_leaves": OF_XLEAVES, "x_executed": OF_XEXEC, "qty": OF_LQTY,
                            "leaves": OF_LLEAVES, "executed": OF_LEXEC}, OF_NCOLS, "f8")
# The strategy's view of a slot as the tuples a wake-up unpacks (picked from a row's ``tolist()``: faster
# than records on the per-wake-up path).
_LOCAL_ORDER = itemgetter(O_ID, O_SIDE, O_LTICK, O_LSTATUS, O_TIF, O_TYPE, O_REASON, O_LREQ)
_LOCAL_SIZES = itemgetter(OF_LQTY, OF_LLEAVES, OF_LEXEC)


class Account(msgspec.Struct, frozen=True):
    """The exchange-side books: fills count when executed, cash is net of fees."""

    position: float
    cash: float               # net of fees
    fees: float
    volume: float             # quantity traded
    notional: float           # sum of price x qty x multiplier (inverse: qty x multiplier / price, in the coin)
    n_fills: int
    contract_multiplier: float


class SoFar(msgspec.Struct, frozen=True):
    """The running figures at the latest tick, for a strategy's metrics mid-run."""

    n_ticks: int
    epnl: float               # at the latest tick (0 before any)
    tick_fills: int           # our fills by the latest tick
    sum_abs_position: float   # over the ticks so far
    n_fills: int              # our fills at the exchange
    volume: float
    fees: float


class Request(msgspec.Struct, frozen=True):
    """One order request as sent: ``kind`` is new, modify or cancel; ``arrives_ts`` when it reaches the exchange."""

    order_id: int
    kind: str
    side: int
    tick: int
    qty: float
    arrives_ts: int


def _table(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The rows of 2-D ``a`` as records of ``dtype`` (a view)."""
    return a.view(dtype)[:, 0]


class SimView:
    """One ``Sim``'s state under names, read without copying.

    The arrays are taken out of the ``Sim`` once, as the view's own attributes; scalars are read with
    ``item`` straight into Python numbers. Make a new view for a new ``Sim`` (a live engine's grown copy).
    """

    __slots__ = ("sim", "ev", "exch_ts", "local_ts", "px", "qty", "order_id", "slots", "slot_sizes", "_ints", "_floats",
                 "_lbook_ends", "_lbid", "_lask", "_orders_i", "_orders_f", "_fl_i", "_fl_f", "_ol_i", "_ol_f", "_rq_i", "_rq_f",
                 "_tk_mid", "_tk_epnl", "_tk_nq")

    def __init__(self, sim: Sim):
        self.sim = sim
        # The replay's event columns (``order_id`` as int64).
        self.ev, self.exch_ts, self.local_ts = sim.ev, sim.exch_ts, sim.local_ts
        self.px, self.qty, self.order_id = sim.px, sim.qty, sim.order_id
        self._ints, self._floats = sim.ints, sim.floats
        self._lbook_ends, self._lbid, self._lask = sim.lbook_ends, sim.lbid, sim.lask
        self._orders_i, self._orders_f = sim.orders_i, sim.orders_f
        self._fl_i, self._fl_f, self._ol_i, self._ol_f = sim.fl_i, sim.fl_f, sim.ol_i, sim.ol_f
        self._rq_i, self._rq_f = sim.rq_i, sim.rq_f
        self._tk_mid, self._tk_epnl, self._tk_nq = sim.tk_mid, sim.tk_epnl, sim.tk_nq
        # The order slots as records (writable views: the mirror of ``--transport zmq`` loads them).
        self.slots = _table(self._orders_i, SLOT_DTYPE)
        self.slot_sizes = _table(self._orders_f, SLOT_SIZE_DTYPE)

    # ---- the venue
    @property
    def tick_size(self) -> float:
        return self._floats.item(F_TICK)

    @property
    def lot_size(self) -> float:
        return self._floats.item(F_LOT)

    @property
    def tick_range(self) -> tuple[int, int]:
        """The lowest and highest tick the book holds."""
        return self._ints.item(I_LB), self._ints.item(I_UB)

    @property
    def max_orders(self) -> int:
        return self._orders_i.shape[0]

    @property
    def ring_size(self) -> int:
        return self._rq_i.shape[0]

    # ---- the clock and the replay
    @property
    def now(self) -> int:
        """The strategy's clock (ns)."""
        return self._ints.item(I_CUR)

    @now.setter
    def now(self, ts: int) -> None:
        self._ints[I_CUR] = ts

    @property
    def next_local_row(self) -> int:
        """The next row to replay on the local timeline."""
        return self._ints.item(I_IL)

    def local_rows(self, start: int, stop: int) -> np.ndarray:
        """The LOCAL rows among rows [start, stop), as the strategy sees them (``EVENT_DTYPE``, EXCH flag
        off). ``ival`` and ``fval`` are 0: the engine keeps only the fields it replays."""
        rows = start + np.flatnonzero(self.ev[start:stop] & np.uint64(LOCAL))
        out = np.zeros(len(rows), dtype=EVENT_DTYPE)
        for name in ("ev", "exch_ts", "local_ts", "px", "qty"):
            out[name] = getattr(self, name)[rows]
        out["ev"] &= ~np.uint64(EXCH)       # rows as we see them, whether or not the engine split them
        out["order_id"] = self.order_id[rows].view(np.uint64)
        return out

    # ---- the local book
    @property
    def best_bid_tick(self) -> int:
        return self._lbook_ends.item(BEST_BID)

    @property
    def best_ask_tick(self) -> int:
        return self._lbook_ends.item(BEST_ASK)

    def book_levels(self, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Up to ``depth`` non-empty levels a side from the best outwards: bid ticks, sizes, ask ticks, sizes."""
        lb = self._ints.item(I_LB)
        bid_ticks, bid_qty = _levels(self._lbid, self.best_bid_tick, INVALID_MIN, lb, -1, depth)
        ask_ticks, ask_qty = _levels(self._lask, self.best_ask_tick, INVALID_MAX, lb, 1, depth)
        return bid_ticks, bid_qty, ask_ticks, ask_qty

    def apply_local_rows(self, rows: np.ndarray) -> None:
        """Apply event rows to the local book only (no tick recorded, no order touched)."""
        lb, ub = self.tick_range
        apply_events(rows["ev"], rows["px"], rows["qty"], self._lbid, self._lask, self._lbook_ends, self.tick_size,
                     self.lot_size, lb, ub)

    # ---- the account
    @property
    def position(self) -> float:
        """Position as the strategy knows it (fills count when their response arrives)."""
        return self._floats.item(F_LPOS)

    @position.setter
    def position(self, qty: float) -> None:
        self._floats[F_LPOS] = qty

    @property
    def balance(self) -> float:
        """Cash as the strategy knows it, before fees (hftbacktest's ``balance``)."""
        return self._floats.item(F_LBAL)

    def account(self) -> Account:
        """The exchange-side books now."""
        floats = self._floats
        return Account(position=floats.item(F_POS), cash=floats.item(F_CASH), fees=floats.item(F_FEE),
                       volume=floats.item(F_VOLUME), notional=floats.item(F_VALUE), n_fills=self._ints.item(I_NFILLS),
                       contract_multiplier=floats.item(F_MULT))

    def so_far(self) -> SoFar:
        k = self._ints.item(I_NTICKS)          # in the arrays; a live engine keeps the last one (engine/live.py)
        return SoFar(n_ticks=k + self._ints.item(I_TICKS_SPILLED), epnl=self._tk_epnl.item(k - 1) if k else 0.0,
                     tick_fills=self._tk_nq.item(k - 1) >> TQ_SHIFT if k else 0,
                     sum_abs_position=self._floats.item(F_SUM_ABS_Q), n_fills=self._ints.item(I_NTRADES),
                     volume=self._floats.item(F_VOLUME), fees=self._floats.item(F_FEE))

    # ---- order slots
    @property
    def slot_hwm(self) -> int:
        """Every used order slot lies below this index."""
        return self._ints.item(I_SLOT_HWM)

    @slot_hwm.setter
    def slot_hwm(self, n: int) -> None:
        self._ints[I_SLOT_HWM] = n

    @property
    def next_order_id(self) -> int:
        return self._ints.item(I_NEXT_ID)

    @next_order_id.setter
    def next_order_id(self, oid: int) -> None:
        self._ints[I_NEXT_ID] = oid

    def local_orders(self, slots: np.ndarray):
        """The strategy's view of the orders in ``slots``: for each, ``(id, side, tick, status, tif, type,
        reason, pending)`` and ``(qty, leaves, executed)``, Python numbers (an iterator)."""
        return zip(map(_LOCAL_ORDER, self._orders_i[slots].tolist()), map(_LOCAL_SIZES, self._orders_f[slots].tolist()))

    def clear_slots(self, n: int) -> None:
        """Empty the first ``n`` order slots, every column."""
        self._orders_i[:n] = 0
        self._orders_f[:n] = 0.0

    def order_table(self) -> np.ndarray:
        """Every order as an ``ORDER_DTYPE`` table: finished ones in completion order (the order log),
        then those still live in the strategy's view by id (``done_ts`` -1). A copy."""
        tick = self.tick_size
        m = self._ints.item(I_NORDLOG)
        log_i, log_f = self._ol_i[:m], self._ol_f[:m]
        S = self._orders_i
        live_slots = [s for s in range(S.shape[0]) if S[s, O_USED] == 1 and not is_final(S[s, O_LSTATUS])]
        table = np.zeros(m + len(live_slots), dtype=ORDER_DTYPE)     # filled in place: no second copy
        done, live = table[:m], table[m:]
        done["order_id"], done["side"] = log_i[:, OL_ID], log_i[:, OL_SIDE]
        done["price"] = log_i[:, OL_TICK] * tick
        done["qty"], done["executed"] = log_f[:, OLF_QTY], log_f[:, OLF_EXEC]
        done["tif"], done["type"], done["status"], done["reason"] = (log_i[:, OL_TIF], log_i[:, OL_TYPE],
                                                                     log_i[:, OL_STATUS], log_i[:, OL_REASON])
        done["submit_ts"], done["done_ts"] = log_i[:, OL_SUBMIT_TS], log_i[:, OL_DONE_TS]
        for row, s in zip(live, live_slots):
            o, f = S[s], self._orders_f[s]
            row["order_id"], row["side"], row["price"] = o[O_ID], o[O_SIDE], o[O_LTICK] * tick
            row["qty"], row["executed"] = f[OF_LQTY], f[OF_LEXEC]
            row["tif"], row["type"], row["status"], row["reason"] = o[O_TIF], o[O_TYPE], o[O_LSTATUS], o[O_REASON]
            row["submit_ts"], row["done_ts"] = o[O_SUBMIT_TS], -1
        live.sort(order="order_id")
        return table

    @property
    def refused_orders(self) -> dict[str, int]:
        """Orders and modifies the engine refused before sending, by reason (only reasons that occurred): a
        strategy quotes on without them, in a kernel or in Python, and the run's summary reports them."""
        counts = {REASON_NAMES[R_PRICE_OUT_OF_RANGE]: self._ints.item(I_REFUSED_PRICE),
                  REASON_NAMES[R_BAD_QTY]: self._ints.item(I_REFUSED_QTY)}
        return {reason: n for reason, n in counts.items() if n}

    @property
    def orders_dropped(self) -> int:
        """Finished orders beyond the order log's capacity."""
        return self._ints.item(I_NLOG_DROPPED)

    # ---- the fill log
    @property
    def n_fills(self) -> int:
        return self._ints.item(I_NFILLS)

    def fills(self, start: int, stop: int) -> np.ndarray:
        """Fill-log rows [start, stop) as a ``FILL_DTYPE`` table, in execution order: the one decoding
        of the fill log."""
        fi, ff = self._fl_i[start:stop], self._fl_f[start:stop]
        out = np.zeros(len(fi), dtype=FILL_DTYPE)
        out["order_id"], out["side"] = fi[:, FL_ID], fi[:, FL_SIDE]
        out["exch_ts"], out["local_ts"], out["maker"] = fi[:, FL_XTS], fi[:, FL_LTS], fi[:, FL_MAKER] != 0
        out["price"], out["qty"], out["fee"] = ff[:, FLF_PRICE], ff[:, FLF_QTY], ff[:, FLF_FEE]
        return out

    def fill_ticks(self, start: int, stop: int) -> np.ndarray:
        """The execution price in ticks of fill-log rows [start, stop)."""
        return self._fl_i[start:stop, FL_TICK].copy()

    def fills_known(self, start: int, ts: int) -> int:
        """The first fill at or after ``start`` whose response reaches the strategy after ``ts``
        (fills [start, result) are known locally by then)."""
        k, n, lts = start, self._ints.item(I_NFILLS), self._fl_i
        while k < n and lts[k, FL_LTS] <= ts:
            k += 1
        return k

    # ---- the request stream
    @property
    def requests_sent(self) -> int:
        """Requests sent so far: a position in the request stream."""
        return self._ints.item(I_RQ_TAIL)

    def drop_requests(self) -> None:
        """Forget the requests in flight: they go nowhere."""
        self._ints[I_RQ_HEAD] = self._ints[I_RQ_TAIL]

    def requests(self, start: int, stop: int) -> list[Request]:
        """Requests [start, stop) of the stream, as sent (still in the ring: at most ``ring_size`` back)."""
        mask = self._rq_i.shape[0] - 1
        out = []
        for k in range(start, stop):
            r = self._rq_i[k & mask]
            out.append(Request(order_id=int(r[RQ_ID]), kind=REQUEST_NAMES[int(r[RQ_KIND])], side=int(r[RQ_SIDE]),
                               tick=int(r[RQ_TICK]), qty=float(self._rq_f[k & mask]), arrives_ts=int(r[RQ_TS])))
        return out

    # ---- the tick log
    def tick_log(self) -> HeldTicks:
        """The tick log the arrays hold, one row per local market-data row replayed, read in place
        (:class:`HeldTicks`). A live engine that runs on moves its rows: take them once it has stopped."""
        return HeldTicks(self.ev, self.local_ts, self._tk_mid, self._tk_epnl, self._tk_nq, self._ints.item(I_NTICKS))


class HeldTicks:
    """``n`` rows of the tick log as the engine's arrays hold them, without a copy: ``mid``, ``epnl`` and
    ``nq`` (our fills so far and the quote flags, one word) are views of the arrays, and each row's ``ts``
    (the local time of its market-data row) is read from the events when the row is. So a finished run's
    results cost nothing a tick beside the log (:func:`analysis.results.collect`), and keep the run's
    events (whose local times they read) as long as they are kept."""

    __slots__ = ("ev", "local_ts", "mid", "epnl", "nq", "n", "_next_tick", "_next_row")

    def __init__(self, ev, local_ts, mid, epnl, nq, n: int):
        self.ev, self.local_ts, self.n = ev, local_ts, n
        self.mid, self.epnl, self.nq = mid[:n], epnl[:n], nq[:n]
        self._next_tick = self._next_row = 0   # where the last read ended: reads in order scan each row once

    def __len__(self) -> int:
        return self.n

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows [start, stop) as ``ts`` (a new array), ``mid``, ``epnl`` and ``nq`` (views): a
        :func:`decode_ticks` input."""
        stop = min(stop, self.n)
        start = min(start, stop)
        tick, row = (self._next_tick, self._next_row) if start >= self._next_tick else (0, 0)
        ts, self._next_row = _tick_times_from(self.ev, self.local_ts, row, start - tick, stop - start)
        self._next_tick = stop
        return {"ts": ts, "mid": self.mid[start:stop], "epnl": self.epnl[start:stop], "nq": self.nq[start:stop]}


@nb.njit(cache=True)
def _tick_times_from(ev, local_ts, row, skip, n):
    """From event row ``row`` on: ``local_ts`` of the ``n`` ticks after the first ``skip`` (as
    :func:`engine.state.tick_times`), and the row after the last of them."""
    out = np.empty(n, dtype=np.int64)
    k = -skip
    i = row
    while k < n:
        if is_tick(ev[i]):
            if k >= 0:
                out[k] = local_ts[i]
            k += 1
        i += 1
    return out, i


def decode_ticks(rows) -> dict[str, np.ndarray]:
    """Tick-log rows (:meth:`HeldTicks.rows`, or a live engine's spilled rows, ``LiveSim.spilled_ticks``) as
    ``ts``, ``mid``, ``epnl``, ``fills`` (ours so far) and ``quoted`` (the QUOTED_* bits: we had a live order
    on that side at the exchange)."""
    nq = rows["nq"]
    return {"ts": rows["ts"], "mid": rows["mid"], "epnl": rows["epnl"], "fills": nq >> TQ_SHIFT,
            "quoted": (nq & (TQ_BID | TQ_ASK)).astype(np.int8)}


def _levels(depth: np.ndarray, best: int, empty: int, lb: int, step: int, n: int):
    """Up to ``n`` non-empty levels from ``best`` outwards, as (ticks, quantities)."""
    if best == empty:
        return np.zeros(0), np.zeros(0)
    start = best - lb
    window = depth[start::step][: max(n * 8, 64)] if step == 1 else depth[start::-1][: max(n * 8, 64)]
    idx = np.flatnonzero(window > 0)[:n]
    return (best + step * idx).astype(np.float64), window[idx].copy()


# ---- order-slot reads for jitted strategies (iterate slots 0..n_slots(S) with visible(S, slot)); NRT-free
# (``field``, ``_nrt=False``) like the order API in engine/kernel.py, for the same reason
@nb.njit(cache=True, _nrt=False)
def lot_size(S):
    """The instrument's lot: a jitted strategy counts sizes in whole lots of it (strategies/kernels/limits.py)."""
    return field(S, "floats")[F_LOT]


@nb.njit(cache=True, _nrt=False)
def order_id_at(S, slot):
    return field(S, "orders_i")[slot, O_ID]


@nb.njit(cache=True, _nrt=False)
def order_side_at(S, slot):
    return field(S, "orders_i")[slot, O_SIDE]


# Rows of local_order_columns' two blocks.
COL_ID, COL_SIDE, COL_TICK, COL_STATUS, COL_PENDING = range(5)
COL_LEAVES, COL_EXECUTED = range(2)


@nb.njit(cache=True)
def local_order_columns(S):
    """The strategy's view of its orders (those :func:`visible_slots` gives, in slot order) as two blocks of
    rows, in one call: int64 ``[5, n]`` (:data:`COL_ID`, side, tick, status, pending request: ``COL_*``)
    and float64 ``[2, n]`` (leaves, executed), what :meth:`SimView.local_orders` gives as tuples."""
    n = 0
    for slot in range(S.ints[I_SLOT_HWM]):
        if visible(S, slot):
            n += 1
    ints = np.empty((5, n), dtype=np.int64)
    floats = np.empty((2, n), dtype=np.float64)
    k = 0
    for slot in range(S.ints[I_SLOT_HWM]):
        if visible(S, slot):
            ints[COL_ID, k] = S.orders_i[slot, O_ID]
            ints[COL_SIDE, k] = S.orders_i[slot, O_SIDE]
            ints[COL_TICK, k] = S.orders_i[slot, O_LTICK]
            ints[COL_STATUS, k] = S.orders_i[slot, O_LSTATUS]
            ints[COL_PENDING, k] = S.orders_i[slot, O_LREQ]
            floats[COL_LEAVES, k] = S.orders_f[slot, OF_LLEAVES]
            floats[COL_EXECUTED, k] = S.orders_f[slot, OF_LEXEC]
            k += 1
    return ints, floats


@nb.njit(cache=True, _nrt=False)
def order_tick_at(S, slot):
    """The order's price in ticks as the strategy sees it."""
    return field(S, "orders_i")[slot, O_LTICK]
