"""The lines of a Binance raw websocket capture, decoded into typed msgspec Structs.

A line is ``<local receive time> <json>``; the time is a raw integer here, its
unit (ns, or µs from older collectors) the file's to tell (:mod:`feeds.readers.binance`).
The JSON is either a combined-stream envelope
``{"stream": "ethusdt@depth@0ms", "data": {...}}`` or a REST
depth snapshot ``{"lastUpdateId": ..., "bids": [...], "asks": [...]}``. The
envelope keeps ``data`` raw and the stream name picks the one Struct that
decodes it, so every message is parsed once, straight into typed fields.
Binance sends prices and sizes as JSON strings; ``strict=False`` lets msgspec
turn them into floats while it parses, with no Python per level.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from common.errors import DataError
from feeds.timeunits import YEAR_2100_NS

Level = tuple[float, float]   # (price, size) as Binance lists them
INT64_MAX = (1 << 63) - 1
# Bounds that keep every timestamp and id inside the int64 event fields, with room for the
# latency arithmetic: times before 2100 (local in ns at most, exchange in ms), ids that fit int64.
Millis = Annotated[int, msgspec.Meta(ge=0, le=YEAR_2100_NS // 10**6)]
Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]


class Envelope(msgspec.Struct):
    """A combined-stream message, or a REST snapshot: whichever fields the line has."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()   # empty when absent
    lastUpdateId: Id | None = None
    bids: list[Level] = []
    asks: list[Level] = []
    E: Millis | None = None
    T: Millis | None = None


class Snapshot(msgspec.Struct, gc=False):
    """REST ``/depth``: the book at ``lastUpdateId``. Spot's carries no exchange time."""

    lastUpdateId: Id
    bids: list[Level]
    asks: list[Level]
    E: Millis | None = None
    T: Millis | None = None     # USD-M: the transaction time


class DepthDiff(msgspec.Struct, gc=False):
    """``<symbol>@depth``: new sizes of the levels changed by updates U..u (``pu``, ``T``: USD-M only)."""

    E: Millis
    U: Id
    u: Id
    b: list[Level]
    a: list[Level]
    pu: Id | None = None
    T: Millis | None = None     # USD-M: the transaction time, before E by the push delay


class Trade(msgspec.Struct, gc=False):
    """``<symbol>@trade``. ``m``: the buyer was the maker. ``X``: USD-M's order type of the trade."""

    T: Millis
    t: Id
    p: float
    q: float
    m: bool
    X: str = "MARKET"


class BookTicker(msgspec.Struct, gc=False):
    """``<symbol>@bookTicker``: best bid and ask. Spot's carries no exchange time."""

    u: Id
    b: float
    B: float
    a: float
    A: float
    E: Millis | None = None
    T: Millis | None = None     # USD-M: the transaction time


# Stream kind (the part of the stream name after the symbol) -> the Struct of its data.
BODIES = {"depth": DepthDiff, "trade": Trade, "bookTicker": BookTicker}
_ENVELOPE = msgspec.json.Decoder(Envelope, strict=False)
_BODY = {kind: msgspec.json.Decoder(body, strict=False) for kind, body in BODIES.items()}


class Message(msgspec.Struct, gc=False):
    """One decoded line and where it came from."""

    kind: str            # "snapshot", a key of BODIES, or another stream kind (ignored)
    local_ts: int        # the line's receive time, in ns once decode() has scaled it
    body: Snapshot | DepthDiff | Trade | BookTicker | None
    symbol: str | None   # from the stream name; None for a snapshot
    source: int          # index of the input file
    line: int


def decode_line(raw: bytes, source: int, line: int) -> Message:
    """Decode one non-empty capture line; a DataError (path left to the caller) says why not."""
    space = raw.find(b" ")
    stamp = raw[:space] if space > 0 else b""
    if not stamp.isdigit() or int(stamp) >= YEAR_2100_NS:
        raise DataError(f"expected '<local receive time before 2100> <json>', got {raw[:40]!r}",
                        line=line, field="local_ts")
    local_ts = int(stamp)
    try:
        env = _ENVELOPE.decode(raw[space + 1:])
        if env.stream is None:
            if env.lastUpdateId is None:
                raise DataError("neither a stream message nor a depth snapshot (no 'stream' or "
                                "'lastUpdateId')", line=line, field="json")
            return Message("snapshot", local_ts, Snapshot(env.lastUpdateId, env.bids, env.asks, env.E, env.T),
                           None, source, line)
        symbol, _, rest = env.stream.partition("@")
        kind = rest.partition("@")[0]
        if kind in _BODY:
            if not len(env.data):
                raise DataError(f"stream {env.stream!r} message has no 'data'", line=line, field="json")
            return Message(kind, local_ts, _BODY[kind].decode(env.data), symbol.upper(), source, line)
        return Message(kind or env.stream, local_ts, None, symbol.upper(), source, line)
    except (msgspec.DecodeError, UnicodeDecodeError) as e:    # msgspec checks UTF-8 in strings
        raise DataError(f"truncated or malformed JSON ({e})", line=line, field="json") from None
