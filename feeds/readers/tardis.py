"""Tardis.dev's downloadable CSV files (plain or gzip), per Tardis's "Data Types" page.

Every file starts with a header whose first four columns are
``exchange,symbol,timestamp,local_timestamp``; both times are microseconds since
the epoch (UTC): ``timestamp`` is the exchange's (``local_timestamp`` where the
exchange gives none), ``local_timestamp`` when Tardis received the message, our
``local_ts``. The rest of the header names the data type:

- ``incremental_book_L2`` (``is_snapshot,side,price,amount``): ``amount`` is the
  level's new total, 0 removes it. A run of ``is_snapshot=true`` rows is a full
  book: it becomes a ``DEPTH_CLEAR`` and a ``DEPTH_SNAPSHOT`` per level for bids,
  then the same for asks (hftbacktest's order), the clears reaching every level the
  side has held. Rows before the file's first snapshot are skipped, as Tardis says
  (updates buffered before the exchange sent its snapshot), and counted in a note.
  Other rows are ``DEPTH`` events; rows sharing a ``local_timestamp`` are one message.
- ``trades`` (``id,side,price,amount``): ``TRADE``, side the aggressor (``buy``,
  ``sell``; ``unknown`` gives no side).
- ``quotes`` and ``book_ticker`` (``ask_amount,ask_price,bid_price,bid_amount``) and
  ``book_snapshot_N`` (``asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,``
  ... for N levels): full snapshots of the top of the book, turned into depth
  changes by :mod:`feeds.readers.snapshot_diff` (a quote is a one-level book).
- ``derivative_ticker``, ``liquidations``, ``options_chain``: no book or trades
  the engine replays; refused by name.

Several files (a ``trades`` and an ``incremental_book_L2`` of one day, or days in
a row) are one stream, merged by ``local_timestamp``; at equal times trades come
first, as hftbacktest's converter asks (a trade before the depth change it
caused, so a queue is not reduced twice). One source of the book per conversion.
"""
from __future__ import annotations

import gzip
import os
from typing import Sequence

import msgspec
import numba as nb
import numpy as np

from common.errors import DataError, SkipCounter
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, SELL, TRADE
from feeds.ordering import merge_received
from feeds.readers import csvparse
from feeds.readers.base import Conversion, ReadOptions, typed_meta
from feeds.readers.binance import finish_clears, inferred_instrument
from feeds.readers.snapshot_diff import diff_snapshots
from feeds.readers.textio import iter_blocks
from feeds.timeunits import NS_PER_UNIT, plausible_range, unit_of

FORMAT = "tardis"

PREFIX = ("exchange", "symbol", "timestamp", "local_timestamp")
L2 = ("is_snapshot", "side", "price", "amount")
TRADES = ("id", "side", "price", "amount")
QUOTES = ("ask_amount", "ask_price", "bid_price", "bid_amount")
UNREPLAYED = {   # Tardis data types that hold no book or trades, told by a column only they have
    "funding_rate": "derivative_ticker", "mark_price": "derivative_ticker", "strike_price": "options_chain",
}
UNIT = "µs"

# Codes of the words a WORD column may hold; each column accepts only its own.
WORDS = {"false": 10, "true": 11, "bid": 1, "ask": 2, "buy": 3, "sell": 4, "unknown": 5}
SNAPSHOT_WORDS = {"true": 11, "false": 10}
BOOK_SIDES = {"bid": 1, "ask": 2}
TRADE_SIDES = {"buy": 3, "sell": 4, "unknown": 5}


def snapshot_columns(levels: int) -> tuple[str, ...]:
    """``book_snapshot_N``'s columns after the prefix: per level, the ask's price and amount, then the bid's."""
    return tuple(f"{side}[{i}].{what}" for i in range(levels) for side in ("asks", "bids")
                 for what in ("price", "amount"))


class Layout(msgspec.Struct, frozen=True):
    data_type: str           # incremental_book_L2, trades, quotes or book_snapshot_N
    columns: tuple[str, ...]
    kinds: tuple[int, ...]
    levels: int = 0          # snapshot levels per side (quotes: 1)


