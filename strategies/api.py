"""What a strategy sees and does, with no transport in it.

A strategy talks to a :class:`Context`: read-only views of the book, its
position, its orders and its metrics, plus an order API. The backtest
implements the context over the jitted engine (:mod:`runtime.session`);
paper trading implements the same protocol over a live feed, so a strategy
runs unchanged in both.

Prices are in currency and rounded to the instrument's tick on the way in;
quantities are in the instrument's units.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Protocol, runtime_checkable

import msgspec
import numpy as np

from common.config import YEAR_S

Side = Literal["buy", "sell"]
TimeInForce = Literal["gtc", "gtx", "ioc", "fok"]
OrderType = Literal["limit", "market"]
Status = Literal["none", "new", "partially_filled", "filled", "canceled", "expired", "rejected"]


class WakePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When the engine hands control to the strategy; between wake-ups it runs uninterrupted.

    Any combination may be set; the strategy wakes at whichever comes first.
    ``every_ns`` is a timer on the local clock (``on_timer`` fires);
    ``every_events`` counts market-data events seen locally; ``on_top_change``
    wakes when the local best bid or ask price or size changes.
    """

    every_ns: int | None = 100_000_000
    every_events: int | None = None
    on_top_change: bool = False

    def __post_init__(self):
        if self.every_ns is not None and self.every_ns <= 0:
            raise ValueError("wake.every_ns must be positive")
        if self.every_ns is not None and self.every_ns > YEAR_S * 10**9:     # 9e18 ns wrapped the int64 clock
            raise ValueError(f"wake.every_ns must be at most a year ({YEAR_S * 10**9:_} ns)")
        if self.every_events is not None and self.every_events <= 0:
            raise ValueError("wake.every_events must be positive")
        if self.every_ns is None and self.every_events is None and not self.on_top_change:
            raise ValueError("wake needs every_ns, every_events or on_top_change")


class Order(msgspec.Struct, frozen=True):
    """One of our orders as the strategy knows it (exchange responses applied on arrival)."""

    id: int
    side: Side
    price: float
    qty: float
    leaves: float
    executed: float
    status: Status
    tif: TimeInForce
    type: OrderType
    reason: str = ""            # why it was rejected or expired, empty otherwise
    pending: str = ""           # "new", "modify" or "cancel" while a request is in flight

    @property
    def is_live(self) -> bool:
        return self.status in ("new", "partially_filled")


class OrderColumns(NamedTuple):
    """The orders of :meth:`Context.orders` as two blocks of rows, for jitted code
    (:func:`strategies.ladder.diff_into`): the same orders in the same order, prices in ticks, status and
    pending request as the engine's codes (``engine.codes``: ``NEW``..., ``REQ_NONE``, ``REQ_NEW``...), so a
    decision reads them without building an :class:`Order` each. Rows: ``engine.views.COL_*``."""

    ints: np.ndarray          # int64 [5, n]: id, side (1 buy, -1 sell), tick, status, pending request (0 none)
    floats: np.ndarray        # float64 [2, n]: leaves, executed


class Fill(msgspec.Struct, frozen=True):
    order_id: int
    side: Side
    price: float
    qty: float
    fee: float
    maker: bool
    exch_ts: int                # when it executed at the exchange
    local_ts: int               # when we learned of it


class Trades(msgspec.Struct, frozen=True):
    """Market trades seen locally since the previous wake-up, as arrays."""

    local_ts: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray            # +1 buyer-initiated, -1 seller-initiated, 0 unknown

    def __len__(self) -> int:
        return len(self.price)


class Book(msgspec.Struct, frozen=True):
    """The top ``n`` levels of the local book; empty levels are absent, best first."""

    bid_price: np.ndarray
    bid_qty: np.ndarray
    ask_price: np.ndarray
    ask_qty: np.ndarray


class Metrics(msgspec.Struct, frozen=True):
    """Running metrics, defined exactly in the README (Metrics)."""

    epnl: float
    map: float
    rpt: float
    n_fills: int
    volume: float
    fees: float


class OrderRejected(ValueError):
    """An order call the engine refused before sending (bad size, price out of range)."""


class Context(Protocol):
    """The strategy's window on a venue: a backtest or paper trading. ``buy`` and ``sell`` raise
    :class:`OrderRejected` for an order the engine refuses before sending (:func:`place` quotes on)."""

    tick_size: float
    lot_size: float

    @property
    def now(self) -> int: ...
    @property
    def best_bid(self) -> float: ...          # NaN while the side is empty
    @property
    def best_ask(self) -> float: ...
    @property
    def mid(self) -> float: ...
    @property
    def position(self) -> float: ...
    def book(self, depth: int = 5) -> Book: ...
    def orders(self) -> list[Order]: ...
    def order_columns(self) -> OrderColumns: ...      # orders() as columns
    def metrics(self) -> Metrics: ...
    def new_events(self) -> np.ndarray:
        """The LOCAL-flagged market events seen since the previous call (the first call: since the start),
        in row order, as a ``feeds.events.EVENT_DTYPE`` array: what a strategy feeds its own causal
        features with (:mod:`bundle.features`). Each row is returned once."""
        ...

    def new_event_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`new_events` as columns ``ev, local_ts, px, qty``, possibly views of the venue's own arrays
        with rows not flagged LOCAL among them (to skip): a live decision's features without a copy."""
        ...

    def buy(self, price: float, qty: float, tif: TimeInForce = "gtx", type: OrderType = "limit") -> int: ...
    def sell(self, price: float, qty: float, tif: TimeInForce = "gtx", type: OrderType = "limit") -> int: ...
    def cancel(self, order_id: int) -> bool: ...
    def modify(self, order_id: int, price: float, qty: float) -> bool: ...
    def cancel_all(self) -> int: ...
    def send_messages(self, messages: np.ndarray, qty: np.ndarray) -> None:
        """The order messages of :func:`strategies.ladder.diff_into` (cancel, modify, a post-only limit
        order), sent in order as ``cancel``, ``modify`` and :func:`place` would send them (a new order the
        engine refuses is skipped and counted); a venue may send them in one call."""
        ...

    # Optional: ``on_engine(kernel, *args)`` runs ``kernel(engine state, *args)``, a jitted call that reads the
    # venue's engine and may send on it (a live decision and its orders in one call); None or absent where
    # the venue's order calls go elsewhere (runtime.session.EngineContext.on_engine).


def place(ctx: Context, side: str, price: float, qty: float) -> int | None:
    """A post-only limit order (``side`` "buy" or "sell"); None when the engine refuses it before sending.

    A quoting strategy's price can leave the venue's tick range in a flash move; the order is then not
    placed and the strategy quotes on, as a kernel does. The engine counts every refusal by reason, and
    the run's summary reports them (``refused_orders`` in ``metrics.json``), so none passes silently.
    """
    try:
        return (ctx.buy if side == "buy" else ctx.sell)(price, qty)
    except OrderRejected:
        return None


@runtime_checkable
class MeasuresDecisionLatency(Protocol):
    """A strategy that times its own decisions; the runner reports their p50 and p99."""

    def decision_latency_ns(self) -> np.ndarray:
        """The wall time of each decision so far, in ns, in order."""
        ...
