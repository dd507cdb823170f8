"""The strategy's view of the engine, both ways over the wire: how ``--transport zmq`` keeps parity.

The engine sends, at each step, every used order slot as the strategy sees it
(:func:`order_views`); the strategy process writes them into a small ``Sim`` of
its own (:class:`MirrorSim`) and runs the engine's own order API on it
(``submit``, ``cancel``, ``modify``, ``cancel_all``, ``clear_inactive``),
so the ids, slots, refusals and return values its strategy gets are the ones
the engine will give. The engine then replays the same calls on its ``Sim``
(:func:`apply_commands`) and checks every answer against the strategy's: a
difference is a :class:`Desync`, never a silent divergence.

The mirror's book is built from the local rows each step brings, with the
engine's book code (:meth:`engine.views.SimView.apply_local_rows`) over the engine's tick
range, so ``best_bid`` and ``book(n)`` are the engine's local book exactly.
"""
from __future__ import annotations

import msgspec
import numpy as np

from engine import views as engine
from engine.codes import CANCELED, NEW, SIDE_NAMES, SIDES_BY_NAME
from engine.views import EngineConfig, Sim, SimView, is_final, make_sim
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
def venue(view: SimView) -> Venue:
    lb, ub = view.tick_range
    return Venue(tick_size=view.tick_size, lot_size=view.lot_size, lb=lb, ub=ub, max_orders=view.max_orders,
                 ring_size=view.ring_size)


def order_views(view: SimView) -> list[OrderView]:
    """Every used order slot, local side: what the strategy reads, and what decides slot reuse."""
    out = []
    for slot in range(view.slot_hwm):
        o, q = view.slots[slot], view.slot_sizes[slot]
        if o["used"] == 0:
            continue
        held = not (o["in_flight"] == 0 and is_final(o["x_status"]))
        out.append(OrderView(slot, int(o["id"]), int(o["side"]), int(o["tick"]), float(q["qty"]),
                             float(q["leaves"]), float(q["executed"]), int(o["status"]), int(o["tif"]),
                             int(o["type"]), int(o["reason"]), int(o["pending"]), bool(o["cleared"]), held))
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
            oid = int(engine.submit(S, c.side, c.tick, c.qty, c.tif, c.type))
            got = f"order {oid} in slot {int(engine.find(S, oid))}" if oid > 0 else oid
            ok = got == f"order {c.id} in slot {c.slot}"
        elif c.action == "cancel":
            got = int(engine.cancel(S, c.id))
            ok = got == 0
        elif c.action == "modify":
            got = int(engine.modify(S, c.id, c.tick, c.qty))
            ok = got == 0
        elif c.action == "cancel_all":
            got = int(engine.cancel_all(S))
            ok = got == c.count
        else:
            engine.clear_inactive(S)
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
        self.view = SimView(self.sim)
        if self.view.tick_range != (v.lb, v.ub):
            raise DataError(f"the engine's tick range [{v.lb}, {v.ub}] does not survive the tick size "
                            f"{v.tick_size}", field="transport")
        self.venue = v

    def load(self, wake: WakeUp) -> np.ndarray:
        """Take the engine's view at this step; returns the step's local rows (a writable copy)."""
        view, v = self.view, self.venue
        if wake.slot_hwm > v.max_orders:
            raise Desync(f"slot high-water mark {wake.slot_hwm} beyond {v.max_orders} slots", field="transport")
        view.clear_slots(max(view.slot_hwm, wake.slot_hwm))
        for o in wake.orders:
            if o.slot >= wake.slot_hwm:
                raise Desync(f"order {o.id} in slot {o.slot}, at or beyond the high-water mark", field="transport")
            s, q = view.slots[o.slot], view.slot_sizes[o.slot]      # records: writes go to the engine's arrays
            s["used"], s["id"], s["side"], s["tick"] = 1, o.id, o.side, o.tick
            s["status"], s["tif"], s["type"], s["reason"], s["pending"] = o.status, o.tif, o.type, o.reason, o.pending
            s["cleared"] = int(o.hidden)
            # Only for try_free: a dropped slot is reused once nothing is in flight and the exchange is done.
            s["in_flight"], s["x_status"] = (1, NEW) if o.held else (0, CANCELED)
            q["qty"], q["leaves"], q["executed"] = o.qty, o.leaves, o.executed
        view.slot_hwm = wake.slot_hwm
        view.next_order_id = wake.next_id
        view.now = wake.now
        view.drop_requests()     # the mirror's requests go nowhere: the commands carry them
        view.position = wake.position
        rows = np.frombuffer(wake.rows, dtype=EVENT_DTYPE).copy()
        view.apply_local_rows(rows)
        return rows

    def command_new(self, order_id: int) -> Command:
        """The command that repeats the submit that just gave ``order_id`` (its slot, tick and size as sent)."""
        slot = int(engine.find(self.sim, order_id))
        o = self.view.slots[slot]
        return Command("new", id=order_id, slot=slot, side=int(o["side"]), tick=int(o["x_tick"]),
                       qty=float(self.view.slot_sizes[slot]["x_qty"]), tif=int(o["tif"]), type=int(o["type"]))


def metrics(m: MetricsView) -> Metrics:
    return Metrics(**msgspec.structs.asdict(m))


def fills(views: list[FillView]) -> list[Fill]:
    return [Fill(order_id=f.order_id, side=SIDE_NAMES[f.side], price=f.price, qty=f.qty, fee=f.fee, maker=f.maker,
                 exch_ts=f.exch_ts, local_ts=f.local_ts) for f in views]
