"""The feed's messages: versioned msgpack, decoded without trusting the sender.

Every message is a tagged msgspec Struct (``type`` names it) carrying ``v``, the
protocol version. On the feed socket a message travels as ``[topic, payload]``:
the topic (the instrument symbol) is a frame of its own so SUB sockets filter
on it, and it is repeated inside the payload so a frame swapped in transit is
caught.

An event batch is the exception, the feed's hot path: its payload is a small
msgpack header (an :class:`EventBatch` whose ``events`` is empty) and its
64-byte records of :data:`feeds.events.EVENT_DTYPE` follow as a raw frame of
their own, ``[topic, header, records]`` (``[header, records]`` when the
snapshot service resends one). Nothing is encoded per event and nothing is
copied to frame or unframe them: the publisher keeps the two frames it sent for
resends, and the subscriber views the received records frame in place
(:func:`unpack`). Version 1 carried the records inside the msgpack payload,
which cost an encode and a decode copy of every batch.

:class:`Decoder` is the only way in. It checks the size before parsing, the
version before the layout, then types, ranges, counts and the events' values; anything wrong is
dropped, counted by reason and logged (the first few), and ``decode`` / ``decode_batch`` return
``None``: a bad message never raises into the caller.
"""
from __future__ import annotations

import logging
from typing import Annotated, Union

import msgspec
import numba as nb
import numpy as np

from common.errors import DataError
from feeds.events import EVENT_DTYPE
from feeds.instrument import Instrument
from feeds.validate import check_events, events_ok

WIRE_VERSION = 2                                  # 2: a batch's records in a frame of their own
RECORD_BYTES = EVENT_DTYPE.itemsize
MAX_MESSAGE_BYTES = 16 << 20                      # a message larger than this is dropped unread
MAX_BATCH_EVENTS = 65_536                         # 4 MiB of records
MAX_SNAPSHOT_EVENTS = MAX_MESSAGE_BYTES // RECORD_BYTES - 1
MAX_TOPIC = 64

log = logging.getLogger("feeds.zmqfeed.messages")

Topic = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOPIC)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SNAPSHOT_EVENTS)]
INT64_MAX = 2**63 - 1
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Session = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
Nanos = Annotated[int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]
Id = Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
Records = Annotated[bytes, msgspec.Meta(max_length=MAX_MESSAGE_BYTES)]


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: int = WIRE_VERSION

    def problem(self) -> str:
        """What is wrong with a message that parsed (counts, sizes, order), or "" if nothing."""
        return ""


class EventBatch(Message, tag="batch"):
    """Consecutive events of one instrument; ``seq`` counts batches per topic from 1.

    On the wire ``events`` is empty and the records are the next frame
    (:func:`batch_frames`); a decoded batch's ``events`` views that frame.
    """

    topic: Topic
    seq: Seq
    session: Session            # the publisher's run; a new one means it restarted
    sent_ns: Nanos              # publisher's wall clock at send (feed lag)
    n: Count
    events: Records = b""       # n packed EVENT_DTYPE records, local_ts non-decreasing

    def problem(self) -> str:
        problem = _records_problem(self)
        if problem:
            return problem
        if not 1 <= self.n <= MAX_BATCH_EVENTS:
            return f"n = {self.n} outside 1..{MAX_BATCH_EVENTS}"
        if self.seq < 1:
            return "batch seq starts at 1"
        if not _time_ordered(unpack(self.events)["local_ts"]):
            return "local_ts goes backwards"
        return ""


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

    def problem(self) -> str:
        return _records_problem(self)


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




AnyMessage = Union[EventBatch, Heartbeat, SnapshotRequest, Snapshot, ReplayRequest, ReplayEnd]


class _Version(msgspec.Struct):
    """Read first, alone, so a message of another version is told apart from a malformed one."""

    v: int


_encoder = msgspec.msgpack.Encoder()


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def batch_frames(batch: EventBatch) -> tuple[bytes, bytes | memoryview]:
    """``(header, records)``: the two frames a batch travels as (after its topic on the feed socket);
    ``records`` is ``batch.events`` itself, any buffer of packed records."""
    return _encoder.encode(msgspec.structs.replace(batch, events=b"")), batch.events


def pack(events: np.ndarray) -> bytes:
    """The raw bytes of an event array, for ``EventBatch.events`` and ``Snapshot.events``."""
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE records, got {events.dtype}")
    return np.ascontiguousarray(events).tobytes()


def unpack(raw) -> np.ndarray:
    """A read-only event array viewing ``raw`` (no copy); the length was checked by the decoder."""
    return np.frombuffer(raw, dtype=EVENT_DTYPE)


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
            log.warning("dropped a message (%s): %s", reason, detail)

    def decode(self, payload, topic: bytes | None = None) -> AnyMessage | None:
        """The message in ``payload``, or None (dropped and counted); a batch comes through :meth:`decode_batch`.

        ``topic`` is the message's topic frame, when it came with one; it must
        name the topic inside the payload.
        """
        return self._decode(payload, len(payload), topic)

    def decode_batch(self, header, records, topic: bytes | None = None) -> EventBatch | None:
        """The batch whose header and records frames these are, or None (dropped and counted).

        ``records`` may be any buffer (a received frame's, viewed in place); the
        batch's ``events`` is it, once its length and values are checked.
        """
        return self._decode(header, len(header) + len(records), topic, records)

    def _decode(self, payload, size: int, topic: bytes | None, records=None) -> AnyMessage | None:
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
        if isinstance(msg, EventBatch):
            if records is None or len(msg.events):
                self.drop("malformed", "a batch's records travel in a frame of their own, after its header")
                return None
            msg.events = records
        elif records is not None:
            self.drop("malformed", f"{type(msg).__name__} with a records frame")
            return None
        problem = msg.problem()
        if problem:
            self.drop("bad_records", f"{type(msg).__name__}: {problem}")
            return None
        if topic is not None and topic != msg.topic.encode():
            self.drop("topic_mismatch", f"frame {topic[:MAX_TOPIC]!r}, payload {msg.topic!r}")
            return None
        return msg


def _records_problem(msg: EventBatch | Snapshot) -> str:
    """Layout first, then the values every event file must hold (finite prices and sizes, none negative)."""
    if len(msg.events) % RECORD_BYTES:
        return f"{len(msg.events)} bytes of records is not a multiple of {RECORD_BYTES}"
    if len(msg.events) // RECORD_BYTES != msg.n:
        return f"n = {msg.n} but {len(msg.events) // RECORD_BYTES} records"
    events = unpack(msg.events)
    if events_ok(events):
        return ""
    try:
        check_events(events, source=msg.topic)    # says which event breaks which rule
    except DataError as e:
        return str(e)
    return ""


@nb.njit(cache=True)
def _time_ordered(ts) -> bool:
    """``ts`` never goes backwards (one jitted pass: numpy's would allocate two temporaries a batch)."""
    for i in range(1, ts.shape[0]):
        if ts[i] < ts[i - 1]:
            return False
    return True
