"""Build the synthetic Databento MBO sample with databento-dbn's own encoder.

Databento's data may not be redistributed, so the sample is synthetic: an
ES-like CME future (instrument 4916, "ESM4", tick 0.25, 50 USD a point) whose
session follows Databento's published MBO conventions record for record:

- the file opens with an MBO snapshot: an R (clear) and A records, all flagged
  F_SNAPSHOT | F_BAD_TS_RECV, ts_recv the snapshot time and ts_event each
  order's own; F_LAST on the last;
- then adds, partial and full cancels, modifies (size down keeps priority, a new
  price loses it), and trades: a T record for the aggressor (order id 0), an F
  for each resting order it filled, then the C records that take the filled
  sizes off the book, all one event with F_LAST on its last record;
- ts_recv is ts_event plus 5..40 µs.

Run from the repository root (deterministic: seed 15)::

    python data/samples/make_databento_sample.py data/samples

It writes ``synthetic-glbx-esm4-20240617.mbo.dbn.zst`` (MBO schema, zstd, via
databento-dbn's Transcoder) and ``synthetic-glbx-esm4-20240617.definition.dbn``
(one instrument definition). ``encode`` and ``definition`` are what the tests
use to build their own small DBN files.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import sys
from typing import NamedTuple

import databento_dbn as dbn
import numpy as np

DATASET = "GLBX.MDP3"
PUBLISHER = 1                     # GLBX.MDP3 on CME Globex
INSTRUMENT = 4916
SYMBOL = "ESM4"
TICK = 250_000_000                # 0.25 in DBN's 1e-9 units
SNAPSHOT_NS = 1_718_582_400_000_000_000     # 2024-06-17 00:00:00 UTC
STEM = "synthetic-glbx-esm4-20240617"


class _Mapping(NamedTuple):
    """databento-dbn takes symbology as objects with these fields (its SymbolMapping protocol)."""

    raw_symbol: str
    intervals: list


class _Interval(NamedTuple):
    start_date: dt.date
    end_date: dt.date
    symbol: str


def metadata(schema, start: int, end: int, instruments: dict[str, int] | None = None) -> "dbn.Metadata":
    """The header, with the raw-symbol -> instrument id symbology a historical request carries."""
    instruments = instruments or {SYMBOL: INSTRUMENT}
    day = dt.datetime.fromtimestamp(start // 10**9, dt.timezone.utc).date()
    mappings = [_Mapping(raw, [_Interval(day, day + dt.timedelta(days=1), str(ident))])
                for raw, ident in instruments.items()]
    return dbn.Metadata(dataset=DATASET, start=start, end=end, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=schema, symbols=list(instruments),
                        mappings=mappings)


def mbo(ts_event, ts_recv, action, side, price, size, order_id=0, flags=dbn.F_LAST, sequence=0,
        instrument=INSTRUMENT):
    return dbn.MBOMsg(publisher_id=PUBLISHER, instrument_id=instrument, ts_event=ts_event, order_id=order_id,
                      price=price, size=size, action=dbn.Action(action), side=dbn.Side(side), ts_recv=ts_recv,
                      flags=flags, ts_in_delta=min(max(ts_recv - ts_event, 0), (1 << 31) - 1), sequence=sequence)


def definition(ts: int, instrument=INSTRUMENT, symbol=SYMBOL, tick=TICK, multiplier=50 * 10**9):
    return dbn.InstrumentDefMsg(publisher_id=PUBLISHER, instrument_id=instrument, ts_event=ts, ts_recv=ts,
                                min_price_increment=tick, display_factor=10**9, raw_symbol=symbol, asset="ES",
                                security_type="FUT", instrument_class=dbn.InstrumentClass.FUTURE,
                                security_update_action=dbn.SecurityUpdateAction.ADD,
                                unit_of_measure_qty=multiplier, currency="USD", exchange="XCME")


def encode(records, schema=dbn.Schema.MBO, zstd: bool = False, instruments: dict[str, int] | None = None) -> bytes:
    """A DBN stream: metadata, then the records, encoded by databento-dbn (zstd through its Transcoder)."""
    ts = [r.ts_recv for r in records] or [SNAPSHOT_NS]
    raw = metadata(schema, min(ts), max(ts) + 1, instruments).encode() + b"".join(bytes(r) for r in records)
    if not zstd:
        return raw
    out = io.BytesIO()
    transcoder = dbn.Transcoder(out, dbn.Encoding.DBN, dbn.Compression.ZSTD)
    transcoder.write(raw)
    transcoder.flush()
    del transcoder          # the zstd frame is finished (its last block written) only when the encoder is dropped
    return out.getvalue()


def session(seed: int = 15, events: int = 2500, orders: dict | None = None) -> list:
    """A snapshot and ``events`` venue events of a book around 5400.00, as MBO records.

    ``orders``, when given, is left holding the resting orders at the end: id -> [price, size, side].
    """
    rng = np.random.default_rng(seed)
    orders = {} if orders is None else orders   # dict order = time priority
    next_id = 6_413_364_814_000
    recs = []
    seq = 1000

    def best(side):
        prices = [o[0] for o in orders.values() if o[2] == side]
        return (max(prices) if side == "B" else min(prices)) if prices else None

    # The snapshot: 10 levels a side, 1..3 orders each, placed over the previous session.
    recs.append(mbo(SNAPSHOT_NS - 3_600 * 10**9, SNAPSHOT_NS, "R", "N", dbn.UNDEF_PRICE, 0,
                    flags=dbn.F_SNAPSHOT | dbn.F_BAD_TS_RECV))
    mid = 5400 * 10**9
    for side in ("B", "A"):
        for level in range(10):
            price = mid - (level + 1) * TICK if side == "B" else mid + level * TICK
            for _ in range(int(rng.integers(1, 4))):
                next_id += 1
                size = int(rng.integers(1, 30))
                orders[next_id] = [price, size, side]
                placed = SNAPSHOT_NS - int(rng.integers(1, 3_600)) * 10**9
                recs.append(mbo(placed, SNAPSHOT_NS, "A", side, price, size, next_id,
                                flags=dbn.F_SNAPSHOT | dbn.F_BAD_TS_RECV, sequence=seq))
    recs[-1] = mbo(recs[-1].ts_event, SNAPSHOT_NS, "A", recs[-1].side.value, recs[-1].price, recs[-1].size,
                   recs[-1].order_id, flags=dbn.F_SNAPSHOT | dbn.F_BAD_TS_RECV | dbn.F_LAST, sequence=seq)

    t = SNAPSHOT_NS + 500_000_000
    for _ in range(events):
        t += int(rng.exponential(120_000_000))
        recv = t + int(rng.integers(5_000, 40_000))
        seq += 1
        u = rng.random()
        bid, ask = best("B"), best("A")
        if u < 0.45 or bid is None or ask is None:          # add near the touch
            side = "B" if rng.random() < 0.5 else "A"
            if side == "B":
                price = (ask if ask is not None else mid) - TICK * int(rng.integers(1, 8))
            else:
                price = (bid if bid is not None else mid) + TICK * int(rng.integers(1, 8))
            next_id += 1
            size = int(rng.integers(1, 25))
            orders[next_id] = [price, size, side]
            recs.append(mbo(t, recv, "A", side, price, size, next_id, sequence=seq))
        elif u < 0.75:                                      # cancel, full or partial
            oid = list(orders)[int(rng.integers(len(orders)))]
            price, size, side = orders[oid]
            gone = size if rng.random() < 0.7 or size == 1 else int(rng.integers(1, size))
            orders[oid][1] -= gone
            if orders[oid][1] == 0:
                del orders[oid]
            recs.append(mbo(t, recv, "C", side, price, gone, oid, sequence=seq))
        elif u < 0.85:                                      # modify: size down, or a new price
            oid = list(orders)[int(rng.integers(len(orders)))]
            price, size, side = orders[oid]
            if size > 1 and rng.random() < 0.5:
                orders[oid][1] = int(rng.integers(1, size))
            else:
                step = TICK * int(rng.integers(1, 3)) * (-1 if side == "B" else 1)
                price = price + step
                orders[oid] = [price, size, side]
                orders[oid] = orders.pop(oid)               # a new price goes to the back of the queue
            recs.append(mbo(t, recv, "M", side, orders[oid][0], orders[oid][1], oid, sequence=seq))
        else:                                               # a trade at the touch, FIFO
            aggressor = "B" if rng.random() < 0.5 else "A"
            resting = "A" if aggressor == "B" else "B"
            price = ask if aggressor == "B" else bid
            queue = [oid for oid, o in orders.items() if o[2] == resting and o[0] == price]
            want = int(rng.integers(1, 1 + sum(orders[q][1] for q in queue)))
            fills = []
            for oid in queue:
                take = min(want, orders[oid][1])
                fills.append((oid, take))
                want -= take
                if want == 0:
                    break
            total = sum(f[1] for f in fills)
            group = [mbo(t, recv, "T", aggressor, price, total, 0, flags=0, sequence=seq)]
            group += [mbo(t, recv, "F", resting, price, take, oid, flags=0, sequence=seq) for oid, take in fills]
            for oid, take in fills:
                orders[oid][1] -= take
                if orders[oid][1] == 0:
                    del orders[oid]
                group.append(mbo(t, recv, "C", resting, price, take, oid, flags=0, sequence=seq))
            last = group[-1]
            group[-1] = mbo(last.ts_event, last.ts_recv, "C", resting, last.price, last.size, last.order_id,
                            sequence=seq)
            recs += group
    return recs


def main(out_dir: str) -> None:
    recs = session()
    with open(os.path.join(out_dir, f"{STEM}.mbo.dbn.zst"), "wb") as f:
        f.write(encode(recs, zstd=True))
    with open(os.path.join(out_dir, f"{STEM}.definition.dbn"), "wb") as f:
        f.write(encode([definition(SNAPSHOT_NS - 86_400 * 10**9)], schema=dbn.Schema.DEFINITION))
    print(f"{len(recs):,} MBO records, 1 definition in {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
