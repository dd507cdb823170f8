"""Events/s of our engine: replay only, FixedSpread waking every 100 ms and every 1 ms, and the Python path.

Data: the >= 5M-row synthetic L2 stream of bench/gen_l2.py (cached under build/bench/) and, when
/work/shared/data is present, LOBSTER GOOG level 10 converted with ``feeds.read(..., "lobster")``.
Latencies are a constant 1 ms each way, RiskAverse queue, zero fees, tick log on (one metrics row
per local market-data row). "FixedSpread py 100 ms" is the Python-callback path: the
``strategies.fixed_spread.FixedSpread`` class driven by ``runtime.session.run`` (its time includes
``collect``, which it returns). Numba is warmed up on a small slice first. events/s = rows of the event
array / seconds of the run (``make_sim`` setup is reported apart).

Memory: "peak x" is the run's peak RSS (``make_sim`` and the run; Linux's high-water mark, reset before
each run) minus the interpreter's baseline (RSS without the events), over the event array's bytes; so
the events alone are 1.00x. "collect x" is the peak once the results are collected
(``analysis.results.collect``), the engine let go (the results keep its tick log and the events), and
summarised (``analysis.metrics.summarize``, which reads every per-tick column): ``cmm backtest``'s path.
The peer, "whole x", is the peak once every per-tick column is also built whole
(``analysis.results.tick_arrays``), as results were held before they were worked out of the tick log a
chunk at a time; the last lines give collect x over whole x, per data set.

Usage: python bench/engine_speed.py [--data build/bench/l2_5m.npz] [--lobster PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime import session as backtest  # noqa: E402
from strategies.api import WakePolicy  # noqa: E402
from strategies.fixed_spread import FixedSpread, FixedSpreadParams  # noqa: E402
from strategies.kernels.fixed_spread import fixed_spread  # noqa: E402
from engine.views import EngineConfig, LatencyConfig, QueueConfig, make_sim, run_to_end  # noqa: E402
from analysis.metrics import summarize  # noqa: E402
from analysis.results import collect, tick_arrays  # noqa: E402

LATENCY_NS = 1_000_000
LOBSTER = os.path.join(REPO, "..", "shared", "data", "lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
WARMUP_ROWS = 50_000
PYTHON = "python"
RUNS = (("replay only", None), ("FixedSpread 100 ms", 100_000_000), ("FixedSpread 1 ms", 1_000_000),
        ("FixedSpread py 100 ms", PYTHON))
HALF_SPREAD_TICKS = 1
MAX_POSITION = 20.0
EPISODE_NS = 60_000_000_000


def config(instrument) -> EngineConfig:
    return EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size,
                        contract_multiplier=instrument.contract_multiplier, queue=QueueConfig(model="risk_averse"),
                        latency=LatencyConfig(place_entry_ns=LATENCY_NS, place_response_ns=LATENCY_NS,
                                              modify_entry_ns=LATENCY_NS, modify_response_ns=LATENCY_NS,
                                              cancel_entry_ns=LATENCY_NS, cancel_response_ns=LATENCY_NS),
                        max_fills=1 << 21)


def run_once(events, cfg, interval):
    """(setup s, run s, wake-ups, peak RSS of setup + run, then with the results collected and summarised,
    then with every per-tick column whole) of one run."""
    reset_peak_rss()
    t0 = time.perf_counter()
    S = make_sim(events, cfg)
    t1 = time.perf_counter()
    wakes = 0
    result = strategy = None
    if interval is None:
        run_to_end(S)
    elif interval is PYTHON:
        strategy = FixedSpread(FixedSpreadParams(half_spread_ticks=HALF_SPREAD_TICKS, qty=cfg.lot_size,
                                                 max_position=MAX_POSITION),
                               wake=WakePolicy(every_ns=100_000_000))
        result = backtest.run(strategy, S, cfg.tick_size, cfg.lot_size)
    else:
        wakes = fixed_spread(S, interval, HALF_SPREAD_TICKS, cfg.lot_size, MAX_POSITION)
    secs = time.perf_counter() - t1
    peak_run = peak_rss_bytes()
    if result is None:
        result = collect(S)
    del S, strategy     # as runtime.backtest.run does: the results keep the tick log and the events, not the rest
    summarize(result, EPISODE_NS)
    peak_collect = peak_rss_bytes()
    whole = tick_arrays(result.ticks)
    peak_whole = peak_rss_bytes()
    del whole
    return t1 - t0, secs, wakes, peak_run, peak_collect, peak_whole


def bench(name, events, instrument, rows_out):
    cfg = config(instrument)
    for _, interval in RUNS:
        run_once(events[:WARMUP_ROWS], cfg, interval)
    base = rss_bytes() - events.nbytes
    for label, interval in RUNS:
        setup, secs, wakes, *peaks = run_once(events, cfg, interval)
        rows_out.append((name, len(events), label, len(events) / secs, secs, setup, wakes,
                         *((peak - base) / events.nbytes for peak in peaks)))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Restart the high-water mark at the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(REPO, "build", "bench", "l2_5m.npz"))
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--lobster", default=LOBSTER)
    args = ap.parse_args(argv)

    from bench.vs_hftbacktest import load_or_generate
    events, instrument = load_or_generate(args.data, args.events)
    rows = []
    bench(os.path.basename(args.data), events, instrument, rows)
    del events

    if os.path.exists(args.lobster):
        from feeds.formats import read
        conv = read([args.lobster], "lobster")
        bench("LOBSTER GOOG L10", conv.events, conv.instrument, rows)
    else:
        print(f"skipping LOBSTER: {args.lobster} not found")

    print(f"{'data':<18} {'rows':>9}  {'run':<22} {'M ev/s':>8} {'run s':>7} {'setup s':>8} {'wake-ups':>9} "
          f"{'peak x':>7} {'collect x':>9} {'whole x':>8}")
    for name, n, label, evs, secs, setup, wakes, peak, peak_collect, peak_whole in rows:
        print(f"{name:<18} {n:>9}  {label:<22} {evs / 1e6:>8.2f} {secs:>7.3f} {setup:>8.3f} {wakes:>9} "
              f"{peak:>6.2f}x {peak_collect:>8.2f}x {peak_whole:>7.2f}x")
    for name in dict.fromkeys(row[0] for row in rows):
        mine = [row for row in rows if row[0] == name]
        print(f"{name}: collect_over_whole={max(r[8] for r in mine) / max(r[9] for r in mine):.2f} "
              f"(highest collect x {max(r[8] for r in mine):.2f} against highest whole x "
              f"{max(r[9] for r in mine):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
