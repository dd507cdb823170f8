"""Our documented CSV, for users' own tick data (the README's "Our CSV format" section describes it).

::

    # symbol=BTCUSDT
    # tick_size=0.1
    exch_ts,local_ts,event,side,price,qty,order_id
    1723075200000000000,1723075200000350000,depth,bid,60000.1,2.5,

Leading ``# key=value`` lines give the instrument; then a fixed header; then
one event per row. A jitted tokenizer parses each row in one pass, numbers
with :mod:`feeds.readers.csvparse`'s exact field parser and the two word columns
(event, side) by matching their bytes against small name tables, writing
event records directly: no Python per row.

``local_ts`` must never go backwards, in every error mode: a capture is
written in the order it was received, so a backward step means rows were
merged or shuffled, and skipping the row would drop a book update and leave
every later book state silently wrong.
"""
from __future__ import annotations

import gzip
import itertools
import os
import re
from typing import Iterator, Sequence

import msgspec
import numba as nb
import numpy as np

from feeds.readers import csvparse
from common.errors import DataError, SkipCounter
from feeds.events import (ADD_ORDER, BUY, CANCEL_ORDER, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT,
                     EVENT_DTYPE, FILL, KIND_NAMES, KINDS_BY_NAME, MODIFY_ORDER, SELL, TRADE,
                     TRADING_STATUS)
from feeds.instrument import Instrument
from feeds.ordering import early_outlier_reason, early_outliers
from feeds.readers.base import Conversion, ReadOptions, instrument_with_overrides
from feeds.store import DatasetMeta
from feeds.readers.textio import iter_blocks
from feeds.timeunits import YEAR_2000_NS, YEAR_2100_NS, unit_of

FORMAT = "csv"

COLUMNS = ("exch_ts", "local_ts", "event", "side", "price", "qty")
HEADER = ",".join(COLUMNS)
HEADER_WITH_ORDER_ID = HEADER + ",order_id"
INSTRUMENT_KEYS = ("symbol", "tick_size", "lot_size", "contract_multiplier")
DEFAULT_LOT_SIZE = 1.0
# Timestamps are nanoseconds from 2000 to 2100: in that range a count in µs, ms or s is no date.
MIN_TIMESTAMP_NS, MAX_TIMESTAMP_NS = YEAR_2000_NS, YEAR_2100_NS

_FIELD_LINE = re.compile(r"#\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$")
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")

# Error codes beyond csvparse's.
E_EVENT = 20           # not an event name
E_SIDE = 21            # not a side word
E_SIDE_NEEDED = 22     # the event needs a side
E_SIDE_UNWANTED = 23   # the event takes no side
E_ORDER_ID = 24        # an L3 event without an order id
E_TIMESTAMP = 25       # outside MIN_TIMESTAMP_NS..MAX_TIMESTAMP_NS
E_PRICE = 26           # price <= 0 where a price is needed
E_QTY = 27             # negative quantity
E_STATUS = 28          # trading_status value not -1, 0 or 1

# What each kind needs: a side (0 none, 1 optional, 2 required), a price, a quantity, an order id.
NO_SIDE, OPTIONAL_SIDE, SIDE_REQUIRED = 0, 1, 2
_SIDE_RULE = np.zeros(256, dtype=np.int64)
_NEEDS_PRICE = np.zeros(256, dtype=np.bool_)
_NEEDS_QTY = np.zeros(256, dtype=np.bool_)
_NEEDS_ORDER_ID = np.zeros(256, dtype=np.bool_)
_SIDE_RULE[[DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, MODIFY_ORDER]] = SIDE_REQUIRED
_SIDE_RULE[[TRADE, CANCEL_ORDER, FILL]] = OPTIONAL_SIDE
_NEEDS_PRICE[[DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, MODIFY_ORDER, FILL]] = True
_NEEDS_QTY[[DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, MODIFY_ORDER, FILL]] = True
_NEEDS_ORDER_ID[[ADD_ORDER, CANCEL_ORDER, MODIFY_ORDER, FILL]] = True

SIDE_WORDS = {"buy": BUY, "bid": BUY, "sell": SELL, "ask": SELL}


_EVENT_TABLE = csvparse.name_table(KINDS_BY_NAME)
_SIDE_TABLE = csvparse.name_table(SIDE_WORDS)


@nb.njit(cache=True)
def _trim(buf, start, end):
    while start < end and (buf[start] == 32 or buf[start] == 9):
        start += 1
    while end > start and (buf[end - 1] == 32 or buf[end - 1] == 9):
        end -= 1
    return start, end


