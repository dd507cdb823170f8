"""Wall time of a full-day CMM backtest: batched inference against the per-tick path, in one run.

Data: LOBSTER GOOG level 10, 2012-06-21 09:30-16:00 (../shared/data), converted once with
``feeds.read(..., "lobster")`` into build/bench/ (not timed). Strategy: ``configs/backtest_cmm.toml``
(the shipped bundle ``data/bundles/goog_sample``, 1 s wake-ups, its ladder, latencies and fees) on that
file, with a declared decision time (``--compute-ns``, so the two paths must fill identically, which is
checked) and ``inference`` set to each path in turn. One run is ``runtime.backtest.run``: load the
event file, build the engine, run the strategy, collect and summarise, as ``cmm backtest`` does less
writing the results directory.

Each path runs once to warm up (Numba's cache, torch's first call), then ``--repeats`` times in
alternation; the median wall time counts (a shared machine swings single runs), all runs are printed,
and the process's CPU time beside it (on a busy machine wall time exceeds it by the time other work
took the cores). The target is a batched full day in <= 1 s of wall time after warm-up.

    python bench/cmm_backtest.py [--lobster PATH] [--repeats 3] [--compute-ns 20000]

The last line is ``per_tick_over_batched=<per-tick median / batched median>``.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import feeds  # noqa: E402
from common.atomic import atomic_write  # noqa: E402
from runtime.config import load  # noqa: E402
from runtime.backtest import run  # noqa: E402

LOBSTER = os.path.join(REPO, "..", "shared", "data", "lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
TARGET_S = 1.0
PATHS = ("per_tick", "batched")


def event_file(lobster: str) -> str:
    """The day as an event file under build/bench/, converted on first use."""
    out = os.path.join(REPO, "build", "bench", "goog_2012-06-21_10.npz")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        t0 = time.perf_counter()
        conv = feeds.read([lobster], "lobster")
        with atomic_write(out) as f_out:
            feeds.write(f_out, conv.events, conv.instrument)
        print(f"converted {lobster}: {len(conv.events):,} events in {time.perf_counter() - t0:.2f} s")
    return out


def config(data: str, path: str, compute_ns: int) -> str:
    """configs/backtest_cmm.toml on ``data`` with ``inference = path`` and a declared decision time."""
    text = open(os.path.join(REPO, "configs", "backtest_cmm.toml")).read()
    text = text.replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', repr(data).replace("'", '"'))
    text = text.replace('"../data/bundles/', f'"{REPO}/data/bundles/')
    text = re.sub(r"(?m)^compute_ns = .*$", f"compute_ns = {compute_ns}", text)
    text = re.sub(r"(?m)^inference = .*\n", "", text)
    text = text.replace("[strategy.params]\n", f'[strategy.params]\ninference = "{path}"\n')
    out = os.path.join(REPO, "build", "bench", f"cmm_{path}.toml")
    with open(out, "w") as f:
        f.write(text)
    return out


def timed(path: str):
    """(wall s, CPU s of this process, the backtest) of one run."""
    t0, c0 = time.perf_counter(), time.process_time()
    bt = run(load(path), path)
    return time.perf_counter() - t0, time.process_time() - c0, bt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lobster", default=LOBSTER)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compute-ns", type=int, default=20_000, help="declared decision time, ns")
    args = parser.parse_args()
    if not os.path.exists(args.lobster):
        sys.exit(f"bench: {args.lobster}: not found (the public tick data, see ../shared/data/README.md)")
    data = event_file(args.lobster)
    configs = {p: config(data, p, args.compute_ns) for p in PATHS}
    results = {}
    for p in PATHS:
        seconds, _, results[p] = timed(configs[p])
        print(f"warm-up {p:<8} {seconds:6.2f} s")
    times = {p: [] for p in PATHS}
    cpu = {p: [] for p in PATHS}
    for _ in range(args.repeats):
        for p in PATHS:
            seconds, cpu_s, _ = timed(configs[p])
            times[p].append(seconds)
            cpu[p].append(cpu_s)
    a, b = results["per_tick"], results["batched"]
    same = (np.array_equal(a.result.fills, b.result.fills) and a.summary == b.summary
            and all(np.array_equal(a.decisions[k], b.decisions[k], equal_nan=a.decisions[k].dtype.kind == "f")
                    for k in a.decisions))
    decisions = len(b.decisions["ts"])
    print(f"{b.events:,} events, {decisions:,} decisions (1 s), {b.summary.n_fills:,} fills, "
          f"EPnL {b.summary.epnl:,.2f}; per-tick and batched identical: {'yes' if same else 'NO'}")
    medians = {p: statistics.median(times[p]) for p in PATHS}
    for p in PATHS:
        runs = " ".join(f"{t:.2f}" for t in times[p])
        print(f"{p:<8} median {medians[p]:.2f} s  best {min(times[p]):.2f} s  "
              f"({medians[p] / decisions * 1e6:.0f} us a decision)  runs: {runs}  "
              f"CPU median {statistics.median(cpu[p]):.2f} s")
    print(f"target: a batched full day <= {TARGET_S:g} s after warm-up: "
          f"{'met' if medians['batched'] <= TARGET_S else 'NOT met'} ({medians['batched']:.2f} s)")
    print(f"per_tick_over_batched={medians['per_tick'] / medians['batched']:.2f}")


if __name__ == "__main__":
    main()
