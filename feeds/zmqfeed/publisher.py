"""Feed publisher: event batches on an XPUB socket, book snapshots from a ROUTER (ZeroMQ guide's "Clone").

The publisher numbers the batches of each topic (instrument) from 1 and keeps
each topic's L2 book as it publishes, so the snapshot it serves for a topic is
always the book after the last batch it numbered, tagged with that seq. A
subscriber that joins late, or loses batches, subscribes first, asks for a
snapshot, and applies only the batches numbered after it.

A topic that has sent nothing for ``heartbeat_s`` gets a heartbeat carrying
its last seq and the publisher's session id, so subscribers notice a dead
feed, a lost last batch, or a restarted publisher even when the market is quiet.
Once a topic's replay is over (:meth:`Publisher.end`) its heartbeats say so
(``final``), so a consumer knows it has the whole stream.

The snapshot service also resends recent batches (the last ``history_events``
events of each topic) on a :class:`~feeds.zmqfeed.messages.ReplayRequest`: a trader that
crashed resumes from the batch after the last one it journaled instead of
from a snapshot, and so sees exactly the stream an uninterrupted run saw.
A batch is kept as the frames it was sent as, so a resend re-encodes nothing.

The book is the one thing a batch needs that publishing does not: it is
brought up to date lazily, from the kept batches, before a snapshot is
served, before a batch leaves the history, and whenever :meth:`Publisher.service`
has time to wait. A burst is sent at the sockets' pace, and the book's work
is done in the gaps after it (or as it ages out of the history, if the burst
goes on longer than the history holds).
A resend may be thousands of batches, more than the requester's queue holds:
the ROUTER is ``ROUTER_MANDATORY``, so a full queue is EAGAIN rather than a
silent drop, and the resend goes on from where it stopped at each
:meth:`Publisher.service` pass (flow control) until its ReplayEnd is sent.

:func:`replay` drives a publisher from event files on their local timeline.
"""
from __future__ import annotations

import math
import os
import secrets
import time
from collections import Counter, deque
from pathlib import Path

import msgspec
import numpy as np
import zmq

from feeds.events import EVENT_DTYPE, LOCAL
from feeds.instrument import Instrument
from feeds.store import iter_chunks, load_header
from feeds.validate import NO_PRICES, Last, check_events, check_price_span, check_timelines
from feeds.zmqfeed.messages import (MAX_BATCH_EVENTS, Decoder, EventBatch, Heartbeat, ReplayEnd, ReplayRequest, Snapshot,
                                    SnapshotRequest, batch_frames, encode, pack, unpack)

from feeds.zmqfeed.book import L2Book
from feeds.zmqfeed.security import CurveServer, ServerKeys

DEFAULT_BIND = "tcp://127.0.0.1:5555"
DEFAULT_SNDHWM = 10_000   # batches queued per subscriber before ZeroMQ drops (the subscriber sees a gap)
DEFAULT_HISTORY_EVENTS = 1 << 22   # events kept per topic for resends (256 MiB of records at most)
MIN_HEARTBEAT_S = 0.01            # faster is no quicker notice of a dead feed, only a flood of heartbeats
RESEND_RETRY_S = 0.001             # how soon a resend stopped by a full queue is tried again


def snapshot_address(addr: str) -> str:
    """The snapshot service's address: the feed's port + 1 (``tcp://h:5555`` -> ``tcp://h:5556``)."""
    head, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not head.startswith("tcp://"):
        raise ValueError(f"expected tcp://HOST:PORT, got {addr!r}")
    return f"{head}:{int(port) + 1}"


class PublisherStats(msgspec.Struct):
    batches: int = 0
    events: int = 0
    drill_dropped: int = 0        # batches numbered but not sent, on purpose (fault drill)
    heartbeats: int = 0
    snapshots_served: int = 0
    replays_served: int = 0       # resend requests answered with every batch asked for
    replays_refused: int = 0      # ... that asked for batches no longer (or never) kept
    subscriptions: int = 0        # live subscriptions that receive one of our topics (all, before any is added)


