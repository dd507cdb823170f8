"""The feed's wire protocol: versioned msgpack messages, decoded without trusting the sender.

Every message is a tagged msgspec Struct (``type`` names it) carrying ``v``, the
protocol version. On a ZeroMQ socket a market-data message travels as two
frames, ``[topic, payload]``: the topic (the instrument symbol) is a frame of
its own so SUB sockets filter on it, and it is repeated inside the payload so
a frame swapped in transit is caught.

Event batches carry the 64-byte records of :data:`feeds.events.EVENT_DTYPE`
packed as raw bytes: no per-event encoding, so a batch costs one copy.

:class:`Decoder` is the only way in. It checks the size before parsing, the
version before the layout, then types, ranges and counts; anything wrong is
dropped, counted by reason and logged (the first few), and ``decode`` returns
``None``: a bad message never raises into the caller.
"""
from __future__ import annotations

import logging
from typing import Annotated, Literal, Union

import msgspec
import numpy as np

from .events import EVENT_DTYPE
from .instrument import Instrument

WIRE_VERSION = 1
RECORD_BYTES = EVENT_DTYPE.itemsize
MAX_MESSAGE_BYTES = 16 << 20                      # a message larger than this is dropped unread
MAX_BATCH_EVENTS = 65_536                         # 4 MiB of records
MAX_SNAPSHOT_EVENTS = MAX_MESSAGE_BYTES // RECORD_BYTES - 1
MAX_TOPIC = 64

log = logging.getLogger("feeds.wire")

Topic = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOPIC)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SNAPSHOT_EVENTS)]
INT64_MAX = 2**63 - 1
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Session = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
Nanos = Annotated[int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]
Id = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
Records = Annotated[bytes, msgspec.Meta(max_length=MAX_MESSAGE_BYTES)]
Side = Literal["buy", "sell"]


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: int = WIRE_VERSION


class EventBatch(Message, tag="batch"):
    """Consecutive events of one instrument; ``seq`` counts batches per topic from 1."""

    topic: Topic
    seq: Seq
    session: Session            # the publisher's run; a new one means it restarted
    sent_ns: Nanos              # publisher's wall clock at send (feed lag)
    n: Count
    events: Records             # n packed EVENT_DTYPE records, local_ts non-decreasing


class Heartbeat(Message, tag="heartbeat"):
    """Sent per topic while no batch is: says the feed is alive and which seq is the latest."""

    topic: Topic
    seq: Seq                    # the last batch published on this topic (0: none yet)
    session: Session
    sent_ns: Nanos
    feed_ts: Nanos              # local_ts the replay has reached: every event up to it is published
    final: bool = False         # the stream is over: ``seq`` is its last batch


class SnapshotRequest(Message, tag="snapshot_request"):
    topic: Topic
    req_id: Seq


class Snapshot(Message, tag="snapshot"):
    """The publisher's book after batch ``seq``, as events: one DEPTH_CLEAR then DEPTH_SNAPSHOT rows.

    Applying the records to an empty or stale book yields the publisher's book,
    whichever book implementation the consumer keeps.
    """

    topic: Topic
    req_id: Seq
    seq: Seq
    session: Session
    sent_ns: Nanos
    feed_ts: Nanos
    n: Count
    events: Records
    instrument: Instrument | None = None


class ReplayRequest(Message, tag="replay_request"):
    """Ask the snapshot service to resend batches ``from_seq`` onwards of ``session`` (a trader resuming)."""

    topic: Topic
    req_id: Seq
    session: Session
    from_seq: Seq


class ReplayEnd(Message, tag="replay_end"):
    """Closes a replay: the batches up to ``seq`` were resent before it (``ok``), or they are gone (not ``ok``)."""

    topic: Topic
    req_id: Seq
    session: Session
    seq: Seq
    ok: bool


class OrderRequest(Message, tag="order"):
    """A trader's request to the (paper) exchange; prices in currency, quantities in units."""

    topic: Topic
    order_id: Id
    action: Literal["new", "cancel", "modify"]
    side: Side | None = None
    price: float = 0.0
    qty: float = 0.0
    tif: Literal["gtc", "gtx", "ioc", "fok"] = "gtx"
    order_type: Literal["limit", "market"] = "limit"
    local_ts: Nanos = 0         # the trader's feed time when it decided
    sent_ns: Nanos = 0


class ExecutionReport(Message, tag="execution"):
    """The exchange's answer to a request, or a fill; ``seq`` numbers reports per trader."""

    topic: Topic
    seq: Seq
    order_id: Id
    status: Literal["new", "partially_filled", "filled", "canceled", "expired", "rejected"]
    side: Side
    price: float
    leaves_qty: float
    exec_price: float = 0.0
    exec_qty: float = 0.0
    maker: bool = False
    fee: float = 0.0
    reason: str = ""
    exch_ts: Nanos = 0
    local_ts: Nanos = 0


AnyMessage = Union[EventBatch, Heartbeat, SnapshotRequest, Snapshot, ReplayRequest, ReplayEnd, OrderRequest,
                   ExecutionReport]


# ---- The backtest over ZeroMQ: the engine as a simulated exchange, the strategy in its own process.
# Orders and fills travel in the engine's own units (ticks, side/status/tif codes of engine.codes),
# so the strategy's copy of its view is the engine's to the bit and nothing is rounded twice.