@nb.njit(cache=True)
def _row(buf, start, end, ncol, tables, side_rule, needs_price, needs_qty, needs_oid, pow10, out, k):
    """Parse one row into out[k]; return (error code, 0-based column of the error)."""
    ev_table, ev_len, ev_code, side_table, side_len, side_code = tables
    r = out[k]          # a row left half-written by an earlier bad line is reset first
    r.ev = 0
    r.exch_ts = 0
    r.local_ts = 0
    r.px = 0.0
    r.qty = 0.0
    r.order_id = 0
    r.ival = 0
    r.fval = 0.0
    col = 0
    fstart = start
    kind = 0
    side = 0
    pos = start
    while True:
        if pos == end or buf[pos] == 44:
            if col >= ncol:
                return csvparse.E_MANY_FIELDS, col
            a, b = _trim(buf, fstart, pos)
            if col <= 1 or col == 6:                       # exch_ts, local_ts, order_id
                if col == 6 and a == b:
                    if needs_oid[kind]:
                        return E_ORDER_ID, col
                else:
                    e, _, iv = csvparse._parse_field(buf, a, b, csvparse.INT, pow10)
                    if e != csvparse.OK:
                        return e, col
                    if col == 6:
                        if iv < 0:
                            return csvparse.E_NUMBER, col
                        out[k].order_id = iv
                    elif iv < MIN_TIMESTAMP_NS or iv >= MAX_TIMESTAMP_NS:
                        return E_TIMESTAMP, col
                    elif col == 0:
                        out[k].exch_ts = iv
                    else:
                        out[k].local_ts = iv
            elif col == 2:
                kind = csvparse.match_name(buf, a, b, ev_table, ev_len, ev_code)
                if kind < 0:
                    return E_EVENT, col
            elif col == 3:
                if a == b:
                    if side_rule[kind] == SIDE_REQUIRED:
                        return E_SIDE_NEEDED, col
                else:
                    side = csvparse.match_name(buf, a, b, side_table, side_len, side_code)
                    if side < 0:
                        return E_SIDE, col
                    if side_rule[kind] == NO_SIDE:
                        return E_SIDE_UNWANTED, col
            else:                                          # price, qty
                needed = needs_price[kind] if col == 4 else needs_qty[kind]
                v = 0.0
                if a < b or needed or kind == TRADING_STATUS and col == 4:
                    e, v, _ = csvparse._parse_field(buf, a, b, csvparse.FLOAT, pow10)
                    if e != csvparse.OK:
                        return e, col
                if col == 4:
                    if kind == TRADING_STATUS:
                        if v != -1.0 and v != 0.0 and v != 1.0:
                            return E_STATUS, col
                        out[k].fval = v
                        v = 0.0
                    elif v <= 0.0 and needed:
                        return E_PRICE, col
                    out[k].px = v
                else:
                    if v < 0.0:
                        return E_QTY, col
                    out[k].qty = v
            col += 1
            if pos == end:
                break
            fstart = pos + 1
        pos += 1
    if col < ncol:
        return csvparse.E_FEW_FIELDS, col
    if ncol == 6 and needs_oid[kind]:
        return E_ORDER_ID, 6
    out[k].ev = kind | side
    return csvparse.OK, 0


@nb.njit(cache=True)
def _parse(buf, line0, first_line, ncol, tables, side_rule, needs_price, needs_qty, needs_oid, skip_bad,
           pow10, out, out_line, bad):
    """Parse every row after the header line ``first_line`` in ``buf``, a block whose first line is
    line ``line0 + 1``; bad = (line, code, column, start byte) of the first bad rows.

    Returns (rows written, bad rows). Without ``skip_bad`` it stops at the first bad row.
    """
    n = buf.shape[0]
    pos = 0
    line = line0
    k = 0
    nbad = 0
    while pos < n:
        line += 1
        end, eol = csvparse.line_at(buf, pos)
        a, b = _trim(buf, pos, end)
        if line > first_line and a < b and buf[a] != 35:
            err, col = _row(buf, pos, end, ncol, tables, side_rule, needs_price, needs_qty, needs_oid,
                            pow10, out, k)
            if err == csvparse.OK:
                out_line[k] = line
                k += 1
            else:
                if nbad < bad.shape[0]:
                    bad[nbad, 0] = line
                    bad[nbad, 1] = err
                    bad[nbad, 2] = col
                    bad[nbad, 3] = pos
                nbad += 1
                if not skip_bad:
                    return k, nbad
        pos = eol
    return k, nbad


# ---------------------------------------------------------------- the preamble


