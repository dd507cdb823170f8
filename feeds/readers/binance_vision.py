"""Binance's public historical files (data.binance.vision): spot and futures trades, aggTrades, bookTicker.

Each daily (``SYMBOL-TYPE-YYYY-MM-DD.zip``) or monthly (``SYMBOL-TYPE-YYYY-MM.zip``)
zip holds one CSV of the same name; the zip or the CSV itself may be given. The
columns are those of binance/binance-public-data's README; futures files carry a
header row (since 2022), spot files and older futures files do not:

- ``trades``: ``id,price,qty,quote_qty,time,is_buyer_maker`` (+ ``is_best_match`` on
  spot; COIN-M has ``base_qty`` for ``quote_qty``) -> ``TRADE``, side the aggressor
  (``is_buyer_maker`` true: a seller hit the bid), ``order_id`` the trade id;
- ``aggTrades``: ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,
  transact_time,is_buyer_maker`` (+ ``is_best_match`` on spot) -> one ``TRADE`` per
  aggregate, ``order_id`` its id, ``ival`` the trades it sums;
- ``bookTicker`` (futures): ``update_id,best_bid_price,best_bid_qty,best_ask_price,
  best_ask_qty,transaction_time,event_time`` -> a one-level book, turned into depth
  changes by :mod:`feeds.readers.snapshot_diff`; ``ival`` the update id.

Times are ms since the epoch, but spot files from 2025-01-01 are in µs (Binance's
README): a file's unit is the one its first time is a date in, ms or µs, and every
time must be a date in that unit. The files record no receive time, so
``local_ts = exch_ts + --base-latency-ns`` (0 unless given), as the provenance says.
``bookDepth`` files sum the book within percentage bands around the mid; they
hold no price levels and are refused, as are klines and the other summaries.
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Sequence

import msgspec
import numpy as np

from common.errors import DataError, SkipCounter
from feeds.events import BUY, EVENT_DTYPE, SELL, TRADE
from feeds.ordering import merge_received
from feeds.readers import csvparse
from feeds.readers.base import Conversion, ReadOptions, typed_meta
from feeds.readers.binance import finish_clears, inferred_instrument
from feeds.readers.snapshot_diff import diff_snapshots
from feeds.readers.textio import iter_blocks
from feeds.timeunits import NS_PER_UNIT, plausible_range, unit_of

FORMAT = "binance-vision"

NAME = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<type>[A-Za-z0-9]+)-(?P<date>\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$")
F, I, W, S = csvparse.FLOAT, csvparse.INT, csvparse.WORD, csvparse.SKIP
# data type -> {column count: (names, kinds)}; the time column is named "time" in every layout.
LAYOUTS = {
    "trades": {
        6: (("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"), (I, F, F, S, I, W)),
        7: (("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"), (I, F, F, S, I, W, W)),
    },
    "aggTrades": {
        7: (("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "time", "is_buyer_maker"),
            (I, F, F, I, I, I, W)),
        8: (("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "time", "is_buyer_maker",
             "is_best_match"), (I, F, F, I, I, I, W, W)),
    },
    "bookTicker": {
        7: (("update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty", "time",
             "event_time"), (I, F, F, F, F, I, I)),
    },
}
# Binance's own header words for the time column, and for COIN-M's base_qty.
HEADER_ALIASES = {"transact_time": "time", "transaction_time": "time", "base_qty": "quote_qty"}
BOOK_DEPTH_HEADER = ("timestamp", "percentage", "depth", "notional")
WORDS = {"false": 0, "true": 1}
UNITS = ("ms", "µs")


class Source(msgspec.Struct, frozen=True):
    path: str
    member: str | None       # the CSV inside a zip
    name: str                # the CSV's file name (Binance's)
    where: str               # how errors name it


def source(path: str) -> Source:
    """The CSV to read: the zip's one member, or the file itself."""
    if path.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
        except FileNotFoundError:
            raise DataError("no such file", path=path) from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"not a readable zip: {e}", path=path) from None
        if len(members) != 1:
            raise DataError(f"expected one CSV in the zip, found {len(members)}", path=path)
        return Source(path, members[0], os.path.basename(members[0]), f"{path}[{members[0]}]")
    return Source(path, None, os.path.basename(path), path)


