"""The ``Strategy`` base class: override the callbacks you need.

At each wake-up (see :class:`~strategies.api.WakePolicy`) the venue calls, in
this order and only when there is something to report:

1. ``on_fill`` for each of our fills that reached us since the last wake-up,
   then ``on_order_update`` for each order whose state changed;
2. ``on_trade`` with the market trades seen since the last wake-up;
3. ``on_depth`` when the book changed;
4. ``on_timer`` when the wake-up is the timer's.

``on_start`` runs before the first event and ``on_stop`` after the last.
Orders sent from any callback leave after the strategy's decision time
(``compute_ns``): a declared constant, or ``None`` to have the venue measure
the wall time the wake-up's callbacks took. A declared time keeps a backtest
deterministic; a measured one is what a live strategy really costs. The
constructor's ``compute_ns`` reads like the config's ``strategy.compute_ns``:
ns, ``"measured"``, or None for the class's own.

Each strategy declares its parameters as a msgspec Struct in ``Params``, so a
config's ``[strategy.params]`` table is checked against them by name and type.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from strategies.api import Context, Fill, Order, Trades, WakePolicy


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Strategy:
    Params: ClassVar[type[msgspec.Struct]] = NoParams
    wake: WakePolicy = WakePolicy()
    compute_ns: int | None = 0

    def __init__(self, params: msgspec.Struct | None = None, *, wake: WakePolicy | None = None,
                 compute_ns: int | Literal["measured"] | None = None):
        self.params = params if params is not None else self.Params()
        if wake is not None:
            self.wake = wake
        if compute_ns is not None:
            self.compute_ns = None if compute_ns == "measured" else compute_ns

    def on_start(self, ctx: Context) -> None:
        pass

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_order_update(self, ctx: Context, order: Order) -> None:
        pass

    def on_trade(self, ctx: Context, trades: Trades) -> None:
        pass

    def on_depth(self, ctx: Context) -> None:
        pass

    def on_timer(self, ctx: Context) -> None:
        pass

    def on_stop(self, ctx: Context) -> None:
        pass

    def rehearse(self, ctx: Context) -> None:
        """Run the decision path on the state as it is, changing nothing: no order, no record, no state.

        Paper trading calls it while the feed is quiet (``[paper]
        rehearse_every_us``) so that the code and data of the next decision are
        still in the core's caches when its tick comes: on a virtual machine
        they go cold within a millisecond of other work or idling, and a
        decision then takes several times as long (``docs/paper-trading.md``).
        A backtest never calls it. The default rehearses nothing.
        """

    def run_timer_wakeups(self, ctx: Context, horizon: int) -> tuple[int, int] | None:
        """Optional, for a backtest: run the next timer wake-ups in one jitted call that steps the engine
        itself, instead of being woken for each; None (the default) to be woken one by one.

        The session offers it only where nothing runs between two timer wake-ups but ``on_timer`` and the
        dropping of finished orders from the view: the strategy runs in the process, its decision time is
        declared, and it takes no ``on_fill``, ``on_order_update``, ``on_trade`` or ``on_depth``. The call
        must do exactly what those wake-ups would (CMM's batched backtest:
        :meth:`strategies.cmm.CMMStrategy.run_timer_wakeups`) and return ``(wake-ups run, the last one's
        reason)``, the reason an ``engine.views.WOKE_*`` code of ``advance_until`` with a timer of
        ``wake.every_ns`` and nothing later than ``horizon``.
        """
        return None

    def charged_ns(self, wall_ns: int) -> int:
        """The measured decision time to charge for a wake-up whose callbacks took ``wall_ns``.

        That wall time, unless the strategy did work in this wake-up on behalf
        of later ones (CMM's batched inference charges each decision its share).
        """
        return wall_ns
