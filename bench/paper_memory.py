"""Memory a paper trader keeps over a long session: the repo's GOOG sample replayed end to end, day after day.

Each "day" is the sample's local rows (55,130), shifted in time so that the days follow one another,
fed to a :class:`runtime.paper.trader.PaperTrader` (``configs/paper_fixed_spread.toml``) in batches of
1,024 as the feed would. After each day it prints the memory ``tracemalloc`` traces (Python objects and
numpy arrays; after a full collection), the live engine's row capacity, and what it has moved to
temporary files (``common/spill.py``) instead. Before the live engine
dropped the rows it had passed (issue 12, item 17), this grew by 84 to 168 bytes per event.

The peer, in the same run: the same days as one whole-array backtest (``runtime.backtest.run`` with the
same FixedSpread settings, ``configs/backtest_fixed_spread.toml``, over the days' events on both
timelines), whose memory holds every event. The last line is ``paper_over_whole=<the trader's peak
traced memory over the session / the backtest's>``.

    PYTHONPATH=. python bench/paper_memory.py [--days 8]
"""
from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np

from feeds.events import LOCAL
from feeds.zmqfeed.messages import pack
from runtime import backtest as runner
from runtime.config import PaperConfig, load
from runtime.paper.journal import Step
from runtime.paper.trader import PaperTrader

BACKTEST = "configs/backtest_fixed_spread.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=8)
    args = ap.parse_args()
    events, instrument = runner.load_events(load(BACKTEST))
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    span = int(local["local_ts"][-1] - local["local_ts"][0]) + 1_000_000_000
    trader = PaperTrader(load("configs/paper_fixed_spread.toml", PaperConfig), "configs/paper_fixed_spread.toml",
                         instrument)
    tracemalloc.start()
    seq, n = 0, 0
    for day in range(args.days):
        rows = local.copy()
        rows["local_ts"] += day * span
        rows["exch_ts"] += day * span
        for i in range(0, len(rows), 1024):
            seq += 1
            trader.step(Step(kind="batch", seq=seq, session=1, events=pack(rows[i:i + 1024])))
        n += len(rows)
        gc.collect()
        cur, peak = tracemalloc.get_traced_memory()
        live = trader.live
        spilled = [getattr(live, "ticks_spilled", None), getattr(trader.session.ctx, "_unread_dropped", None)]
        on_disk = sum(f.rows * f.dtype.itemsize for f in spilled if f is not None)
        print(f"events {n:>9,}  traced {cur / 1e6:7.1f} MB  peak {peak / 1e6:7.1f} MB  "
              f"engine rows {len(live.events):>7,} (held {live.n:,}, dropped {getattr(live, 'dropped', 0):,})  "
              f"spilled {on_disk / 1e6:.1f} MB", flush=True)
    paper_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del trader
    gc.collect()
    whole_peak = whole_array_peak(events, instrument, span, args.days)
    print(f"whole-array backtest of the same {args.days} days: peak {whole_peak / 1e6:7.1f} MB")
    print(f"paper_over_whole={paper_peak / whole_peak:.2f}")


def whole_array_peak(events: np.ndarray, instrument, span: int, days: int) -> int:
    """Peak traced memory of one backtest over ``days`` copies of ``events``, each ``span`` ns after the
    last, counting the days' event array it replays."""
    tracemalloc.start()
    try:
        n = len(events)
        rows = np.empty(days * n, dtype=events.dtype)
        for day in range(days):
            rows[day * n:(day + 1) * n] = events
            rows["local_ts"][day * n:(day + 1) * n] += day * span
            rows["exch_ts"][day * n:(day + 1) * n] += day * span
        runner.run(load(BACKTEST), BACKTEST, data=(rows, instrument))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


if __name__ == "__main__":
    main()
