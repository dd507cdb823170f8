"""``cmm compare --configs A.toml B.toml ... --out DIR``: backtests side by side, one table, an HTML report."""
from __future__ import annotations

from cmm.jobs import add_job_options, backend_of


def register(groups) -> None:
    p = groups.add_parser("compare", help="run several backtest configs; one table and an HTML report with plots")
    p.add_argument("--configs", required=True, nargs="+", metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="each run's results in DIR/<strategy>/, the table and report.html in DIR")
    add_job_options(p, "backtests")
    p.set_defaults(handler=run)


def run(args) -> int:
    import os

    from runtime.compare import compare
    print(compare(args.configs, args.out, jobs=args.jobs, backend=backend_of(args)))
    print(f"report: {os.path.abspath(os.path.join(args.out, 'report.html'))}")
    return 0
