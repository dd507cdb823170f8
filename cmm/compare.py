"""``cmm compare --configs A.toml B.toml ... --out DIR``: backtests side by side, one table, an HTML report."""
from __future__ import annotations


def register(groups) -> None:
    p = groups.add_parser("compare", help="run several backtest configs; one table and an HTML report with plots")
    p.add_argument("--configs", required=True, nargs="+", metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="each run's results in DIR/<strategy>/, the table and report.html in DIR")
    p.add_argument("--jobs", type=int, metavar="N", default=None,
                   help="backtests run at once, each in its own process (default: the number of cores)")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="run the backtests on a Ray cluster instead (docs/scale.md); needs the [ray] extra")
    p.set_defaults(handler=run)


def run(args) -> int:
    import os

    from runtime.compare import compare
    backend = None
    if args.ray is not None:
        from runtime.jobs_ray import backend as ray_backend
        backend = ray_backend(args.ray, args.jobs)
    print(compare(args.configs, args.out, jobs=args.jobs, backend=backend))
    print(f"report: {os.path.abspath(os.path.join(args.out, 'report.html'))}")
    return 0
