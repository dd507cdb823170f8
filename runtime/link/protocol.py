"""The strategy link of ``cmm backtest --transport zmq``: the engine as a simulated exchange, the strategy
in its own process.

Orders and fills travel in the engine's own units (ticks, and the side, status and
time-in-force codes of :mod:`engine.codes`), so the strategy's copy of its view is
the engine's to the bit and nothing is rounded twice. The envelope (version,
tagged msgpack, the untrusting :class:`~feeds.zmqfeed.messages.Decoder`) is the
feed's.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec
import numpy as np

from engine.codes import BUY, FOK, GTC, GTX, IOC, LIMIT, MARKET, SELL
from feeds.zmqfeed.messages import INT64_MAX, RECORD_BYTES, Count, Id, Message, Nanos, Seq

Tick = Annotated[int, msgspec.Meta(ge=-INT64_MAX, le=INT64_MAX)]
Slot = Annotated[int, msgspec.Meta(ge=0, le=1 << 24)]
Code = Annotated[int, msgspec.Meta(ge=0, le=15)]
Token = Annotated[str, msgspec.Meta(min_length=16, max_length=64)]
SideCode = Literal[BUY, SELL]


class Venue(msgspec.Struct, forbid_unknown_fields=True):
    """What the strategy needs once: the instrument and the engine's book range and order capacity."""

    tick_size: Annotated[float, msgspec.Meta(gt=0)]
    lot_size: Annotated[float, msgspec.Meta(gt=0)]
    lb: Tick                    # the book's tick range [lb, ub]
    ub: Tick
    max_orders: Annotated[int, msgspec.Meta(gt=0, le=1 << 24)]
    ring_size: Annotated[int, msgspec.Meta(gt=0, le=1 << 24)]


class OrderView(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One used order slot as the strategy sees it (local side), in the engine's codes.

    ``hidden``: finished and dropped from the view, but the slot is not free yet;
    ``held``: messages about it are still in flight, so dropping it will not free the slot.
    """

    slot: Slot
    id: Id
    side: SideCode
    tick: Tick
    qty: float
    leaves: float
    executed: float
    status: Code
    tif: Code
    type: Code
    reason: Code
    pending: Code
    hidden: bool
    held: bool


class FillView(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    order_id: Id
    side: SideCode
    price: float
    qty: float
    fee: float
    maker: bool
    exch_ts: Nanos
    local_ts: Nanos


class MetricsView(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    epnl: float
    map: float
    rpt: float
    n_fills: Annotated[int, msgspec.Meta(ge=0)]
    volume: float
    fees: float


class WakeUp(Message, tag="wake"):
    """Engine -> strategy: one step of the strategy (``phase``), with everything its callbacks may read.

    ``rows``: the local market rows since the previous step (``n`` packed records);
    ``fills``: our fills that reached the local side; ``orders``: every used order
    slot; ``venue`` only on the start step.
    """

    seq: Seq
    phase: Literal["start", "wake", "stop"]
    now: Nanos
    reason: Code
    n: Count
    rows: bytes
    fills: list[FillView]
    orders: list[OrderView]
    slot_hwm: Annotated[int, msgspec.Meta(ge=0, le=1 << 24)]
    next_id: Id
    position: float
    metrics: MetricsView
    venue: Venue | None = None

    def problem(self) -> str:
        if len(self.rows) != self.n * RECORD_BYTES:
            return f"seq {self.seq}: n = {self.n} but {len(self.rows)} bytes of records"
        return ""


class Command(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One order call a callback made, with what the strategy's copy of its view answered.

    ``new``: the id and slot it was given; ``cancel_all``: how many cancels it sent;
    ``clear``: finished orders left the view (the order of clears among orders moves slots).
    """

    action: Literal["new", "cancel", "modify", "cancel_all", "clear"]
    id: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] = 0
    slot: Slot = 0
    side: Literal[0, BUY, SELL] = 0      # 0: not an order's call
    tick: Tick = 0
    qty: float = 0.0
    tif: Literal[GTC, GTX, FOK, IOC] = GTC
    type: Literal[LIMIT, MARKET] = LIMIT
    count: Slot = 0


class Ready(Message, tag="ready"):
    """Strategy -> engine, once: built and connected; ``token`` is the one the engine started it with."""

    token: Token


class Decision(Message, tag="decision"):
    """Strategy -> engine: the answer to WakeUp ``seq``: its order calls in order, and their wall time."""

    seq: Seq
    commands: list[Command]
    compute_ns: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]


class ArrayView(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A plain numpy array (numbers or text): dtype string, shape, raw bytes."""

    dtype: Annotated[str, msgspec.Meta(max_length=16)]
    shape: list[Annotated[int, msgspec.Meta(ge=0)]]
    data: bytes


class Finished(Message, tag="finished"):
    """Strategy -> engine, after the stop step: what the strategy measured and recorded of itself."""

    latency_ns: ArrayView | None = None
    record: dict[str, ArrayView] | None = None
    dropped: dict[Annotated[str, msgspec.Meta(max_length=32)], Annotated[int, msgspec.Meta(ge=0)]] = {}

    def problem(self) -> str:
        views = ([self.latency_ns] if self.latency_ns else []) + list((self.record or {}).values())
        return next(filter(None, map(_array_problem, views)), "")


class Failed(Message, tag="failed"):
    """Strategy -> engine: the strategy cannot go on (bad config, bad bundle); one line."""

    error: Annotated[str, msgspec.Meta(max_length=4096)]


ToStrategy = WakeUp
ToEngine = Union[Ready, Decision, Finished, Failed]


ARRAY_KINDS = "biufU"                              # numbers and text: nothing that unpickles


def array_view(a: np.ndarray) -> ArrayView:
    a = np.ascontiguousarray(a)
    return ArrayView(dtype=a.dtype.str, shape=list(a.shape), data=a.tobytes())


def to_array(view: ArrayView) -> np.ndarray:
    """The array an :class:`ArrayView` describes (writable); the decoder has checked it."""
    return np.frombuffer(view.data, dtype=np.dtype(view.dtype)).reshape(view.shape).copy()


def _array_problem(view: ArrayView) -> str:
    try:
        dtype = np.dtype(view.dtype)
    except TypeError as e:
        return f"dtype {view.dtype!r}: {e}"
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.itemsize == 0:
        return f"dtype {view.dtype!r} is not a plain number or text type"
    if len(view.shape) > 4 or int(np.prod(view.shape, dtype=np.float64)) * dtype.itemsize != len(view.data):
        return f"shape {view.shape} of {view.dtype} does not match {len(view.data)} bytes"
    return ""


