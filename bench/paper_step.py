"""A paper trader's feed batch, from its bytes to rows the engine sees: the one jitted call against its peer.

The repo's GOOG sample (its local rows) is cut into batches of 60 ms of data,
as ``cmm feed replay`` sends it, and each batch goes into two live engines
(:class:`engine.live.LiveSim` with its :class:`engine.live.StreamOrdering`):

- **one call**: :func:`engine.live.append_in_order`, which takes the usual batch
  (in order, nothing held back, prices inside the book's range, room in the arrays)
  in one jitted call, and hands any other to the general path;
- **the peer**, the general path for every batch: the rows decoded
  (``unpack``), :func:`feeds.validate.check_price_span`,
  :meth:`StreamOrdering.push` and :meth:`LiveSim.append`, as
  ``runtime/paper/trader.py`` ran each batch before the one call.

Both are timed batch by batch (perf_counter_ns), alternating which goes first,
back to back or with ``--gap-us`` of spinning before each (a trader waiting for
its next tick: on a VM the code goes cold), and their rows are compared at the end.

    python bench/paper_step.py [--gap-us 0] [--batch-ms 60]

The last line is ``step_p50_us=<one call> peer_p50_us=<general path> peer_over_one_call=<ratio of p50s>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.stats import p50_p99  # noqa: E402
from engine.views import LiveOptions, LiveSim, StreamOrdering, append_in_order  # noqa: E402
from feeds.events import LOCAL  # noqa: E402
from feeds.validate import NO_PRICES, check_price_span  # noqa: E402
from feeds.zmqfeed.messages import pack, unpack  # noqa: E402
from runtime import backtest as runner  # noqa: E402
from runtime.config import PaperConfig, load  # noqa: E402


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gap-us", type=float, default=0.0, help="spin this long before each timed batch")
    ap.add_argument("--batch-ms", type=float, default=60.0, help="data per batch")
    args = ap.parse_args()
    if args.gap_us < 0 or not args.batch_ms > 0:
        sys.exit("paper_step: --gap-us must not be negative and --batch-ms must be positive")
    events, instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))
    engine_cfg, latency = runner.sim_config(load(str(REPO / "configs" / "paper_fixed_spread.toml"), PaperConfig),
                                            instrument)
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0].copy()
    local["ev"] &= ~np.uint64(LOCAL)                   # as the feed sends them: the trader flags the timelines
    step = int(args.batch_ms * 1e6)
    cuts = np.searchsorted(local["local_ts"], np.arange(local["local_ts"][0], local["local_ts"][-1] + step, step))
    batches = [pack(local[a:b]) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    tick = instrument.tick_size
    first = float(local["px"][local["px"] > 0][0])
    options = LiveOptions(initial_rows=1 << (len(local) * 2).bit_length())   # room for every row: no growth
    one = (LiveSim(engine_cfg, first, options, latency), StreamOrdering(0))
    peer = (LiveSim(engine_cfg, first, options, latency), StreamOrdering(0))
    seen = {"one": NO_PRICES, "peer": NO_PRICES}

    def general(engine, raw, prices):
        rows = unpack(raw)
        prices = check_price_span(rows, tick, "feed batch", seen=prices)
        engine[0].append(engine[1].push(rows))
        return prices

    def run_one(raw):
        got = append_in_order(*one, raw, tick, seen["one"])
        seen["one"] = got if got is not None else general(one, raw, seen["one"])

    def run_peer(raw):
        seen["peer"] = general(peer, raw, seen["peer"])

    times = {"one": [], "peer": []}
    for k, raw in enumerate(batches):
        order = (("one", run_one), ("peer", run_peer)) if k % 2 == 0 else (("peer", run_peer), ("one", run_one))
        for name, fn in order:
            spin(args.gap_us / 1e6)
            t0 = time.perf_counter_ns()
            fn(raw)
            times[name].append(time.perf_counter_ns() - t0)
    a, b = one[0], peer[0]
    same = a.n == b.n and a.events[:a.n].tobytes() == b.events[:b.n].tobytes() and seen["one"] == seen["peer"]
    if not same:
        sys.exit("paper_step: the one call and the general path left different rows")
    print(f"{len(batches)} batches of {args.batch_ms:g} ms ({len(local)} rows), gap {args.gap_us:g} us, rows identical")
    skip = min(20, len(batches) // 10)                  # numba's cache loads
    p50s = {}
    for name in ("one", "peer"):
        p50, p99 = p50_p99(np.array(times[name][skip:]) / 1e3)
        p50s[name] = p50
        print(f"{'one call' if name == 'one' else 'general path':<14} p50 {p50:7.1f} us  p99 {p99:7.1f} us")
    print(f"step_p50_us={p50s['one']:.1f} peer_p50_us={p50s['peer']:.1f} "
          f"peer_over_one_call={p50s['peer'] / p50s['one']:.2f}")


if __name__ == "__main__":
    main()
