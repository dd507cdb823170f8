"""The strategy's view of the engine, both ways over the wire: how ``--transport zmq`` keeps parity.

The engine sends, at each step, every used order slot as the strategy sees it
(:func:`order_views`); the strategy process writes them into a small ``Sim`` of
its own (:class:`MirrorSim`) and runs the engine's own order API on it
(``kernel.submit``, ``cancel``, ``modify``, ``cancel_all``, ``clear_inactive``),
so the ids, slots, refusals and return values its strategy gets are the ones
the engine will give. The engine then replays the same calls on its ``Sim``
(:func:`apply_commands`) and checks every answer against the strategy's: a
difference is a :class:`Desync`, never a silent divergence.

The mirror's book is built from the local rows each step brings, with the
engine's book code (:func:`engine.book.apply_events`) over the engine's tick
range, so ``best_bid`` and ``book(n)`` are the engine's local book exactly.
"""
from __future__ import annotations

import msgspec
import numpy as np

from engine import kernel
from engine.book import apply_events
from engine.codes import CANCELED, NEW, SIDE_NAMES, SIDES_BY_NAME
from engine.local import is_final
from engine.state import (F_LOT, F_LPOS, F_TICK, I_CUR, I_LB, I_NEXT_ID, I_RQ_HEAD, I_RQ_TAIL, I_SLOT_HWM, I_UB,
                          O_ID, O_INFLIGHT, O_LCLEARED, O_LREQ, O_LSTATUS, O_LTICK, O_REASON, O_SIDE, O_TICK,
                          O_TIF, O_TYPE, O_USED, O_XSTATUS, OF_LEXEC, OF_LLEAVES, OF_LQTY, OF_QTY, EngineConfig, Sim,
                          make_sim)
from common.config import ConfigError
from common.errors import DataError
from feeds.events import EVENT_DTYPE
from runtime.link.protocol import Command, FillView, MetricsView, OrderView, Venue, WakeUp

from strategies.api import Fill, Metrics

# The link between the engine and the strategy process, both ends.
LINK_MAX_BYTES = 1 << 30          # one process pair on loopback: a step may carry many rows
CURVE_ENV = "CMM_LINK_CURVE"      # the strategy process's CURVE keys: "client public,client secret,server public"


class Desync(DataError):
    """The two sides' order views disagree: the run cannot be trusted and stops."""


# ---- engine side
def venue(S: Sim) -> Venue:
    return Venue(tick_size=float(S.floats[F_TICK]), lot_size=float(S.floats[F_LOT]), lb=int(S.ints[I_LB]),
                 ub=int(S.ints[I_UB]), max_orders=S.orders_i.shape[0], ring_size=S.rq_i.shape[0])


def order_views(S: Sim) -> list[OrderView]:
    """Every used order slot, local side: what the strategy reads, and what decides slot reuse."""
    out = []
    for slot in range(kernel.n_slots(S)):
        orders_i, orders_f = S.orders_i[slot], S.orders_f[slot]
        if orders_i[O_USED] == 0:
            continue
        held = not (orders_i[O_INFLIGHT] == 0 and is_final(orders_i[O_XSTATUS]))
        out.append(OrderView(slot, int(orders_i[O_ID]), int(orders_i[O_SIDE]), int(orders_i[O_LTICK]),
                             float(orders_f[OF_LQTY]), float(orders_f[OF_LLEAVES]), float(orders_f[OF_LEXEC]),
                             int(orders_i[O_LSTATUS]), int(orders_i[O_TIF]), int(orders_i[O_TYPE]),
                             int(orders_i[O_REASON]), int(orders_i[O_LREQ]), bool(orders_i[O_LCLEARED]), held))
    return out


def fill_views(fills: list[Fill]) -> list[FillView]:
    return [FillView(f.order_id, SIDES_BY_NAME[f.side], f.price, f.qty, f.fee, f.maker, f.exch_ts, f.local_ts)
            for f in fills]


def metrics_view(m: Metrics) -> MetricsView:
    return MetricsView(m.epnl, m.map, m.rpt, m.n_fills, m.volume, m.fees)


def apply_commands(S: Sim, commands: list[Command]) -> None:
    """The strategy's order calls, in order, on the engine; each answer must be the one the strategy got."""
    for c in commands:
        if c.action == "new":
            oid = int(kernel.submit(S, c.side, c.tick, c.qty, c.tif, c.type))
            got = f"order {oid} in slot {int(kernel.find(S, oid))}" if oid > 0 else oid
            ok = got == f"order {c.id} in slot {c.slot}"
        elif c.action == "cancel":
            got = int(kernel.cancel(S, c.id))
            ok = got == 0
        elif c.action == "modify":
            got = int(kernel.modify(S, c.id, c.tick, c.qty))
            ok = got == 0
        elif c.action == "cancel_all":
            got = int(kernel.cancel_all(S))
            ok = got == c.count
        else:
            kernel.clear_inactive(S)
            continue
        if not ok:
            what = f"new (order {c.id} in slot {c.slot})" if c.action == "new" else f"{c.action} of order {c.id}"
            raise Desync(f"the strategy's order view disagrees with the engine's: {what} gave {got} here",
                         field="transport")


