"""Events per second from a feed publisher to a subscriber over loopback TCP, two processes, against raw pyzmq.

The publisher process sends N synthetic DEPTH records through
:class:`feeds.zmqfeed.Publisher` in batches (numbered, kept for resends, the
book kept for snapshots); this process receives them with
:class:`feeds.zmqfeed.Subscriber` (header decode, the records' checks, seq
tracking, and the L2 book with ``--book``), timed from the first batch's send
to the last batch's receipt. The peer, in the same run, is the transport
underneath with nothing of ours: pyzmq PUB/SUB moving the same 64-byte records
in the same batches, each a msgspec header frame and a raw records frame,
received in place. The two alternate ``--repeats`` times; the best of each
counts. Each also prints the CPU time a batch costs the publisher's and the
subscriber's process (their ZeroMQ I/O threads included): on a shared machine
the wall-clock rates move with the load, the CPU a batch much less. The last
line is the ratio of the rates.

``--hop`` measures latency instead, the feed hop a trader rides on: one small
batch every ``--interval-ms``, heartbeats every 10 ms as ``bench/tick_to_order.py``
has them, and each batch timed from the publisher's send stamp to its
hand-over to the subscriber's handler, against the same hop over raw pyzmq
(send stamp to ``recv``). The last line is the ratio of the p99s.

    .venv/bin/python bench/feed_throughput.py [--events 5000000] [--repeats 3] [--book]
    .venv/bin/python bench/feed_throughput.py --hop [--batches 3000] [--interval-ms 2] [--batch 3]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time

import msgspec
import numpy as np
import zmq

from feeds.events import BUY, DEPTH, EVENT_DTYPE, EXCH, LOCAL, SELL, empty
from feeds.zmqfeed import FeedHandlers, Publisher, Subscriber, SubscriberOptions, wait_for_subscribers
from feeds.zmqfeed.publisher import DEFAULT_SNDHWM
from feeds.zmqfeed.subscriber import DEFAULT_RCVHWM


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


def _publish(addr: str, n: int, batch: int, cpu) -> None:
    events = synthetic(n)
    events.flags.writeable = False                         # as replay's: kept for resends without a copy
    with Publisher(addr, heartbeat_s=0.1) as pub:
        wait_for_subscribers(pub, 1, timeout_s=30)
        pub.service(0.2)                                   # the subscriber's join completes
        start = time.process_time()
        for i in range(0, n, batch):
            pub.publish("BENCH", events[i:i + batch])
            pub.service(0.0)
        pub.service(1.0)                                   # the I/O thread sends what is queued
        cpu.put(time.process_time() - start)
        pub.service(2.0)                                   # heartbeats and snapshots for stragglers


def bench_feed(n: int, batch: int, keep_book: bool) -> tuple[float, tuple[float, float], int, object]:
    """Events a second, CPU µs a batch of (publisher, subscriber) process, messages dropped, the stats."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    cpu = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_publish, args=(addr, n, batch, cpu))
    proc.start()
    span = {}

    def on_events(topic, events, b):
        span.setdefault("first_sent_ns", b.sent_ns)     # the publisher's clock: same machine
        span.setdefault("first_cpu", time.process_time())
        span["last_received_ns"] = time.time_ns()
        span["last_cpu"] = time.process_time()

    with Subscriber(addr, ["BENCH"], SubscriberOptions(keep_book=keep_book), FeedHandlers(on_events=on_events)) as sub:
        deadline = time.monotonic() + 120
        while sub.stats.events + sub.stats.lost_batches * batch < n - batch and time.monotonic() < deadline:
            sub.poll(0.05)
        sub.poll(0.2)
        pub_cpu = cpu.get(timeout=60)
        proc.join(30)
        stats = sub.stats
    seconds = (span["last_received_ns"] - span["first_sent_ns"]) / 1e9
    batches = -(-n // batch)
    cpu_us = (pub_cpu / batches * 1e6, (span["last_cpu"] - span["first_cpu"]) / batches * 1e6)
    return stats.events / seconds, cpu_us, sub.decoder.total_dropped, stats


class RawHeader(msgspec.Struct, array_like=True):
    seq: int
    sent_ns: int
    n: int


def _raw_publish(addr: str, n: int, batch: int, cpu) -> None:
    events = synthetic(n)
    encoder = msgspec.msgpack.Encoder()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, DEFAULT_SNDHWM)
    pub.bind(addr)
    pub.recv()                                             # a subscription arrived
    time.sleep(0.2)
    start = time.process_time()
    for seq, i in enumerate(range(0, n, batch), 1):
        records = events[i:i + batch]
        pub.send_multipart([b"BENCH", encoder.encode(RawHeader(seq, time.time_ns(), len(records))), records.data])
    pub.send_multipart([b"BENCH", encoder.encode(RawHeader(0, time.time_ns(), 0)), b""])
    time.sleep(1.0)
    cpu.put(time.process_time() - start)
    pub.close(0)
    ctx.term()


