"""Events/s of our engine: replay only, and FixedSpread waking every 100 ms and every 1 ms.

Data: the >= 5M-row synthetic L2 stream of bench/gen_l2.py (cached under build/bench/) and, when
/work/shared/data is present, LOBSTER GOOG level 10 converted with ``feeds.read(..., "lobster")``.
Latencies are a constant 1 ms each way, RiskAverse queue, zero fees, tick log on (one metrics row
per local market-data row). Numba is warmed up on a small slice first. events/s = rows of the event
array / seconds of the run (``make_sim`` setup is reported apart). Peak RSS is the process's high-water
mark (events, the tick log and everything else), shown against the bytes of the largest event array.

Usage: python bench/engine_speed.py [--data build/bench/l2_5m.npz] [--lobster PATH]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from strategies.kernels.fixed_spread import fixed_spread  # noqa: E402
from engine.kernel import run_to_end  # noqa: E402
from engine.state import EngineConfig, make_sim  # noqa: E402

LATENCY_NS = 1_000_000
LOBSTER = os.path.join(REPO, "..", "shared", "data", "lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
WARMUP_ROWS = 50_000
RUNS = (("replay only", None), ("FixedSpread 100 ms", 100_000_000), ("FixedSpread 1 ms", 1_000_000))


def config(instrument) -> EngineConfig:
    return EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size,
                        contract_multiplier=instrument.contract_multiplier, queue_model="risk_averse",
                        place_entry_ns=LATENCY_NS, place_response_ns=LATENCY_NS,
                        modify_entry_ns=LATENCY_NS, modify_response_ns=LATENCY_NS,
                        cancel_entry_ns=LATENCY_NS, cancel_response_ns=LATENCY_NS,
                        max_fills=1 << 21)


def run_once(events, cfg, interval):
    """(setup seconds, run seconds, wake-ups) of one run over ``events``."""
    t0 = time.perf_counter()
    S = make_sim(events, cfg)
    t1 = time.perf_counter()
    wakes = 0
    if interval is None:
        run_to_end(S)
    else:
        wakes = fixed_spread(S, interval, 1, cfg.lot_size, 20.0)
    return t1 - t0, time.perf_counter() - t1, wakes


def bench(name, events, instrument, rows_out):
    cfg = config(instrument)
    for _, interval in RUNS:
        run_once(events[:WARMUP_ROWS], cfg, interval)
    for label, interval in RUNS:
        setup, secs, wakes = run_once(events, cfg, interval)
        rows_out.append((name, len(events), label, len(events) / secs, secs, setup, wakes))


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "build", "bench", "l2_5m.npz"))
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--lobster", default=LOBSTER)
    args = ap.parse_args(argv)
    rss_start = peak_rss_bytes()

    from bench.vs_hftbacktest import load_or_generate
    events, instrument = load_or_generate(args.data, args.events)
    rows = []
    bench(os.path.basename(args.data), events, instrument, rows)
    largest = events.nbytes
    del events

    if os.path.exists(args.lobster):
        from feeds.formats import read
        conv = read([args.lobster], "lobster")
        bench("LOBSTER GOOG L10", conv.events, conv.instrument, rows)
        largest = max(largest, conv.events.nbytes)
    else:
        print(f"skipping LOBSTER: {args.lobster} not found")

    print(f"{'data':<18} {'rows':>9}  {'run':<20} {'M ev/s':>8} {'run s':>7} {'setup s':>8} {'wake-ups':>9}")
    for name, n, label, evs, secs, setup, wakes in rows:
        print(f"{name:<18} {n:>9}  {label:<20} {evs / 1e6:>8.2f} {secs:>7.3f} {setup:>8.3f} {wakes:>9}")
    peak = peak_rss_bytes()
    print(f"peak RSS {peak / 2**20:.0f} MiB (at start {rss_start / 2**20:.0f} MiB); largest event array "
          f"{largest / 2**20:.0f} MiB; peak / events = {peak / largest:.2f}x, "
          f"(peak - start) / events = {(peak - rss_start) / largest:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
