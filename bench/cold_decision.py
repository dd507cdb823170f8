"""A bundle decision warm, and after the core did something else: why paper trading rehearses.

The shipped CMM bundle's decision (:meth:`bundle.loader.Bundle.decide`: the
features normalized, the TorchScript model, its outputs) is timed call by call
(perf_counter_ns) after each of:

- nothing: decisions back to back, the peer (what ``bench/decision_latency.py`` measures);
- spinning a pure-Python loop for 0.1, 1 and 10 ms: the core busy with other work;
- sleeping 0.1, 1 and 10 ms: a trader waiting for its next tick;
- 10 ms of spinning with :meth:`~bundle.loader.Bundle.rehearse` every 100 us, as ``[paper]
  rehearse_every_us = 100`` does between ticks.

On a virtual machine the core's caches do not stay ours while we spin or
sleep, so the decision after a gap costs several times the warm one; the
rehearsal keeps it near the warm one.

    python bench/cold_decision.py [--bundle DIR] [--n 300]

The last line is ``after_1ms_over_warm=<p50 after 1 ms of spinning / warm p50> rehearsed_over_warm=<...>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bundle.loader import load_bundle  # noqa: E402
from common.errors import DataError  # noqa: E402


def spin(seconds: float, then=None, every: float = 0.0):
    """Busy-wait ``seconds``; call ``then()`` every ``every`` seconds meanwhile (0: never)."""
    def gap():
        end = time.perf_counter() + seconds
        due = 0.0
        while (now := time.perf_counter()) < end:
            if then is not None and now >= due:
                then()
                due = now + every
    return gap


def sleep(seconds: float):
    return lambda: time.sleep(seconds)


def timed(decide, gap, n: int) -> tuple[float, float]:
    """p50 and p99 (us) of ``decide()`` right after each of ``n`` gaps."""
    ns = np.empty(n)
    for i in range(n):
        gap()
        t0 = time.perf_counter_ns()
        decide()
        ns[i] = time.perf_counter_ns() - t0
    return float(np.percentile(ns, 50) / 1e3), float(np.percentile(ns, 99) / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=str(REPO / "data" / "bundles" / "goog_sample"))
    parser.add_argument("--n", type=int, default=300, help="decisions timed after each kind of gap")
    args = parser.parse_args()
    if args.n < 10:
        sys.exit("bench: --n must be at least 10")
    torch.set_num_threads(1)
    try:
        bundle = load_bundle(args.bundle)
    except DataError as e:
        sys.exit(f"bench: {e}")
    x = np.asarray(bundle.feature_mean) + 0.1 * np.asarray(bundle.feature_std)   # inside the training range
    regime = 1

    def decide():
        bundle.decide(x, regime)

    for _ in range(2000):
        decide()
    cases = [("warm (back to back)", lambda: None)]
    for ms in (0.1, 1, 10):
        cases.append((f"after {ms:g} ms spinning", spin(ms / 1e3)))
        cases.append((f"after {ms:g} ms sleeping", sleep(ms / 1e3)))
    cases.append(("10 ms spinning, rehearsed every 100 us", spin(0.01, bundle.rehearse, 1e-4)))
    p50 = {}
    for name, gap in cases:
        p50[name], p99 = timed(decide, gap, args.n)
        print(f"{name:<40} p50 {p50[name]:7.1f} us  p99 {p99:7.1f} us", flush=True)
    warm = p50["warm (back to back)"]
    print(f"after_1ms_over_warm={p50['after 1 ms spinning'] / warm:.2f} "
          f"rehearsed_over_warm={p50['10 ms spinning, rehearsed every 100 us'] / warm:.2f}")


if __name__ == "__main__":
    main()
