"""A seeded generator of a realistic L2 stream: depth updates and trades around a random-walk mid.

The book is dense: every tick from the best bid down ``depth`` levels holds
size, likewise above the best ask. Each step is one of:

- *update* (60%): a level ``k`` ticks from the best (k geometric, mostly near
  the top) gets a new size;
- *trade* (15%): a market order of random size hits the best bid or lifts the
  best ask; a TRADE row (side = aggressor) is followed by the level's new size,
  and if the level is used up the best moves one tick away and a new level
  appears at the far end (the mid moves);
- *cancel-best* (12%): the best level on one side is withdrawn (the mid moves
  away from that side);
- *improve* (13%, only while the spread is wider than one tick): a new level
  appears one tick inside the spread and the farthest level is dropped.

These moves make the mid a random walk with a one-to-few-tick spread, trades
that print at the touch, and queues that shrink and grow as in real books.
Exchange timestamps advance by exponential gaps; each row reaches us after a
feed latency of ``latency_ns`` plus an exponential jitter, so local order can
differ from exchange order, and :func:`feeds.ordering.order_timelines` splits
such rows exactly as hftbacktest's ``correct_event_order`` does.

Usage: python bench/gen_l2.py [--events 5000000] [--seed 7] [--out build/bench/l2_5m.npz]
"""
from __future__ import annotations

import argparse
import os
import sys

import numba as nb
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from feeds.events import EVENT_DTYPE  # noqa: E402
from feeds.instrument import Instrument  # noqa: E402
from feeds.ordering import order_timelines  # noqa: E402
from common.atomic import atomic_write  # noqa: E402
from feeds.store import DatasetMeta, write  # noqa: E402

TICK_SIZE = 0.01
LOT_SIZE = 1.0
START_TICK = 10_000          # price 100.00
DEPTH_LEVELS = 20
T0_NS = 1_700_000_000_000_000_000


@nb.njit(cache=True)
def _size(mean):
    return 1.0 + np.floor(np.random.exponential(mean))


@nb.njit(cache=True)
def _emit(kind, side, ts, lts, tick, qty, ev, exch_ts, local_ts, px, q, k):
    ev[k] = kind | side
    exch_ts[k] = ts
    local_ts[k] = lts
    px[k] = tick * 0.01
    q[k] = qty
    return k + 1


@nb.njit(cache=True)
def _simulate(n, seed, depth, gap_ns, latency_ns, jitter_ns, start_tick):
    np.random.seed(seed)
    width = 1 << 18                      # far beyond the walk's reach (~sqrt(moves) ticks)
    off = start_tick - width // 2          # array index = tick - off
    bid = np.zeros(width)
    ask = np.zeros(width)
    ev = np.zeros(n + 4 * depth, dtype=np.uint64)
    exch_ts = np.zeros(n + 4 * depth, dtype=np.int64)
    local_ts = np.zeros(n + 4 * depth, dtype=np.int64)
    px = np.zeros(n + 4 * depth)
    q = np.zeros(n + 4 * depth)
    b = start_tick - 1
    a = start_tick + 1
    ts = np.int64(T0_NS)
    lts = ts + latency_ns
    k = 0
    for d in range(depth):                 # the initial book, all at the first timestamp
        bid[b - d - off] = _size(20.0)
        k = _emit(1, 1 << 29, ts, lts, b - d, bid[b - d - off], ev, exch_ts, local_ts, px, q, k)
        ask[a + d - off] = _size(20.0)
        k = _emit(1, 1 << 28, ts, lts, a + d, ask[a + d - off], ev, exch_ts, local_ts, px, q, k)
    while k < n:
        ts += 1 + np.int64(np.random.exponential(gap_ns))
        lts = ts + latency_ns + np.int64(np.random.exponential(jitter_ns))
        u = np.random.random()
        is_bid = np.random.random() < 0.5
        if u < 0.60:
            lvl = min(np.int64(np.random.geometric(0.3)) - 1, depth - 1)
            size = _size(20.0)
            if is_bid:
                bid[b - lvl - off] = size
                k = _emit(1, 1 << 29, ts, lts, b - lvl, size, ev, exch_ts, local_ts, px, q, k)
            else:
                ask[a + lvl - off] = size
                k = _emit(1, 1 << 28, ts, lts, a + lvl, size, ev, exch_ts, local_ts, px, q, k)
            continue
        if u < 0.75:                       # trade: is_bid -> a seller hits the bid
            if is_bid:
                size = min(_size(4.0), bid[b - off])
                k = _emit(2, 1 << 28, ts, lts, b, size, ev, exch_ts, local_ts, px, q, k)
                bid[b - off] -= size
                k = _emit(1, 1 << 29, ts, lts, b, bid[b - off], ev, exch_ts, local_ts, px, q, k)
                consumed = bid[b - off] == 0.0
            else:
                size = min(_size(4.0), ask[a - off])
                k = _emit(2, 1 << 29, ts, lts, a, size, ev, exch_ts, local_ts, px, q, k)
                ask[a - off] -= size
                k = _emit(1, 1 << 28, ts, lts, a, ask[a - off], ev, exch_ts, local_ts, px, q, k)
                consumed = ask[a - off] == 0.0
            if not consumed:
                continue
        elif u < 0.87:                     # cancel the best level
            if is_bid:
                bid[b - off] = 0.0
                k = _emit(1, 1 << 29, ts, lts, b, 0.0, ev, exch_ts, local_ts, px, q, k)
            else:
                ask[a - off] = 0.0
                k = _emit(1, 1 << 28, ts, lts, a, 0.0, ev, exch_ts, local_ts, px, q, k)
        else:                              # improve inside the spread
            if a - b <= 1:
                continue
            size = _size(10.0)
            if is_bid:
                b += 1
                bid[b - off] = size
                k = _emit(1, 1 << 29, ts, lts, b, size, ev, exch_ts, local_ts, px, q, k)
                far = b - depth
                bid[far - off] = 0.0
                k = _emit(1, 1 << 29, ts, lts, far, 0.0, ev, exch_ts, local_ts, px, q, k)
            else:
                a -= 1
                ask[a - off] = size
                k = _emit(1, 1 << 28, ts, lts, a, size, ev, exch_ts, local_ts, px, q, k)
                far = a + depth
                ask[far - off] = 0.0
                k = _emit(1, 1 << 28, ts, lts, far, 0.0, ev, exch_ts, local_ts, px, q, k)
            continue
        # The best level on one side is gone: the best steps away, a far level appears.
        if is_bid:
            b -= 1
            far = b - depth + 1
            bid[far - off] = _size(20.0)
            k = _emit(1, 1 << 29, ts, lts, far, bid[far - off], ev, exch_ts, local_ts, px, q, k)
        else:
            a += 1
            far = a + depth - 1
            ask[far - off] = _size(20.0)
            k = _emit(1, 1 << 28, ts, lts, far, ask[far - off], ev, exch_ts, local_ts, px, q, k)
    return ev[:k], exch_ts[:k], local_ts[:k], px[:k], q[:k]


