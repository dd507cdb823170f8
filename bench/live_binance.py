"""Messages per second the live Binance connector takes, publishes and records, against the file reader's rate.

Data: the USD-M capture ``../shared/data/binance/usdm/ethusdt_20240808.gz`` (74,655 lines), else the
repo sample ``data/samples/ethusdt_usdm_20240808_head.gz`` (3,000 lines). The connector's path is
everything after the socket: each line's JSON goes through ``SymbolStream`` (de-duplication,
``decode_line``, the book sequencer, the events), is published as one batch on a real ZeroMQ
``Publisher`` (127.0.0.1, a free port, no subscriber) and written to a gzip ``Recorder`` in a temp
directory, fsynced every 1,000 lines (live: every 0.1 s). The peer is ``cmm data convert``'s reader
(``feeds.read``) of the same file, which decodes and sequences the same messages in one pass.
Each runs ``--repeats`` times, alternating; the median counts. Binance's busiest USD-M symbols send a few
hundred to a few thousand messages a second on these three streams, so the connector's rate is its headroom.

    python bench/live_binance.py [--capture PATH] [--repeats 3]

The last line is ``reader_over_connector=<connector median seconds / reader median seconds>``.
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import feeds  # noqa: E402
from feeds.binance_live.recorder import Recorder  # noqa: E402
from feeds.binance_live.stream import SymbolStream  # noqa: E402
from feeds.events import LOCAL  # noqa: E402
from feeds.zmqfeed import Publisher  # noqa: E402

SHARED = os.path.join(REPO, "..", "shared", "data", "binance", "usdm", "ethusdt_20240808.gz")
SAMPLE = os.path.join(REPO, "data", "samples", "ethusdt_usdm_20240808_head.gz")


def lines(path: str) -> list[tuple[int, bytes]]:
    with gzip.open(path, "rb") as f:
        out = []
        for raw in f:
            ts, _, text = raw.strip().partition(b" ")
            out.append((int(ts), text))
        return out


def connector_path(capture: list[tuple[int, bytes]], symbol: str) -> tuple[float, int]:
    """Seconds to take, publish and record every line; the events published."""
    stream = SymbolStream(symbol)
    events = 0
    with tempfile.TemporaryDirectory() as tmp, Publisher("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as pub:
        recorder = Recorder(tmp, "usdm", "day")
        start = time.perf_counter()
        for k, (ts, text) in enumerate(capture):
            taken = stream.snapshot(text, ts) if text.startswith(b'{"lastUpdateId"') else stream.offer(0, text, ts)
            for line, rows in taken:
                recorder.write(stream.symbol, line)
                if len(rows):
                    rows["ev"] |= np.uint64(LOCAL)
                    pub.publish(stream.symbol, rows)
                    events += len(rows)
            if k % 1000 == 999:
                recorder.sync()
                pub.service(0.0)
        recorder.close()
        return time.perf_counter() - start, events


def reader_path(path: str) -> tuple[float, int]:
    start = time.perf_counter()
    conv = feeds.read([path], "binance")
    seconds = time.perf_counter() - start
    return seconds, int(((conv.events["ev"] & np.uint64(LOCAL)) != 0).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", default=SHARED if os.path.exists(SHARED) else SAMPLE)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    capture = lines(args.capture)
    print(f"capture {args.capture}: {len(capture):,} lines")
    runs = {"connector": [], "reader": []}
    for _ in range(args.repeats):
        seconds, events = connector_path(capture, "ethusdt")
        runs["connector"].append(seconds)
        print(f"connector: {seconds:.3f} s, {len(capture) / seconds:,.0f} msg/s, {events:,} events published")
        seconds, local = reader_path(args.capture)
        runs["reader"].append(seconds)
        print(f"reader:    {seconds:.3f} s, {len(capture) / seconds:,.0f} msg/s, {local:,} local events")
    c, r = statistics.median(runs["connector"]), statistics.median(runs["reader"])
    print(f"median: connector {len(capture) / c:,.0f} msg/s, reader {len(capture) / r:,.0f} msg/s")
    print(f"reader_over_connector={c / r:.2f}")


if __name__ == "__main__":
    main()
