"""``cmm backtest --config FILE.toml --out DIR [--transport inproc|zmq]``: one backtest, a summary, a results directory."""
from __future__ import annotations

import sys

from common.errors import DataError


def register(groups) -> None:
    p = groups.add_parser("backtest", help="run a strategy over tick data, as a config describes")
    p.add_argument("--config", required=True, metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR", help="results directory (replaced when complete)")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    p.add_argument("--transport", choices=("inproc", "zmq"), default="inproc",
                   help="inproc: the strategy runs in the engine's process; zmq: in its own, over ZeroMQ on "
                        "loopback, the engine acting as the exchange (the same fills)")
    p.add_argument("--timeout-s", type=float, default=None, metavar="S",
                   help="zmq: the longest the engine waits for one answer of the strategy process (default 60)")
    p.add_argument("--curve", action="store_true",
                   help="zmq: encrypt and authenticate the link with CURVE keys made for this run")
    p.add_argument("--chunk-events", type=int, default=None, metavar="N",
                   help="stream event files through the engine N events at a time, in memory that does not "
                        "grow with the days (the config's data.chunk_events); the same results")
    p.set_defaults(handler=run)


def run(args) -> int:
    from runtime.backtest import format_summary, run_and_write
    if args.timeout_s is not None and not args.timeout_s > 0:
        raise DataError(f"--timeout-s must be positive, got {args.timeout_s}", field="backtest")
    if args.curve and args.transport != "zmq":
        raise DataError("--curve secures the strategy process's link: it needs --transport zmq", field="--curve")
    if args.chunk_events is not None and args.chunk_events <= 0:
        raise DataError(f"--chunk-events must be positive, got {args.chunk_events}", field="--chunk-events")
    bt = run_and_write(args.config, args.out, progress=not args.no_progress and sys.stderr.isatty(),
                       transport=args.transport, timeout_s=args.timeout_s, curve=args.curve,
                       chunk_events=args.chunk_events)
    print(format_summary(bt, args.out))
    return 0
