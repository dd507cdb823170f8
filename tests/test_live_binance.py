"""``cmm feed binance`` and ``cmm record`` against a local Binance (tests/binance_server.py) on 127.0.0.1.

The server serves the repo's USD-M sample capture (data/samples/ethusdt_usdm_20240808_head.gz)
as Binance frames it: combined-stream envelopes, its REST snapshot where the capture
has it (line 41, after 40 stream lines), then a book kept from the capture's diffs for
any later snapshot request. Its exchange times are moved to now by a whole number of
ms (``server.shift_ms``); nothing else changes.
"""
from __future__ import annotations

import asyncio
import csv
import glob
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cmm.cli import main
from common.errors import DataError
from feeds.binance_live.connector import Connector, LiveOptions
from feeds.binance_live.markets import market
from feeds.binance_live.recorder import Recorder
from feeds.binance_live.rest import Rest
from feeds.binance_live.stream import SymbolStream
from feeds.events import DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, KIND_MASK, LOCAL
from feeds.formats import read
from feeds.readers.base import ReadOptions
from feeds.zmqfeed import FeedHandlers, Subscriber, SubscriberOptions
from tests.binance_server import CaptureServer
from tests.test_cli import REPO
from tests.test_paper import metrics
from tests.test_zmq_feed import free_port_pair

SAMPLE = REPO / "data" / "samples" / "ethusdt_usdm_20240808_head.gz"
PAPER_CONFIG = REPO / "configs" / "paper_binance_ethusdt.toml"
CMM = [sys.executable, "-m", "cmm"]
FIELDS = ("ev", "exch_ts", "local_ts", "px", "qty", "ival", "order_id")


def local_rows(events: np.ndarray) -> np.ndarray:
    """The rows on our receive timeline, timeline flags off: what a feed publishes, in its order."""
    rows = events[(events["ev"] & np.uint64(LOCAL)) != 0].copy()
    rows["ev"] &= ~np.uint64(LOCAL | EXCH)
    return rows


def depth_line_after(path: Path, line: int) -> int:
    """The number of the first depth-diff line after ``line``: dropping it is a sequence gap."""
    with gzip.open(path, "rt") as f:
        for k, text in enumerate(f, 1):
            if k > line and "@depth" in text[:80]:
                return k
    raise AssertionError("no depth line")


