"""Per-decision latency at 1 thread: the shipped CMM bundle against the MiniLM teacher it replaces.

One bundle decision is what trading runs per decision: ``CMMStrategy.predict``
(strategies/cmm.py) on a raw feature vector and its regime, after the
strategy's own start-up (bundle loaded and verified, threads set), from the
float64 features to the numpy predictions and expert weights. The feature
vectors are drawn around the bundle's normalization, their regimes classified
as the strategy does. One teacher decision is one forward pass of
all-MiniLM-L6-v2 (with the input projection and heads of
cmm_models.teacher.Teacher) over a window of feature vectors, the window
length the bundle was trained with. Both are timed call by call
(perf_counter_ns), after a warm-up; the bundle's calls run ``--runs`` times,
and each run's p50 and p99 are printed, then the median run's.

    python bench/decision_latency.py [--bundle DIR] [--runs N] [--repeats N] [--teacher-repeats N]

The last line is ``teacher_over_cmm=<teacher p50 / bundle p50>``; the targets are
a bundle p99 <= 30 us and a ratio >= 100.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cmm_models.export import decision_latency, feature_rows  # noqa: E402
from cmm_models.pipeline import teacher_latency  # noqa: E402
from cmm_models.teacher import Teacher  # noqa: E402
from bundle.loader import load_bundle  # noqa: E402
from common.errors import DataError  # noqa: E402
from strategies.cmm import CMMParams, CMMStrategy  # noqa: E402


def machine_stalls(seconds: float = 2.0, gap_ns: int = 5_000) -> tuple[float, float]:
    """How often this core stops running us, and for how long: a loop of clock reads with no work, in which
    any gap over ``gap_ns`` is time taken away (interrupts, the hypervisor). Returns (stalls a second,
    their mean length in us). A call of D us is hit by one with probability about rate x D."""
    clock = time.perf_counter_ns
    start = prev = clock()
    end = start + int(seconds * 1e9)
    gaps = []
    while prev < end:
        now = clock()
        if now - prev > gap_ns:
            gaps.append(now - prev)
        prev = now
    return len(gaps) / seconds, (statistics.fmean(gaps) / 1e3 if gaps else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(REPO / "data" / "bundles" / "goog_sample"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50000)
    parser.add_argument("--teacher-repeats", type=int, default=300)
    args = parser.parse_args()
    if min(args.runs, args.repeats, args.teacher_repeats) < 1:
        sys.exit("decision_latency: --runs, --repeats and --teacher-repeats must be at least 1")
    torch.set_num_threads(1)

    strategy = CMMStrategy(CMMParams(bundle=args.bundle, torch_threads=1))
    try:           # on_start needs only the instrument's tick size from its context: the bundle's own
        strategy.on_start(SimpleNamespace(tick_size=load_bundle(args.bundle).schema.tick_size, lot_size=1.0))
    except DataError as err:
        sys.exit(f"decision_latency: {err}")
    bundle = strategy.bundle
    n_features = bundle.schema.n_features
    rows = feature_rows(bundle)
    regimes = [strategy.classify_regime(row) for row in rows]
    runs = [decision_latency(strategy.predict, rows, regimes, repeats=args.repeats) for _ in range(args.runs)]
    for i, run in enumerate(runs):
        print(f"cmm run {i + 1}: p50 {run['p50_us']:.1f} us  p99 {run['p99_us']:.1f} us  mean {run['mean_us']:.1f} us")
    cmm = {key: statistics.median(run[key] for run in runs) for key in ("p50_us", "p99_us", "mean_us")}
    print(f"cmm bundle  ({args.bundle}, {len(bundle.layout['experts'])} experts, {n_features} features, "
          f"CMMStrategy.predict, median of {args.runs} runs of {args.repeats}): "
          f"p50 {cmm['p50_us']:.1f} us  p99 {cmm['p99_us']:.1f} us  mean {cmm['mean_us']:.1f} us")
    rate, length = machine_stalls()
    print(f"machine     (a loop of clock reads, no work): {rate:,.0f} stalls a second of {length:.1f} us on average; "
          f"a {cmm['p50_us']:.0f} us call is hit {rate * cmm['p50_us'] / 1e4:.2f}% of the time")

    window = int(bundle.teacher_latency.get("window", 32))
    teacher = Teacher.from_pretrained(None, n_features=n_features, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((window, n_features), dtype=np.float32)
    big = teacher_latency(teacher, x, args.teacher_repeats)
    print(f"teacher     (all-MiniLM-L6-v2, window {window}): "
          f"p50 {big['p50_us']:.1f} us  p99 {big['p99_us']:.1f} us  mean {big['mean_us']:.1f} us")
    print(f"targets: bundle p99 <= 30 us: {'met' if cmm['p99_us'] <= 30 else 'NOT met'}; "
          f"ratio >= 100: {'met' if big['p50_us'] / cmm['p50_us'] >= 100 else 'NOT met'}")
    print(f"teacher_over_cmm={big['p50_us'] / cmm['p50_us']:.1f}")


if __name__ == "__main__":
    main()
