"""The live connector's parity on a whole real capture: too slow for the test suite, so a check here.

A local Binance (``tests/binance_server.py``) serves the capture at full speed, its exchange times moved
to now by a whole number of ms; the connector (no publisher) records what it takes; the recording, run
through ``cmm data convert``'s reader, must equal what the reader makes of the capture itself, row for
row, in every field but ``local_ts`` (ours) and ``exch_ts`` (the server's shift exactly; on spot, except
the rows whose time is estimated: bookTicker, the snapshot and its clears). What the connector published
equals its recording's conversion by construction (tests/test_live_binance.py checks that).

    python bench/live_parity.py [--capture ../shared/data/binance/usdm/ethusdt_20240808.gz] [--market usdm]

Exits 1 on any difference. The capture must hold a REST snapshot line (the server answers with it).
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from feeds.binance_live.connector import Connector, LiveOptions  # noqa: E402
from feeds.binance_live.markets import market  # noqa: E402
from feeds.binance_live.recorder import Recorder  # noqa: E402
from feeds.events import DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK  # noqa: E402
from feeds.formats import read  # noqa: E402
from tests.binance_server import CaptureServer  # noqa: E402
from tests.test_live_binance import local_rows  # noqa: E402

SHARED = os.path.join(REPO, "..", "shared", "data", "binance", "usdm", "ethusdt_20240808.gz")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", default=SHARED)
    ap.add_argument("--market", default="usdm", choices=("usdm", "spot"))
    ap.add_argument("--timeout-s", type=float, default=600.0)
    args = ap.parse_args()
    expected = read([args.capture])
    inst = expected.instrument
    with tempfile.TemporaryDirectory() as out, \
            CaptureServer(args.capture, market=args.market, speed=None, symbol=inst.symbol,
                          tick=f"{inst.tick_size:g}", lot=f"{inst.lot_size:g}") as server:
        connector = Connector(market(args.market, server.ws_url, server.rest_url), [inst.symbol.lower()], None,
                              Recorder(out, args.market, "day"), LiveOptions(duration_s=args.timeout_s))
        start = time.monotonic()

        async def until_served():
            run = asyncio.ensure_future(connector.run())
            while not (server.done.is_set() and connector.stats.messages >= server.sent) and not run.done():
                await asyncio.sleep(0.1)      # until every message sent is taken
            connector.stop.set()
            await run
        asyncio.run(until_served())
        seconds = time.monotonic() - start
        got = local_rows(read(sorted(glob.glob(os.path.join(out, "*.gz")))).events)
    print(connector.summary(seconds))
    want = local_rows(expected.events)
    print(f"rows: capture {len(want):,}, recording {len(got):,}, published {connector.stats.events:,}")
    if len(got) != len(want):
        return 1
    bad = [f for f in ("ev", "px", "qty", "ival", "order_id") if not np.array_equal(got[f], want[f])]
    kind = want["ev"] & np.uint64(KIND_MASK)
    own = np.ones(len(want), bool) if args.market == "usdm" else \
        ~np.isin(kind, [DEPTH_BBO, DEPTH_SNAPSHOT, DEPTH_CLEAR])
    if not np.array_equal(got["exch_ts"][own], want["exch_ts"][own] + server.shift_ms * 1_000_000):
        bad.append("exch_ts")
    print(f"fields that differ: {', '.join(bad) or 'none'} (exch_ts compared on {int(own.sum()):,} rows, "
          f"less the server's shift of {server.shift_ms:,} ms)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