def data_type(src: Source, first_line: str) -> str:
    """trades, aggTrades or bookTicker, from Binance's file name or, failing that, the header."""
    fields = tuple(f.strip() for f in first_line.split(","))
    m = NAME.match(src.name)
    kind = m.group("type") if m else None
    if kind == "bookDepth" or fields == BOOK_DEPTH_HEADER:
        raise DataError("a bookDepth file sums the book within percentage bands around the mid (-5%..+5%), "
                        "not price levels: no book can be rebuilt from it; use bookTicker, or depth captures",
                        path=src.where, line=1, field="type")
    if kind is None:
        named = [(t, names) for t, layouts in LAYOUTS.items() for names, _ in layouts.values()
                 if tuple(HEADER_ALIASES.get(f, f) for f in fields) == names]
        if named:
            return named[0][0]
        raise DataError("cannot tell the data type: keep Binance's file name (SYMBOL-trades-YYYY-MM-DD.csv, "
                        "-aggTrades-, -bookTicker-) or its header row", path=src.where, line=1, field="type")
    if kind not in LAYOUTS:
        raise DataError(f"Binance {kind} files hold no trades or book levels to replay; convert trades, aggTrades "
                        f"or bookTicker files", path=src.where, line=1, field="type")
    return kind


def _first_line(src: Source) -> str:
    for _, block in iter_blocks(src.path, src.member, size=1 << 16):
        end = block.find(b"\n")
        return block[:end if end >= 0 else len(block)].decode("utf-8", "replace").strip()
    return ""


def sniff(path: str) -> bool:
    """True for a file (or a zip's one CSV) named as Binance names its public files, or with its headers."""
    try:
        src = source(path)
        if NAME.match(src.name):
            return True
        first = tuple(HEADER_ALIASES.get(f.strip(), f.strip()) for f in _first_line(src).split(","))
    except (DataError, OSError, EOFError, ValueError):
        return False
    return first == BOOK_DEPTH_HEADER or any(first == names for layouts in LAYOUTS.values()
                                             for names, _ in layouts.values())


# ---------------------------------------------------------------- one file


class FileRows(msgspec.Struct):
    data_type: str
    events: np.ndarray
    symbol: str | None
    rows: int
    unit: str
    header: bool