class _Resend:
    """What is left to send of one answer to a ReplayRequest: batches' frames, then the encoded ReplayEnd."""

    def __init__(self, messages: list[tuple[bytes, ...]], end: bytes, ok: bool):
        self.messages = deque(messages)
        self.messages.append((end,))
        self.ok = ok


class _Stream:
    def __init__(self, topic: str, instrument: Instrument | None):
        self.topic_frame = topic.encode()
        self.instrument = instrument
        self.seq = 0
        self.feed_ts = 0
        self.clock = 0            # every event up to this local_ts is published (the replay's clock)
        self._book = L2Book()
        self.book_seq = 0         # the last batch applied to the book
        self.last_send = time.monotonic()
        self.final = False
        self.history: deque[tuple[int, int, bytes, memoryview]] = deque()   # (seq, events, header, records), oldest first
        self.history_events = 0

    def keep(self, seq: int, n: int, header: bytes, records: memoryview, limit: int) -> None:
        self.history.append((seq, n, header, records))
        self.history_events += n
        while self.history_events > limit and len(self.history) > 1:
            if self.history[0][0] > self.book_seq:
                self._apply(self.history[0])             # it must reach the book before it is gone
            self.history_events -= self.history.popleft()[1]

    def book(self) -> L2Book:
        """The book after the last batch numbered: the kept batches it lacks are the last ones."""
        behind = self.seq - self.book_seq
        for k in range(len(self.history) - behind, len(self.history)):
            self._apply(self.history[k])
        return self._book

    @property
    def book_behind(self) -> bool:
        return self.book_seq < self.seq

    def _apply(self, kept: tuple[int, int, bytes, memoryview]) -> None:
        self._book.apply(unpack(kept[3]))
        self.book_seq = kept[0]