class Collector:
    """A test subscriber: every event the feed publishes on ETHUSDT, in order, until the stream ends."""

    def __init__(self, feed: str):
        self.chunks: list[np.ndarray] = []
        self.count = 0                      # events received so far (read by the server's gate)
        self.ended = False
        self.sub = Subscriber(feed, ["ETHUSDT"], SubscriberOptions(keep_book=False),
                              FeedHandlers(on_events=lambda t, ev, b: self._take(ev),
                                           on_end=lambda t: setattr(self, "ended", True)))

    def _take(self, events: np.ndarray) -> None:
        self.chunks.append(events.copy())
        self.count += len(events)

    def until(self, proc: subprocess.Popen, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ended and time.monotonic() < deadline:
            self.sub.poll(0.05)
        self.sub.close()

    def events(self) -> np.ndarray:
        rows = np.concatenate(self.chunks)
        rows["ev"] &= ~np.uint64(LOCAL | EXCH)
        return rows


def feed_binance(server: CaptureServer, feed: str, record: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([*CMM, "feed", "binance", "--market", "usdm", "--symbols", "ethusdt",
                             "--ws-url", server.ws_url, "--rest-url", server.rest_url, "--bind", feed,
                             "--record", str(record), "--quiet", *map(str, extra)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def recorded(record: Path) -> list[str]:
    files = sorted(glob.glob(str(record / "*")))
    assert files and not [f for f in files if f.endswith(".part")], files   # every file renamed into place
    return files


@pytest.fixture(scope="module")
def capture():
    """The sample as ``cmm data convert`` makes it."""
    return read([SAMPLE])


def test_published_events_are_the_converted_capture_and_the_recording(tmp_path, capture):
    """Full speed, no faults: what the connector publishes is, row for row, what convert makes of the capture
    (times aside: the exchange's are shifted by the server, the receive times are ours), and exactly what
    convert makes of its own recording; SIGTERM stops it cleanly with the file renamed into place.

    Row for row needs the REST snapshot taken where the capture has it, after the trades and bookTickers of
    the 40 lines before it and before those after it: the snapshot and the stream are two connections, and
    one taken a few messages earlier or later is as valid live but puts its rows elsewhere (a loaded machine
    did). So the server answers the snapshot request once every row before it has been published, and
    sends the next line once the snapshot's rows have been."""
    feed = f"tcp://127.0.0.1:{free_port_pair()}"
    expected = local_rows(capture.events)
    kind = expected["ev"] & np.uint64(KIND_MASK)
    before = int(np.argmax(np.isin(kind, [DEPTH_CLEAR, DEPTH_SNAPSHOT])))     # the rows the capture has before it
    assert before > 0 and kind[before] == DEPTH_CLEAR
    collector = Collector(feed)
    gate = (lambda: collector.count >= before, lambda: collector.count > before)
    with CaptureServer(str(SAMPLE), speed=None, snapshot_gate=gate) as server:
        proc = feed_binance(server, feed, tmp_path / "rec", "--wait-subscribers", 1)
        deadline = time.monotonic() + 60
        while sum(map(len, collector.chunks)) < len(expected) and time.monotonic() < deadline:
            collector.sub.poll(0.05)
        proc.send_signal(signal.SIGTERM)
        collector.until(proc, 20)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "resyncs 0, reconnects 0" in out
    assert server.gate_timeouts == 0
    published = collector.events()
    assert len(published) == len(expected)
    for field in ("ev", "px", "qty", "ival", "order_id"):
        assert np.array_equal(published[field], expected[field]), field
    assert np.array_equal(published["exch_ts"], expected["exch_ts"] + server.shift_ms * 1_000_000)
    files = recorded(tmp_path / "rec")
    again = local_rows(read(files).events)
    for field in FIELDS:
        assert np.array_equal(published[field], again[field]), field


def test_paper_trades_through_a_disconnect_and_a_gap(tmp_path):
    """The acceptance run: cmm feed binance and cmm paper together, a ping, a forced disconnect and a dropped
    diff on the way. The feed reconnects and resyncs twice, the paper trader exits 0 with no unexplained gap
    and still quotes after the last resync, and the recording converts to exactly the events published."""
    feed = f"tcp://127.0.0.1:{free_port_pair()}"
    gap_line = depth_line_after(SAMPLE, 600)
    with CaptureServer(str(SAMPLE), speed=1.0, end_line=1100, ping_at={100}, disconnect_at={200},
                       drop_at={gap_line}) as server:
        paper = subprocess.Popen([*CMM, "paper", "--feed", feed, "--config", str(PAPER_CONFIG), "--out",
                                  str(tmp_path / "paper"), "--duration", "60", "--quiet"],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        collector = Collector(feed)
        proc = feed_binance(server, feed, tmp_path / "rec", "--wait-subscribers", 2, "--duration", 5)
        collector.until(proc, 60)
        out, err = proc.communicate(timeout=30)
        paper_out, paper_err = paper.communicate(timeout=60)
        pongs = server.pongs
    assert proc.returncode == 0, err
    assert "resyncs 2, reconnects 1" in out, out
    assert pongs == 1
    assert paper.returncode == 0, paper_err
    assert "stopped by end of stream" in paper_out
    feed_stats = metrics(tmp_path / "paper")["feed"]
    assert feed_stats["unexplained_gaps"] == 0 and feed_stats["gaps"] == 0
    published = collector.events()
    assert feed_stats["events"] == len(published)
    # Each resync is a book reset on the wire: both sides cleared (ival 0), then the REST snapshot.
    resets = published[((published["ev"] & np.uint64(KIND_MASK)) == DEPTH_CLEAR) & (published["ival"] == 0)]
    assert len(resets) == 2 * 2
    with open(tmp_path / "paper" / "orders.csv") as f:
        orders = list(csv.DictReader(f))
    after = int(resets["local_ts"][-1])
    # Still quoting after the last resync: an order placed, resting, cancelled or filled after it.
    assert any(int(r["submit_ts"]) > after or not r["done_ts"] or int(r["done_ts"]) > after for r in orders)
    assert metrics(tmp_path / "paper")["n_fills"] > 0
    again = local_rows(read(recorded(tmp_path / "rec"), options=ReadOptions(on_error="skip")).events)
    for field in FIELDS:
        assert np.array_equal(published[field], again[field]), field


def test_rollover_hands_over_without_a_gap_and_429_is_waited_out(tmp_path):
    """A connection replaced on schedule (every 1 s here, 23 h live) overlaps the old one until the new one
    continues the book: no resync, and the recording converts with gaps refused. The first REST request
    is answered 429 with Retry-After: 1, and the next comes no sooner. The recorder, rotating every 2 s here,
    heads each new file with a REST snapshot, so each converts alone and all convert together."""
    with CaptureServer(str(SAMPLE), speed=1.0, end_line=1250, rest_faults=[429]) as server:
        recorder = Recorder(str(tmp_path / "rec"), "usdm", "hour")
        recorder.period = 2 * 10**9          # a new file every 2 s of receive time, not every hour
        connector = Connector(market("usdm", server.ws_url, server.rest_url), ["ethusdt"], None, recorder,
                              LiveOptions(max_connection_s=1.0, duration_s=5.0))
        started = time.monotonic()
        asyncio.run(connector.run())
        connections = server.connections
    assert connector.error is None
    # the last one may have been overlapping when the run stopped
    assert connector.stats.rollovers >= 1 and connections - connector.stats.rollovers in (1, 2)
    assert connector.resyncs == 0 and connector.stats.reconnects == 0
    assert connector.rest.rate_limited == 1 and server.rest_refused == 1
    assert time.monotonic() - started >= 5.0
    stream = connector.streams["ethusdt"]
    assert stream.duplicates > 0          # the overlaps delivered messages twice; each was taken once
    files = recorded(tmp_path / "rec")
    assert len(files) >= 2
    events = read(files).events        # on_error="raise": a sequence gap would raise
    assert len(local_rows(events)) == connector.stats.events
    # A file started once the book is in sync is headed by a REST snapshot of its own (the server's book, not
    # the capture's first snapshot, which the book waited for at the start) and converts alone with a whole
    # book; a file started while that first snapshot was awaited holds only part of the diffs held for it.
    first = b'"lastUpdateId":%d,' % json.loads(gzip.open(SAMPLE).read().splitlines()[40].split(b" ", 1)[1])["lastUpdateId"]
    snapshots = {path: [line for line in gzip.open(path).read().splitlines() if b'"lastUpdateId"' in line]
                 for path in files[1:]}
    alone = [path for path, lines in snapshots.items() if lines and first not in lines[0]]
    assert alone, ({p: [l[:40] for l in v] for p, v in snapshots.items()}, connector.rest.requests, connector.summary(0))
    for path in alone:
        assert read([path]).meta.book_partial_until_ts is None


def test_recorder_rotates_and_renames_into_place(tmp_path):
    """Lines either side of an hour go to two files, each renamed into place only when it is finished."""
    hour = 3600 * 10**9
    t0 = 1_723_161_600 * 10**9 - 1      # 2024-08-09 00:00:00 UTC, less 1 ns
    rotated = []
    rec = Recorder(str(tmp_path), "spot", "hour", on_rotate=rotated.append)
    rec.write("ETHUSDT", b"%d {\"a\":1}" % t0)
    rec.sync()
    assert os.listdir(tmp_path) == ["ethusdt_spot_20240808T23.gz.part"]
    rec.write("ETHUSDT", b"%d {\"a\":2}" % (t0 + 1))
    assert rotated == ["ETHUSDT"]
    assert sorted(os.listdir(tmp_path)) == ["ethusdt_spot_20240808T23.gz", "ethusdt_spot_20240809T00.gz.part"]
    rec.write("ETHUSDT", b"%d {\"a\":3}" % (t0 + hour))
    rec.close()
    assert gzip.open(tmp_path / "ethusdt_spot_20240808T23.gz").read() == b"%d {\"a\":1}\n" % t0
    assert gzip.open(tmp_path / "ethusdt_spot_20240809T00.gz").read() == \
        b"%d {\"a\":2}\n%d {\"a\":3}\n" % (t0 + 1, t0 + hour)
    rec2 = Recorder(str(tmp_path), "spot", "day")
    rec2.write("ETHUSDT", b"%d {}" % (t0 + 1))
    rec2.close()
    assert (tmp_path / "ethusdt_spot_20240809.gz").exists()


def test_bad_arguments_are_one_line(capsys, tmp_path):
    with CaptureServer(str(SAMPLE)) as server:
        urls = ["--ws-url", server.ws_url, "--rest-url", server.rest_url]
        out = str(tmp_path / "rec")
        assert main(["record", "--market", "usdm", "--symbols", "eth usdt", "--out", out, *urls]) == 2
        assert "--symbols: expected comma-separated symbols" in capsys.readouterr().err
        assert main(["record", "--market", "usdm", "--symbols", "ethusdt,xyzusdt", "--out", out, *urls]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "cmm: error: --symbols: XYZUSDT is not a usdm symbol", err
        assert main(["record", "--market", "usdm", "--symbols", "ethusdt", "--out", out,
                     "--ws-url", "http://x"]) == 2
        assert "--ws-url: expected a URL starting ws:// or wss://" in capsys.readouterr().err


def test_spot_recording_converts_to_the_capture(tmp_path, capsys, monkeypatch):
    """``cmm record`` on spot (depth@100ms, U/u only, bookTicker without exchange time): its files convert to
    the sample's events row for row; exch_ts differs by the server's shift except on the rows whose time
    is estimated (bookTicker, the snapshot and its clears: each file's own median feed latency).
    As in the usdm test, the server gates the capture's snapshot on what the recorder's stream has taken
    (it runs here, in this process), so the snapshot is taken where the capture has it."""
    spot = REPO / "data" / "samples" / "ethusdt_spot_20240808_head.gz"
    with gzip.open(spot, "rb") as f:
        at = next(k for k, line in enumerate(f, 1) if b'"stream"' not in line[:60])   # the snapshot's line
    streams: list[SymbolStream] = []
    init = SymbolStream.__init__
    monkeypatch.setattr(SymbolStream, "__init__", lambda self, symbol: (init(self, symbol), streams.append(self))[0])
    taken = lambda: streams[0].lines if streams else 0                       # noqa: E731
    gate = (lambda: taken() >= at - 1, lambda: taken() >= at)
    with CaptureServer(str(spot), market="spot", speed=None, lot="0.0001", snapshot_gate=gate) as server:
        assert main(["record", "--market", "spot", "--symbols", "ethusdt", "--ws-url", server.ws_url,
                     "--rest-url", server.rest_url, "--out", str(tmp_path), "--rotate", "day",
                     "--duration", "5"]) == 0
        gate_timeouts = server.gate_timeouts
    out, err = capsys.readouterr()
    assert gate_timeouts == 0
    expected = local_rows(read([spot]).events)
    got = local_rows(read(recorded(tmp_path)).events)
    assert f"binance spot: 2,999 messages, {len(expected):,} events in" in out
    assert re.search(r"^binance spot: [\d,]+ msg/s  lag [\d,.]+ ms  resyncs 0  reconnects 0  rollovers 0  \| "
                     r"ETHUSDT synced$", err, re.M), err       # the status line
    assert len(got) == len(expected)
    for field in ("ev", "px", "qty", "ival", "order_id"):
        assert np.array_equal(got[field], expected[field]), field
    kind = expected["ev"] & np.uint64(KIND_MASK)
    own_time = ~np.isin(kind, [DEPTH_BBO, DEPTH_SNAPSHOT, DEPTH_CLEAR])
    assert own_time.sum() > 0.1 * len(expected)
    assert np.array_equal(got["exch_ts"][own_time], expected["exch_ts"][own_time] + server.shift_ms * 1_000_000)


def test_rest_backs_off_on_418_and_retries_a_5xx():
    """An IP ban (418, Retry-After: 1) stops every request for that long; a 500 is retried after the backoff;
    an unknown symbol is a 4xx of ours: one DataError, no retry."""
    with CaptureServer(str(SAMPLE), rest_faults=[418, 500]) as server:
        rest = Rest(market("usdm", server.ws_url, server.rest_url), backoff_base_s=0.05)
        started = time.monotonic()
        instruments = asyncio.run(rest.instruments(["ethusdt"]))
        elapsed = time.monotonic() - started
        with pytest.raises(DataError, match="HTTP 400"):
            asyncio.run(rest.get("/fapi/v1/depth", {"symbol": "NOPE"}, 1))
    assert instruments["ETHUSDT"].tick_size == 0.01 and instruments["ETHUSDT"].lot_size == 0.001
    assert (rest.banned, rest.retries, rest.requests) == (1, 1, 4)
    assert elapsed >= 1.0
