"""Where Binance's spot and USD-M futures markets are, and what we subscribe to on them.

The base URLs are overridable (``--ws-url``, ``--rest-url``) so a testnet or a
local server can stand in; paths and stream names are Binance's.
"""
from __future__ import annotations

import re

import msgspec

from common.errors import DataError


class Market(msgspec.Struct, frozen=True):
    name: str
    ws_url: str                 # combined streams at ws_url + "/stream?streams=a/b/c"
    rest_url: str
    depth_path: str             # REST depth snapshot
    info_path: str              # REST exchange info (tick and lot sizes)
    depth_stream: str           # the diff stream's suffix, as our captures name it
    depth_limit: int            # levels per side asked of a snapshot
    depth_weight: int           # its request weight at that limit
    weight_per_minute: int      # the IP's request-weight budget (X-MBX-USED-WEIGHT-1M counts against it)


MARKETS = {
    "usdm": Market("usdm", "wss://fstream.binance.com", "https://fapi.binance.com", "/fapi/v1/depth",
                   "/fapi/v1/exchangeInfo", "depth@0ms", 1000, 20, 2400),
    "spot": Market("spot", "wss://stream.binance.com:9443", "https://api.binance.com", "/api/v3/depth",
                   "/api/v3/exchangeInfo", "depth@100ms", 1000, 50, 6000),
}
_SYMBOL = re.compile(r"[a-z0-9]{2,20}")


def market(name: str, ws_url: str | None = None, rest_url: str | None = None) -> Market:
    """The market ``name`` with its base URLs replaced where given."""
    if name not in MARKETS:
        raise DataError(f"expected one of {', '.join(MARKETS)}, got {name!r}", field="--market")
    m = MARKETS[name]
    for option, url, schemes in (("--ws-url", ws_url, ("ws://", "wss://")),
                                 ("--rest-url", rest_url, ("http://", "https://"))):
        if url is not None and not url.startswith(schemes):
            raise DataError(f"expected a URL starting {' or '.join(schemes)}, got {url!r}", field=option)
    return msgspec.structs.replace(m, ws_url=(ws_url or m.ws_url).rstrip("/"),
                                   rest_url=(rest_url or m.rest_url).rstrip("/"))


def parse_symbols(text: str) -> list[str]:
    """``"ethusdt,BTCUSDT"`` -> ``["ethusdt", "btcusdt"]`` (Binance's stream names are lower case)."""
    symbols = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in symbols if not _SYMBOL.fullmatch(s)]
    if not symbols or bad:
        raise DataError(f"expected comma-separated symbols such as ethusdt,btcusdt, got {text!r}", field="--symbols")
    return list(dict.fromkeys(symbols))


def streams(m: Market, symbols: list[str]) -> list[str]:
    return [f"{s}@{kind}" for s in symbols for kind in (m.depth_stream, "trade", "bookTicker")]


def stream_url(m: Market, symbols: list[str]) -> str:
    """One combined-stream connection for every symbol: no subscribe messages to rate-limit."""
    return f"{m.ws_url}/stream?streams={'/'.join(streams(m, symbols))}"