def _times(values: np.ndarray, lines: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """ns since the epoch, after checking every value is a date in the file's unit (that of its first)."""
    if len(values) == 0:
        return values, "ms"
    unit = unit_of(int(values[0]))
    if unit not in UNITS:
        got = f": a time in {unit}" if unit else ""
        raise DataError(f"expected ms since the epoch (µs in spot files from 2025), got {int(values[0])}{got}",
                        path=where, line=int(lines[0]), field="time")
    low, high = plausible_range(unit)
    bad = (values < low) | (values >= high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        other = unit_of(int(values[i]))
        got = f": a time in {other}" if other else ": not a date from 2000 to 2100"
        raise DataError(f"expected {unit} like the file's first row, got {int(values[i])}{got}", path=where,
                        line=int(lines[i]), field="time")
    return values * NS_PER_UNIT[unit], unit


def read_file(path: str, counter: SkipCounter, base_latency_ns: int) -> FileRows:
    src = source(path)
    first = _first_line(src)
    kind = data_type(src, first)
    header = bool(first) and not first[:1].isdigit()
    fields = first.split(",")
    layouts = LAYOUTS[kind]
    if len(fields) not in layouts:
        raise DataError(f"expected {' or '.join(str(n) for n in layouts)} comma-separated fields in a {kind} "
                        f"file, got {len(fields)}", path=src.where, line=1, field="fields")
    names, kinds = layouts[len(fields)]
    if header and tuple(HEADER_ALIASES.get(f.strip(), f.strip()) for f in fields) != names:
        raise DataError(f"expected the {kind} header {','.join(names)!r}, got {first[:100]!r}", path=src.where,
                        line=1, field="header")
    parsed = csvparse.parse_located(iter_blocks(src.path, src.member), kinds, names, src.where, counter,
                                    skip_lines=1 if header else 0, words=WORDS)
    time_col = names.index("time")
    exch, unit = _times(parsed.ints[:, time_col], parsed.lines, src.where)
    local = exch + base_latency_ns
    f, i = parsed.floats, parsed.ints
    if kind == "bookTicker":
        events = diff_snapshots(exch, local, f[:, 1:2], f[:, 2:3], f[:, 3:4], f[:, 4:5], ival=i[:, 0],
                                path=src.where, lines=parsed.lines)
    else:
        px, qty = f[:, 1], f[:, 2]
        bad = ~((px > 0) & np.isfinite(px)) | ~((qty >= 0) & np.isfinite(qty))
        for r in np.flatnonzero(bad)[:counter.KEEP]:
            counter.bad(DataError(f"expected a positive price and a size >= 0, got {float(px[r])!r}, "
                                  f"{float(qty[r])!r}", path=src.where, line=int(parsed.lines[r]), field="price"))
        counter.count += max(0, int(np.count_nonzero(bad)) - counter.KEEP)
        keep = ~bad
        maker = i[keep, names.index("is_buyer_maker")] == WORDS["true"]
        events = np.zeros(int(np.count_nonzero(keep)), dtype=EVENT_DTYPE)
        events["ev"] = np.uint64(TRADE) | np.where(maker, np.uint64(SELL), np.uint64(BUY))
        events["exch_ts"], events["local_ts"] = exch[keep], local[keep]
        events["px"], events["qty"], events["order_id"] = px[keep], qty[keep], i[keep, 0].astype(np.uint64)
        if kind == "aggTrades":
            events["ival"] = i[keep, 4] - i[keep, 3] + 1
    m = NAME.match(src.name)
    return FileRows(kind, events, m.group("symbol") if m else None, len(parsed), unit, header)


# ---------------------------------------------------------------- several files


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    files: list[FileRows] = []
    with options.progress(len(paths), "binance-vision") as bar:
        for path in paths:
            got = read_file(path, counter, options.base_latency_ns)
            known = next((f.symbol for f in files if f.symbol), None)
            if got.symbol and known and got.symbol != known:
                raise DataError(f"symbol {got.symbol} differs from the first input's {known}; convert each "
                                f"instrument separately", path=path, field="symbol")
            files.append(got)
            bar.update()
    types = {f.data_type for f in files}
    if {"trades", "aggTrades"} <= types:
        raise DataError("trades and aggTrades files describe the same trades (an aggTrade sums a taker order's "
                        "fills): give one of them", path=", ".join(paths), field="INPUT")
    events = merge_received([f.events for f in files if f.data_type != "bookTicker"],
                            [f.events for f in files if f.data_type == "bookTicker"])
    finish_clears(events)
    symbol = next((f.symbol for f in files if f.symbol), os.path.basename(paths[0]).split(".")[0])
    instrument, instrument_notes = inferred_instrument(events, symbol, options, paths)
    notes = [f"Binance Vision files record no receive time: local_ts = exch_ts + {options.base_latency_ns} ns "
             f"(--base-latency-ns)"]
    notes += [f"{path}: times in {f.unit}{', no header row' if not f.header else ''}" for path, f in zip(paths, files)]
    meta = typed_meta(FORMAT, paths, [(f.data_type, f.rows) for f in files], counter, notes + instrument_notes)
    return Conversion(events=events, instrument=instrument, meta=meta)