def _preamble(blocks: Iterator[tuple[int, bytes]], path: str) -> tuple[dict, int, int, tuple[int, bytes]]:
    """Instrument fields from the leading ``#`` lines, the header's line number and column count,
    and the block the header is in (its rows follow the header)."""
    fields: dict = {}
    for line0, data in blocks:
        start, lineno = 0, line0
        while (text_at := _NOT_BLANK.search(data, start)) is not None:   # blank lines skipped at C speed
            lineno += data.count(b"\n", start, text_at.start())
            start = data.rfind(b"\n", start, text_at.start()) + 1 or start
            end = data.find(b"\n", text_at.start())
            end = len(data) if end < 0 else end
            raw, start, lineno = data[start:end], end + 1, lineno + 1
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError("expected UTF-8 text", path=path, line=lineno, field="header") from None
            if not text:
                continue
            if text.startswith("#"):
                m = _FIELD_LINE.match(text)
                if m is not None:
                    key, value = m.groups()
                    fields[key] = _instrument_value(key, value, fields, path, lineno)
                continue
            if text in (HEADER, HEADER_WITH_ORDER_ID):
                return fields, lineno, 6 if text == HEADER else 7, (line0, data)
            raise DataError(f"expected the header {HEADER!r} (optionally followed by ',order_id'), "
                            f"got {text[:80]!r}", path=path, line=lineno, field="header")
    raise DataError(f"no header line: expected {HEADER!r}", path=path, field="header")


def _instrument_value(key: str, value: str, fields: dict, path: str, lineno: int):
    if key not in INSTRUMENT_KEYS:
        raise DataError(f"unknown key {key!r}; expected one of {', '.join(INSTRUMENT_KEYS)}",
                        path=path, line=lineno, field=key)
    if key in fields:
        raise DataError(f"{key} is given twice", path=path, line=lineno, field=key)
    if key == "symbol":
        if not value:
            raise DataError("empty symbol", path=path, line=lineno, field=key)
        return value
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise DataError(f"expected a positive number, got {value!r}", path=path, line=lineno, field=key)
    return number


def _instrument(fields: dict, path: str, options: ReadOptions, symbol: str) -> Instrument:
    if "tick_size" not in fields and options.tick_size is None:
        raise DataError("no tick size: give it in the file as a '# tick_size=0.01' line before the "
                        "header, or with --tick-size", path=path, field="tick_size")
    default = Instrument(
        symbol=fields.get("symbol", symbol),
        tick_size=fields.get("tick_size", options.tick_size or 1.0),
        lot_size=fields.get("lot_size", DEFAULT_LOT_SIZE),
        contract_multiplier=fields.get("contract_multiplier", 1.0),
    )
    return instrument_with_overrides(default, options)


# ---------------------------------------------------------------- errors


def _describe(code: int, col: int, line_text: bytes, ncol: int) -> tuple[str, str]:
    """(field, reason) for a bad row, quoting what was there."""
    fields = line_text.decode("utf-8", "replace").rstrip("\r").split(",")
    name = (COLUMNS + ("order_id",))[col] if col < 7 else "fields"
    got = fields[col].strip() if col < len(fields) else ""
    event = fields[2].strip().lower() if len(fields) > 2 else ""
    if code in (csvparse.E_FEW_FIELDS, csvparse.E_MANY_FIELDS):
        return "fields", f"expected {ncol} comma-separated fields, got {len(fields)}"
    if code == E_EVENT:
        return name, f"expected an event name ({', '.join(KIND_NAMES.values())}), got {got!r}"
    if code == E_SIDE:
        return name, f"expected buy, sell, bid, ask or empty, got {got!r}"
    if code == E_SIDE_NEEDED:
        return name, f"a {event} event needs a side: buy, sell, bid or ask"
    if code == E_SIDE_UNWANTED:
        return name, f"a {event} event takes no side, got {got!r}"
    if code == E_ORDER_ID:
        if ncol == 6:
            return "order_id", f"a {event} event needs an order id: add the order_id column to the header"
        return name, f"a {event} event needs an order id"
    if code == E_TIMESTAMP:
        unit = unit_of(int(got)) if got.isdigit() else None
        return name, (f"expected integer nanoseconds since the epoch, from 2000 to 2100 ({MIN_TIMESTAMP_NS} "
                      f"to {MAX_TIMESTAMP_NS}), got {got!r}" + (f": a time in {unit}?" if unit else ""))
    if code == E_PRICE:
        return name, f"expected a positive price, got {got!r}"
    if code == E_QTY:
        return name, f"expected a quantity >= 0, got {got!r}"
    if code == E_STATUS:
        return name, f"a trading_status row carries its status here: expected -1 (halted), 0 (quoting " \
                     f"only) or 1 (trading), got {got!r}"
    if code == csvparse.E_NUMBER and col == 6:
        return name, f"expected an integer order id >= 0, got {got!r}"
    kind = csvparse.FLOAT if col in (4, 5) else csvparse.INT
    return name, f"{csvparse.describe_error(code, kind)}, got {got!r}"


def _row_error(data: bytes, bad_row: np.ndarray, ncol: int, path: str) -> DataError:
    line, code, col, start = (int(v) for v in bad_row)
    end = data.find(b"\n", start)
    field, reason = _describe(code, col, data[start:end if end >= 0 else len(data)], ncol)
    return DataError(reason, path=path, line=line, field=field)


