"""A stand-in for Binance on 127.0.0.1: a recorded capture served as Binance serves it live.

The websocket server sends each stream line of a capture (``<local_ts> <json>``,
:mod:`feeds.readers.binance`) to every client whose combined-stream URL
(``/stream?streams=a/b/c``) names its stream, in the ``{"stream":...,"data":...}``
envelope the capture kept, at the pace of the capture's receive times
(``speed`` 1) or as fast as it can (``speed`` None). The HTTP server answers
the REST depth snapshot and exchange info requests.

Times: the capture's exchange times (``E``, ``T``) are moved by one whole
number of ms (``shift_ms``) so the data happens now: at ``speed`` 1 each
message's feed latency is the capture's (raised so none is negative); at full
speed every exchange time is in the past when it is sent. Nothing else in a
message changes.

The REST snapshot is consistent with the capture: until the capture's own
snapshot line is reached a request waits for it and gets that line (so it
arrives where the capture's collector got it); after it, the server keeps the
book the capture's diffs build on that snapshot (Binance's truth, including
any diff it was told to drop) and answers with its top ``limit`` levels and
``lastUpdateId`` = the last diff's ``u``.

Where the capture's snapshot falls among the client's stream messages is a
race between two connections: live, a snapshot taken a few trades or
bookTickers earlier or later is as valid, but its events come in another
order. By default the server pauses ``SNAPSHOT_PAUSE_S`` either side of it,
which a loaded machine can outrun. A test that needs the capture's order
passes ``snapshot_gate``: two callables, true once the client has taken every
line before the snapshot and once it has taken the snapshot. The server then
answers the snapshot request only after the first holds, and sends the next
line only after the second holds (Binance's procedure allows this: the stream
is buffered until the snapshot is in), each waited on for at most
``GATE_WAIT_S`` (a wait that ran out is counted in ``gate_timeouts``).

Faults, each a set of line numbers (1-based, the capture's): ``disconnect_at``
closes every connection before sending that line; ``drop_at`` does not send
that depth diff (a sequence gap, as a lost message would make); ``ping_at``
pings every client and counts the pongs (``pongs``). ``rest_faults`` are the HTTP
statuses the next REST requests get instead of an answer (429 and 418 with ``Retry-After: 1``).
"""
from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import threading
import time
import urllib.parse

from websockets.asyncio.server import serve

REST_WAIT_S = 10.0
SNAPSHOT_PAUSE_S = 0.2         # around a capture snapshot: the client has taken the lines before it
GATE_WAIT_S = 30.0             # the most a gated capture snapshot waits on the client (then ``gate_timeouts``)


def _lines(path: str, end: int | None) -> list[tuple[int, dict]]:
    out = []
    with gzip.open(path, "rb") as f:
        for k, raw in enumerate(f, 1):
            if end is not None and k > end:
                break
            ts, _, text = raw.strip().partition(b" ")
            out.append((int(ts), json.loads(text)))
    return out


def _exchange_ms(obj: dict) -> int | None:
    body = obj.get("data", obj)
    for key in ("T", "E"):
        if key in body:
            return body[key]
    return None


