"""The cost of ``--transport zmq``: one config in process and over ZeroMQ, in the same run.

Each transport runs the config's backtest ``--repeats`` times, alternating, and
its fastest run counts (data loading and the results directory excluded; the
zmq time includes starting the strategy process). Prints the wall time of
each, the zmq start (the process until its Ready, then its ``on_start``, which
for CMM imports torch and loads the bundle in the new process), the cost per
later step (one WakeUp and one Decision over loopback, less the in-process
step), whether the fills are identical, and last the ratio, ``zmq_over_inproc``.

    .venv/bin/python bench/transport.py [--config configs/backtest_fixed_spread.toml] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from engine.views import make_sim
from runtime import session as backtest
from runtime.config import engine_config, load
from runtime.backtest import build_strategy, load_events
from runtime.link.engine_side import RemoteDecisions, StrategyProcess, strategy_command


class TimedStart(RemoteDecisions):
    """The remote steps, with the wall time of the start step kept."""

    def start(self) -> int:
        t0 = time.perf_counter()
        ns = super().start()
        self.start_s = time.perf_counter() - t0
        return ns


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/backtest_fixed_spread.toml")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cfg = load(args.config)
    events, inst = load_events(cfg)

    def sim():
        return make_sim(events, engine_config(cfg, inst.tick_size, inst.lot_size, inst.contract_multiplier))

    best = {"inproc": np.inf, "zmq": np.inf}
    fills, steps, startup = {}, 0, np.inf
    for _ in range(args.repeats):
        strategy, s = build_strategy(cfg, args.config), sim()
        t0 = time.perf_counter()
        fills["inproc"] = backtest.run(strategy, s, inst.tick_size, inst.lot_size).fills
        best["inproc"] = min(best["inproc"], time.perf_counter() - t0)

        strategy, s = build_strategy(cfg, args.config), sim()
        t0 = time.perf_counter()
        with StrategyProcess(strategy_command(args.config)) as link:
            link.connect()
            ready = time.perf_counter() - t0
            made = []
            fills["zmq"] = backtest.run(strategy, s, inst.tick_size, inst.lot_size,
                                        decisions=lambda ctx, _: made.append(TimedStart(link, ctx)) or made[0]).fills
            steps = link.seq
        best["zmq"] = min(best["zmq"], time.perf_counter() - t0)
        startup = min(startup, ready + made[0].start_s)

    per_step = (best["zmq"] - startup - best["inproc"]) / (steps - 1) * 1e6
    print(f"config {args.config}: {len(events):,} events, {steps:,} steps, best of {args.repeats}")
    print(f"inproc  {best['inproc']:.2f} s")
    print(f"zmq     {best['zmq']:.2f} s  (start {startup:.2f} s; {per_step:.0f} us more a step)")
    print(f"fills identical: {np.array_equal(fills['inproc'], fills['zmq'])} ({len(fills['zmq']):,} fills)")
    print(f"zmq_over_inproc={best['zmq'] / best['inproc']:.2f} "
          f"(without the start {(best['zmq'] - startup) / best['inproc']:.2f})")


if __name__ == "__main__":
    main()