def bench_raw(n: int, batch: int) -> tuple[float, tuple[float, float], int]:
    """pyzmq + msgspec alone: the same records, the same batches, no checks, no history, no book."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    decoder = msgspec.msgpack.Decoder(RawHeader)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, DEFAULT_RCVHWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"BENCH")
    sub.setsockopt(zmq.RCVTIMEO, 30_000)
    cpu = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_raw_publish, args=(addr, n, batch, cpu))
    proc.start()
    sub.connect(addr)
    got = 0
    first_sent = last = 0
    first_cpu = last_cpu = 0.0
    try:
        while True:
            _, head, records = sub.recv_multipart(copy=False)
            header = decoder.decode(head.buffer)
            if not header.n:
                break
            events = np.frombuffer(records.buffer, dtype=EVENT_DTYPE)
            got += len(events)
            first_sent = first_sent or header.sent_ns
            first_cpu = first_cpu or time.process_time()
            last = time.time_ns()
            last_cpu = time.process_time()
        pub_cpu = cpu.get(timeout=60)
    finally:
        sub.close(0)
        ctx.term()
        proc.join(30)
    batches = -(-n // batch)
    return got / ((last - first_sent) / 1e9), (pub_cpu / batches * 1e6, (last_cpu - first_cpu) / batches * 1e6), got


def _hop_publish(addr: str, batches: int, batch: int, interval_s: float) -> None:
    events = synthetic(batches * batch)
    events.flags.writeable = False
    with Publisher(addr, heartbeat_s=0.01) as pub:
        pub.add_topic("BENCH")
        wait_for_subscribers(pub, 1, timeout_s=30)
        pub.service(0.5)
        for i in range(0, len(events), batch):
            pub.publish("BENCH", events[i:i + batch])
            pub.service(interval_s)
        pub.end("BENCH")
        pub.service(0.5)


def hop_feed(batches: int, batch: int, interval_s: float) -> np.ndarray:
    """Publisher send stamp to handler, of each batch after the first tenth (µs)."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    proc = mp.get_context("spawn").Process(target=_hop_publish, args=(addr, batches, batch, interval_s))
    proc.start()
    hops = []
    ended = []
    handlers = FeedHandlers(on_events=lambda topic, ev, b: hops.append(time.time_ns() - b.sent_ns),
                            on_end=ended.append)
    with Subscriber(addr, ["BENCH"], SubscriberOptions(keep_book=False), handlers) as sub:
        deadline = time.monotonic() + 60 + batches * interval_s * 2
        while not ended and time.monotonic() < deadline:
            sub.poll(0.05, early=True)
    proc.join(30)
    return np.array(hops[batches // 10:]) / 1e3


def _hop_raw_publish(addr: str, batches: int, batch: int, interval_s: float) -> None:
    events = synthetic(batches * batch)
    encoder = msgspec.msgpack.Encoder()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.bind(addr)
    pub.recv()
    time.sleep(0.5)
    for seq, i in enumerate(range(0, len(events), batch), 1):
        records = events[i:i + batch]
        pub.send_multipart([b"BENCH", encoder.encode(RawHeader(seq, time.time_ns(), len(records))), records.data])
        time.sleep(interval_s)
    pub.send_multipart([b"BENCH", encoder.encode(RawHeader(0, time.time_ns(), 0)), b""])
    time.sleep(0.5)
    pub.close(0)
    ctx.term()


def hop_raw(batches: int, batch: int, interval_s: float) -> np.ndarray:
    """The same hop over pyzmq + msgspec alone: send stamp to ``recv`` returning (µs)."""
    addr = f"tcp://127.0.0.1:{free_port()}"
    decoder = msgspec.msgpack.Decoder(RawHeader)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"BENCH")
    sub.setsockopt(zmq.RCVTIMEO, 60_000)
    proc = mp.get_context("spawn").Process(target=_hop_raw_publish, args=(addr, batches, batch, interval_s))
    proc.start()
    sub.connect(addr)
    hops = []
    try:
        while True:
            _, head, records = sub.recv_multipart(copy=False)
            header = decoder.decode(head.buffer)
            if not header.n:
                break
            np.frombuffer(records.buffer, dtype=EVENT_DTYPE)
            hops.append(time.time_ns() - header.sent_ns)
    finally:
        sub.close(0)
        ctx.term()
        proc.join(30)
    return np.array(hops[batches // 10:]) / 1e3


def main_hop(args) -> None:
    p99 = {}
    for name, run in (("feed", hop_feed), ("raw pyzmq + msgspec", hop_raw)):
        us = run(args.batches, args.batch, args.interval_ms / 1e3)
        p50, p99[name] = np.percentile(us, [50, 99])
        print(f"{name:<20} hop p50 {p50:7.1f} us  p99 {p99[name]:7.1f} us  max {us.max():8.1f} us  "
              f"({len(us)} batches of {args.batch}, one every {args.interval_ms:g} ms)", flush=True)
    print(f"hop_p99_feed_over_raw={p99['feed'] / p99['raw pyzmq + msgspec']:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5_000_000)
    p.add_argument("--batch", type=int, default=None, help="events a batch (default 1,024; --hop: 3)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--book", action="store_true", help="the subscriber also keeps the L2 book")
    p.add_argument("--hop", action="store_true", help="the feed hop's latency at a trader's pace instead")
    p.add_argument("--batches", type=int, default=3000, help="--hop: batches sent")
    p.add_argument("--interval-ms", type=float, default=2.0, help="--hop: between batches")
    args = p.parse_args()
    for name in ("events", "batch", "repeats", "batches", "interval_ms"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            p.error(f"--{name.replace('_', '-')}: expected a positive number, got {value}")
    if args.hop:
        args.batch = args.batch or 3
        main_hop(args)
        return
    args.batch = args.batch or 1024
    feed = raw = 0.0
    cpu = {"feed": (np.inf, np.inf), "raw": (np.inf, np.inf)}
    for _ in range(args.repeats):
        rate, cpu_us, dropped, stats = bench_feed(args.events, args.batch, args.book)
        whole = stats.events == args.events and not (stats.gaps or stats.lost_batches or dropped)
        print(f"feed (batches of {args.batch}, book {'on' if args.book else 'off'}): {rate:,.0f} events/s  "
              f"[{stats.events:,} events, {stats.batches:,} batches, {stats.gaps} gaps, {stats.lost_batches} lost, "
              f"{dropped} dropped{'' if whole else '; NOT the whole stream'}; CPU a batch: publisher "
              f"{cpu_us[0]:.0f} us, subscriber {cpu_us[1]:.0f} us]", flush=True)
        feed = max(feed, rate if whole else 0.0)
        cpu["feed"] = min(cpu["feed"], cpu_us, key=sum)
        rate, cpu_us, got = bench_raw(args.events, args.batch)
        print(f"raw pyzmq + msgspec, same records and batches: {rate:,.0f} events/s  [{got:,} events; CPU a batch: "
              f"publisher {cpu_us[0]:.0f} us, subscriber {cpu_us[1]:.0f} us]", flush=True)
        raw = max(raw, rate)
        cpu["raw"] = min(cpu["raw"], cpu_us, key=sum)
    print(f"best of {args.repeats}: feed {feed:,.0f} events/s, raw {raw:,.0f} events/s "
          f"(target feed >= 10,000,000: {'met' if feed >= 10e6 else 'NOT met'}); CPU a batch, both processes "
          f"with their I/O threads: feed {sum(cpu['feed']):.0f} us, raw {sum(cpu['raw']):.0f} us "
          f"(feed_cpu_over_raw={sum(cpu['feed']) / sum(cpu['raw']):.2f})")
    print(f"feed_over_raw={feed / raw:.2f}")


if __name__ == "__main__":
    main()
