"""The live Binance connector: websocket connections in, ZeroMQ feed batches and capture lines out.

One asyncio loop does everything, so every line is stamped and taken in one
order. All symbols share one combined-stream connection (``/stream?streams=``:
no subscribe messages, so nothing to rate-limit); websockets answers Binance's
pings with pongs and sends its own keepalive pings, so a dead connection is
noticed within ``ping_timeout``.

- A connection that drops is replaced after a capped, jittered backoff; the
  books see the missed diffs as a gap and resync from a REST snapshot.
- Binance closes every connection after 24 hours. Before then
  (``max_connection_s``, 23 h by default) a second connection opens, both
  run side by side until the new one continues each book
  (:mod:`.stream`), and only then is the old one closed: no gap, no resync.
- A book in need of a snapshot (at the start, after a gap) gets one from REST
  (:mod:`.rest`, within Binance's rate limits).

Each message taken is published at once as one batch of its events on the
symbol's topic (:class:`~feeds.zmqfeed.publisher.Publisher`: sequence numbers,
snapshots for late joiners and gaps, heartbeats), and written to the recorder
when there is one. Every ``tick_s`` the publisher is serviced and told the feed
clock (every event up to now is published), the recorder is fsynced, and
every second the status line is drawn.
"""
from __future__ import annotations

import asyncio
import random
import signal
import time

import msgspec
import numpy as np
import websockets
from websockets.asyncio.client import connect

from common.errors import DataError
from feeds.binance_live.markets import Market, stream_url
from feeds.binance_live.recorder import Recorder
from feeds.binance_live.rest import Rest, backoff_s
from feeds.binance_live.stream import SymbolStream, snapshot_id, stream_symbol
from feeds.events import LOCAL
from feeds.zmqfeed.messages import MAX_BATCH_EVENTS
from feeds.zmqfeed.publisher import Publisher

ROLLOVER_S = 23 * 3600.0          # reconnect this long after connecting: well before Binance's 24-hour cut
OVERLAP_TIMEOUT_S = 60.0          # a new connection that has not continued a book by then takes over anyway


class LiveOptions(msgspec.Struct, frozen=True, kw_only=True):
    max_connection_s: float = ROLLOVER_S
    overlap_timeout_s: float = OVERLAP_TIMEOUT_S
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 30.0
    stable_s: float = 30.0            # a connection that lived this long resets the backoff
    tick_s: float = 0.1               # publisher service, feed clock and recorder fsync period
    status_every_s: float = 1.0
    duration_s: float | None = None   # stop after this long (None: until a signal)
    open_timeout_s: float = 10.0


class LiveStats(msgspec.Struct):
    messages: int = 0
    events: int = 0
    reconnects: int = 0               # connections lost and replaced
    rollovers: int = 0                # connections replaced on schedule, without a gap
    connect_failures: int = 0
    unknown: int = 0                  # messages for no symbol of ours (or no stream at all)


class Clock:
    """Wall-clock ns that never goes back: the wall time at start plus a monotonic clock's progress."""

    def __init__(self):
        self.wall0, self.mono0 = time.time_ns(), time.perf_counter_ns()

    def __call__(self) -> int:
        return self.wall0 + time.perf_counter_ns() - self.mono0