class CaptureServer:
    def __init__(self, capture: str, *, market: str = "usdm", symbol: str = "ETHUSDT", tick: str = "0.01",
                 lot: str = "0.001", speed: float | None = 1.0, end_line: int | None = None,
                 disconnect_at=(), drop_at=(), ping_at=(), rest_faults=(), snapshot_gate=None):
        self.market, self.symbol, self.tick, self.lot = market, symbol, tick, lot
        self.speed = speed
        self.lines = _lines(capture, end_line)
        self.disconnect_at, self.drop_at, self.ping_at = set(disconnect_at), set(drop_at), set(ping_at)
        self.rest_faults = list(rest_faults)
        self.snapshot_gate = snapshot_gate
        self.gate_timeouts = 0
        self.pongs = self.sent = self.disconnects = self.rest_requests = self.rest_refused = 0
        self.connections = 0
        self.done = threading.Event()            # every line served
        self.shift_ms = 0
        self._clients: dict = {}                 # websocket -> the streams it asked for
        self._lock = threading.Lock()
        self._bids: dict[str, str] | None = None  # price text -> size text, once the capture's snapshot is reached
        self._asks: dict[str, str] = {}
        self._book_u = 0
        self._last_ms = 0
        self._waiting: list[tuple[threading.Event, dict]] = []
        self._started = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ws = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self.ws_url = f"ws://127.0.0.1:{self._ws.sockets[0].getsockname()[1]}"
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

        async def stop():
            self._ws.close()
            try:
                await asyncio.wait_for(self._ws.wait_closed(), 5)
            except asyncio.TimeoutError:      # a client that never answered the close: nothing to wait for
                pass
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- websocket
    async def _serve(self):
        return await serve(self._client, "127.0.0.1", 0)

    async def _client(self, ws) -> None:
        query = urllib.parse.urlparse(ws.request.path)
        streams = set(urllib.parse.parse_qs(query.query).get("streams", [""])[0].split("/"))
        self._clients[ws] = streams
        self.connections += 1
        if self._started is None:
            self._started = asyncio.ensure_future(self._pace())
        try:
            await ws.wait_closed()
        finally:
            self._clients.pop(ws, None)

    def _shift(self, w0: int) -> int:
        stamps = [(ts, ms * 1_000_000) for ts, obj in self.lines if (ms := _exchange_ms(obj)) is not None]
        if self.speed is None:
            return (w0 - max(e for _, e in stamps)) // 1_000_000 - 1
        least = min(ts - e for ts, e in stamps)
        return (w0 - self.lines[0][0] + min(0, least)) // 1_000_000 - 1

    @staticmethod
    def _moved(obj: dict, shift_ms: int) -> dict:
        body = obj.get("data", obj)
        for key in ("E", "T"):
            if key in body:
                body[key] += shift_ms
        return obj

    async def _pace(self) -> None:
        w0 = time.time_ns()
        self.shift_ms = self._shift(w0)
        t0 = self.lines[0][0]
        for k, (ts, obj) in enumerate(self.lines, 1):
            if self.speed is not None:
                due = w0 + (ts - t0) / self.speed - time.time_ns()
                if due > 0:
                    await asyncio.sleep(due / 1e9)
            if k in self.disconnect_at:
                self.disconnects += 1
                for ws in list(self._clients):
                    await ws.close(1001, "going away")
            obj = self._moved(obj, self.shift_ms)
            if "stream" not in obj:
                await self._capture_snapshot(obj)
                continue
            self._apply(obj)
            if k in self.ping_at:
                for ws in list(self._clients):
                    asyncio.ensure_future(self._ping(ws))
            if k in self.drop_at:
                continue
            text = json.dumps(obj, separators=(",", ":"))
            for ws, streams in list(self._clients.items()):
                if obj["stream"] in streams:
                    try:
                        await ws.send(text)
                        self.sent += 1
                    except Exception:       # the client went away mid-send
                        pass
        self.done.set()

    async def _ping(self, ws) -> None:
        try:
            await asyncio.wait_for(await ws.ping(), 5)
            self.pongs += 1
        except Exception:
            pass

    def _apply(self, obj: dict) -> None:
        data = obj["data"]
        with self._lock:
            self._last_ms = _exchange_ms(obj) or self._last_ms
            if "@depth" not in obj["stream"] or self._bids is None or data["u"] < self._book_u:
                return
            for side, levels in ((self._bids, data["b"]), (self._asks, data["a"])):
                for px, qty in levels:
                    if float(qty) > 0:
                        side[px] = qty
                    else:
                        side.pop(px, None)
            self._book_u = data["u"]

    async def _capture_snapshot(self, snap: dict) -> None:
        """The capture's REST snapshot: the book from here on, and the answer to the requests waiting for it."""
        if self.snapshot_gate is not None:
            before, after = self.snapshot_gate
            await self._until(lambda: self._waiting and before())
        else:
            deadline = time.monotonic() + 5.0
            while not self._waiting and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(SNAPSHOT_PAUSE_S)
        with self._lock:
            waiting, self._waiting = self._waiting, []
            self._bids = {px: q for px, q in snap["bids"]}
            self._asks = {px: q for px, q in snap["asks"]}
            self._book_u = snap["lastUpdateId"]
        for event, slot in waiting:
            slot["body"] = json.dumps(snap, separators=(",", ":")).encode()
            event.set()
        if self.snapshot_gate is not None:
            await self._until(after)
        else:
            await asyncio.sleep(SNAPSHOT_PAUSE_S)

    async def _until(self, ready) -> None:
        """Wait until ``ready()`` (polled), at most ``GATE_WAIT_S``."""
        deadline = time.monotonic() + GATE_WAIT_S
        while not ready():
            if time.monotonic() >= deadline:
                self.gate_timeouts += 1
                return
            await asyncio.sleep(0.005)

    # ---- REST
    def _depth(self, limit: int) -> bytes | None:
        with self._lock:
            if self._bids is None:
                event, slot = threading.Event(), {}
                self._waiting.append((event, slot))
            else:
                bids = sorted(self._bids.items(), key=lambda kv: -float(kv[0]))[:limit]
                asks = sorted(self._asks.items(), key=lambda kv: float(kv[0]))[:limit]
                snap = {"lastUpdateId": self._book_u}
                if self.market == "usdm":
                    snap.update(E=self._last_ms, T=self._last_ms)
                snap.update(bids=[list(x) for x in bids], asks=[list(x) for x in asks])
                return json.dumps(snap, separators=(",", ":")).encode()
        return slot["body"] if event.wait(REST_WAIT_S) else None

    def _info(self) -> bytes:
        return json.dumps({"symbols": [{"symbol": self.symbol, "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": self.tick},
            {"filterType": "LOT_SIZE", "stepSize": self.lot}]}]}).encode()

    def _handler(self):
        server = self
        depth_path = "/fapi/v1/depth" if self.market == "usdm" else "/api/v3/depth"
        info_path = "/fapi/v1/exchangeInfo" if self.market == "usdm" else "/api/v3/exchangeInfo"

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, headers=()):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                params = urllib.parse.parse_qs(url.query)
                if server.rest_faults:
                    status = server.rest_faults.pop(0)
                    server.rest_refused += 1
                    return self._send(status, b'{"code":-1003,"msg":"Way too many requests."}',
                                      [("Retry-After", "1")] if status in (418, 429) else [])
                if url.path == info_path:
                    return self._send(200, server._info(), [("X-MBX-USED-WEIGHT-1M", "1")])
                if url.path != depth_path:
                    return self._send(404, b'{"code":-1,"msg":"not found"}')
                if params.get("symbol", [""])[0] != server.symbol:
                    return self._send(400, b'{"code":-1121,"msg":"Invalid symbol."}')
                server.rest_requests += 1
                body = server._depth(int(params.get("limit", ["1000"])[0]))
                if body is None:
                    return self._send(503, b'{"code":-1,"msg":"no snapshot yet"}')
                self._send(200, body, [("X-MBX-USED-WEIGHT-1M", "20")])

        return Handler
