"""Feed subscriber: keeps each topic's stream contiguous, resyncing from snapshots when it cannot.

Per topic it tracks the last applied batch seq and the publisher's session.
Batches are handed on only in order, with none missing:

- first sight of a topic: from its batch 1, start from an empty book; later (a
  late joiner), ask for a snapshot and buffer batches until it comes;
- a seq jump, or a heartbeat naming a seq we never saw: a gap. It is counted
  (with the number of batches lost) and the stream resyncs from a snapshot;
- a new session id: the publisher restarted; resync the same way;
- resuming (``resume``: a topic's session and last applied seq, from a
  journal): ask the publisher to resend the batches after it. If it still
  has them the stream goes on exactly where it stopped; if not (they aged
  out, or the publisher restarted), that is a gap and a snapshot resync.
  The resend must reach the seq its ReplayEnd names: any batch of it that
  did not come is a gap, said with how many, and resynced the same way.

A heartbeat marked ``final`` whose seq we have applied ends the topic
(``on_end(topic)``): the consumer has the whole stream.

What a subscriber needs is grouped: :class:`SubscriberOptions` (how it
connects and how long it waits, each with its default) and
:class:`FeedHandlers` (what it hands on, each optional).

A resync follows the Clone pattern: the SUB socket stays subscribed, batches
arriving meanwhile are buffered, the snapshot replaces the book, and buffered
batches numbered after the snapshot's seq are applied. A slow consumer shows
up the same way: the publisher's send queue overflows, ZeroMQ drops batches,
and we see gaps.

No message for ``stale_after`` seconds marks the feed stale (reported once,
through ``on_stale(True)``) until the next message arrives (``on_stale(False)``).
Malformed, oversized and wrong-version messages are dropped and counted by
the :class:`feeds.zmqfeed.messages.Decoder`; nothing a peer sends raises out of :meth:`Subscriber.poll`.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import msgspec
import numpy as np
import zmq

from feeds.events import EVENT_DTYPE
from feeds.zmqfeed.messages import (MAX_MESSAGE_BYTES, Decoder, EventBatch, Heartbeat, ReplayEnd, ReplayRequest, Snapshot,
                                    SnapshotRequest, batch_frames, encode, pack, unpack)

from feeds.zmqfeed.book import L2Book, empty_book_events
from feeds.zmqfeed.publisher import snapshot_address
from feeds.zmqfeed.security import ClientKeys, HandshakeWatch, secure_client

log = logging.getLogger("feeds.zmqfeed")

DEFAULT_RCVHWM = 10_000
MAX_PENDING = 10_000        # batches buffered per topic while waiting for a snapshot
# As plain ints: pyzmq's enums would add Python calls to the check of each message.
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
DRAIN = 1_000               # messages read per socket before timers are looked at again


class SubscriberStats(msgspec.Struct):
    batches: int = 0            # applied, in order
    events: int = 0
    snapshots: int = 0          # applied
    joins: int = 0              # topics first synced from a snapshot
    gaps: int = 0
    lost_batches: int = 0       # batches never handed on: the gaps and the snapshots' jumps over what followed
    restarts: int = 0           # new publisher sessions seen
    recoveries: int = 0         # resyncs completed after a gap or a restart
    stale_periods: int = 0
    duplicates: int = 0         # batches at or below the applied seq, ignored
    snapshot_requests: int = 0
    resumes: int = 0            # topics resumed from a journal by resent batches
    resent_batches: int = 0     # batches the publisher resent for those
    last_lag_ns: int = 0        # receive time - publisher send time, of the last batch
    handshake_failures: int = 0  # connections refused: a wrong or unknown CURVE key, CURVE against plaintext


class SubscriberOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a :class:`Subscriber` connects and how long it waits (seconds)."""

    snapshot_addr: str | None = None      # the snapshot service; None: the feed's port + 1
    stale_after: float = 2.0              # no message for this long marks the feed stale
    snapshot_timeout: float = 1.0         # an unanswered snapshot request is sent again after this
    rcvhwm: int = DEFAULT_RCVHWM          # the SUB socket's queue; ZeroMQ drops beyond it (seen as gaps)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    keep_book: bool = True                # keep each topic's L2 book (:meth:`Subscriber.book`)
    curve: ClientKeys | None = None       # CURVE client keys of the publisher whose public key they name
    resume: dict[str, tuple[int, int]] | None = None   # topic -> (session, seq): continue after that batch