# ---- strategy side
class MirrorSim:
    """A ``Sim`` holding only the strategy's view: order slots, the local book, clock and position."""

    def __init__(self, v: Venue):
        seed = np.zeros(2, dtype=EVENT_DTYPE)
        seed["ev"] = 1
        seed["px"] = [v.lb * v.tick_size, v.ub * v.tick_size]
        cfg = EngineConfig(tick_size=v.tick_size, lot_size=v.lot_size, max_orders=v.max_orders, max_fills=1,
                           max_order_log=0, record_ticks=False, record_orders=False, ring_size=v.ring_size,
                           tick_range_pad=0)
        try:
            self.sim = make_sim(seed, cfg)
        except ConfigError as e:
            raise DataError(f"the engine's venue cannot be mirrored: {e.reason}", field="transport") from None
        except ValueError as e:
            raise DataError(f"the engine's venue cannot be mirrored: {e}", field="transport") from None
        S = self.sim
        if (int(S.ints[I_LB]), int(S.ints[I_UB])) != (v.lb, v.ub):
            raise DataError(f"the engine's tick range [{v.lb}, {v.ub}] does not survive the tick size "
                            f"{v.tick_size}", field="transport")
        self.venue = v

    def load(self, wake: WakeUp) -> np.ndarray:
        """Take the engine's view at this step; returns the step's local rows (a writable copy)."""
        S, v = self.sim, self.venue
        if wake.slot_hwm > v.max_orders:
            raise Desync(f"slot high-water mark {wake.slot_hwm} beyond {v.max_orders} slots", field="transport")
        used = max(int(S.ints[I_SLOT_HWM]), wake.slot_hwm)
        S.orders_i[:used] = 0
        S.orders_f[:used] = 0.0
        for o in wake.orders:
            if o.slot >= wake.slot_hwm:
                raise Desync(f"order {o.id} in slot {o.slot}, at or beyond the high-water mark", field="transport")
            orders_i, orders_f = S.orders_i[o.slot], S.orders_f[o.slot]
            orders_i[O_USED], orders_i[O_ID], orders_i[O_SIDE], orders_i[O_LTICK] = 1, o.id, o.side, o.tick
            orders_i[O_LSTATUS], orders_i[O_TIF], orders_i[O_TYPE] = o.status, o.tif, o.type
            orders_i[O_REASON], orders_i[O_LREQ] = o.reason, o.pending
            orders_i[O_LCLEARED] = int(o.hidden)
            # Only for try_free: a dropped slot is reused once nothing is in flight and the exchange is done.
            orders_i[O_INFLIGHT], orders_i[O_XSTATUS] = (1, NEW) if o.held else (0, CANCELED)
            orders_f[OF_LQTY], orders_f[OF_LLEAVES], orders_f[OF_LEXEC] = o.qty, o.leaves, o.executed
        S.ints[I_SLOT_HWM] = wake.slot_hwm
        S.ints[I_NEXT_ID] = wake.next_id
        S.ints[I_CUR] = wake.now
        S.ints[I_RQ_HEAD] = S.ints[I_RQ_TAIL]     # the mirror's requests go nowhere: the commands carry them
        S.floats[F_LPOS] = wake.position
        rows = np.frombuffer(wake.rows, dtype=EVENT_DTYPE).copy()
        apply_events(rows["ev"], rows["px"], rows["qty"], S.lbid, S.lask, S.lbook_ends, v.tick_size, v.lot_size,
                     v.lb, v.ub)
        return rows

    def command_new(self, order_id: int) -> Command:
        """The command that repeats the submit that just gave ``order_id`` (its slot, tick and size as sent)."""
        S = self.sim
        slot = int(kernel.find(S, order_id))
        orders_i = S.orders_i[slot]
        return Command("new", id=order_id, slot=slot, side=int(orders_i[O_SIDE]), tick=int(orders_i[O_TICK]),
                       qty=float(S.orders_f[slot, OF_QTY]), tif=int(orders_i[O_TIF]), type=int(orders_i[O_TYPE]))


def metrics(m: MetricsView) -> Metrics:
    return Metrics(**msgspec.structs.asdict(m))


def fills(views: list[FillView]) -> list[Fill]:
    return [Fill(order_id=f.order_id, side=SIDE_NAMES[f.side], price=f.price, qty=f.qty, fee=f.fee, maker=f.maker,
                 exch_ts=f.exch_ts, local_ts=f.local_ts) for f in views]