class Publisher:
    """Binds the feed (XPUB) and its snapshot service (ROUTER); single-threaded, driven by the caller.

    Call :meth:`publish` to send a batch and :meth:`service` whenever there is
    time to spare: it answers snapshot requests, tracks subscriptions and sends
    due heartbeats. With ``curve`` both sockets are CURVE servers admitting only
    its client keys; ``self.curve`` (None without) counts who was let in.
    """

    def __init__(self, bind: str = DEFAULT_BIND, snapshot_bind: str | None = None, *,
                 heartbeat_s: float = 0.25, sndhwm: int = DEFAULT_SNDHWM,
                 history_events: int = DEFAULT_HISTORY_EVENTS, curve: ServerKeys | None = None):
        if not heartbeat_s >= MIN_HEARTBEAT_S:
            raise ValueError(f"heartbeat_s must be at least {MIN_HEARTBEAT_S} s, got {heartbeat_s}")
        self.session = secrets.randbits(63) + 1
        self.heartbeat_s = heartbeat_s
        self.history_events = history_events
        self.stats = PublisherStats()
        self.decoder = Decoder()
        self._streams: dict[str, _Stream] = {}
        self._resends: dict[tuple[bytes, str], _Resend] = {}   # (requester, topic) -> what is left to send
        self._prefixes: Counter[bytes] = Counter()              # live subscriptions' topic prefixes
        self._ctx = zmq.Context()
        self._pub = self._ctx.socket(zmq.XPUB)
        self._router = self._ctx.socket(zmq.ROUTER)
        self.curve: CurveServer | None = None
        try:
            if curve is not None:
                self.curve = CurveServer(self._ctx, curve)   # before any bind: no handshake goes unchecked
            for sock in (self._pub, self._router):
                sock.setsockopt(zmq.LINGER, 0)
                if self.curve is not None:
                    self.curve.secure(sock)
            self._pub.setsockopt(zmq.SNDHWM, sndhwm)
            self._pub.setsockopt(zmq.XPUB_VERBOSER, 1)   # every (un)subscription reaches us: we count them
            self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)   # a full or gone requester raises, never drops
            self._pub.bind(bind)
            self._router.bind(snapshot_bind or snapshot_address(bind))
            L2Book().apply(np.zeros(0, EVENT_DTYPE))     # load the jitted book now, not at the first snapshot
        except (zmq.ZMQError, ValueError):
            self.close()
            raise
        self.endpoint = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.snapshot_endpoint = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller = zmq.Poller()
        self._poller.register(self._pub, zmq.POLLIN)
        self._poller.register(self._router, zmq.POLLIN)

    def close(self) -> None:
        self._pub.close(0)
        self._router.close(0)
        if self.curve is not None:
            self.curve.stop()
        self._ctx.term()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_topic(self, topic: str, instrument: Instrument | None = None) -> None:
        """Announce a topic: it gets heartbeats (seq 0) and snapshots before its first batch."""
        if topic not in self._streams:
            self._streams[topic] = _Stream(topic, instrument)
            self._count_matching()

    def book(self, topic: str) -> L2Book:
        return self._streams[topic].book()

    def seq(self, topic: str) -> int:
        return self._streams[topic].seq

    def publish(self, topic: str, events: np.ndarray, drop: bool = False) -> int:
        """Number, keep and send one batch (``drop``: number and keep it but send nothing, a fault drill).

        The batch is kept for resends and the book as the array it is when
        that array is read-only and contiguous: its owner has said it will not
        change (:func:`replay` does), so it is not copied. A writeable one is
        copied first.
        """
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, got {len(events)}")
        if events.dtype != EVENT_DTYPE:
            raise TypeError(f"expected EVENT_DTYPE records, got {events.dtype}")
        if events.flags.writeable or not events.flags.c_contiguous:
            events = events.copy()
            events.flags.writeable = False
        self.add_topic(topic)
        stream = self._streams[topic]
        stream.seq += 1
        stream.feed_ts = int(events["local_ts"][-1])
        self.stats.batches += 1
        self.stats.events += len(events)
        header, records = batch_frames(EventBatch(topic=topic, seq=stream.seq, session=self.session,
                                                  sent_ns=time.time_ns(), n=len(events), events=events.data))
        stream.keep(stream.seq, len(events), header, records, self.history_events)
        if drop:
            self.stats.drill_dropped += 1
            return stream.seq
        self._pub.send_multipart([stream.topic_frame, header, records])
        stream.last_send = time.monotonic()
        return stream.seq

    def clock(self, topic: str, ts: int) -> None:
        """Every event of ``topic`` up to local time ``ts`` is published: heartbeats say so (``feed_ts``), so a
        consumer's clock goes on while the market is quiet."""
        stream = self._streams[topic]
        stream.clock = max(stream.clock, int(ts))

    def end(self, topic: str) -> None:
        """The topic's stream is complete: say so now, and in every heartbeat from here on."""
        stream = self._streams[topic]
        stream.final = True
        self._heartbeat(topic, stream)

    def service(self, timeout_s: float = 0.0) -> None:
        """Answer requests and send heartbeats for up to ``timeout_s`` (at least one pass)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._heartbeats()
            self._send_resends()
            if self._wait(deadline) > 0:
                self._catch_up_books()                # time to spare
            wait = self._wait(deadline)
            ready = dict(self._poller.poll(math.ceil(wait * 1000) if wait > 0 else 0))
            if self._router in ready:
                self._answer_requests()
            if self._pub in ready:
                self._count_subscriptions()
            if time.monotonic() >= deadline:
                return

    def _wait(self, deadline: float) -> float:
        """Seconds the next poll may wait: until the deadline or the next heartbeat, whichever is first."""
        now = time.monotonic()
        wait = min(deadline - now, self._next_heartbeat() - now)
        if self._resends:
            wait = min(wait, RESEND_RETRY_S)          # a requester's queue is full: try again soon
        return wait

    def _catch_up_books(self) -> None:
        """Time to spare: bring every book up to its last batch, so a snapshot is served at once."""
        for stream in self._streams.values():
            if stream.book_behind:
                stream.book()

    def _next_heartbeat(self) -> float:
        if not self._streams:
            return time.monotonic() + self.heartbeat_s
        return min(s.last_send for s in self._streams.values()) + self.heartbeat_s

    def _heartbeats(self) -> None:
        now = time.monotonic()
        for topic, stream in self._streams.items():
            if now - stream.last_send >= self.heartbeat_s:
                self._heartbeat(topic, stream)

    def _heartbeat(self, topic: str, stream: _Stream) -> None:
        hb = Heartbeat(topic=topic, seq=stream.seq, session=self.session, sent_ns=time.time_ns(),
                       feed_ts=max(stream.feed_ts, stream.clock), final=stream.final)
        self._pub.send_multipart([topic.encode(), encode(hb)])
        stream.last_send = time.monotonic()
        self.stats.heartbeats += 1

    def _answer_requests(self) -> None:
        while True:
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.decoder.drop("malformed", f"snapshot request of {len(frames) - 1} frames")
                continue
            identity, payload = frames
            req = self.decoder.decode(payload)
            if req is None:
                continue
            if isinstance(req, ReplayRequest):
                self._resend(identity, req)
                continue
            if not isinstance(req, SnapshotRequest):
                self.decoder.drop("malformed", f"{type(req).__name__} sent to the snapshot service")
                continue
            stream = self._streams.get(req.topic) or _Stream(req.topic, None)
            events = stream.book().snapshot_events(stream.feed_ts)
            snap = Snapshot(topic=req.topic, req_id=req.req_id, seq=stream.seq, session=self.session,
                            sent_ns=time.time_ns(), feed_ts=stream.feed_ts, n=len(events), events=pack(events),
                            instrument=stream.instrument)
            try:
                self._router.send_multipart([identity, encode(snap)], zmq.NOBLOCK)
                self.stats.snapshots_served += 1
            except zmq.ZMQError:
                pass   # EAGAIN, EHOSTUNREACH: the requester's queue is full or it is gone: it will ask again

    def _resend(self, identity: bytes, req: ReplayRequest) -> None:
        """Queue every kept batch from ``req.from_seq`` on, then a ReplayEnd; a refusal if any of them is gone.
        A new request of the same requester and topic replaces what is left of its last one."""
        stream = self._streams.get(req.topic)
        kept = stream.history if stream is not None else ()
        first = kept[0][0] if kept else None
        ok = (stream is not None and req.session == self.session
              and (req.from_seq > stream.seq or (first is not None and first <= req.from_seq)))
        frames = [(header, records) for seq, _, header, records in kept if seq >= req.from_seq] if ok else []
        end = ReplayEnd(topic=req.topic, req_id=req.req_id, session=self.session,
                        seq=stream.seq if stream is not None else 0, ok=ok)
        self._resends[(identity, req.topic)] = _Resend(frames, encode(end), ok)
        self._send_resends()

    def _send_resends(self) -> None:
        """Send what each queued resend's requester has room for; the rest waits for the next pass."""
        for key, resend in list(self._resends.items()):
            identity = key[0]
            try:
                while resend.messages:
                    self._router.send_multipart([identity, *resend.messages[0]], zmq.NOBLOCK)
                    resend.messages.popleft()
            except zmq.Again:
                continue                  # its queue is full: it is reading, go on next pass
            except zmq.ZMQError:
                del self._resends[key]    # EHOSTUNREACH: it is gone; it will ask again if it comes back
                continue
            del self._resends[key]
            if resend.ok:
                self.stats.replays_served += 1
            else:
                self.stats.replays_refused += 1

    def _count_subscriptions(self) -> None:
        while True:
            try:
                frame = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frame[:1] == b"\x01":
                self._prefixes[frame[1:]] += 1
            elif frame[:1] == b"\x00" and self._prefixes[frame[1:]] > 0:
                self._prefixes[frame[1:]] -= 1
        self._count_matching()

    def _count_matching(self) -> None:
        """Count the subscriptions that receive one of our topics (SUB matches by prefix): one for an
        unrelated topic is no subscriber of ours. Before any topic is added, every one counts."""
        topics = [t.encode() for t in self._streams]
        self.stats.subscriptions = sum(n for prefix, n in self._prefixes.items()
                                       if not topics or any(t.startswith(prefix) for t in topics))