@dataclass(frozen=True)
class FeedHandlers:
    """What a :class:`Subscriber` hands on; each is optional.

    ``on_events(topic, events, batch)`` for every batch in order (``events`` is
    a read-only view of the batch's records); ``on_snapshot(topic, snapshot,
    events)`` when a topic is (re)synced: the consumer's book must be replaced
    by ``events``; ``on_stale(bool)`` when the feed goes stale or comes back;
    ``on_notice(text)`` for gaps, restarts and staleness, one line each;
    ``on_end(topic)`` when a topic's stream is complete; ``on_clock(topic,
    heartbeat)`` for each heartbeat of a stream in step (every event up to its
    ``feed_ts`` has been handed on).
    """

    on_events: Callable | None = None
    on_snapshot: Callable | None = None
    on_stale: Callable | None = None
    on_notice: Callable | None = None
    on_end: Callable | None = None
    on_clock: Callable | None = None


def _empty_snapshot(first: EventBatch) -> Snapshot:
    """The snapshot before a session's first batch: an empty book at seq 0, no request needed."""
    events = empty_book_events(int(unpack(first.events)["local_ts"][0]))
    return Snapshot(topic=first.topic, req_id=0, seq=0, session=first.session, sent_ns=first.sent_ns,
                    feed_ts=int(events["local_ts"][0]), n=1, events=pack(events))


class _Stream:
    def __init__(self, keep_book: bool):
        self.seq = 0
        self.session: int | None = None
        self.synced = False
        self.recovering = False          # a gap or restart is being repaired (not a first join)
        self.gap_lost = 0                # batches counted lost when the gap being repaired was seen
        self.pending: deque[EventBatch] = deque(maxlen=MAX_PENDING)
        self.req_id: int | None = None
        self.req_sent = 0.0
        self.book = L2Book() if keep_book else None
        self.resuming = False            # waiting for resent batches after ``seq`` (see Subscriber's resume)
        self.resumed_after = 0
        self.ended = False


