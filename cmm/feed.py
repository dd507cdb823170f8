"""``cmm feed``: replay event files as a live ZeroMQ feed, watch a feed arrive; ``cmm feed binance`` is in
:mod:`cmm.live`."""
from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np
import zmq

from common.errors import DataError
from feeds.events import KIND_MASK, KIND_NAMES
from feeds.zmqfeed.publisher import MIN_HEARTBEAT_S, add_file_topics
from feeds.zmqfeed import (DEFAULT_BIND, CurveConfig, FeedHandlers, Publisher, Subscriber, SubscriberOptions,
                           check_files, load_client_keys, load_server_keys, plaintext_warning, replay, wait_for_subscribers)

# The command-line spelling of each CurveConfig field, so a bad key file names the option given.
CURVE_OPTIONS = {"server_secret": "--curve-server-key", "authorized_clients": "--curve-clients",
                 "client_secret": "--curve-key", "server_public": "--curve-server"}


def register(groups) -> None:
    feed = groups.add_parser("feed", help="serve event files as a ZeroMQ feed, or watch one")
    commands = feed.add_subparsers(dest="command", required=True)

    rep = commands.add_parser("replay", help="publish event files on their local timeline, with snapshots")
    rep.add_argument("files", nargs="+", metavar="FILE.npz")
    rep.add_argument("--bind", default=DEFAULT_BIND, help=f"feed address; snapshots on port + 1 (default {DEFAULT_BIND})")
    rep.add_argument("--snapshot-bind", help="snapshot service address (default: the feed's port + 1)")
    rep.add_argument("--speed", type=_speed, default=1.0, help="1 = real time, 10 = ten times faster, max = no waiting")
    rep.add_argument("--batch-events", type=_positive_int, default=1024, help="most events per batch")
    rep.add_argument("--batch-ms", type=_positive_float, default=1.0, help="shortest sleep when nothing is due")
    rep.add_argument("--heartbeat-s", type=_heartbeat_s, default=0.25,
                     help=f"heartbeat period of an idle topic (at least {MIN_HEARTBEAT_S} s)")
    rep.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                     help="start replaying once N subscriptions to the files' topics are live")
    rep.add_argument("--drop-every", type=int, default=0, metavar="N",
                     help="fault drill: number but do not send every N-th batch (subscribers must resync)")
    rep.add_argument("--exit-at-end", action="store_true",
                     help="exit when the files are replayed (default: keep serving snapshots and heartbeats)")
    add_server_curve_options(rep)
    rep.set_defaults(handler=run_replay)

    tail = commands.add_parser("tail", help="print what a feed sends: one line per batch, gaps, staleness")
    tail.add_argument("addr", metavar="ADDR", help="feed address, e.g. tcp://127.0.0.1:5555")
    tail.add_argument("--topic", action="append", help="instrument symbol (repeatable; default: all)")
    tail.add_argument("--snapshot-addr", help="snapshot service address (default: ADDR's port + 1)")
    tail.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    tail.add_argument("--stale-after", type=_positive_float, default=2.0, help="seconds without a message before 'stale'")
    tail.add_argument("--quiet", action="store_true", help="print notices and the summary only")
    add_client_curve_options(tail)
    tail.set_defaults(handler=run_tail)

    from cmm import live
    live.add_feed_command(commands)


def add_server_curve_options(parser) -> None:
    """The options of a feed publisher (``cmm feed replay``, ``cmm feed binance``) that encrypts with CURVE."""
    parser.add_argument("--curve-server-key", metavar="FILE_OR_DIR", dest="server_secret",
                        help="CURVE: encrypt both sockets with this .key_secret (or the one in DIR); "
                             "needs --curve-clients")
    parser.add_argument("--curve-clients", metavar="DIR", dest="authorized_clients",
                        help="CURVE: admit only the clients whose .key files are in DIR")


def server_curve_keys(args):
    """The publisher keys the options name, None for plaintext; a bad key is one line naming its option."""
    with _curve_errors():
        return load_server_keys(_curve_config(args, "server_secret", "authorized_clients"))


def announce(pub: Publisher, curve, args, what: str) -> None:
    """The feed's first line (addresses, session, what it serves, its security) and the plaintext warnings."""
    security = f"CURVE, {len(curve.clients)} client key(s) admitted" if curve else "plaintext"
    print(f"feed on {pub.endpoint}, snapshots on {pub.snapshot_endpoint}, session {pub.session:x}, "
          f"{what}, {security}", flush=True)
    if curve is None:
        binds = [("--bind", pub.endpoint)]
        if args.snapshot_bind:          # else it is on the feed's host, and that warning covers it
            binds.append(("--snapshot-bind", pub.snapshot_endpoint))
        for option, endpoint in binds:
            warning = plaintext_warning(option, endpoint)
            if warning:
                print(f"cmm: {warning}", file=sys.stderr, flush=True)


def add_client_curve_options(parser) -> None:
    """The options of a feed client (``cmm feed tail``, ``cmm paper``) that talks to a CURVE publisher."""
    parser.add_argument("--curve-key", metavar="FILE_OR_DIR", dest="client_secret",
                        help="CURVE: this client's .key_secret (or the one in DIR); needs --curve-server")
    parser.add_argument("--curve-server", metavar="FILE_OR_DIR", dest="server_public",
                        help="CURVE: the publisher's public .key (or the one in DIR)")


