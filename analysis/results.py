"""A finished run's results, copied out of the engine's state into plain tables.

``collect`` is the one place that knows the layout of the engine's logs; every
consumer (metrics, the results directory, tests) reads these tables instead.
"""
from __future__ import annotations

import msgspec
import numba as nb
import numpy as np

from engine.local import is_final
from engine.state import (F_CASH, F_FEE, F_MULT, F_POS, F_TICK, F_VALUE, F_VOLUME, FL_ID, FL_LTS, FL_MAKER, FL_SIDE,
                    FL_XTS, FLF_FEE, FLF_PRICE, FLF_QTY, I_NFILLS, I_NLOG_DROPPED, I_NORDLOG, I_NTICKS, OL_DONE_TS,
                    OL_ID, OL_REASON, OL_SIDE, OL_STATUS, OL_SUBMIT_TS, OL_TICK, OL_TIF, OL_TYPE, OLF_EXEC, OLF_QTY,
                    O_ID, O_LSTATUS, O_LTICK, O_REASON, O_SIDE, O_SUBMIT_TS, O_TIF, O_TYPE, O_USED, OF_LEXEC, OF_LQTY,
                    TQ_ASK, TQ_BID, TQ_SHIFT, Sim, is_tick)

FILL_DTYPE = np.dtype([("order_id", "i8"), ("side", "i1"), ("exch_ts", "i8"), ("local_ts", "i8"),
                       ("maker", "?"), ("price", "f8"), ("qty", "f8"), ("fee", "f8")])
ORDER_DTYPE = np.dtype([("order_id", "i8"), ("side", "i1"), ("price", "f8"), ("qty", "f8"), ("executed", "f8"),
                        ("tif", "i1"), ("type", "i1"), ("status", "i1"), ("reason", "i1"),
                        ("submit_ts", "i8"), ("done_ts", "i8")])
TICK_FIELDS = ("ts", "mid", "position", "epnl", "map", "rpt", "quoted")  # quoted: TQ_BID | TQ_ASK bits


class Account(msgspec.Struct, frozen=True):
    """The exchange-side books at the end of the run."""

    position: float
    cash: float               # net of fees
    fees: float
    volume: float             # quantity traded
    notional: float           # sum of price x qty x multiplier
    n_fills: int
    contract_multiplier: float


class RunResult(msgspec.Struct):
    ticks: dict[str, np.ndarray]   # TICK_FIELDS, one row per market event seen locally
    fills: np.ndarray              # FILL_DTYPE, in execution order
    orders: np.ndarray             # ORDER_DTYPE: finished orders in completion order, then live ones
    account: Account
    orders_dropped: int = 0        # finished orders beyond the order log's capacity


def collect(S: Sim) -> RunResult:
    """Copy a run's logs out of ``S`` (safe to keep after ``S`` is gone)."""
    k = int(S.ints[I_NFILLS])
    ticks = _ticks(S, k)
    fills = np.zeros(k, dtype=FILL_DTYPE)
    fi, ff = S.fl_i[:k], S.fl_f[:k]
    fills["order_id"], fills["side"] = fi[:, FL_ID], fi[:, FL_SIDE]
    fills["exch_ts"], fills["local_ts"], fills["maker"] = fi[:, FL_XTS], fi[:, FL_LTS], fi[:, FL_MAKER] != 0
    fills["price"], fills["qty"], fills["fee"] = ff[:, FLF_PRICE], ff[:, FLF_QTY], ff[:, FLF_FEE]
    tick = float(S.floats[F_TICK])
    account = Account(position=float(S.floats[F_POS]), cash=float(S.floats[F_CASH]), fees=float(S.floats[F_FEE]),
                      volume=float(S.floats[F_VOLUME]), notional=float(S.floats[F_VALUE]), n_fills=k,
                      contract_multiplier=float(S.floats[F_MULT]))
    return RunResult(ticks=ticks, fills=fills, orders=_orders(S, tick), account=account,
                     orders_dropped=int(S.ints[I_NLOG_DROPPED]))


def _ticks(S: Sim, n_fills: int) -> dict[str, np.ndarray]:
    """The per-tick arrays, rebuilt from the compact tick log with the kernel's own arithmetic.

    The kernel stores mid, EPnL and fills-so-far per tick. The rest is exact: the timestamps are the
    local market rows' ``local_ts``; the position after ``j`` fills is the running sum of signed fill
    quantities (the kernel's ``F_POS += qty * side``, same order); MAP is the running sum of |position|
    over (tick index + 1); RPT is EPnL over fills so far (0 before the first fill).
    """
    n = int(S.ints[I_NTICKS])
    nq = S.tk_nq[:n]
    done = nq >> TQ_SHIFT
    held = np.zeros(n_fills + 1)
    np.cumsum(S.fl_f[:n_fills, FLF_QTY] * S.fl_i[:n_fills, FL_SIDE], out=held[1:])
    position = held[done]
    epnl = S.tk_epnl[:n].copy()
    rpt = np.zeros(n)
    np.divide(epnl, done, out=rpt, where=done > 0)
    return {"ts": _tick_times(S.ev, S.local_ts, n), "mid": S.tk_mid[:n].copy(), "position": position,
            "epnl": epnl, "map": np.cumsum(np.abs(position)) / np.arange(1, n + 1), "rpt": rpt,
            "quoted": (nq & (TQ_BID | TQ_ASK)).astype(np.int8)}


@nb.njit(cache=True)
def _tick_times(ev, local_ts, n):
    """``local_ts`` of the first ``n`` market-data rows on the local timeline: one per tick."""
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(ev.shape[0]):
        if k == n:
            break
        if is_tick(ev[i]):
            out[k] = local_ts[i]
            k += 1
    return out


def _orders(S: Sim, tick: float) -> np.ndarray:
    m = int(S.ints[I_NORDLOG])
    orders_i, orders_f = S.ol_i[:m], S.ol_f[:m]
    done = np.zeros(m, dtype=ORDER_DTYPE)
    done["order_id"], done["side"] = orders_i[:, OL_ID], orders_i[:, OL_SIDE]
    done["price"] = orders_i[:, OL_TICK] * tick
    done["qty"], done["executed"] = orders_f[:, OLF_QTY], orders_f[:, OLF_EXEC]
    done["tif"], done["type"] = orders_i[:, OL_TIF], orders_i[:, OL_TYPE]
    done["status"], done["reason"] = orders_i[:, OL_STATUS], orders_i[:, OL_REASON]
    done["submit_ts"], done["done_ts"] = orders_i[:, OL_SUBMIT_TS], orders_i[:, OL_DONE_TS]
    live_slots = [s for s in range(S.orders_i.shape[0])
                  if S.orders_i[s, O_USED] == 1 and not is_final(S.orders_i[s, O_LSTATUS])]
    live = np.zeros(len(live_slots), dtype=ORDER_DTYPE)
    for row, s in zip(live, live_slots):
        o, f = S.orders_i[s], S.orders_f[s]
        row["order_id"], row["side"], row["price"] = o[O_ID], o[O_SIDE], o[O_LTICK] * tick
        row["qty"], row["executed"] = f[OF_LQTY], f[OF_LEXEC]
        row["tif"], row["type"], row["status"], row["reason"] = o[O_TIF], o[O_TYPE], o[O_LSTATUS], o[O_REASON]
        row["submit_ts"], row["done_ts"] = o[O_SUBMIT_TS], -1
    live.sort(order="order_id")
    return np.concatenate([done, live])
