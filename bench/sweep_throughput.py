"""Sweep throughput in jobs per minute: the local process pool and a Ray cluster on this machine, same sweep.

The sweep is configs/sweep_fixed_spread.toml (a 3 x 3 grid of FixedSpread on the repo's GOOG sample:
nine backtests of ~20,000 messages each). Each backend runs it into a fresh directory with ``--workers``
workers, timed from the call to the written table: worker start-up, each worker's Numba warm-up and the
jobs. Ray starts its local cluster first (``ray.init(num_cpus=workers)``, timed apart). It prints both
rates, their ratio, and whether the two results.csv are the same bytes.

    PYTHONPATH=. python bench/sweep_throughput.py [--workers 2] [--config configs/sweep_fixed_spread.toml]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime import sweep as sweeps  # noqa: E402


def timed_sweep(path: str, out: str, workers: int, backend=None) -> tuple[float, int]:
    s = sweeps.load(path)
    t0 = time.perf_counter()
    outcome = sweeps.run(s, out, workers, backend=backend, progress=False, log=lambda line: None)
    sweeps.write(s, outcome, out)
    return time.perf_counter() - t0, len(outcome.results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "sweep_fixed_spread.toml"))
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="cmm-sweep-bench-")
    try:
        local_s, n = timed_sweep(args.config, os.path.join(root, "local"), args.workers)
        import ray
        t0 = time.perf_counter()
        os.environ["PYTHONPATH"] = REPO + (os.pathsep + os.environ["PYTHONPATH"] if "PYTHONPATH" in os.environ else "")
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        start_s = time.perf_counter() - t0
        from runtime.jobs_ray import backend
        ray_s, _ = timed_sweep(args.config, os.path.join(root, "ray"), args.workers, backend("auto"))
        ray.shutdown()
        same = all(open(os.path.join(root, b, "results.csv"), "rb").read() ==
                   open(os.path.join(root, "local", "results.csv"), "rb").read() for b in ("ray",))
        print(f"{n} jobs, {args.workers} workers, {os.cpu_count()} cores")
        print(f"local pool : {local_s:6.1f} s  {60 * n / local_s:5.1f} jobs/min")
        print(f"ray        : {ray_s:6.1f} s  {60 * n / ray_s:5.1f} jobs/min  (+ {start_s:.1f} s to start the cluster)")
        print(f"ray / local throughput: {local_s / ray_s:.2f}x; same results.csv: {same}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
