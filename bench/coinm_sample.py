"""Re-express a Binance USD-M ETHUSDT capture as the COIN-M ETHUSD_PERP capture it would have been.

There is no public COIN-M capture in the repo, so ``data/samples/ethusd_perp_20240808_head.gz``
is made by this script from ``data/samples/ethusdt_usdm_20240808_head.gz``:

    python bench/coinm_sample.py data/samples/ethusdt_usdm_20240808_head.gz \\
        data/samples/ethusd_perp_20240808_head.gz --lines 1500

Each line keeps its receive time, update ids and prices; only what differs
between the two markets in Binance's documented stream formats changes:

- stream ``ethusdt@...`` -> ``ethusd_perp@...``, ``s`` -> ``ETHUSD_PERP``, and
  COIN-M's pair field ``ps`` = ``ETHUSD`` on depth and bookTicker messages;
- every size, in ETH on USD-M, becomes whole contracts of 10 USD at that
  level's price: ``round(qty * price / 10)``, at least 1 where the size is not
  0 (a 0 still removes the level).

So the book and trades are USD-M's, priced in USD and sized in contracts: a
FixedSpread run on it should lose or make, in ETH, what the same quoting on
USD-M does in USDT divided by the mid.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import atomic_write  # noqa: E402

CONTRACT_USD = 10.0
USDM, COINM, PAIR = "ETHUSDT", "ETHUSD_PERP", "ETHUSD"


def contracts(price: str, qty: str) -> str:
    q = float(qty)
    return "0" if q == 0 else str(max(1, round(q * float(price) / CONTRACT_USD)))


def levels(rows: list[list[str]]) -> list[list[str]]:
    return [[p, contracts(p, q)] for p, q in rows]


def convert(data: dict, kind: str) -> dict:
    out = dict(data)
    out["s"] = COINM
    if kind == "depth":
        out = {**{k: out[k] for k in ("e", "E", "T", "s")}, "ps": PAIR,
               **{k: v for k, v in out.items() if k not in ("e", "E", "T", "s")}}
        out["b"], out["a"] = levels(data["b"]), levels(data["a"])
    elif kind == "trade":
        out["q"] = contracts(data["p"], data["q"])
    elif kind == "bookTicker":
        out["ps"] = PAIR
        out["B"], out["A"] = contracts(data["b"], data["B"]), contracts(data["a"], data["A"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--lines", type=int, default=None, help="keep the first N lines")
    args = parser.parse_args()
    out = []
    with gzip.open(args.src, "rt") as f:
        for n, line in enumerate(f):
            if args.lines is not None and n >= args.lines:
                break
            stamp, _, body = line.partition(" ")
            msg = json.loads(body)
            if "stream" not in msg:       # a REST snapshot: bids and asks sized like diffs
                msg["bids"], msg["asks"] = levels(msg["bids"]), levels(msg["asks"])
                msg["symbol"], msg["pair"] = COINM, PAIR
            else:
                symbol, _, rest = msg["stream"].partition("@")
                if symbol.upper() != USDM:
                    raise SystemExit(f"{args.src}:{n + 1}: expected {USDM} streams, got {msg['stream']!r}")
                msg = {"stream": f"{COINM.lower()}@{rest}", "data": convert(msg["data"], rest.partition("@")[0])}
            out.append(f"{stamp} {json.dumps(msg, separators=(',', ':'))}\n")
    with atomic_write(args.dst) as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0) as g:
        g.write("".join(out).encode())      # mtime 0, no name: the same input gives the same bytes
    return 0


if __name__ == "__main__":
    sys.exit(main())
