"""Per-decision latency at 1 thread: the shipped CMM bundle against the MiniLM teacher it replaces.

One bundle decision is one call of the loaded TorchScript module: a normalized
feature vector and the regime in, predictions and expert weights out. One
teacher decision is one forward pass of all-MiniLM-L6-v2 (with the input
projection and heads of cmm_models.teacher.Teacher) over a window of feature
vectors, the window length the bundle was trained with. Both are timed call by
call (perf_counter_ns), after a warm-up.

    python bench/decision_latency.py [--bundle DIR] [--repeats N] [--teacher-repeats N]

The last line is ``teacher_over_cmm=<teacher p50 / bundle p50>``; the targets are
a bundle p99 <= 30 us and a ratio >= 100.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cmm_models.export import decision_latency  # noqa: E402
from cmm_models.pipeline import teacher_latency  # noqa: E402
from cmm_models.teacher import Teacher  # noqa: E402
from feeds.bundle import load_bundle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(REPO / "data" / "bundles" / "goog_sample"))
    parser.add_argument("--repeats", type=int, default=50000)
    parser.add_argument("--teacher-repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)

    bundle = load_bundle(args.bundle)
    n_features = bundle.schema.n_features
    window = int(bundle.teacher_latency.get("window", 32))
    cmm = decision_latency(bundle.model, n_features, regime=1, repeats=args.repeats)
    print(f"cmm bundle  ({args.bundle}, {len(bundle.layout['experts'])} experts, {n_features} features): "
          f"p50 {cmm['p50_us']:.1f} us  p99 {cmm['p99_us']:.1f} us  mean {cmm['mean_us']:.1f} us")

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
