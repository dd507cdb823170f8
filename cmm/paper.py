"""``cmm paper --feed ADDR --config FILE.toml --out DIR``: paper-trade a strategy on a live ZeroMQ feed."""
from __future__ import annotations

from cmm.feed import add_client_curve_options, client_curve_keys


def register(groups) -> None:
    p = groups.add_parser("paper", help="paper-trade a strategy on a ZeroMQ feed with the backtest's matching")
    p.add_argument("--feed", required=True, metavar="ADDR", help="feed address, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--config", required=True, metavar="FILE.toml", help="a backtest config without [data]")
    p.add_argument("--out", required=True, metavar="DIR", help="results directory (replaced when the run ends)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: the stream's end)")
    p.add_argument("--resume", action="store_true", help="continue the run journaled beside DIR after a crash")
    p.add_argument("--topic", help="the instrument's topic (default: [paper] topic, else the feed's first)")
    p.add_argument("--snapshot-addr", help="snapshot service address (default: ADDR's port + 1)")
    p.add_argument("--journal", metavar="FILE", help="journal path (default: DIR.journal)")
    p.add_argument("--quiet", action="store_true", help="no status line")
    add_client_curve_options(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from runtime.paper.loop import format_paper, print_status, run_paper
    from runtime.backtest import Backtest, format_summary
    if args.duration is not None and not args.duration > 0:
        from common.errors import DataError
        raise DataError(f"expected a positive number of seconds, got {args.duration}", field="--duration")
    paper = run_paper(args.feed, args.config, args.out, duration=args.duration, resume=args.resume,
                      topic=args.topic, snapshot_addr=args.snapshot_addr, journal=args.journal,
                      curve=client_curve_keys(args),
                      status=None if args.quiet else print_status)
    print(format_summary(Backtest(result=None, summary=paper.summary, instrument=None,
                                  events=paper.summary.feed.events), args.out))
    print(format_paper(paper))
    return 0
