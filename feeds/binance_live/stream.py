"""One symbol's live messages: which connection to take them from, de-duplication, the book, events.

Every message taken becomes a capture line ``<local_ts_ns> <json>`` (the JSON
as Binance sent it) and goes through :func:`~feeds.readers.binance_messages.decode_line`
and :class:`~feeds.readers.binance_book.BookSequencer`, the reader's own code:
the events published are the ones ``cmm data convert`` makes of the lines
recorded. ``local_ts`` is when the message was taken (received, or for what a
new connection held, handed over), never before the one taken last, so each
symbol's lines are in time order and none is older than the feed clock said.

While two connections overlap (the 24-hour rollover) the symbol takes from
the old one and holds the new one's messages, until the new one sends the
depth diff that continues the book (``pu`` = the last ``u`` taken; spot:
``U`` = it + 1); from there it takes the new one's, skipping what it has
already (diffs up to the last ``u``, trades up to the last trade id,
bookTickers up to the last update id), and the book goes on without a gap.
The new connection may start behind or ahead of the old: it joins once one of
its diffs continues any recent diff taken, or one taken continues one of its.
"""
from __future__ import annotations

from collections import deque

import msgspec
import numpy as np

from common.errors import DataError
from feeds.readers.binance_book import BUFFER, NO_DEPTH, BookSequencer, exchange_time, finish_clears
from feeds.readers.binance_messages import Message, decode_line

LATENCY_WINDOW = 1001          # the recent feed latencies a message without an exchange time is stamped by
MAX_HELD = 100_000             # a new connection's messages held at most before taking it anyway
RECENT_IDS = 4096              # depth update ids remembered to join a new connection's stream to ours


class LiveSequencer(BookSequencer):
    """The book sequencer on a live stream: after a gap a snapshot always follows, as the connector fetches one."""

    def __init__(self, symbol: str):
        super().__init__(on_error="skip", mode=BUFFER)
        self.symbol = symbol
        self.latencies: deque[int] = deque(maxlen=LATENCY_WINDOW)

    def snapshot_follows(self) -> bool:
        return True

    def estimate_exch_ts(self, m: Message) -> int:
        """``local_ts`` minus the median of the recent feed latencies (a capture uses its whole file's)."""
        return m.local_ts - (int(np.median(self.latencies)) if self.latencies else 0)

    def path(self, m: Message) -> str:
        return f"{self.symbol} live"


class _Stream(msgspec.Struct):
    stream: str | None = None


_STREAM = msgspec.json.Decoder(_Stream)


def stream_symbol(raw: bytes) -> str | None:
    """The symbol a combined-stream message is for (``ethusdt``), None for anything else."""
    try:
        name = _STREAM.decode(raw).stream
    except msgspec.DecodeError:
        return None
    return name.partition("@")[0] if name else None


class _SnapshotId(msgspec.Struct):
    lastUpdateId: int = -1


_SNAPSHOT_ID = msgspec.json.Decoder(_SnapshotId)


def snapshot_id(raw: bytes) -> int:
    """A REST depth snapshot's ``lastUpdateId`` (-1 when it has none or is not JSON)."""
    try:
        return _SNAPSHOT_ID.decode(raw).lastUpdateId
    except msgspec.DecodeError:
        return -1


