"""Tick-to-order latency of paper trading, FixedSpread and CMM, against the bare feed hop it rides on.

A publisher (``cmm feed replay``, its own process) replays the repo's GOOG sample
at ``--speed`` (CMM: ``--cmm-speed``) on loopback. Three consumers take it in
turn, each for ``--duration`` seconds of wall time:

1. **the peer**: a bare :class:`feeds.zmqfeed.Subscriber`, timing each batch
   from the publisher's send (``EventBatch.sent_ns``) to its arrival: the
   floor any trader on this feed starts from;
2. **FixedSpread** (``configs/paper_fixed_spread.toml``) and
3. **CMM** (``configs/paper_cmm.toml``, the TorchScript bundle's inference in
   every decision) under ``cmm paper``'s loop (:func:`runtime.paper.loop.run_paper`).

For the traders, *tick to order* is the wall time from the arrival of the feed
batch that made a wake-up due to the moment that wake-up's orders are in the
paper exchange, over the wake-ups that sent orders; *send to order* adds the
hop from the publisher. The first ``--warmup`` reactions (numba's cache loads,
the first inference), and the peer's first 2 s, are reported apart. Target: tick to order p99 <= 500 us.

    python bench/tick_to_order.py [--speed 10] [--cmm-speed 60] [--duration 30] [--warmup 10]

The last line is ``tick_to_order_p99_us=<FixedSpread> cmm=<CMM> feed_hop_p99_us=<peer>``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.feed_throughput import free_port  # noqa: E402
from common.stats import p50_p99  # noqa: E402
from feeds.zmqfeed import FeedHandlers, Subscriber, SubscriberOptions  # noqa: E402
from runtime.paper.loop import run_paper  # noqa: E402

SAMPLE = REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def publisher(npz: Path, addr: str, speed: str) -> subprocess.Popen:
    # Heartbeats every 10 ms carry the replay's clock, so a trader's timers fire on time between rows.
    return subprocess.Popen([sys.executable, "-m", "cmm", "feed", "replay", str(npz), "--bind", addr, "--speed",
                             speed, "--wait-subscribers", "1", "--heartbeat-s", "0.01"], cwd=REPO,
                            stdout=subprocess.DEVNULL)


def feed_hop(npz: Path, speed: str, duration: float, warmup_s: float = 2.0) -> np.ndarray:
    """Publisher send to subscriber arrival of each batch, after the first ``warmup_s`` (numba's cache loads)."""
    addr = free_address()
    pub = publisher(npz, addr, speed)
    hops = []
    try:
        with Subscriber(addr, options=SubscriberOptions(keep_book=False),
                        handlers=FeedHandlers(on_events=lambda topic, ev, batch: hops.append(
                            (time.monotonic(), time.time_ns() - batch.sent_ns)))) as sub:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                sub.poll(0.05, early=True)
    finally:
        pub.terminate()
        pub.wait()
    first = hops[0][0] if hops else 0.0
    return np.array([hop for at, hop in hops if at - first >= warmup_s]) / 1e3


def trader(npz: Path, config: Path, speed: str, duration: float, out: Path):
    addr = free_address()
    pub = publisher(npz, addr, speed)
    try:
        paper = run_paper(addr, str(config), str(out), duration=duration)
    finally:
        pub.terminate()
        pub.wait()
    return np.array(paper.tick_to_order_ns) / 1e3, np.array(paper.send_to_order_ns) / 1e3


def line(name: str, us: np.ndarray, warmup: int) -> str:
    if len(us) <= warmup:
        return f"{name:<12} {len(us)} samples: too few"
    warm, rest = us[:warmup], us[warmup:]
    p50, p99 = p50_p99(rest)
    first = f"; the first {len(warm)}: max {warm.max():,.0f} us" if len(warm) else ""
    return (f"{name:<12} p50 {p50:8.1f} us  p99 {p99:9.1f} us  max {rest.max():9.1f} us  "
            f"({len(rest)} samples{first})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", default="10", help="the feed's replay speed (the peer and FixedSpread)")
    parser.add_argument("--cmm-speed", default="60",
                        help="CMM's: its features need minutes of data before it quotes (the sample is 42 min)")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        npz = tmp / "goog.npz"
        subprocess.run([sys.executable, "-m", "cmm", "data", "convert", str(SAMPLE), "--out", str(npz)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        hop = feed_hop(npz, args.speed, args.duration)
        print(line("feed hop", hop, 0), flush=True)
        results = {}
        for name, config, speed in (("FixedSpread", "paper_fixed_spread.toml", args.speed),
                                    ("CMM", "paper_cmm.toml", args.cmm_speed)):
            reaction, total = trader(npz, REPO / "configs" / config, speed, args.duration, tmp / name)
            print(line(f"{name}", reaction, args.warmup), flush=True)
            print(line("  from send", total, args.warmup), flush=True)
            results[name] = p50_p99(reaction[args.warmup:])[1] if len(reaction) > args.warmup else np.nan
    hop99 = p50_p99(hop)[1]
    met = all(v <= 500 for v in results.values())
    print(f"target tick to order p99 <= 500 us: {'met' if met else 'NOT met'}; "
          f"FixedSpread / feed hop p99: {results['FixedSpread'] / hop99:.2f}x")
    print(f"tick_to_order_p99_us={results['FixedSpread']:.1f} cmm={results['CMM']:.1f} feed_hop_p99_us={hop99:.1f}")


if __name__ == "__main__":
    main()
