"""Events per second from a feed publisher to a subscriber over loopback TCP, two processes.

The publisher process sends N synthetic DEPTH records through
:class:`feeds.zmqfeed.Publisher` (msgpack batches of packed 64-byte records);
this process receives them with :class:`feeds.zmqfeed.Subscriber` (decode,
checks, seq tracking, and the L2 book with ``--book``), timed from the first
batch's send to the last batch's receipt. The peer, in the same
run, is the naive transport: one pyzmq PUB/SUB message per 64-byte record.

    .venv/bin/python bench/feed_throughput.py --events 5000000
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time

import numpy as np
import zmq

from feeds.events import BUY, DEPTH, EXCH, LOCAL, SELL, empty
from feeds.zmqfeed import FeedHandlers, Publisher, Subscriber, SubscriberOptions, wait_for_subscribers


def synthetic(n: int) -> np.ndarray:
    """Depth updates on 200 levels either side of 100.00, one per microsecond."""
    rng = np.random.default_rng(1)
    ev = empty(n)
    bid = rng.random(n) < 0.5
    ev["ev"] = np.where(bid, DEPTH | EXCH | LOCAL | BUY, DEPTH | EXCH | LOCAL | SELL)
    offset = rng.integers(1, 200, n) * 0.01
    ev["px"] = np.where(bid, 100.0 - offset, 100.0 + offset)
    ev["qty"] = rng.integers(0, 50, n).astype(float)
    ev["local_ts"] = ev["exch_ts"] = np.arange(n, dtype=np.int64) * 1000
    return ev


def free_port() -> int:
    """An even free port whose successor is free too (feed + snapshot service)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def _publish(addr: str, n: int, batch: int) -> None:
    events = synthetic(n)
    with Publisher(addr, heartbeat_s=0.1) as pub:
        wait_for_subscribers(pub, 1, timeout_s=30)
        pub.service(0.2)                                   # the subscriber's join completes
        for i in range(0, n, batch):
            pub.publish("BENCH", events[i:i + batch])
            pub.service(0.0)
        pub.service(3.0)                                   # heartbeats and snapshots for stragglers


def bench_feed(n: int, batch: int, keep_book: bool) -> tuple[float, int, object]:
    addr = f"tcp://127.0.0.1:{free_port()}"
    proc = mp.get_context("spawn").Process(target=_publish, args=(addr, n, batch))
    proc.start()
    span = {}

    def on_events(topic, events, b):
        span.setdefault("first_sent_ns", b.sent_ns)     # the publisher's clock: same machine
        span["last_received_ns"] = time.time_ns()

    with Subscriber(addr, ["BENCH"], SubscriberOptions(keep_book=keep_book), FeedHandlers(on_events=on_events)) as sub:
        deadline = time.monotonic() + 120
        while sub.stats.events + sub.stats.lost_batches * batch < n - batch and time.monotonic() < deadline:
            sub.poll(0.05)
        sub.poll(0.2)
        proc.join(30)
        stats = sub.stats
    seconds = (span["last_received_ns"] - span["first_sent_ns"]) / 1e9
    return stats.events / seconds, sub.decoder.total_dropped, stats


def _naive_publish(addr: str, n: int) -> None:
    events = synthetic(n)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(addr)
    pub.recv()                                             # a subscription arrived
    time.sleep(0.2)
    raw = events.tobytes()
    for i in range(n):
        pub.send(raw[i * 64:(i + 1) * 64])
    pub.send(b"")
    time.sleep(1.0)
    pub.close(0)
    ctx.term()


def bench_naive(n: int) -> float:
    """One 64-byte message per event, decoded with np.frombuffer: the peer."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 30_000)
    proc = mp.get_context("spawn").Process(target=_naive_publish, args=(addr, n))
    proc.start()
    sub.connect(addr)
    got = 0
    total = 0.0
    try:
        msg = sub.recv()
        start = time.perf_counter()
        while msg:
            total += float(np.frombuffer(msg, dtype=np.float64)[4])   # touch qty
            got += 1
            msg = sub.recv()
        seconds = time.perf_counter() - start
    finally:
        sub.close(0)
        ctx.term()
        proc.join(30)
    return (got - 1) / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--naive-events", type=int, default=300_000)
    p.add_argument("--book", action="store_true", help="the subscriber also keeps the L2 book")
    args = p.parse_args()
    rate, dropped, stats = bench_feed(args.events, args.batch, args.book)
    print(f"feed  (batches of {args.batch}, book {'on' if args.book else 'off'}): {rate:,.0f} events/s  "
          f"[{stats.events:,} events, {stats.batches:,} batches, {stats.gaps} gaps, {stats.lost_batches} lost, "
          f"{dropped} dropped]")
    naive = bench_naive(args.naive_events)
    print(f"naive (one pyzmq message per event):  {naive:,.0f} events/s  [{args.naive_events:,} events]")
    print(f"ratio: {rate / naive:.1f}x  (target >= 1,000,000 events/s: {'met' if rate >= 1e6 else 'NOT met'})")


if __name__ == "__main__":
    main()