def wait_for_subscribers(pub: Publisher, n: int, timeout_s: float | None = None) -> bool:
    """Serve until ``n`` subscriptions to our topics are live (True) or ``timeout_s`` passes (False); add the
    topics first, else any subscription counts (see :attr:`PublisherStats.subscriptions`)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while pub.stats.subscriptions < n:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        pub.service(0.01)
    return True


def file_topic(path: str | os.PathLike, instrument: Instrument | None) -> str:
    """An event file's topic: its instrument's symbol, else the file's name."""
    return instrument.symbol if instrument is not None else Path(path).name.split(".")[0]


def check_files(paths: list[str]) -> None:
    """Read every file through once, as :func:`replay` will, and refuse a bad one before anything is sent.

    The checks are the ones a backtest applies when it loads event files
    (:mod:`feeds.validate`): values, both timelines (across the files of one
    topic too), and a price span the instrument's book can hold. Streaming them
    keeps memory flat however long the files; a refusal mid-replay would leave
    subscribers with half a feed.
    """
    streams: dict[str, tuple[Last, tuple[float, float]]] = {}
    for path in paths:
        _, instrument, _ = load_header(path)
        topic = file_topic(path, instrument)
        last, prices = streams.get(topic, (Last(), NO_PRICES))
        first = 0
        for chunk in iter_chunks([path]):
            check_events(chunk, path, first)
            last = check_timelines(chunk, path, first, last)
            if instrument is not None:
                prices = check_price_span(chunk, instrument.tick_size, path, first, prices)
            first += len(chunk)
        streams[topic] = (last, prices)