def client_curve_keys(args):
    """The client keys the options name, None for plaintext; a bad key is one line naming its option."""
    with _curve_errors():
        return load_client_keys(_curve_config(args, "client_secret", "server_public"))


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'max', got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:       # also NaN
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _heartbeat_s(text: str) -> float:
    value = _positive_float(text)
    if value < MIN_HEARTBEAT_S:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_HEARTBEAT_S} seconds (a faster heartbeat only "
                                         f"floods the feed), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


@contextlib.contextmanager
def _socket_errors(field: str, address: str):
    """A ZeroMQ refusal (a malformed address, a port in use) as one line naming the option."""
    try:
        yield
    except zmq.ZMQError as e:
        raise DataError(f"{address}: {e}", field=field) from None


def _curve_config(args, *fields: str) -> CurveConfig:
    return CurveConfig(**{f: getattr(args, f) for f in fields})


@contextlib.contextmanager
def _curve_errors():
    """A key error names the options given, not the config fields."""
    try:
        yield
    except DataError as e:
        e.field = CURVE_OPTIONS.get(e.field, e.field)
        for name, option in CURVE_OPTIONS.items():
            e.reason = e.reason.replace(name, option)
        raise


def run_replay(args) -> int:
    check_files(args.files)          # every input must be a sound event file before any socket opens
    curve = server_curve_keys(args)
    start = time.monotonic()
    with _socket_errors("--bind", args.bind), \
            Publisher(args.bind, args.snapshot_bind, heartbeat_s=args.heartbeat_s, curve=curve) as pub:
        announce(pub, curve, args, f"speed {'max' if args.speed is None else f'{args.speed:g}x'}")
        try:
            if args.wait_subscribers:
                add_file_topics(pub, args.files)      # so that only subscriptions to them count
                print(f"waiting for {args.wait_subscribers} subscription(s)", flush=True)
                wait_for_subscribers(pub, args.wait_subscribers)
            start = time.monotonic()
            replay(pub, args.files, speed=args.speed, batch_events=args.batch_events, batch_ms=args.batch_ms,
                   drop_every=args.drop_every)
            _replay_summary(pub, "replayed", time.monotonic() - start)
            if not args.exit_at_end:
                print("serving snapshots and heartbeats until Ctrl-C", flush=True)
                while True:
                    pub.service(1.0)
        except KeyboardInterrupt:
            _replay_summary(pub, "interrupted", time.monotonic() - start)
    return 0


def _replay_summary(pub: Publisher, how: str, seconds: float) -> None:
    s = pub.stats
    rate = s.events / seconds if seconds > 0 else 0.0
    drill = f", {s.drill_dropped:,} dropped by the drill" if s.drill_dropped else ""
    curve = (f"; CURVE handshakes: {pub.curve.accepted} admitted, {pub.curve.rejected} refused"
             if pub.curve is not None else "")
    print(f"{how}: {s.events:,} events in {s.batches:,} batches in {seconds:.2f} s ({rate:,.0f} events/s){drill}; "
          f"{s.snapshots_served:,} snapshots served, {s.subscriptions} subscription(s) live{curve}", flush=True)


def _kinds(events: np.ndarray) -> str:
    counts = np.bincount((events["ev"] & np.uint64(KIND_MASK)).astype(np.int64), minlength=1)
    return " ".join(f"{KIND_NAMES.get(k, k)}:{c}" for k, c in enumerate(counts) if c)


def run_tail(args) -> int:
    quiet = args.quiet

    def on_events(topic, events, batch):
        if not quiet:
            print(f"{topic} seq {batch.seq} n {batch.n} local_ts {events['local_ts'][0]}..{events['local_ts'][-1]} "
                  f"{_kinds(events)}", flush=True)

    def on_snapshot(topic, snap, events):
        print(f"{topic} snapshot seq {snap.seq} levels {snap.n - 1} feed_ts {snap.feed_ts}", flush=True)

    def on_notice(text):
        print(f"notice: {text}", flush=True)

    curve = client_curve_keys(args)
    start = time.monotonic()
    with _socket_errors("ADDR", args.addr), \
            Subscriber(args.addr, args.topic,
                       SubscriberOptions(snapshot_addr=args.snapshot_addr, stale_after=args.stale_after,
                                         keep_book=False, curve=curve),
                       FeedHandlers(on_events=on_events, on_snapshot=on_snapshot, on_notice=on_notice)) as sub:
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                remaining = 0.25 if args.duration is None else args.duration - (time.monotonic() - start)
                sub.poll(max(0.0, min(0.25, remaining)))
        except KeyboardInterrupt:
            pass
        _tail_summary(sub, time.monotonic() - start)
    return 0


def _tail_summary(sub: Subscriber, seconds: float) -> None:
    s = sub.stats
    dropped = ", ".join(f"{k} {v}" for k, v in sub.decoder.dropped.items() if v)
    refused = f"; {s.handshake_failures} handshakes failed" if s.handshake_failures else ""
    print(f"tail: {s.events:,} events in {s.batches:,} batches in {seconds:.1f} s; "
          f"{s.snapshots} snapshots ({s.joins} joins, {s.recoveries} recoveries); "
          f"{s.gaps} gaps ({s.lost_batches} batches lost); {s.restarts} restarts; {s.stale_periods} stale periods; "
          f"{sub.dropped} messages dropped{f' ({dropped})' if dropped else ''}{refused}", file=sys.stdout, flush=True)