class Connector:
    def __init__(self, market: Market, symbols: list[str], publisher: Publisher | None = None,
                 recorder: Recorder | None = None, options: LiveOptions = LiveOptions(), status=None,
                 rng: random.Random | None = None):
        self.market = market
        self.symbols = symbols
        self.pub = publisher
        self.recorder = recorder
        self.options = options
        self.status = status                # a callable taking a line, or None
        self.rng = rng or random.Random()
        self.clock = Clock()
        self.stats = LiveStats()
        self.streams = {s: SymbolStream(s) for s in symbols}
        self.rest = Rest(market, notice=self.notice, rng=self.rng, backoff_base_s=options.backoff_base_s,
                         backoff_cap_s=options.backoff_cap_s)
        self.instruments = {}
        self.stop = asyncio.Event()
        self.stopped_by = ""
        self.error: BaseException | None = None
        self._conn_id = 0
        self._tasks: set[asyncio.Task] = set()
        self._sockets: set = set()           # open websocket connections, closed with a close frame at the end
        if recorder is not None:
            recorder.on_rotate = self._rotated

    # ---- running
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._interrupt)
        try:
            if not self.instruments:
                await self._load_instruments()
            self._spawn(self._supervise())
            self._spawn(self._tick())
            try:
                await asyncio.wait_for(self.stop.wait(), self.options.duration_s)
            except asyncio.TimeoutError:
                self.stopped_by = "duration"
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(*(asyncio.wait_for(ws.close(), 2.0) for ws in self._sockets), return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._finish()

    def load_instruments(self) -> None:
        """Ask Binance for each symbol's tick and lot size and announce the topics, before any subscriber asks
        for a snapshot (which carries the instrument); run() does it itself when not done before."""
        asyncio.run(self._load_instruments())

    async def _load_instruments(self) -> None:
        self.instruments = await self.rest.instruments(self.symbols)
        if self.pub is not None:
            for inst in self.instruments.values():
                self.pub.add_topic(inst.symbol, inst)

    def _interrupt(self) -> None:
        self.stopped_by = "interrupt"
        self.stop.set()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()     # a DataError in a fetch, a bug: stop and report it
            self.stopped_by = "error"
            self.stop.set()

    def _finish(self) -> None:
        """End each topic (subscribers learn the stream is over) and put every recorded file in place."""
        if self.pub is not None:
            for inst in self.instruments.values():
                self.pub.end(inst.symbol)
            self.pub.service(0.05)
        if self.recorder is not None:
            self.recorder.close()

    # ---- connections
    async def _open(self):
        """Connect, retrying after a capped, jittered backoff until it works or we stop."""
        url = stream_url(self.market, self.symbols)
        attempt = 0
        while not self.stop.is_set():
            try:
                ws = await asyncio.wait_for(connect(url, max_size=2**24, open_timeout=self.options.open_timeout_s,
                                                    close_timeout=1.0), self.options.open_timeout_s + 1)
                self._conn_id += 1
                self._sockets.add(ws)
                return self._conn_id, ws
            except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake,
                    websockets.exceptions.InvalidURI) as e:
                if isinstance(e, websockets.exceptions.InvalidURI):
                    raise DataError(f"{e}", field="--ws-url") from None
                self.stats.connect_failures += 1
                wait = backoff_s(attempt, self.options.backoff_base_s, self.options.backoff_cap_s, self.rng)
                self.notice(f"cannot connect to {self.market.ws_url} ({type(e).__name__}: {e}); "
                            f"retrying in {wait:.1f} s")
                attempt += 1
                await asyncio.sleep(wait)
        raise asyncio.CancelledError

    async def _supervise(self) -> None:
        conn, ws = await self._open()
        for s in self.streams.values():
            s.switch_now(conn, self.clock())
        reader = self._spawn(self._read(conn, ws))
        opened = time.monotonic()
        quick = 0
        while True:
            due = opened + self.options.max_connection_s - time.monotonic()
            done, _ = await asyncio.wait({reader}, timeout=max(due, 0.0))
            if done:                                          # lost: replace it
                lived = time.monotonic() - opened
                self.stats.reconnects += 1
                self.notice(f"connection {conn} lost after {lived:.1f} s ({reader.result()}); reconnecting")
                quick = quick + 1 if lived < self.options.stable_s else 0   # losses in a row, each soon after connecting
                await asyncio.sleep(backoff_s(quick, self.options.backoff_base_s, self.options.backoff_cap_s,
                                              self.rng))
                conn, ws = await self._open()
                for s in self.streams.values():
                    self._publish(s, s.switch_now(conn, self.clock()))
                reader = self._spawn(self._read(conn, ws))
                opened = time.monotonic()
                continue
            conn, ws, reader = await self._rollover(conn, ws, reader)
            opened = time.monotonic()

    async def _rollover(self, conn: int, ws, reader: asyncio.Task):
        """Open a second connection, take each book over to it where it continues, then close the first."""
        new, new_ws = await self._open()
        for s in self.streams.values():
            s.overlap(new)
        new_reader = self._spawn(self._read(new, new_ws))
        deadline = time.monotonic() + self.options.overlap_timeout_s
        while any(s.source != new for s in self.streams.values()):
            if time.monotonic() >= deadline or reader.done() or new_reader.done():
                break
            await asyncio.sleep(0.01)
        late = [s for s in self.streams.values() if s.source != new]
        if late:
            self.notice(f"rollover: {', '.join(s.symbol for s in late)} taken over without continuing the book")
            for s in late:
                self._publish(s, s.switch_now(new, self.clock()))
        self.stats.rollovers += 1
        reader.cancel()
        await ws.close()
        self._sockets.discard(ws)
        self.notice(f"rolled over from connection {conn} to {new}")
        return new, new_ws, new_reader

    async def _read(self, conn: int, ws) -> str:
        """Take every message of ``conn`` until it closes; returns why it closed."""
        try:
            while True:
                raw = await ws.recv(decode=False)
                self.on_raw(conn, raw, self.clock())
        except websockets.exceptions.ConnectionClosed as e:
            self._sockets.discard(ws)
            return f"closed: {e}"
        except OSError as e:
            return f"{type(e).__name__}: {e}"

    # ---- messages
    def on_raw(self, conn: int, raw: bytes, ts: int) -> None:
        symbol = stream_symbol(raw)
        stream = self.streams.get(symbol) if symbol else None
        if stream is None:
            self.stats.unknown += 1
            return
        self.stats.messages += 1
        self._publish(stream, stream.offer(conn, raw, ts))

    def _publish(self, stream: SymbolStream, taken: list) -> None:
        for line, events in taken:
            self._emit(stream, line, events)
        if stream.needs_snapshot:
            stream.fetching = True
            self._spawn(self._snapshot(stream))

    def _emit(self, stream: SymbolStream, line: bytes, events: np.ndarray) -> None:
        if self.recorder is not None:
            self.recorder.write(stream.symbol, line)
        if len(events):
            self.stats.events += len(events)
            if self.pub is not None:
                events["ev"] |= np.uint64(LOCAL)
                for i in range(0, len(events), MAX_BATCH_EVENTS):
                    self.pub.publish(stream.symbol, events[i:i + MAX_BATCH_EVENTS])

    async def _snapshot(self, stream: SymbolStream) -> None:
        try:
            body = await self.rest.depth(stream.symbol)
        finally:
            stream.fetching = False
        self._publish(stream, stream.snapshot(body, self.clock()))

    def _rotated(self, symbol: str) -> None:
        """A new capture file: head it with a fresh REST snapshot, so it converts on its own with a whole book
        (the connector's book, in sync, leaves it unused: the published events do not change)."""
        stream = self.streams[symbol.lower()]
        if not stream.fetching:
            stream.fetching = True
            self._spawn(self._rotation_snapshot(stream, stream.last_u))

    async def _rotation_snapshot(self, stream: SymbolStream, last_u: int | None, tries: int = 3) -> None:
        """A snapshot newer than every diff of the previous file (REST may lag the stream): only then does the
        new file hold the diff that straddles it. Asked again a second later, a few times at most."""
        try:
            for attempt in range(tries):
                body = await self.rest.depth(stream.symbol)
                if last_u is None or snapshot_id(body) > last_u:
                    break
                body = None
                await asyncio.sleep(1.0)
        finally:
            stream.fetching = False
        if body is not None:
            self._publish(stream, stream.snapshot(body, self.clock()))

    # ---- periodic
    async def _tick(self) -> None:
        last_status = time.monotonic()
        messages_then = 0
        while True:
            await asyncio.sleep(self.options.tick_s)
            if self.pub is not None:
                now = self.clock()
                for s in self.streams.values():
                    self.pub.clock(s.symbol, now)
                self.pub.service(0.0)
            if self.recorder is not None:
                self.recorder.sync()
            mono = time.monotonic()
            if self.status is not None and mono - last_status >= self.options.status_every_s:
                rate = (self.stats.messages - messages_then) / (mono - last_status)
                self.status(self.status_line(rate))
                last_status, messages_then = mono, self.stats.messages

    def status_line(self, rate: float) -> str:
        lag = max((s.lag_ns for s in self.streams.values()), default=0) / 1e6
        books = "  ".join(f"{s.symbol} {s.book.mode}" for s in self.streams.values())
        return (f"binance {self.market.name}: {rate:,.0f} msg/s  lag {lag:,.1f} ms  "
                f"resyncs {self.resyncs}  reconnects {self.stats.reconnects}  rollovers {self.stats.rollovers}"
                f"  | {books}")

    @property
    def resyncs(self) -> int:
        return sum(s.resyncs for s in self.streams.values())

    def notice(self, text: str) -> None:
        if self.status is not None:
            self.status(f"notice: {text}")

    def summary(self, seconds: float) -> str:
        s = self.stats
        rest = self.rest
        files = f"; {len(self.recorder.written)} file(s) recorded" if self.recorder is not None else ""
        return (f"binance {self.market.name}: {s.messages:,} messages, {s.events:,} events in {seconds:.1f} s; "
                f"resyncs {self.resyncs}, reconnects {s.reconnects}, rollovers {s.rollovers}, "
                f"connect failures {s.connect_failures}; REST: {rest.requests} requests, {rest.rate_limited} "
                f"rate-limited, {rest.banned} banned; duplicates {sum(x.duplicates for x in self.streams.values())}"
                f", malformed {sum(x.malformed for x in self.streams.values())}{files}; "
                f"stopped by {self.stopped_by or 'request'}")


def run(connector: Connector) -> float:
    """Run until the duration, a signal or an error; the seconds it ran. A DataError found on the way is raised."""
    start = time.monotonic()
    asyncio.run(connector.run())
    if connector.error is not None:
        raise connector.error
    return time.monotonic() - start
