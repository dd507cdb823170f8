"""Binance's REST endpoints the connector needs (depth snapshots, exchange info), within its rate limits.

Binance counts request weight per IP per minute (``X-MBX-USED-WEIGHT-1M`` in
every answer). A request that would take the count past the budget waits for
the next minute. An HTTP 429 means "back off": every request waits the
``Retry-After`` seconds it names; ignoring 429s gets the IP banned, which is
an HTTP 418, also with a ``Retry-After`` (minutes to days), honoured the same
way. Other failures (5xx, a refused or dropped connection, a timeout) are
retried after a capped, jittered backoff; a 4xx other than those is a mistake
of ours (an unknown symbol) and raised as a DataError.

The request itself is plain ``urllib`` in a worker thread: one small GET now
and then does not need an HTTP client library, and every wait is an asyncio
sleep, so stopping the connector never waits on a ban.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request

from common.errors import DataError
from feeds.binance_live.markets import Market
from feeds.instrument import Instrument

TIMEOUT_S = 10.0
DEFAULT_RETRY_AFTER_S = {429: 60.0, 418: 120.0}   # when the answer names no Retry-After
WEIGHT_SAFETY = 0.9                               # use at most this share of the minute's budget


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff, capped, with jitter (half to all of it) so many clients do not retry in step."""
    return min(cap_s, base_s * 2 ** min(attempt, 30)) * rng.uniform(0.5, 1.0)


class Rest:
    def __init__(self, market: Market, notice=lambda text: None, rng: random.Random | None = None,
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0):
        self.market = market
        self.notice = notice
        self.rng = rng or random.Random()
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.blocked_until = 0.0           # time.monotonic() before which no request goes out (429, 418)
        self.used_weight = 0               # the last X-MBX-USED-WEIGHT-1M seen
        self.weight_minute = -1            # the wall-clock minute it counts
        self.requests = self.rate_limited = self.banned = self.retries = 0

    async def get(self, path: str, params: dict[str, str], weight: int) -> bytes:
        url = f"{self.market.rest_url}{path}?{urllib.parse.urlencode(params)}"
        attempt = 0
        while True:
            await self._wait_budget(weight)
            try:
                self.requests += 1
                status, headers, body = await asyncio.to_thread(_fetch, url)
            except OSError as e:            # refused, reset, timed out, DNS
                self.retries += 1
                wait = backoff_s(attempt, self.backoff_base_s, self.backoff_cap_s, self.rng)
                self.notice(f"REST {path}: {e}; retrying in {wait:.1f} s")
                attempt += 1
                await asyncio.sleep(wait)
                continue
            self._count_weight(headers)
            if status == 200:
                return body
            if status in (429, 418):
                retry = _retry_after(headers.get("Retry-After"), DEFAULT_RETRY_AFTER_S[status])
                self.blocked_until = max(self.blocked_until, time.monotonic() + retry)
                if status == 429:
                    self.rate_limited += 1
                else:
                    self.banned += 1
                self.notice(f"REST {path}: HTTP {status} ({'rate limit' if status == 429 else 'IP banned'}): "
                            f"no request for {retry:g} s (Retry-After)")
                continue
            if 400 <= status < 500:
                raise DataError(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}", path=url)
            self.retries += 1
            wait = backoff_s(attempt, self.backoff_base_s, self.backoff_cap_s, self.rng)
            self.notice(f"REST {path}: HTTP {status}; retrying in {wait:.1f} s")
            attempt += 1
            await asyncio.sleep(wait)

    async def _wait_budget(self, weight: int) -> None:
        while True:
            now = time.monotonic()
            if now < self.blocked_until:
                await asyncio.sleep(self.blocked_until - now)
                continue
            minute = int(time.time() // 60)
            if minute == self.weight_minute and \
                    self.used_weight + weight > WEIGHT_SAFETY * self.market.weight_per_minute:
                await asyncio.sleep(60 - time.time() % 60 + 0.05)
                continue
            return

    def _count_weight(self, headers) -> None:
        used = headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.isdigit():
            self.used_weight, self.weight_minute = int(used), int(time.time() // 60)

    async def depth(self, symbol: str) -> bytes:
        """The REST depth snapshot of ``symbol``, as Binance sent it."""
        return await self.get(self.market.depth_path, {"symbol": symbol.upper(),
                                                       "limit": str(self.market.depth_limit)},
                              self.market.depth_weight)

    async def instruments(self, symbols: list[str]) -> dict[str, Instrument]:
        """Tick and lot size of each symbol from exchange info; a symbol the market lacks is a DataError."""
        upper = [s.upper() for s in symbols]
        params = {"symbols": json.dumps(upper, separators=(",", ":"))} if self.market.name == "spot" else {}
        body = await self.get(self.market.info_path, params, 20 if self.market.name == "spot" else 1)
        try:
            info = {s["symbol"]: {f["filterType"]: f for f in s.get("filters", [])}
                    for s in json.loads(body)["symbols"]}
            out = {}
            for sym in upper:
                if sym not in info:
                    raise DataError(f"{sym} is not a {self.market.name} symbol", field="--symbols")
                out[sym] = Instrument(symbol=sym, tick_size=float(info[sym]["PRICE_FILTER"]["tickSize"]),
                                      lot_size=float(info[sym]["LOT_SIZE"]["stepSize"]))
            return out
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"exchange info not as Binance documents it ({type(e).__name__}: {e})",
                            path=self.market.rest_url + self.market.info_path) from None


def _retry_after(value: str | None, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds >= 0 else default


def _fetch(url: str) -> tuple[int, dict, bytes]:
    """GET ``url``: (status, headers, body), an HTTP error status included; OSError when no answer came."""
    req = urllib.request.Request(url, headers={"User-Agent": "cmm-engine"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers or {}), e.read()
