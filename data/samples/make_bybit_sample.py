"""Build the synthetic Bybit samples: an ob500 order-book archive and the day's trades CSV.

The repo may not carry Bybit's files, so these are synthetic, written to the
layouts Bybit publishes (see docs/formats-bybit.md): an ETHUSDT linear
perpetual (tick 0.01, lot 0.01) around 2700.

- ``synthetic-bybit-2024-08-08_ETHUSDT_ob500.data.zip``: a zip holding one
  ``.data`` file of websocket ``orderbook.500.ETHUSDT`` messages, one a line:
  a 500-level snapshot, then a delta every 100 ms (``u`` up by one each, ``seq``
  rising, ``cts`` a few ms before ``ts``), with one mid-file snapshot as
  Bybit sends after a service restart (``u`` back to 1).
- ``synthetic-bybit-ETHUSDT2024-08-08.csv.gz``: the derivatives trades layout,
  ``timestamp`` in seconds with four decimals, ``side`` the taker's; every
  trade takes size from the best level on the other side, and the next delta
  shows it.

Run from the repository root (deterministic: seed 15)::

    python data/samples/make_bybit_sample.py data/samples
"""
from __future__ import annotations

import gzip
import json
import os
import sys
import zipfile

import numpy as np

SYMBOL = "ETHUSDT"
T0_MS = 1_723_075_200_000          # 2024-08-08 00:00:00 UTC
BOOK = f"synthetic-bybit-2024-08-08_{SYMBOL}_ob500.data.zip"
TRADES = f"synthetic-bybit-{SYMBOL}2024-08-08.csv.gz"
TRADES_HEADER = "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional"


def _px(ticks: int) -> str:
    return f"{ticks / 100:.2f}"


def _qty(lots: int) -> str:
    return f"{lots / 100:.2f}"


def _line(kind: str, ts: int, cts: int, bids, asks, u: int, seq: int) -> str:
    data = {"s": SYMBOL, "b": [[_px(p), _qty(q)] for p, q in bids], "a": [[_px(p), _qty(q)] for p, q in asks],
            "u": u, "seq": seq}
    return json.dumps({"topic": f"orderbook.500.{SYMBOL}", "type": kind, "ts": ts, "data": data, "cts": cts},
                      separators=(",", ":"))


def build(seed: int = 15, steps: int = 600):
    """(book lines, trade rows, final book as {(side, price ticks): lots})."""
    rng = np.random.default_rng(seed)
    mid = 270_000                                   # 2700.00 in ticks
    bids = {mid - 1 - i: int(rng.integers(1, 500)) for i in range(500)}
    asks = {mid + i: int(rng.integers(1, 500)) for i in range(500)}
    u, seq, ts = 80_000_000, 31_000_000_000, T0_MS + 12
    lines = [_line("snapshot", ts, ts - 2, sorted(bids.items(), reverse=True), sorted(asks.items()), u, seq)]
    trades = []
    match = 0
    for step in range(steps):
        ts += 100
        changed_b, changed_a = {}, {}
        for _ in range(int(rng.integers(0, 3))):         # a taker hits the touch
            buy = rng.random() < 0.5
            side_book, changed = (asks, changed_a) if buy else (bids, changed_b)
            best = min(side_book) if buy else max(side_book)
            take = int(rng.integers(1, side_book[best] + 1))
            side_book[best] -= take
            if side_book[best] == 0:
                del side_book[best]
            changed[best] = side_book.get(best, 0)
            match += 1
            when = ts - int(rng.integers(5, 95))
            price = best / 100
            trades.append(f"{when / 1000:.4f},{SYMBOL},{'Buy' if buy else 'Sell'},{_qty(take)},{price:.2f},"
                          f"{'PlusTick' if buy else 'MinusTick'},{match:032x},{int(take * price * 1e6)},"
                          f"{take / 100:g},{take * price / 100:.4f}")
        for _ in range(int(rng.integers(1, 5))):         # makers add, resize and leave near the touch
            buy = rng.random() < 0.5
            side_book, changed = (bids, changed_b) if buy else (asks, changed_a)
            if buy:
                price = min(asks) - int(rng.integers(1, 15))
            else:
                price = max(bids) + int(rng.integers(1, 15))
            lots = 0 if (price in side_book and rng.random() < 0.3) else int(rng.integers(1, 400))
            if lots:
                side_book[price] = lots
            else:
                side_book.pop(price, None)
            changed[price] = lots
        u += 1
        seq += int(rng.integers(1, 60))
        if step == steps // 2:                           # a service restart: a fresh snapshot, u from 1
            u = 1
            lines.append(_line("snapshot", ts, ts - 3, sorted(bids.items(), reverse=True)[:500],
                               sorted(asks.items())[:500], u, seq))
            continue
        lines.append(_line("delta", ts, ts - int(rng.integers(1, 6)), sorted(changed_b.items(), reverse=True),
                           sorted(changed_a.items()), u, seq))
    trades.sort(key=lambda row: float(row.split(",")[0]))
    final = {**{(1, p): q for p, q in bids.items()}, **{(-1, p): q for p, q in asks.items()}}
    return lines, trades, final


def main(out_dir: str) -> None:
    lines, trades, _ = build()
    info = zipfile.ZipInfo(BOOK.removeprefix("synthetic-bybit-").removesuffix(".zip"), date_time=(2024, 8, 9, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(os.path.join(out_dir, BOOK), "w") as zf:
        zf.writestr(info, "\n".join(lines) + "\n")
    with open(os.path.join(out_dir, TRADES), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(("\n".join([TRADES_HEADER, *trades]) + "\n").encode())
    print(f"{len(lines):,} book lines, {len(trades):,} trades in {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
