"""``cmm study --config FILE.toml --out DIR [--jobs N] [--ray auto|ADDRESS]``: the paper's experiment end to end on public data."""
from __future__ import annotations

import os
import sys

from cmm.jobs import add_job_options, backend_of


def register(groups) -> None:
    p = groups.add_parser("study", help="train every dataset per seed, backtest every method on the held-out test "
                                        "window, and report the paper's tables (resumable, parallel)")
    p.add_argument("--config", required=True, metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR", help="the study directory; a second run resumes it")
    add_job_options(p, "jobs")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from study.main import study

    text, failed = study(args.config, args.out, jobs=args.jobs, backend=backend_of(args),
                         progress=False if args.no_progress else None)
    print(text)
    print(f"report: {os.path.abspath(os.path.join(args.out, 'study.html'))}")
    if failed:
        print(f"cmm: error: {len(failed)} study job(s) failed; see above and study.md", file=sys.stderr)
        return 1
    return 0