# ---------------------------------------------------------------- read


# The shortest row that parses: two timestamps of at least 16 digits (MIN_TIMESTAMP_NS),
# an event name of at least 4 letters and 5 commas. It bounds the rows a block can hold.
MIN_ROW_BYTES = 2 * 16 + 4 + 5


def _read_block(block: bytes, line0: int, header_line: int, ncol: int, counter: SkipCounter, path: str):
    """The events of one block of whole lines and the line of each; bad rows go to ``counter``."""
    buf = np.frombuffer(block, dtype=np.uint8)
    cap = min(int(np.count_nonzero(buf == 10)) + 1, len(buf) // MIN_ROW_BYTES + 1)
    out = np.zeros(cap, dtype=EVENT_DTYPE)
    lines = np.zeros(cap, dtype=np.int64)
    bad = np.zeros((64, 4), dtype=np.int64)
    n, nbad = _parse(buf, line0, header_line, ncol, (*_EVENT_TABLE, *_SIDE_TABLE), _SIDE_RULE, _NEEDS_PRICE,
                     _NEEDS_QTY, _NEEDS_ORDER_ID, counter.policy == "skip", csvparse._POW10, out, lines, bad)
    for i in range(nbad):
        if i < len(bad):
            counter.bad(_row_error(block, bad[i], ncol, path))
        else:
            counter.bad(DataError("bad row (beyond the first 64, not located)", path=path))
    return out[:n].copy(), lines[:n].copy()


class FileEvents(msgspec.Struct):
    events: np.ndarray
    lines: np.ndarray      # source line of each event
    instrument: Instrument


def read_file(path: str, options: ReadOptions, counter: SkipCounter, symbol: str) -> FileEvents:
    """One file's events in row order; bad rows raise or, under skip, are counted.

    ``symbol`` names the instrument when neither the file nor the options do.
    """
    blocks = iter_blocks(path)
    fields, header_line, ncol, first = _preamble(blocks, path)
    instrument = _instrument(fields, path, options, symbol)
    parts = []
    for line0, block in itertools.chain([first], blocks):
        parts.append(_read_block(block, line0, header_line, ncol, counter, path))
    events = np.concatenate([p[0] for p in parts])
    lines = np.concatenate([p[1] for p in parts])
    back = np.flatnonzero(np.diff(events["local_ts"]) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"local_ts goes backwards: {int(events['local_ts'][i])} after "
                        f"{int(events['local_ts'][i - 1])} on line {int(lines[i - 1])}; rows must be in "
                        f"the order they were received", path=path, line=int(lines[i]), field="local_ts")
    latency = events["local_ts"] - events["exch_ts"]
    early = early_outliers(latency)
    if early.any():     # as with a backward step, dropping the row would leave later books wrong
        i = int(np.flatnonzero(early)[0])
        raise DataError(early_outlier_reason(int(latency[i]), int(np.median(latency[~early]))), path=path,
                        line=int(lines[i]), field="local_ts")
    return FileEvents(events, lines, instrument)


def sniff(path: str) -> bool:
    """True when the first line that is not blank or a comment is one of our two headers."""
    try:
        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(1 << 16)
    except (OSError, EOFError, ValueError):
        return False
    for raw in head.split(b"\n"):
        text = raw.strip()
        if text and not text.startswith(b"#"):
            return text in (HEADER.encode(), HEADER_WITH_ORDER_ID.encode())
    return False


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    chunks, instrument, last = [], None, None
    with options.progress(len(paths), "csv") as bar:
        for path in paths:
            got = read_file(path, options, counter, os.path.basename(paths[0]).split(".")[0])
            if instrument is not None and got.instrument != instrument:
                raise DataError(f"instrument {msgspec.to_builtins(got.instrument)} differs from the first "
                                f"input's {msgspec.to_builtins(instrument)}; convert each separately",
                                path=path, field="instrument")
            instrument = got.instrument
            if len(got.events):
                if last is not None and got.events["local_ts"][0] < last:
                    raise DataError("starts before the previous input ends: give inputs in time order",
                                    path=path, line=int(got.lines[0]), field="local_ts")
                last = int(got.events["local_ts"][-1])
            chunks.append(got.events)
            bar.update()
    events = np.concatenate(chunks)
    counts = np.bincount((events["ev"] & np.uint64(0xFF)).astype(np.int64), minlength=256)
    meta = DatasetMeta(
        source_format=FORMAT,
        sources=list(paths),
        source_rows=len(events) + counter.count,
        source_rows_by_kind={KIND_NAMES[k]: int(counts[k]) for k in KIND_NAMES if counts[k]},
        skipped=counter.count,
        skipped_examples=list(counter.first),
    )
    return Conversion(events=events, instrument=instrument, meta=meta)
