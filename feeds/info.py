"""What is in an event file: counts, time span, prices, latency and book sanity."""
from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np

from common.stats import p50_p99
from feeds.book_check import BookCheck, check_book
from feeds.events import BUY, EXCH, KIND_MASK, KIND_NAMES, LOCAL, SELL, TRADE
from feeds.instrument import Instrument
from feeds.ordering import timeline_violations
from feeds.store import DatasetMeta


class Summary(msgspec.Struct):
    events: int
    by_kind: dict[str, int]          # per kind, each original event counted once (local timeline)
    exch_only: int
    local_only: int
    both_timelines: int
    first_local_ts: int | None
    last_local_ts: int | None
    price_min: float | None
    price_max: float | None
    trade_volume: float
    buy_initiated_trades: int
    sell_initiated_trades: int
    feed_latency_p50_ns: int | None
    feed_latency_p99_ns: int | None
    exch_backward_steps: int
    local_backward_steps: int
    book: BookCheck | None


def summarize(events: np.ndarray, instrument: Instrument | None) -> Summary:
    ev = events["ev"]
    on_exch = (ev & np.uint64(EXCH)) != 0
    on_local = (ev & np.uint64(LOCAL)) != 0
    once = on_local | ~on_exch   # every original event has exactly one LOCAL copy
    kind = (ev & np.uint64(KIND_MASK))[once]
    codes, counts = np.unique(kind, return_counts=True)
    by_kind = {KIND_NAMES.get(int(c), f"kind_{int(c)}"): int(n) for c, n in zip(codes, counts)}
    px = events["px"][once]
    priced = np.isfinite(px) & (px > 0)
    is_trade = kind == TRADE
    side = ev[once]
    both = on_exch & on_local
    latency = (events["local_ts"] - events["exch_ts"])[both]
    lag = p50_p99(latency) if len(latency) else None
    local_ts = events["local_ts"][on_local]
    exch_back, local_back = timeline_violations(events)
    return Summary(
        events=len(events),
        by_kind=by_kind,
        exch_only=int(np.count_nonzero(on_exch & ~on_local)),
        local_only=int(np.count_nonzero(on_local & ~on_exch)),
        both_timelines=int(np.count_nonzero(both)),
        first_local_ts=int(local_ts.min()) if len(local_ts) else None,
        last_local_ts=int(local_ts.max()) if len(local_ts) else None,
        price_min=float(px[priced].min()) if priced.any() else None,
        price_max=float(px[priced].max()) if priced.any() else None,
        trade_volume=float(events["qty"][once][is_trade].sum()),
        buy_initiated_trades=int(np.count_nonzero(is_trade & ((side & np.uint64(BUY)) != 0))),
        sell_initiated_trades=int(np.count_nonzero(is_trade & ((side & np.uint64(SELL)) != 0))),
        feed_latency_p50_ns=int(lag[0]) if lag else None,
        feed_latency_p99_ns=int(lag[1]) if lag else None,
        exch_backward_steps=exch_back,
        local_backward_steps=local_back,
        book=check_book(events, instrument.tick_size) if instrument is not None else None,
    )


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="microseconds")


def format_summary(path: str, s: Summary, instrument: Instrument | None, meta: DatasetMeta | None) -> str:
    """The human-readable report ``cmm data info`` prints."""
    lines = [f"file        {path}"]
    if instrument is not None:
        lines.append(f"instrument  {instrument.symbol}  tick {instrument.tick_size:g}  lot {instrument.lot_size:g}"
                     f"  multiplier {instrument.contract_multiplier:g}"
                     + (f"  {instrument.kind}, settled in {instrument.settlement}" if instrument.settlement else ""))
    else:
        lines.append("instrument  (none stored: an hftbacktest file; give --tick-size for the book check)")
    if meta is not None:
        lines.append(f"source      {meta.source_format}: {', '.join(meta.sources)}")
        rows = f"source rows {meta.source_rows:,}"
        if meta.source_rows_by_kind:
            rows += "  (" + ", ".join(f"{k} {v:,}" for k, v in meta.source_rows_by_kind.items()) + ")"
        lines.append(rows)
        if meta.skipped:
            lines.append(f"skipped     {meta.skipped:,} bad line{'s' if meta.skipped != 1 else ''}")
    lines.append(f"events      {s.events:,} records: {s.both_timelines:,} on both timelines, "
                 f"{s.exch_only:,} exchange-only, {s.local_only:,} local-only copies")
    for name, n in s.by_kind.items():
        lines.append(f"  {name:<16}{n:>12,}")
    span = ""
    if s.first_local_ts is not None:
        span = f"  ({(s.last_local_ts - s.first_local_ts) / 1e9:,.3f} s)"
    lines.append(f"time        {_ts(s.first_local_ts)} .. {_ts(s.last_local_ts)}{span}")
    price = instrument.price_text if instrument is not None else (lambda px: f"{px:.12g}")
    if s.price_min is not None:
        lines.append(f"prices      {price(s.price_min)} .. {price(s.price_max)}")
    lines.append(f"trades      volume {s.trade_volume:g}; buyer-initiated {s.buy_initiated_trades:,}, "
                 f"seller-initiated {s.sell_initiated_trades:,}")
    if s.feed_latency_p50_ns is not None:
        lines.append(f"feed lag    p50 {s.feed_latency_p50_ns / 1e6:.3f} ms, p99 {s.feed_latency_p99_ns / 1e6:.3f} ms")
    order_ok = s.exch_backward_steps == 0 and s.local_backward_steps == 0
    lines.append("timelines   " + ("both monotonic" if order_ok else
                 f"NOT monotonic: {s.exch_backward_steps} exchange and {s.local_backward_steps} local steps back"))
    if s.book is not None:
        b = s.book
        state = "never crossed" if b.crossed == 0 else (
            f"CROSSED at {b.crossed:,} of {b.groups:,} checks, first at {_ts(b.first_crossed_ts)}")
        best = [price(px) if px is not None else "none" for px in (b.final_best_bid, b.final_best_ask)]
        lines.append(f"book        {state}; final best bid {best[0]}, best ask {best[1]}, "
                     f"{b.bid_levels} bid / {b.ask_levels} ask levels")
    if meta is not None:
        for note in meta.notes:
            lines.append(f"note        {note}")
        for example in meta.skipped_examples:
            lines.append(f"skipped     {example}")
    return "\n".join(lines)