def layout(header: list[str], path: str) -> Layout:
    """What a header says the file holds, or a DataError naming what is wrong with it."""
    if tuple(header[:4]) != PREFIX:
        raise DataError(f"expected a Tardis header starting {','.join(PREFIX)}, got {','.join(header)[:80]!r}",
                        path=path, line=1, field="header")
    rest = tuple(header[4:])
    head = (csvparse.SKIP, csvparse.SKIP, csvparse.INT, csvparse.INT)
    if rest == L2:
        return Layout("incremental_book_L2", tuple(header),
                      head + (csvparse.WORD, csvparse.WORD, csvparse.FLOAT, csvparse.FLOAT))
    if rest == TRADES:
        if "liquidations" in os.path.basename(path):   # trades' columns, Tardis's file name tells them apart
            raise DataError("a Tardis liquidations file holds forced orders, not the market's trades: convert the "
                            "trades file", path=path, line=1, field="header")
        return Layout("trades", tuple(header), head + (csvparse.SKIP, csvparse.WORD, csvparse.FLOAT, csvparse.FLOAT))
    if rest == QUOTES:   # book_ticker files share quotes' columns; Tardis's file name tells them apart
        name = "book_ticker" if "book_ticker" in os.path.basename(path) else "quotes"
        return Layout(name, tuple(header), head + (csvparse.OPTIONAL_FLOAT,) * 4, levels=1)
    if rest and len(rest) % 4 == 0 and rest == snapshot_columns(len(rest) // 4):
        levels = len(rest) // 4
        return Layout(f"book_snapshot_{levels}", tuple(header), head + (csvparse.OPTIONAL_FLOAT,) * len(rest),
                      levels=levels)
    named = next((UNREPLAYED[c] for c in rest if c in UNREPLAYED), None)
    if named:
        raise DataError(f"a Tardis {named} file holds no book or trades to replay; convert incremental_book_L2, "
                        f"trades, quotes, book_ticker or book_snapshot_N files", path=path, line=1, field="header")
    raise DataError(f"not a Tardis data type this reader knows: columns {','.join(rest)[:80]!r} after "
                    f"{','.join(PREFIX)}", path=path, line=1, field="header")


def _first_lines(path: str, n: int = 2) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(1 << 16)
    return head.decode("utf-8", "replace").splitlines()[:n]


def sniff(path: str) -> bool:
    """True when the first line starts with Tardis's four common columns."""
    try:
        lines = _first_lines(path, 1)
    except (OSError, EOFError, ValueError):
        return False
    return bool(lines) and tuple(lines[0].strip().split(",")[:4]) == PREFIX


# ---------------------------------------------------------------- one file


class FileRows(msgspec.Struct):
    data_type: str
    events: np.ndarray
    symbol: str
    exchange: str
    rows: int                # data rows read
    skipped_before_snapshot: int = 0


def _check_times(parsed: csvparse.ParsedColumns, path: str) -> tuple[np.ndarray, np.ndarray]:
    """exch_ts and local_ts in ns, after checking both columns are µs since the epoch and local never steps back."""
    low, high = plausible_range(UNIT)
    for col, name in ((2, "timestamp"), (3, "local_timestamp")):
        values = parsed.ints[:, col]
        bad = (values < low) | (values >= high)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            unit = unit_of(int(values[i]))
            hint = f": a time in {unit}, not µs; Tardis files are in microseconds" if unit else ""
            raise DataError(f"expected microseconds since the epoch from 2000 to 2100, got {int(values[i])}{hint}",
                            path=path, line=int(parsed.lines[i]), field=name)
    local = parsed.ints[:, 3]
    back = np.flatnonzero(np.diff(local) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"local_timestamp goes backwards: {int(local[i])} after {int(local[i - 1])} on line "
                        f"{int(parsed.lines[i - 1])}; Tardis writes rows in the order they arrived",
                        path=path, line=int(parsed.lines[i]), field="local_timestamp")
    scale = NS_PER_UNIT[UNIT]
    return parsed.ints[:, 2] * scale, local * scale


def _refuse_rows(bad: np.ndarray, parsed, path: str, field: str, reason, counter: SkipCounter) -> None:
    """Raise for the first row of ``bad`` or, under skip, count them all (locating the first few)."""
    rows = np.flatnonzero(bad)
    for i in rows[:counter.KEEP]:
        counter.bad(DataError(reason(i), path=path, line=int(parsed.lines[i]), field=field))
    counter.count += max(0, len(rows) - counter.KEEP)


def _word_column(parsed: csvparse.ParsedColumns, col: int, allowed: dict[str, int], name: str, path: str,
                 counter: SkipCounter) -> np.ndarray:
    """Mask of the rows whose word in ``col`` is one ``allowed`` there; others raise or are counted."""
    good = np.isin(parsed.ints[:, col], list(allowed.values()))
    _refuse_rows(~good, parsed, path, name, lambda i: f"expected one of {', '.join(allowed)}", counter)
    return good


def _valid_values(px: np.ndarray, qty: np.ndarray, parsed, keep: np.ndarray, path: str,
                  counter: SkipCounter) -> np.ndarray:
    """``keep`` less rows with a price that is not positive or a size that is negative."""
    bad_px = keep & ~((px > 0) & np.isfinite(px))
    _refuse_rows(bad_px, parsed, path, "price", lambda i: f"expected a positive price, got {float(px[i])!r}",
                 counter)
    keep = keep & ~bad_px
    bad_qty = keep & ~((qty >= 0) & np.isfinite(qty))
    _refuse_rows(bad_qty, parsed, path, "amount", lambda i: f"expected an amount >= 0, got {float(qty[i])!r}",
                 counter)
    return keep & ~bad_qty


@nb.njit(cache=True)
def _l2_events(out, write, snap, bid, px, qty, exch, local):
    """incremental_book_L2 rows as events; returns (events, rows before the first snapshot).

    A snapshot run becomes DEPTH_CLEAR + DEPTH_SNAPSHOT rows of the bids, then of the asks,
    each clear stamped with its side's first row and reaching the side's deepest price.
    """
    n = snap.shape[0]
    k = 0
    skipped = 0
    started = False
    i = 0
    while i < n:
        if not snap[i]:
            if not started:
                skipped += 1
            else:
                if write:
                    out[k].ev = DEPTH | (BUY if bid[i] else SELL)
                    out[k].exch_ts = exch[i]
                    out[k].local_ts = local[i]
                    out[k].px = px[i]
                    out[k].qty = qty[i]
                k += 1
            i += 1
            continue
        j = i
        while j < n and snap[j]:
            j += 1
        started = True
        for side_is_bid in (True, False):
            first = -1
            deepest = 0.0
            for r in range(i, j):
                if bid[r] == side_is_bid:
                    if first < 0:
                        first = r
                        deepest = px[r]
                    elif (px[r] < deepest) if side_is_bid else (px[r] > deepest):
                        deepest = px[r]
            at = first if first >= 0 else i
            flag = BUY if side_is_bid else SELL
            if write:
                out[k].ev = DEPTH_CLEAR | flag
                out[k].exch_ts = exch[at]
                out[k].local_ts = local[at]
                out[k].px = deepest
            k += 1
            for r in range(i, j):
                if bid[r] == side_is_bid:
                    if write:
                        out[k].ev = DEPTH_SNAPSHOT | flag
                        out[k].exch_ts = exch[r]
                        out[k].local_ts = local[r]
                        out[k].px = px[r]
                        out[k].qty = qty[r]
                    k += 1
        i = j
    return k, skipped


def _l2(parsed, exch, local, path, counter) -> tuple[np.ndarray, int]:
    keep = _word_column(parsed, 4, SNAPSHOT_WORDS, "is_snapshot", path, counter)
    keep &= _word_column(parsed, 5, BOOK_SIDES, "side", path, counter)
    px, qty = parsed.floats[:, 6], parsed.floats[:, 7]
    keep = _valid_values(px, qty, parsed, keep, path, counter)
    args = (parsed.ints[keep, 4] == WORDS["true"], parsed.ints[keep, 5] == WORDS["bid"], px[keep], qty[keep],
            exch[keep], local[keep])
    count, skipped = _l2_events(np.zeros(1, dtype=EVENT_DTYPE), False, *args)
    out = np.zeros(count, dtype=EVENT_DTYPE)
    _l2_events(out, True, *args)
    return out, int(skipped)


def _trades(parsed, exch, local, path, counter) -> np.ndarray:
    keep = _word_column(parsed, 5, TRADE_SIDES, "side", path, counter)
    px, qty = parsed.floats[:, 6], parsed.floats[:, 7]
    keep = _valid_values(px, qty, parsed, keep, path, counter)
    side = parsed.ints[keep, 5]
    out = np.zeros(int(np.count_nonzero(keep)), dtype=EVENT_DTYPE)
    out["ev"] = np.uint64(TRADE) | np.where(side == WORDS["buy"], np.uint64(BUY),
                                            np.where(side == WORDS["sell"], np.uint64(SELL), np.uint64(0)))
    out["exch_ts"], out["local_ts"], out["px"], out["qty"] = exch[keep], local[keep], px[keep], qty[keep]
    return out


def _snapshots(parsed, exch, local, lay: Layout, path) -> np.ndarray:
    f = parsed.floats[:, 4:]
    if lay.levels == 1:              # quotes, book_ticker: ask_amount, ask_price, bid_price, bid_amount
        ask_qty, ask_px, bid_px, bid_qty = f[:, 0:1], f[:, 1:2], f[:, 2:3], f[:, 3:4]
    else:                            # per level: asks price, asks amount, bids price, bids amount
        ask_px, ask_qty, bid_px, bid_qty = f[:, 0::4], f[:, 1::4], f[:, 2::4], f[:, 3::4]
    return diff_snapshots(exch, local, bid_px, bid_qty, ask_px, ask_qty, path=path, lines=parsed.lines)


def read_file(path: str, counter: SkipCounter) -> FileRows:
    blocks = iter_blocks(path)
    first = next(blocks, None)
    if first is None:
        raise DataError("empty file: expected a Tardis header", path=path, line=1, field="header")
    _, data = first
    end = data.find(b"\n")
    try:
        header = data[:end if end >= 0 else len(data)].decode("utf-8").strip().split(",")
    except UnicodeDecodeError:
        raise DataError("expected UTF-8 text", path=path, line=1, field="header") from None
    lay = layout(header, path)
    rest = data[end + 1:] if end >= 0 else b""
    second = rest[:rest.find(b"\n")] if b"\n" in rest else rest
    names = second.decode("utf-8", "replace").split(",")
    exchange, symbol = (names[0].strip(), names[1].strip()) if len(names) > 1 else ("", "")

    def all_blocks():
        yield first
        yield from blocks

    side_words = tuple(TRADE_SIDES if lay.data_type == "trades" else BOOK_SIDES)
    parsed = csvparse.parse_located(all_blocks(), lay.kinds, lay.columns, path, counter, skip_lines=1, words=WORDS,
                                    column_words={"is_snapshot": ("true", "false"), "side": side_words})
    exch, local = _check_times(parsed, path)
    skipped = 0
    if lay.data_type == "incremental_book_L2":
        events, skipped = _l2(parsed, exch, local, path, counter)
    elif lay.data_type == "trades":
        events = _trades(parsed, exch, local, path, counter)
    else:
        events = _snapshots(parsed, exch, local, lay, path)
    return FileRows(lay.data_type, events, symbol, exchange, len(parsed), skipped)


# ---------------------------------------------------------------- several files


def _book_source(data_type: str) -> str | None:
    return None if data_type == "trades" else ("incremental_book_L2" if data_type == "incremental_book_L2"
                                              else "snapshots")


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    files: list[FileRows] = []
    with options.progress(len(paths), "tardis") as bar:
        for path in paths:
            got = read_file(path, counter)
            if files and got.symbol and files[0].symbol and (got.symbol, got.exchange) != (files[0].symbol,
                                                                                           files[0].exchange):
                raise DataError(f"{got.exchange} {got.symbol} differs from the first input's {files[0].exchange} "
                                f"{files[0].symbol}; convert each instrument separately", path=path, line=2,
                                field="symbol")
            files.append(got)
            bar.update()
    sources = {_book_source(f.data_type) for f in files} - {None}
    if len(sources) > 1:
        kinds = ", ".join(sorted({f.data_type for f in files if f.data_type != "trades"}))
        raise DataError(f"two sources of the book ({kinds}): give one of incremental_book_L2 or the snapshot "
                        f"types, with trades", path=", ".join(paths), field="INPUT")
    events = merge_received([f.events for f in files if f.data_type == "trades"],
                            [f.events for f in files if f.data_type != "trades"])
    finish_clears(events)
    symbol = next((f.symbol for f in files if f.symbol), "tardis")
    instrument, instrument_notes = inferred_instrument(events, symbol, options, paths)
    notes = ["Tardis timestamps are µs: timestamp -> exch_ts, local_timestamp -> local_ts, both in ns"]
    notes += [f"{path}: {f.skipped_before_snapshot:,} incremental_book_L2 rows before the file's first snapshot "
              f"skipped (updates buffered before the exchange's snapshot, as Tardis documents)"
              for path, f in zip(paths, files) if f.skipped_before_snapshot]
    notes += [f"{path}: no snapshot, so no book: every row skipped" for path, f in zip(paths, files)
              if f.data_type == "incremental_book_L2" and f.rows and not len(f.events)]
    meta = typed_meta(FORMAT, paths, [(f.data_type, f.rows) for f in files], counter, notes + instrument_notes)
    return Conversion(events=events, instrument=instrument, meta=meta)