Tick = Annotated[int, msgspec.Meta(ge=-INT64_MAX, le=INT64_MAX)]
Slot = Annotated[int, msgspec.Meta(ge=0, le=1 << 24)]
Code = Annotated[int, msgspec.Meta(ge=0, le=15)]
Token = Annotated[str, msgspec.Meta(min_length=16, max_length=64)]
SideCode = Literal[1, -1]


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


class Command(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One order call a callback made, with what the strategy's copy of its view answered.

    ``new``: the id and slot it was given; ``cancel_all``: how many cancels it sent;
    ``clear``: finished orders left the view (the order of clears among orders moves slots).
    """

    action: Literal["new", "cancel", "modify", "cancel_all", "clear"]
    id: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] = 0
    slot: Slot = 0
    side: Literal[0, 1, -1] = 0
    tick: Tick = 0
    qty: float = 0.0
    tif: Literal[0, 1, 2, 3] = 0           # GTC, GTX, FOK, IOC
    type: Literal[0, 1] = 0                # LIMIT, MARKET
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


class Failed(Message, tag="failed"):
    """Strategy -> engine: the strategy cannot go on (bad config, bad bundle); one line."""

    error: Annotated[str, msgspec.Meta(max_length=4096)]


ToStrategy = WakeUp
ToEngine = Union[Ready, Decision, Finished, Failed]


class _Version(msgspec.Struct):
    """Read first, alone, so a message of another version is told apart from a malformed one."""

    v: int


_encoder = msgspec.msgpack.Encoder()


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def pack(events: np.ndarray) -> bytes:
    """The raw bytes of an event array, for ``EventBatch.events`` and ``Snapshot.events``."""
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE records, got {events.dtype}")
    return np.ascontiguousarray(events).tobytes()


def unpack(raw: bytes) -> np.ndarray:
    """A read-only event array viewing ``raw`` (no copy); the length was checked by the decoder."""
    return np.frombuffer(raw, dtype=EVENT_DTYPE)


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


DROP_REASONS = ("oversized", "wrong_version", "malformed", "bad_records", "topic_mismatch", "unexpected")


class Decoder:
    """Decodes untrusted payloads; counts and logs what it drops, never raises.

    ``messages`` is the union of types this socket may receive (the feed's by
    default); any other type is malformed here.
    """

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES, log_first: int = 5, messages=AnyMessage):
        self.max_bytes = max_bytes
        self.log_first = log_first
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.examples: list[str] = []
        self._version = msgspec.msgpack.Decoder(_Version)
        self._message = msgspec.msgpack.Decoder(messages)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def drop(self, reason: str, detail: str) -> None:
        """Count one dropped message (also for callers that reject a frame layout)."""
        self.dropped[reason] += 1
        if self.total_dropped <= self.log_first:
            self.examples.append(f"{reason}: {detail}")
            log.warning("dropped a feed message (%s): %s", reason, detail)

    def decode(self, payload, topic: bytes | None = None) -> AnyMessage | None:
        """The message in ``payload``, or None (dropped and counted).

        ``topic`` is the message's topic frame, when it came with one; it must
        name the topic inside the payload.
        """
        size = len(payload)
        if size > self.max_bytes:
            self.drop("oversized", f"{size:,} bytes > {self.max_bytes:,}")
            return None
        try:
            version = self._version.decode(payload).v
        except (msgspec.MsgspecError, ValueError) as e:   # ValueError: bad UTF-8 in a str
            self.drop("malformed", str(e))
            return None
        if version != WIRE_VERSION:
            self.drop("wrong_version", f"version {version}, expected {WIRE_VERSION}")
            return None
        try:
            msg = self._message.decode(payload)
        except (msgspec.MsgspecError, ValueError) as e:   # ValueError: bad UTF-8 in a str
            self.drop("malformed", str(e))
            return None
        if isinstance(msg, (EventBatch, Snapshot)):
            problem = _records_problem(msg)
            if problem:
                self.drop("bad_records", f"{type(msg).__name__} {msg.topic!r} seq {msg.seq}: {problem}")
                return None
        if isinstance(msg, WakeUp) and len(msg.rows) != msg.n * RECORD_BYTES:
            self.drop("bad_records", f"WakeUp seq {msg.seq}: n = {msg.n} but {len(msg.rows)} bytes of records")
            return None
        if isinstance(msg, Finished):
            views = ([msg.latency_ns] if msg.latency_ns else []) + list((msg.record or {}).values())
            problem = next(filter(None, map(_array_problem, views)), "")
            if problem:
                self.drop("bad_records", f"Finished: {problem}")
                return None
        if topic is not None and topic != msg.topic.encode():
            self.drop("topic_mismatch", f"frame {topic[:MAX_TOPIC]!r}, payload {msg.topic!r}")
            return None
        return msg


def _records_problem(msg: EventBatch | Snapshot) -> str:
    if len(msg.events) % RECORD_BYTES:
        return f"{len(msg.events)} bytes of records is not a multiple of {RECORD_BYTES}"
    if len(msg.events) // RECORD_BYTES != msg.n:
        return f"n = {msg.n} but {len(msg.events) // RECORD_BYTES} records"
    if isinstance(msg, EventBatch):
        if not 1 <= msg.n <= MAX_BATCH_EVENTS:
            return f"n = {msg.n} outside 1..{MAX_BATCH_EVENTS}"
        if msg.seq < 1:
            return "batch seq starts at 1"
        ts = unpack(msg.events)["local_ts"]
        if msg.n > 1 and bool(np.any(ts[1:] < ts[:-1])):
            return "local_ts goes backwards"
    return ""
