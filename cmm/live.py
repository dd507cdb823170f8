"""``cmm feed binance`` and ``cmm record``: Binance's live market data onto our feed, and into capture files."""
from __future__ import annotations

import sys

from cmm.feed import _heartbeat_s, _positive_float, _socket_errors, add_server_curve_options, announce, server_curve_keys
from feeds.binance_live.markets import MARKETS

ROTATE = ("hour", "day")


def _add_source_options(p) -> None:
    p.add_argument("--market", required=True, choices=tuple(MARKETS), help="USD-M futures or spot")
    p.add_argument("--symbols", required=True, help="comma-separated, e.g. ethusdt,btcusdt")
    p.add_argument("--ws-url", help="websocket base URL (default Binance's; a testnet or a local server)")
    p.add_argument("--rest-url", help="REST base URL (default Binance's)")
    p.add_argument("--rotate", choices=ROTATE, default="hour", help="start a new capture file every hour or day")
    p.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds (default: Ctrl-C or SIGTERM)")
    p.add_argument("--max-connection-s", type=_positive_float, default=23 * 3600.0, metavar="S",
                   help="open a new connection and hand over to it this long after connecting "
                        "(Binance cuts every connection at 24 h; default 23 h)")
    p.add_argument("--quiet", action="store_true", help="no status line")


def add_feed_command(commands) -> None:
    """``cmm feed binance`` (registered by :mod:`cmm.feed` beside ``replay`` and ``tail``)."""
    from feeds.zmqfeed import DEFAULT_BIND
    p = commands.add_parser("binance", help="publish Binance's live books, trades and tickers as a ZeroMQ feed")
    _add_source_options(p)
    p.add_argument("--bind", default=DEFAULT_BIND, help=f"feed address; snapshots on port + 1 (default {DEFAULT_BIND})")
    p.add_argument("--snapshot-bind", help="snapshot service address (default: the feed's port + 1)")
    p.add_argument("--heartbeat-s", type=_heartbeat_s, default=0.25, help="heartbeat period of an idle topic")
    p.add_argument("--record", metavar="DIR", help="also record the raw capture into DIR (as cmm record does)")
    p.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                   help="connect to Binance once N subscriptions to the feed are live")
    add_server_curve_options(p)
    p.set_defaults(handler=run_feed)


def register_record(groups) -> None:
    p = groups.add_parser("record", help="record Binance's live streams as capture files cmm data convert reads")
    _add_source_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory of the capture files")
    p.set_defaults(handler=run_record)


def _connector(args, publisher, record_dir):
    from feeds.binance_live.connector import Connector, LiveOptions
    from feeds.binance_live.markets import market, parse_symbols
    from feeds.binance_live.recorder import Recorder
    m = market(args.market, args.ws_url, args.rest_url)
    symbols = parse_symbols(args.symbols)
    recorder = Recorder(record_dir, m.name, args.rotate) if record_dir else None
    options = LiveOptions(max_connection_s=args.max_connection_s, duration_s=args.duration)
    return Connector(m, symbols, publisher, recorder, options, status=None if args.quiet else _status)


def _status(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _finish(connector, seconds: float) -> None:
    print(connector.summary(seconds), flush=True)
    if connector.recorder is not None:
        for path in connector.recorder.written:
            print(f"recorded {path}", flush=True)


def run_record(args) -> int:
    from feeds.binance_live.connector import run
    connector = _connector(args, None, args.out)
    _finish(connector, run(connector))
    return 0


def run_feed(args) -> int:
    from feeds.binance_live.connector import run
    from feeds.zmqfeed import Publisher, wait_for_subscribers
    curve = server_curve_keys(args)
    with _socket_errors("--bind", args.bind), \
            Publisher(args.bind, args.snapshot_bind, heartbeat_s=args.heartbeat_s, curve=curve) as pub:
        connector = _connector(args, pub, args.record)
        announce(pub, curve, args, f"binance {args.market} {','.join(connector.symbols)}")
        connector.load_instruments()      # the topics, with their instruments, before anyone subscribes
        if args.wait_subscribers:
            print(f"waiting for {args.wait_subscribers} subscription(s)", flush=True)
            try:
                wait_for_subscribers(pub, args.wait_subscribers)
            except KeyboardInterrupt:
                return 0
        _finish(connector, run(connector))
    return 0