class Subscriber:
    """Subscribe to ``topics`` (all when None) at ``addr``; call :meth:`poll` to receive.

    ``options.resume`` maps a topic to ``(session, seq)``: continue after that
    batch (the consumer's book is as it was then), from resent batches if
    possible. With ``options.curve`` both sockets are CURVE clients; a failed
    handshake (either way) is counted, and each reason noticed once.
    """

    def __init__(self, addr: str, topics: list[str] | None = None,
                 options: SubscriberOptions = SubscriberOptions(), handlers: FeedHandlers = FeedHandlers()):
        self.topics = set(topics) if topics else None
        self.options = options
        self.handlers = handlers
        self.stats = SubscriberStats()
        self.decoder = Decoder(max_bytes=options.max_message_bytes)
        self.stale = False
        self.streams: dict[str, _Stream] = {}
        self._last_msg = time.monotonic()
        self._next_req = 1
        for topic, (session, seq) in (options.resume or {}).items():
            stream = self.streams[topic] = _Stream(options.keep_book)
            stream.session, stream.seq, stream.resuming = session, seq, True
            stream.resumed_after = seq
        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._dealer = self._ctx.socket(zmq.DEALER)
        self._handshakes: HandshakeWatch | None = None
        try:
            for sock in (self._sub, self._dealer):
                sock.setsockopt(zmq.LINGER, 0)
                # ZeroMQ drops (and disconnects) beyond this; the decoder counts what is between.
                sock.setsockopt(zmq.MAXMSGSIZE, 4 * options.max_message_bytes)
                if options.curve is not None:
                    secure_client(sock, options.curve)
            self._sub.setsockopt(zmq.RCVHWM, options.rcvhwm)
            self._dealer.setsockopt(zmq.IMMEDIATE, 1)   # no request queued for a publisher not there
            for topic in self.topics or [""]:
                self._sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self._handshakes = HandshakeWatch(self._sub, self._dealer)
            self._sub.connect(addr)
            self._dealer.connect(options.snapshot_addr or snapshot_address(addr))
        except (zmq.ZMQError, ValueError):
            self.close()
            raise
        self._poller = zmq.Poller()
        self._poller.register(self._sub, zmq.POLLIN)
        self._poller.register(self._dealer, zmq.POLLIN)
        for monitor in self._handshakes.monitors:
            self._poller.register(monitor, zmq.POLLIN)
        # Load the jitted checks (and book) now: the first batch is handed on as fast as the rest.
        warm = np.zeros(1, EVENT_DTYPE).tobytes()
        self.decoder.decode_batch(*batch_frames(EventBatch(topic="-", seq=1, session=1, sent_ns=0, n=1,
                                                             events=warm)))
        if options.keep_book:
            L2Book().apply(unpack(warm))

    def close(self) -> None:
        if self._handshakes is not None:
            self._handshakes.close()
        self._sub.close(0)
        self._dealer.close(0)
        self._ctx.term()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return self.decoder.total_dropped

    def book(self, topic: str) -> L2Book | None:
        stream = self.streams.get(topic)
        return stream.book if stream is not None else None

    def synced(self, topic: str) -> bool:
        stream = self.streams.get(topic)
        return stream is not None and stream.synced

    def poll(self, timeout_s: float = 0.0, early: bool = False) -> None:
        """Receive and handle messages for ``timeout_s`` seconds (at least one pass); ``early``: return
        after the first pass that received anything, so a trader reacts at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            wait = min(deadline - now, self._next_timer(now))
            ready = dict(self._poller.poll(max(0, int(wait * 1000))))
            if self._sub in ready:
                self._drain(self._sub, self._on_feed)
            if self._dealer in ready:
                self._drain(self._dealer, self._on_snapshot_reply)
            for monitor in self._handshakes.monitors:
                if monitor in ready:
                    for line in self._handshakes.read(monitor):
                        self._notice(line)
                    self.stats.handshake_failures = self._handshakes.failures
            # Timers only after reading what is queued: a consumer that was busy elsewhere finds its
            # messages waiting, and a feed is stale only if nothing at all arrived.
            self._timers(time.monotonic())
            if time.monotonic() >= deadline or (early and ready):
                return

    # -- receiving -------------------------------------------------------------------------------

    def _drain(self, sock: zmq.Socket, handle: Callable) -> None:
        for _ in range(DRAIN):
            # Ask whether a message waits rather than read until zmq.Again: raising it costs a trader
            # microseconds after each batch, between the batch and its step.
            if not sock.get(_EVENTS) & _POLLIN:
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)   # zmq.Frame: a batch's records in place
            except zmq.Again:
                return
            self._last_msg = time.monotonic()
            if self.stale:
                self.stale = False
                self._notice("feed is back")
                if self.handlers.on_stale:
                    self.handlers.on_stale(False)
            handle(frames)

    def _on_feed(self, frames: list[zmq.Frame]) -> None:
        if len(frames) == 3:
            msg = self.decoder.decode_batch(frames[1].bytes, frames[2].buffer, topic=frames[0].bytes)
        elif len(frames) == 2:
            msg = self.decoder.decode(frames[1].bytes, topic=frames[0].bytes)
        else:
            self.decoder.drop("malformed", f"feed message of {len(frames)} frames, expected 2 or 3 (a batch)")
            return
        if msg is None:
            return
        if not isinstance(msg, (EventBatch, Heartbeat)):
            self.decoder.drop("malformed", f"{type(msg).__name__} on the feed socket")
            return
        if self.topics is not None and msg.topic not in self.topics:
            return   # a longer topic sharing our prefix: SUB filters by prefix only
        stream = self.streams.get(msg.topic)
        if stream is None:
            stream = self.streams[msg.topic] = _Stream(self.options.keep_book)
        if isinstance(msg, EventBatch):
            self._on_batch(msg.topic, stream, msg)
        else:
            self._on_heartbeat(msg.topic, stream, msg)

    def _on_batch(self, topic: str, stream: _Stream, batch: EventBatch) -> None:
        if stream.resuming:
            stream.pending.append(batch)
            self._ask_resend(topic, stream)
            return
        if stream.synced and batch.session != stream.session:
            self._restarted(topic, stream, batch.session)
        if not stream.synced:
            stream.pending.append(batch)
            if batch.seq == 1:
                self._install(topic, stream, _empty_snapshot(batch))
            else:
                self._request(topic, stream)
            return
        if batch.seq <= stream.seq:
            self.stats.duplicates += 1
        elif batch.seq == stream.seq + 1:
            self._apply(topic, stream, batch)
        else:
            self._gap(topic, stream, batch.seq - stream.seq - 1)
            stream.pending.append(batch)

    def _on_heartbeat(self, topic: str, stream: _Stream, hb: Heartbeat) -> None:
        if stream.resuming:
            self._ask_resend(topic, stream)
        elif not stream.synced:
            self._request(topic, stream)
        elif hb.session != stream.session:
            self._restarted(topic, stream, hb.session)
        elif hb.seq > stream.seq:
            self._gap(topic, stream, hb.seq - stream.seq)
        else:
            if self.handlers.on_clock:
                self.handlers.on_clock(topic, hb)       # in step: every event up to hb.feed_ts has been applied
            if hb.final and not stream.ended:
                self._end(topic, stream)

    def _end(self, topic: str, stream: _Stream) -> None:
        stream.ended = True
        self._notice(f"{topic}: end of stream at seq {stream.seq}")
        if self.handlers.on_end:
            self.handlers.on_end(topic)

    def _ask_resend(self, topic: str, stream: _Stream) -> None:
        """Ask for the batches after the resumed seq, unless an answer is still awaited."""
        self._ask(stream, lambda req_id: ReplayRequest(topic=topic, req_id=req_id, session=stream.session,
                                                       from_seq=stream.seq + 1))

    def _on_resent(self, stream: _Stream, msg: EventBatch | ReplayEnd) -> None:
        """A resent batch (applied in order) or the end of the resend (then the live batches held meanwhile)."""
        topic = msg.topic
        if isinstance(msg, EventBatch):
            if msg.session == stream.session and msg.seq == stream.seq + 1:
                self.stats.resent_batches += 1
                stream.req_sent = time.monotonic()   # the resend is flowing: not a request to send again
                self._apply(topic, stream, msg)
            return
        stream.resuming, stream.req_id = False, None
        if not msg.ok:
            self._notice(f"{topic}: the publisher no longer has the batches after seq {stream.seq}; "
                         f"resyncing from a snapshot")
            self.stats.gaps += 1
            self._resync(topic, stream)
            return
        if stream.seq < msg.seq:
            self._notice(f"{topic}: the resend stopped at seq {stream.seq}, short of seq {msg.seq}")
            self._gap(topic, stream, msg.seq - stream.seq)
            return
        stream.synced = True
        self.stats.resumes += 1
        self._notice(f"{topic}: resumed after seq {stream.resumed_after} "
                     f"from {stream.seq - stream.resumed_after} resent batches")
        pending = sorted(stream.pending, key=lambda b: b.seq)
        stream.pending.clear()
        for batch in pending:
            self._on_batch(topic, stream, batch)

    def _on_snapshot_reply(self, frames: list[zmq.Frame]) -> None:
        if len(frames) == 2:
            snap = self.decoder.decode_batch(frames[0].bytes, frames[1].buffer)      # a resent batch
        elif len(frames) == 1:
            snap = self.decoder.decode(frames[0].bytes)
        else:
            self.decoder.drop("malformed", f"snapshot reply of {len(frames)} frames, expected 1 or 2 (a batch)")
            return
        if snap is None:
            return
        if isinstance(snap, (EventBatch, ReplayEnd)):
            stream = self.streams.get(snap.topic)
            if stream is not None and stream.resuming and (isinstance(snap, EventBatch) or
                                                             snap.req_id == stream.req_id):
                self._on_resent(stream, snap)
            return
        if not isinstance(snap, Snapshot):
            self.decoder.drop("malformed", f"{type(snap).__name__} on the snapshot socket")
            return
        stream = self.streams.get(snap.topic)
        if stream is None or stream.synced or snap.req_id != stream.req_id:
            return   # an answer to a request we have since given up on
        self._install(snap.topic, stream, snap)

    def _install(self, topic: str, stream: _Stream, snap: Snapshot) -> None:
        """Replace the book by the snapshot's, then apply the buffered batches that follow it."""
        events = unpack(snap.events)
        if stream.book is not None:
            stream.book = L2Book()
            stream.book.apply(events)
        skipped = ""
        if stream.recovering and snap.session == stream.session:
            # Every batch after the last applied up to the snapshot's is skipped, not only those the gap
            # showed: a slow consumer falls further behind while its snapshot request waits.
            lost = max(0, snap.seq - stream.seq)
            self.stats.lost_batches += lost - stream.gap_lost
            skipped = f": {lost} batch{'es' if lost != 1 else ''} after seq {stream.seq} never handed on"
        stream.gap_lost = 0
        stream.seq, stream.session, stream.synced, stream.req_id = snap.seq, snap.session, True, None
        self.stats.snapshots += 1
        if stream.recovering:
            self.stats.recoveries += 1
            self._notice(f"{topic}: resynced from snapshot at seq {snap.seq}{skipped}")
        else:
            self.stats.joins += 1
        stream.recovering = False
        if self.handlers.on_snapshot:
            self.handlers.on_snapshot(topic, snap, events)
        pending = sorted(stream.pending, key=lambda b: b.seq)
        stream.pending.clear()
        for k, batch in enumerate(pending):
            if batch.session != snap.session or batch.seq <= stream.seq:
                continue
            if batch.seq != stream.seq + 1:
                self._gap(topic, stream, batch.seq - stream.seq - 1)
                stream.pending.extend(b for b in pending[k:] if b.session == snap.session)
                return
            self._apply(topic, stream, batch)

    # -- state changes ---------------------------------------------------------------------------

    def _apply(self, topic: str, stream: _Stream, batch: EventBatch) -> None:
        events = unpack(batch.events)
        if stream.book is not None:
            stream.book.apply(events)
        stream.seq = batch.seq
        self.stats.batches += 1
        self.stats.events += batch.n
        self.stats.last_lag_ns = time.time_ns() - batch.sent_ns
        if self.handlers.on_events:
            self.handlers.on_events(topic, events, batch)

    def _gap(self, topic: str, stream: _Stream, lost: int) -> None:
        self.stats.gaps += 1
        self.stats.lost_batches += lost      # so far: the resync's snapshot settles the count (see _install)
        stream.gap_lost += lost
        self._notice(f"{topic}: gap after seq {stream.seq}, {lost} batch{'es' if lost != 1 else ''} lost; "
                     f"resyncing from a snapshot")
        self._resync(topic, stream)

    def _restarted(self, topic: str, stream: _Stream, session: int) -> None:
        self.stats.restarts += 1
        self._notice(f"{topic}: publisher restarted (session {session:x}); resyncing from a snapshot")
        self._resync(topic, stream)

    def _resync(self, topic: str, stream: _Stream) -> None:
        stream.synced = False
        stream.recovering = True
        stream.pending.clear()
        stream.req_id = None
        self._request(topic, stream)

    def _request(self, topic: str, stream: _Stream) -> None:
        """Ask for a snapshot unless an answer is still awaited."""
        if self._ask(stream, lambda req_id: SnapshotRequest(topic=topic, req_id=req_id)):
            self.stats.snapshot_requests += 1

    def _ask(self, stream: _Stream, request) -> bool:
        """Send ``request(req_id)`` to the snapshot service unless an answer is still awaited."""
        if stream.req_id is not None:
            return False
        stream.req_id = self._next_req
        self._next_req += 1
        stream.req_sent = time.monotonic()
        try:
            self._dealer.send(encode(request(stream.req_id)), zmq.NOBLOCK)
        except zmq.Again:
            pass   # no publisher connected yet: asked again after snapshot_timeout
        return True

    def _timers(self, now: float) -> None:
        if not self.stale and now - self._last_msg > self.options.stale_after:
            self.stale = True
            self.stats.stale_periods += 1
            self._notice(f"feed stale: no message for {now - self._last_msg:.1f} s")
            if self.handlers.on_stale:
                self.handlers.on_stale(True)
        for topic, stream in self.streams.items():
            if stream.req_id is not None and now - stream.req_sent > self.options.snapshot_timeout:
                stream.req_id = None
                if stream.resuming:
                    self._ask_resend(topic, stream)
                else:
                    self._request(topic, stream)

    def _next_timer(self, now: float) -> float:
        """Seconds until a timer may fire."""
        due = [self.options.snapshot_timeout if self.stale else self._last_msg + self.options.stale_after - now]
        due += [s.req_sent + self.options.snapshot_timeout - now for s in self.streams.values() if s.req_id is not None]
        return max(0.001, min(due))

    def _notice(self, text: str) -> None:
        log.info(text)
        if self.handlers.on_notice:
            self.handlers.on_notice(text)


def request_snapshot(snapshot_addr: str, topic: str, timeout_s: float = 2.0,
                     curve: ClientKeys | None = None) -> Snapshot | None:
    """One snapshot of ``topic`` from the snapshot service, or None if none came within ``timeout_s``.

    A trader asks this once at start for the instrument's definition (the
    snapshot carries it). It opens no SUB socket, so it counts as no
    subscription for a publisher waiting for its subscribers.
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        secure_client(sock, curve)
    decoder = Decoder()
    try:
        sock.connect(snapshot_addr)
        sock.send(encode(SnapshotRequest(topic=topic, req_id=1)))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(max(1, int(left * 1000))):
                break
            frames = sock.recv_multipart()
            msg = decoder.decode(frames[0]) if len(frames) == 1 else None
            if isinstance(msg, Snapshot) and msg.topic == topic and msg.req_id == 1:
                return msg
        return None
    finally:
        sock.close(0)
        ctx.term()
