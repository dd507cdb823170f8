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
batch that made a wake-up due to the moment the last of that wake-up's orders is in the
paper exchange, over the wake-ups that sent orders; *send to order* adds the
hop from the publisher. The first ``--warmup`` reactions (numba's cache loads,
the first inference), and the peer's first 2 s, are reported apart. Targets: tick to order p99 <= 500 us,
and CMM's p50 <= 150 us.

Under each trader, its reactions stage by stage (:func:`runtime.paper.loop.reaction_stages`): the hop from
the publisher, waiting behind the steps received before, the trader's step (check, ordering, append), the
engine up to the wake-up, then CMM's own stages (features with the regime and the model's input in one
jitted call, the model, then the ladder with its aggregate, risk cut, order diff and the orders sent in
one more; its decision record follows its orders), and the
decision time ``metrics.json`` charged, split into the model and the rest. CMM's config spins on the
feed and rehearses its last decision every 100 us between ticks (``[paper] busy_poll``,
``rehearse_every_us``; docs/paper-trading.md); ``bench/cold_decision.py`` shows why.

    python bench/tick_to_order.py [--speed 10] [--cmm-speed 60] [--duration 30] [--warmup 10]

The last line is ``tick_to_order_p99_us=<FixedSpread> cmm=<CMM p99> cmm_p50_us=<CMM p50> feed_hop_p99_us=<peer>
cmm_p99_over_feed_hop_p99=<CMM p99 / the peer's>``.
"""
from __future__ import annotations

import argparse
import json
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
    """(tick to order us, send to order us, {stage: us}) of each reaction, and the run's metrics.json."""
    addr = free_address()
    pub = publisher(npz, addr, speed)
    try:
        paper = run_paper(addr, str(config), str(out), duration=duration)
    finally:
        pub.terminate()
        pub.wait()
    stages = {name: np.array(ns) / 1e3 for name, ns in paper.stages_ns.items()}
    metrics = json.loads((out / "metrics.json").read_text())
    return np.array(paper.tick_to_order_ns) / 1e3, np.array(paper.send_to_order_ns) / 1e3, stages, metrics


def breakdown(reaction: np.ndarray, total: np.ndarray, stages: dict[str, np.ndarray], warmup: int) -> list[str]:
    """Each stage's p50 and p99 over the reactions after the warm-up, in order, beginning with the hop from
    the publisher (send to order less tick to order); the p50s of the stages need not add up to the whole's."""
    rows = [("receive (feed hop)", (total - reaction[:len(total)])[warmup:])] if len(total) else []
    rows += [(name, us[warmup:]) for name, us in stages.items() if len(us) > warmup]
    return [f"    {name:<20} p50 {np.percentile(us, 50):8.1f} us  p99 {np.percentile(us, 99):8.1f} us"
            for name, us in rows]


def decision_line(metrics: dict) -> str:
    """The decision time metrics.json charged, and its split (model / the rest) where the strategy gives it."""
    d = metrics.get("decision_latency_us")
    if d is None:
        return "  decision time: declared (compute_ns), not measured"
    line = f"  decision time charged p50 {d['p50']:.1f} us, p99 {d['p99']:.1f} us"
    model, rest = metrics.get("decision_model_us"), metrics.get("decision_rest_us")
    if model and rest:
        line += (f"; model p50 {model['p50']:.1f} / p99 {model['p99']:.1f} us, the rest p50 {rest['p50']:.1f} / "
                 f"p99 {rest['p99']:.1f} us")
    return line


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
            reaction, total, stages, metrics = trader(npz, REPO / "configs" / config, speed, args.duration,
                                                      tmp / name)
            print(line(f"{name}", reaction, args.warmup), flush=True)
            print(line("  from send", total, args.warmup), flush=True)
            print("\n".join(breakdown(reaction, total, stages, args.warmup)))
            print(decision_line(metrics), flush=True)
            results[name] = p50_p99(reaction[args.warmup:]) if len(reaction) > args.warmup else (np.nan, np.nan)
    hop99 = p50_p99(hop)[1]
    met = all(p99 <= 500 for _, p99 in results.values())
    cmm50, cmm99 = results["CMM"]
    print(f"target tick to order p99 <= 500 us: {'met' if met else 'NOT met'}; CMM p50 <= 150 us: "
          f"{'met' if cmm50 <= 150 else 'NOT met'}; FixedSpread / feed hop p99: "
          f"{results['FixedSpread'][1] / hop99:.2f}x")
    print(f"tick_to_order_p99_us={results['FixedSpread'][1]:.1f} cmm={cmm99:.1f} cmm_p50_us={cmm50:.1f} "
          f"feed_hop_p99_us={hop99:.1f} cmm_p99_over_feed_hop_p99={cmm99 / hop99:.2f}")


if __name__ == "__main__":
    main()