def add_file_topics(pub: Publisher, paths: list[str]) -> list[str]:
    """Add each event file's topic (with its instrument) to ``pub``; the topics, one per file."""
    topics = []
    for path in paths:
        _, instrument, _ = load_header(path)
        topics.append(file_topic(path, instrument))
        pub.add_topic(topics[-1], instrument)
    return topics


def replay(pub: Publisher, paths: list[str], speed: float | None = None, batch_events: int = 1024,
           batch_ms: float = 1.0, drop_every: int = 0) -> None:
    """Publish the LOCAL events of each file, in order, on their local timeline scaled by ``speed``.

    ``speed`` None replays as fast as the sockets go. Otherwise an event is sent
    when the wall clock reaches its scheduled time, each file starting at once
    after the previous one; events due together share a batch (at most
    ``batch_events``) and after a batch that is not full the publisher sleeps
    ``batch_ms`` (whole milliseconds: ZeroMQ's poll resolution; longer if
    nothing is due yet, a heartbeat's period at a time, so that the heartbeats
    of a quiet stretch carry the clock on), so an event waits about that long at most for its
    companions. Without that sleep a dense stretch went out as a batch of a few
    events every pass of the loop, back to back, and on a busy machine the
    ZeroMQ I/O thread got no CPU until the burst was over: the first batch of
    it reached subscribers milliseconds after its send stamp.
    ``drop_every`` > 0 numbers but does not send every n-th batch (a fault drill).
    Each topic is ended (:meth:`Publisher.end`) once every file is replayed.
    """
    topics = add_file_topics(pub, paths)
    min_wait = batch_ms / 1e3
    for path, topic in zip(paths, topics):
        t0 = w0 = None
        for chunk in iter_chunks([path]):
            local = chunk[(chunk["ev"] & np.uint64(LOCAL)) != 0]
            local.flags.writeable = False            # ours alone: the publisher keeps its batches uncopied
            ts = local["local_ts"]
            if t0 is None and len(local):
                t0, w0 = int(ts[0]), time.perf_counter_ns()
            i = 0
            while i < len(local):
                j = min(i + batch_events, len(local))
                if speed is not None:
                    reached = t0 + (time.perf_counter_ns() - w0) * speed
                    j = min(j, int(np.searchsorted(ts, reached, side="right")))
                    if j == i:
                        due_in = (int(ts[i]) - reached) / speed / 1e9
                        pub.clock(topic, int(reached))      # every row up to now has gone
                        # At most a heartbeat's period at a time, so each heartbeat of a quiet stretch carries
                        # the clock as it is then: slept through at once, a gap's heartbeats all said where it
                        # began, and a trader's timers due in it fired together with the row that ended it.
                        pub.service(min(max(due_in, min_wait), pub.heartbeat_s))
                        continue
                drop = drop_every > 0 and (pub.stats.batches + 1) % drop_every == 0
                pub.publish(topic, local[i:j], drop=drop)
                pub.service(min_wait if speed is not None and j - i < batch_events else 0.0)
                i = j
    for topic in dict.fromkeys(topics):
        pub.end(topic)
