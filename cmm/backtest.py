"""``cmm backtest --config FILE.toml --out DIR``: one backtest, a summary table, a results directory."""
from __future__ import annotations

import sys


def register(groups) -> None:
    p = groups.add_parser("backtest", help="run a strategy over tick data, as a config describes")
    p.add_argument("--config", required=True, metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR", help="results directory (replaced when complete)")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from strategies.runner import format_summary, run_and_write
    bt = run_and_write(args.config, args.out, progress=not args.no_progress and sys.stderr.isatty())
    print(format_summary(bt, args.out))
    return 0