class SymbolStream:
    def __init__(self, symbol: str):
        self.symbol = symbol.upper()
        self.book = LiveSequencer(self.symbol)
        self.deepest = NO_DEPTH
        self.lines = 0
        self.last_ts = 0
        self.last_u: int | None = None          # the last depth diff taken
        self.last_trade = -1
        self.last_ticker = -1
        self.source = 0                          # the connection taken from
        self.candidate: int | None = None        # a newer connection, held until it continues the book
        self.held: list[tuple[bytes, int]] = []  # the candidate's messages, with their receive times
        self.held_after: set[int] = set()        # the u each held depth diff continues from
        self.joined = False                      # a held diff continues one we took: the new stream joins ours
        self.recent_order: deque[int] = deque(maxlen=RECENT_IDS)
        self.recent_u: set[int] = set()
        self.duplicates = 0
        self.malformed = 0
        self.lag_ns = 0                          # local_ts - exchange time of the last message that has one
        self.fetching = False                    # a REST snapshot is on its way

    @property
    def needs_snapshot(self) -> bool:
        return self.book.mode == BUFFER and not self.fetching

    @property
    def resyncs(self) -> int:
        return len(self.book.gaps)

    def offer(self, conn: int, raw: bytes, ts: int) -> list[tuple[bytes, np.ndarray]]:
        """A message from connection ``conn`` received at ``ts``: the (line, events) of what it lets us take."""
        if conn == self.source:
            out = self._take(raw, ts)
            return out + self._switch(ts) if self.candidate is not None else out
        if conn == self.candidate:
            self.held.append((raw, ts))
            after = self._follows(raw)
            if after is not None:
                self.held_after.add(after)
                self.joined |= after in self.recent_u
            return self._switch(ts, force=len(self.held) >= MAX_HELD)
        return []                                # a connection we have left: its messages are old news

    def overlap(self, conn: int) -> None:
        """Connection ``conn`` now overlaps ours: hold its messages until it continues the book."""
        self.candidate, self.held, self.held_after, self.joined = conn, [], set(), False

    def switch_now(self, conn: int, ts: int) -> list[tuple[bytes, np.ndarray]]:
        """Take from ``conn`` from ``ts`` on, whether or not it continues the book (a gap resyncs it)."""
        if self.candidate != conn:
            self.overlap(conn)
        return self._switch(ts, force=True)

    def snapshot(self, raw: bytes, ts: int) -> list[tuple[bytes, np.ndarray]]:
        """A REST depth snapshot, received at ``ts``."""
        return self._take(raw.replace(b"\n", b"").replace(b"\r", b""), ts)

    def _switch(self, now: int, force: bool = False) -> list[tuple[bytes, np.ndarray]]:
        """Take over to the candidate if it joins our stream (or ``force``). What it held is taken ``now``:
        the feed's clock has told subscribers that everything before now is published."""
        if not force and self.last_u is not None and not self.joined:
            return []
        held, self.held, self.held_after, self.joined = self.held, [], set(), False
        self.source, self.candidate = self.candidate, None
        out = []
        for raw, _ in held:
            out += self._take(raw, now)
        return out

    def _remember(self, u: int) -> None:
        """Keep the recent update ids taken; a held diff that continues one of them joins the new connection's
        stream to ours (it may lag ours: the diffs it repeats are skipped when it takes over)."""
        if len(self.recent_order) == self.recent_order.maxlen:
            self.recent_u.discard(self.recent_order[0])
        self.recent_order.append(u)
        self.recent_u.add(u)
        self.joined |= self.candidate is not None and u in self.held_after

    @staticmethod
    def _follows(raw: bytes) -> int | None:
        """The update id a depth diff continues from (the ``u`` it must follow), None for other messages."""
        try:
            m = decode_line(b"0 " + raw, 0, 0)
        except DataError:
            return None
        if m.kind != "depth":
            return None
        return m.body.pu if m.body.pu is not None else m.body.U - 1

    def _fresh(self, m: Message) -> bool:
        """Not a message taken already (from the connection before)."""
        body = m.body
        if m.kind == "depth":
            fresh = self.last_u is None or body.u > self.last_u
            if fresh:
                self.last_u = body.u
                self._remember(body.u)
        elif m.kind == "trade":
            fresh = body.t > self.last_trade
            self.last_trade = max(self.last_trade, body.t)
        elif m.kind == "bookTicker":
            fresh = body.u > self.last_ticker
            self.last_ticker = max(self.last_ticker, body.u)
        else:
            return True
        self.duplicates += not fresh
        return fresh

    def _take(self, raw: bytes, ts: int) -> list[tuple[bytes, np.ndarray]]:
        ts = max(ts, self.last_ts)
        line = b"%d %s" % (ts, raw)
        try:
            m = decode_line(line, 0, self.lines + 1)
        except DataError:
            self.malformed += 1
            return []
        if m.kind != "snapshot" and m.symbol != self.symbol:
            self.malformed += 1
            return []
        if not self._fresh(m):
            return []
        self.lines += 1
        self.last_ts = ts
        exch = exchange_time(m)
        if exch is not None:
            self.lag_ns = ts - exch
            self.book.latencies.append(self.lag_ns)
        self.book.on_message(m)
        events = self.book.cols.take()
        self.deepest = finish_clears(events, self.deepest)
        return [(line, events)]
