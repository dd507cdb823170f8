"""``cmm sweep --config SWEEP.toml --out DIR [--jobs N] [--ray auto|ADDRESS]``: a backtest config over a grid
of its keys and data sets; a results table, the best sets with their spread, a heatmap (runtime/sweep.py)."""
from __future__ import annotations

import os
import sys

from common.errors import DataError
from cmm.jobs import add_job_options


def register(groups) -> None:
    p = groups.add_parser("sweep", help="run a backtest config over a grid (or random / optuna draws) of its keys "
                                        "crossed with data sets; a results table, the best sets, a heatmap")
    p.add_argument("--config", required=True, metavar="SWEEP.toml")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="results.csv, best.csv, heatmap.png, and a results directory per job in DIR/jobs/; "
                        "jobs complete there already are not run again")
    add_job_options(p, "jobs")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from common.outdir import check_resumable
    from runtime.sweep import sweep
    if args.jobs is not None and args.jobs < 1:
        raise DataError(f"--jobs must be at least 1, got {args.jobs}", field="--jobs")
    check_resumable(args.out, "sweep")
    outcome, tables = sweep(args.config, args.out, args.jobs, args.ray,
                            progress=False if args.no_progress else None,
                            log=lambda line: print(line, file=sys.stderr))
    for name, text in tables.items():
        print(f"\n{name}:\n{text}")
    print(f"\nresults: {os.path.abspath(os.path.join(args.out, 'results.csv'))}")
    failed = sum(not r.ok for r in outcome.results)
    if failed:
        print(f"{failed} of {len(outcome.results)} jobs failed (their rows say why)", file=sys.stderr)
        return 1
    return 0