def generate(n_events: int = 5_000_000, seed: int = 7, gap_ns: float = 600_000.0,
             latency_ns: int = 300_000, jitter_ns: float = 200_000.0, start_tick: int = START_TICK) -> np.ndarray:
    """The event array, ordered on both timelines (EXCH/LOCAL flags set). The book's outer levels spread
    about 4,000 ticks per 300,000 rows: a stream of millions of rows needs a ``start_tick`` far above that
    to keep every price positive."""
    ev, exch_ts, local_ts, px, qty = _simulate(n_events, seed, DEPTH_LEVELS, gap_ns, latency_ns, jitter_ns,
                                               start_tick)
    raw = np.zeros(len(ev), dtype=EVENT_DTYPE)
    raw["ev"] = ev
    raw["exch_ts"] = exch_ts
    raw["local_ts"] = local_ts
    raw["px"] = np.round(px / TICK_SIZE) * TICK_SIZE
    raw["qty"] = qty
    return order_timelines(raw)


def split_days(events: np.ndarray, days: int, gap_ns: int) -> list[np.ndarray]:
    """One stream cut into ``days`` files of equal rows, day ``d`` moved ``d * gap_ns`` later on both clocks:
    a multi-day history whose book, orders and queues carry from one day into the next across a gap
    (each timeline stays ordered: a cut anywhere keeps both orders, and a shift moves a whole day)."""
    edges = np.linspace(0, len(events), days + 1).astype(np.int64)
    out = []
    for d in range(days):
        day = events[edges[d]:edges[d + 1]].copy()
        day["exch_ts"] += d * gap_ns
        day["local_ts"] += d * gap_ns
        out.append(day)
    return out


def instrument() -> Instrument:
    return Instrument(symbol="SYNTH", tick_size=TICK_SIZE, lot_size=LOT_SIZE, contract_multiplier=1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000, help="rows to simulate before timeline split")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(REPO, "build", "bench", "l2_5m.npz"))
    args = ap.parse_args(argv)
    events = generate(args.events, args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    meta = DatasetMeta(source_format="synthetic", sources=[f"bench/gen_l2.py seed={args.seed}"],
                       source_rows=args.events, notes=["synthetic L2 stream for benchmarks"])
    with atomic_write(args.out) as f:
        write(f, events, instrument(), meta, compress=False)
    print(f"{len(events)} events -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
