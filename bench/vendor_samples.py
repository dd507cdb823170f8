"""Build the Tardis.dev and Binance Vision samples in data/samples from the repo's real Binance captures.

There are no Tardis or Binance Vision files in the repo's public data, so the
samples are the captures in ``data/samples`` re-written in each vendor's
documented CSV layout: the prices, sizes, ids and times are the market's own,
only the file layout is the vendor's::

    python bench/vendor_samples.py --lines 1200

- Tardis (``data/samples/tardis/``), from the USD-M capture read by our Binance
  reader (so the book is the one its sequence rules build, clock skew removed):
  ``incremental_book_L2`` (the REST snapshot as ``is_snapshot=true`` rows, then
  each diff's levels), ``trades``, and ``quotes`` and ``book_snapshot_5`` taken,
  as Tardis takes them, from the rebuilt book whenever its top 1 / top 5 changed
  at the end of a message. Times are µs: ``timestamp`` the exchange's, and
  ``local_timestamp`` the capture's receive time.
- Binance Vision (``data/samples/binance_vision/``), from the raw JSON lines:
  USD-M ``trades``, ``aggTrades`` (consecutive trades of one taker order: same
  time, price and side) and ``bookTicker``, with header rows as Binance writes
  them since 2022; spot ``trades`` from the spot capture, without a header, as
  spot files are. Each CSV is zipped under Binance's file name.

Run it again after changing it; the output is deterministic (fixed zip times).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from common.atomic import atomic_write  # noqa: E402
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK, TRADE  # noqa: E402
from feeds.ordering import correct_local_timestamp  # noqa: E402
from feeds.readers import binance  # noqa: E402
from feeds.readers.base import ReadOptions  # noqa: E402

SAMPLES = REPO / "data" / "samples"
USDM = SAMPLES / "ethusdt_usdm_20240808_head.gz"
SPOT = SAMPLES / "ethusdt_spot_20240808_head.gz"
DAY = "2024-08-08"
PREFIX = "exchange,symbol,timestamp,local_timestamp"


def _num(x: float) -> str:
    return f"{x:.8f}".rstrip("0").rstrip(".")


def _head(path: Path, lines: int) -> bytes:
    with gzip.open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(lines))


def _write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(text.encode())


def _write_zip(path: Path, member: str, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), text)


# ---------------------------------------------------------------- Tardis


def _top(book: dict[float, float], n: int, bids: bool) -> list[tuple[float, float]]:
    return sorted(book.items(), reverse=bids)[:n]


def tardis(capture: Path, lines: int, out: Path) -> None:
    head = out / "capture_head.gz"
    _write_gz(head, _head(capture, lines).decode())
    try:
        events = binance.read([str(head)], ReadOptions()).events
    finally:
        head.unlink()
    correct_local_timestamp(events)
    kind = events["ev"] & np.uint64(KIND_MASK)
    is_bid = (events["ev"] & np.uint64(BUY)) != 0
    name = f"binance-futures_{{}}_{DAY}_ETHUSDT.csv.gz"
    l2 = [f"{PREFIX},is_snapshot,side,price,amount"]
    trades = [f"{PREFIX},id,side,price,amount"]
    quotes = [f"{PREFIX},ask_amount,ask_price,bid_price,bid_amount"]
    snap_cols = ",".join(f"{s}[{i}].{w}" for i in range(5) for s in ("asks", "bids") for w in ("price", "amount"))
    snaps = [f"{PREFIX},{snap_cols}"]
    books: dict[bool, dict[float, float]] = {True: {}, False: {}}
    last_quote, last_snap = None, None
    n = len(events)
    for i in range(n):
        e = events[i]
        k, bid = int(kind[i]), bool(is_bid[i])
        ts, local = int(e["exch_ts"]) // 1000, int(e["local_ts"]) // 1000
        stamp = f"binance-futures,ETHUSDT,{ts},{local}"
        px, qty = float(e["px"]), float(e["qty"])
        if k == TRADE:
            trades.append(f"{stamp},{int(e['order_id'])},{'buy' if bid else 'sell'},{_num(px)},{_num(qty)}")
            continue
        if k == DEPTH_CLEAR:
            books[bid].clear()
            continue
        if k not in (DEPTH, DEPTH_SNAPSHOT):
            continue
        l2.append(f"{stamp},{'true' if k == DEPTH_SNAPSHOT else 'false'},{'bid' if bid else 'ask'},"
                  f"{_num(px)},{_num(qty)}")
        if qty > 0:
            books[bid][px] = qty
        else:
            books[bid].pop(px, None)
        if i + 1 < n and int(events["local_ts"][i + 1]) // 1000 == local:
            continue                       # the message goes on: the book is taken at its end
        asks, bids = _top(books[False], 5, False), _top(books[True], 5, True)
        if asks and bids and (asks[0], bids[0]) != last_quote:
            last_quote = (asks[0], bids[0])
            quotes.append(f"{stamp},{_num(asks[0][1])},{_num(asks[0][0])},{_num(bids[0][0])},{_num(bids[0][1])}")
        if (asks, bids) != last_snap and len(asks) == len(bids) == 5:
            last_snap = (asks, bids)
            cells = [f"{_num(a[0])},{_num(a[1])},{_num(b[0])},{_num(b[1])}" for a, b in zip(asks, bids)]
            snaps.append(f"{stamp},{','.join(cells)}")
    for data_type, rows in (("incremental_book_L2", l2), ("trades", trades), ("quotes", quotes),
                            ("book_snapshot_5", snaps)):
        _write_gz(out / name.format(data_type), "\n".join(rows) + "\n")


# ---------------------------------------------------------------- Binance Vision


def _messages(capture: Path, lines: int):
    for raw in _head(capture, lines).splitlines():
        msg = json.loads(raw.split(b" ", 1)[1])
        if "stream" in msg:
            yield msg["stream"].split("@")[1], msg["data"]


def vision(usdm: Path, spot: Path, lines: int, out: Path) -> None:
    trades, books = [], []
    for stream, d in _messages(usdm, lines):
        if stream == "trade" and d.get("X", "MARKET") == "MARKET":
            trades.append(d)
        elif stream == "bookTicker":
            books.append(f"{d['u']},{d['b']},{d['B']},{d['a']},{d['A']},{d['T']},{d['E']}")
    rows = ["id,price,qty,quote_qty,time,is_buyer_maker"]
    rows += [f"{d['t']},{d['p']},{d['q']},{_num(float(d['p']) * float(d['q']))},{d['T']},{str(d['m']).lower()}"
             for d in trades]
    _write_zip(out / "um" / f"ETHUSDT-trades-{DAY}.zip", f"ETHUSDT-trades-{DAY}.csv", "\n".join(rows) + "\n")
    agg, groups = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"], []
    for d in trades:
        if groups and (groups[-1][-1]["T"], groups[-1][-1]["p"], groups[-1][-1]["m"]) == (d["T"], d["p"], d["m"]):
            groups[-1].append(d)
        else:
            groups.append([d])
    first_agg = 2_000_000_000
    for n, g in enumerate(groups):
        qty = sum(float(d["q"]) for d in g)
        agg.append(f"{first_agg + n},{g[0]['p']},{_num(qty)},{g[0]['t']},{g[-1]['t']},{g[0]['T']},"
                   f"{str(g[0]['m']).lower()}")
    _write_zip(out / "um" / f"ETHUSDT-aggTrades-{DAY}.zip", f"ETHUSDT-aggTrades-{DAY}.csv", "\n".join(agg) + "\n")
    book = ["update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"] + books
    _write_zip(out / "um" / f"ETHUSDT-bookTicker-{DAY}.zip", f"ETHUSDT-bookTicker-{DAY}.csv", "\n".join(book) + "\n")
    spot_rows = [f"{d['t']},{d['p']},{d['q']},{_num(float(d['p']) * float(d['q']))},{d['T']},{d['m']},{d['M']}"
                 for stream, d in _messages(spot, lines) if stream == "trade"]
    _write_zip(out / "spot" / f"ETHUSDT-trades-{DAY}.zip", f"ETHUSDT-trades-{DAY}.csv", "\n".join(spot_rows) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1200, help="capture lines to take from each sample")
    args = parser.parse_args()
    tardis(USDM, args.lines, SAMPLES / "tardis")
    vision(USDM, SPOT, args.lines, SAMPLES / "binance_vision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
