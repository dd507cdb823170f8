"""Bybit's public history files: order-book archives and trade CSVs.

**Order book** (``quote-saver.bycsi.com/orderbook/...``, e.g.
``2024-08-08_ETHUSDT_ob500.data.zip``): one websocket ``orderbook.{depth}.{symbol}``
message per line, as Bybit's v5 orderbook topic pushes it::

    {"topic":"orderbook.500.ETHUSDT","type":"snapshot","ts":1723075200012,
     "data":{"s":"ETHUSDT","b":[["2700.10","1.5"],...],"a":[...],"u":1234,"seq":5678},"cts":1723075200010}

``snapshot`` replaces the book (DEPTH_CLEAR both sides, then DEPTH_SNAPSHOT
levels); ``delta`` gives new level sizes (0 deletes the level) as DEPTH
events. Derivatives archives carry 500 levels, spot 200. ``u`` is the update
id: consecutive deltas step it by one, and a snapshot may restart it (``u=1``
after a service restart). A delta whose ``u`` is not the last plus one, or
whose ``seq`` (the cross sequence) goes back, is a gap: refused, or under
``--on-error skip`` both sides are cleared and deltas dropped until the next
snapshot, and the notes say where. ``cts`` (the matching engine's time, ms)
is ``exch_ts`` where present, else ``ts``; ``ts`` (when Bybit's system pushed
the message, ms) is ``local_ts``: the archive has no receive time.

**Trades** (``public.bybit.com/trading/SYMBOL/SYMBOLYYYY-MM-DD.csv.gz`` for
derivatives, ``public.bybit.com/spot/...`` for spot), one trade per row,
``side`` the taker's (the aggressor):

- derivatives: ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,
  grossValue,homeNotional,foreignNotional``, ``timestamp`` in seconds with
  decimals (``1723075200.1234``);
- spot: ``id,timestamp,price,volume,side[,rpi]``, ``timestamp`` in ms.

Rows are parsed by a jitted loop reusing the CSV reader's field parser and
side words. Every timestamp is checked against its documented unit
(:mod:`feeds.timeunits`): a file whose values fit another unit is refused
with the unit they fit.
"""
from __future__ import annotations

import gzip
import os
import re
import zipfile
from typing import NamedTuple, Sequence

import msgspec
import numba as nb
import numpy as np

from common.errors import DataError, SkipCounter
from feeds.events import BUY, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, SELL, TRADE
from feeds.instrument import INVERSE, Instrument
from feeds.readers import csvparse
from feeds.readers.base import Conversion, ReadOptions, instrument_with_overrides
from feeds.readers.binance import Columns, decimal_step, finish_clears, ODD_SIZES_SHARE
from feeds.readers.csv import _SIDE_TABLE, _trim
from feeds.readers.textio import iter_blocks
from feeds.store import DatasetMeta
from feeds.timeunits import NS_PER_UNIT, plausible_range, unit_of

FORMAT = "bybit"
MS = NS_PER_UNIT["ms"]
DERIVATIVES_HEADER = ("timestamp", "symbol", "side", "size", "price")
SPOT_HEADER = ("id", "timestamp", "price", "volume", "side")
_INVERSE = re.compile(r"^([A-Z0-9]+)USD$")     # BTCUSD: inverse contracts of 1 USD, settled in BTC
SNIFF_BYTES = 4096


class Levels(msgspec.Struct, gc=False):
    s: str
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    u: int
    seq: int | None = None


class BookLine(msgspec.Struct, gc=False):
    topic: str
    type: str
    ts: int
    data: Levels
    cts: int | None = None


_BOOK = msgspec.json.Decoder(BookLine, strict=False)   # prices and sizes come as JSON strings


# ---------------------------------------------------------------- inputs


class Source(NamedTuple):
    path: str
    member: str | None        # the .data member of a zip archive
    kind: str                 # "book", "trades_derivatives" or "trades_spot"

    @property
    def where(self) -> str:
        return f"{self.path}[{self.member}]" if self.member else self.path


def _head(path: str) -> tuple[bytes, str | None]:
    """The first bytes of a plain, .gz or single-member .zip text file, and the zip member."""
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if len(names) != 1:
                    return b"", None
                with zf.open(names[0]) as f:
                    return f.read(SNIFF_BYTES), names[0]
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            return f.read(SNIFF_BYTES), None
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile):
        return b"", None


def _header(line: bytes) -> tuple[str, ...]:
    return tuple(c.strip().strip('"').lower() for c in line.decode("utf-8", "replace").strip().split(","))


def _kind_of(head: bytes) -> str | None:
    first = head.split(b"\n", 1)[0].strip()
    if first.startswith(b"{") and b'"topic"' in first[:200] and b'"orderbook.' in first[:200]:
        return "book"
    columns = _header(first)
    if columns[:len(DERIVATIVES_HEADER)] == DERIVATIVES_HEADER:
        return "trades_derivatives"
    if columns[:len(SPOT_HEADER)] == SPOT_HEADER:
        return "trades_spot"
    return None


def sniff(path: str) -> bool:
    """A Bybit orderbook archive (JSON lines of orderbook.* messages) or a Bybit trades CSV (by its header)."""
    return _kind_of(_head(os.fspath(path))[0]) is not None


def source(path: str) -> Source:
    if not os.path.exists(path):
        raise DataError("no such file", path=path)
    head, member = _head(path)
    kind = _kind_of(head)
    if kind is None:
        raise DataError("not a Bybit file: expected orderbook JSON lines ({\"topic\":\"orderbook.N.SYMBOL\", ...}) "
                        f"or a trades CSV whose header starts {','.join(DERIVATIVES_HEADER)} (derivatives) or "
                        f"{','.join(SPOT_HEADER)} (spot)", path=path)
    return Source(path, member, kind)


def _text_bytes(src: Source) -> int:
    """The size of the text inside the input, for the progress bar (a .gz's trailer holds it mod 2**32)."""
    try:
        if src.member is not None:
            with zipfile.ZipFile(src.path) as zf:
                return zf.getinfo(src.member).file_size
        if src.path.endswith(".gz"):
            with open(src.path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                return int.from_bytes(f.read(4), "little")
        return os.path.getsize(src.path)
    except (OSError, KeyError, zipfile.BadZipFile):
        return 1


def _check_unit(value: int, unit: str, where: str, line: int, field: str, what: str) -> None:
    low, high = plausible_range(unit)
    if low <= value < high:
        return
    fits = unit_of(value)
    why = (f"is a time in {fits}, but Bybit's {what} give {unit}" if fits is not None
           else f"is not a time from 2000 to 2100 in {unit}, as Bybit's {what} give")
    raise DataError(f"{field} {value} {why}", path=where, line=line, field=field)


# ---------------------------------------------------------------- order book


class BookRead(NamedTuple):
    columns: Columns
    symbols: set
    depths: set
    lines: int
    by_kind: dict
    notes: list
    first_snapshot_ts: int | None
    opened_with_snapshot: bool


def read_book(src: Source, counter: SkipCounter, options: ReadOptions) -> BookRead:
    cols = Columns()
    symbols, depths, by_kind, notes = set(), set(), {"snapshot": 0, "delta": 0}, []
    synced, gap_line = False, None
    prev_u = prev_seq = None
    before_snapshot = dropped = lines = 0
    first_snapshot_ts, opened = None, None
    with options.progress(max(_text_bytes(src), 1), f"bybit {os.path.basename(src.path)}") as bar:
        for line0, block in iter_blocks(src.path, src.member):
            for k, raw in enumerate(block.split(b"\n")):
                line = line0 + k + 1
                if not raw.strip():
                    continue
                lines += 1
                try:
                    m = _BOOK.decode(raw)
                except (msgspec.DecodeError, UnicodeDecodeError) as e:
                    counter.bad(DataError(f"expected an orderbook message as JSON ({e})", path=src.where,
                                          line=line, field="json"))
                    continue
                _check_unit(m.ts, "ms", src.where, line, "ts", "orderbook archives")
                if m.cts is not None:
                    _check_unit(m.cts, "ms", src.where, line, "cts", "orderbook archives")
                local = m.ts * MS
                exch = (m.cts if m.cts is not None else m.ts) * MS
                parts = m.topic.split(".")
                if len(parts) != 3 or parts[0] != "orderbook" or not parts[1].isdigit():
                    counter.bad(DataError(f"expected a topic orderbook.DEPTH.SYMBOL, got {m.topic!r}",
                                          path=src.where, line=line, field="topic"))
                    continue
                depths.add(int(parts[1]))
                symbols.add(m.data.s)
                if opened is None:
                    opened = m.type == "snapshot"
                if m.type == "snapshot":
                    if max(len(m.data.b), len(m.data.a)) > int(parts[1]):
                        counter.bad(DataError(f"a snapshot of {max(len(m.data.b), len(m.data.a))} levels on a side "
                                              f"in topic {m.topic!r}, which carries {parts[1]}", path=src.where,
                                              line=line, field="data"))
                        continue
                    by_kind["snapshot"] += 1
                    if gap_line is not None:
                        notes.append(f"{src.where}: gap at line {gap_line}: {dropped:,} deltas dropped, book "
                                     f"empty until the snapshot at line {line}")
                        gap_line, dropped = None, 0
                    if first_snapshot_ts is None:
                        first_snapshot_ts = local
                    cols.one(DEPTH_CLEAR | BUY, exch, local, 0.0, 0.0)
                    cols.one(DEPTH_CLEAR | SELL, exch, local, 0.0, 0.0)
                    cols.add(DEPTH_SNAPSHOT | BUY, exch, local, m.data.b)
                    cols.add(DEPTH_SNAPSHOT | SELL, exch, local, m.data.a)
                    synced, prev_u, prev_seq = True, m.data.u, m.data.seq
                    continue
                if m.type != "delta":
                    counter.bad(DataError(f"expected type 'snapshot' or 'delta', got {m.type!r}", path=src.where,
                                          line=line, field="type"))
                    continue
                by_kind["delta"] += 1
                if not synced:
                    if gap_line is not None:
                        dropped += 1
                    else:
                        before_snapshot += 1
                    continue
                seq_back = m.data.seq is not None and prev_seq is not None and m.data.seq < prev_seq
                if m.data.u != prev_u + 1 or seq_back:
                    why = (f"update id u={m.data.u} after u={prev_u}" + (
                        f": {m.data.u - prev_u - 1:,} updates missing" if m.data.u > prev_u + 1 else ": not the next")
                           if not seq_back else f"seq {m.data.seq} goes back from {prev_seq}")
                    counter.bad(DataError(f"{why}; the book is unknown until the next snapshot (--on-error skip "
                                          f"clears it and waits for one)", path=src.where, line=line, field="u"))
                    cols.one(DEPTH_CLEAR | BUY, exch, local, 0.0, 0.0)
                    cols.one(DEPTH_CLEAR | SELL, exch, local, 0.0, 0.0)
                    synced, gap_line, dropped = False, line, 1
                    continue
                cols.add(DEPTH | BUY, exch, local, m.data.b)
                cols.add(DEPTH | SELL, exch, local, m.data.a)
                prev_u, prev_seq = m.data.u, m.data.seq if m.data.seq is not None else prev_seq
            bar.update(len(block))
    if by_kind["delta"] and not by_kind["snapshot"]:
        raise DataError(f"no snapshot among {by_kind['delta']:,} deltas: deltas alone do not make a book (Bybit's "
                        f"archives open with one)", path=src.where, field="type")
    if gap_line is not None:
        notes.append(f"{src.where}: gap at line {gap_line}: {dropped:,} deltas dropped to the end, no snapshot "
                     f"followed")
    if before_snapshot:
        notes.append(f"{src.where}: {before_snapshot:,} deltas before the first snapshot left out (the book they "
                     f"change is unknown)")
    return BookRead(cols, symbols, depths, lines, by_kind, notes, first_snapshot_ts, bool(opened))


# ---------------------------------------------------------------- trades


E_COLUMNS, E_SIDE = 100, 101


@nb.njit(cache=True)
def _trade_rows(buf, pos, line, row, skip, ncol, ts_col, ts_kind, side_col, qty_col, px_col, side_table, side_len,
                side_code, pow10, ts, px, qty, side, lines):
    """Parse trade rows from byte ``pos`` (after ``line`` lines) into the arrays from ``row`` on.

    Returns (rows, error code, its line, its column, the byte after that line); error 0 at the end.
    """
    n = buf.shape[0]
    while pos < n:
        line += 1
        end, eol = csvparse.line_at(buf, pos)
        if line <= skip or end == pos:
            pos = eol
            continue
        col = 0
        start = pos
        k = pos
        while True:
            if k == end or buf[k] == 44:
                if col == ts_col or col == qty_col or col == px_col:
                    kind = ts_kind if col == ts_col else csvparse.FLOAT
                    e, fv, iv = csvparse._parse_field(buf, start, k, kind, pow10)
                    if e != 0:
                        return row, e, line, col, eol
                    if col == ts_col:
                        ts[row] = iv
                    elif col == qty_col:
                        qty[row] = fv
                    else:
                        px[row] = fv
                elif col == side_col:
                    a, b = _trim(buf, start, k)
                    c = csvparse.match_name(buf, a, b, side_table, side_len, side_code)
                    if c < 0:
                        return row, E_SIDE, line, col, eol
                    side[row] = c
                col += 1
                if k == end:
                    break
                start = k + 1
            k += 1
        if col < ncol:
            return row, E_COLUMNS, line, col, eol
        lines[row] = line
        row += 1
        pos = eol
    return row, 0, 0, 0, n


class TradesRead(NamedTuple):
    events: np.ndarray
    symbols: set
    rows: int


def read_trades(src: Source, counter: SkipCounter) -> TradesRead:
    spot = src.kind == "trades_spot"
    names = SPOT_HEADER if spot else DERIVATIVES_HEADER
    ts_kind = csvparse.INT if spot else csvparse.SECONDS_NS
    parts, header, symbols = [], None, set()
    for line0, block in iter_blocks(src.path, src.member):
        skip = 0
        if header is None:
            header = _header(block.split(b"\n", 1)[0])
            skip = line0 + 1
            if not spot:
                symbols |= _symbols_column(block, header)
        data = np.frombuffer(block, dtype=np.uint8)
        cap = int(np.count_nonzero(data == 10)) + 1
        ts, px, qty = np.zeros(cap, np.int64), np.zeros(cap), np.zeros(cap)
        side, lines = np.zeros(cap, np.int64), np.zeros(cap, np.int64)
        col_of = {name: header.index(name) for name in names}
        pos, line, rows = 0, line0, 0
        while True:
            rows, err, bad_line, col, pos = _trade_rows(
                data, pos, line, rows, skip, len(header), col_of["timestamp"], ts_kind, col_of["side"],
                col_of["volume" if spot else "size"], col_of["price"], *_SIDE_TABLE, csvparse._POW10,
                ts, px, qty, side, lines)
            if err == 0:
                break
            counter.bad(_trade_error(src, block, line0, bad_line, col, err, header, spot))
            line = bad_line           # skip mode: go on after the bad line
        parts.append((ts[:rows], px[:rows], qty[:rows], side[:rows], lines[:rows]))
    if not parts:
        raise DataError("empty trades file", path=src.where)
    ts, px, qty, side, lines = (np.concatenate([p[i] for p in parts]) for i in range(5))
    ts_ns = ts * MS if spot else ts
    unit = "ms" if spot else "s"
    raw = ts if spot else ts // NS_PER_UNIT["s"]
    low, high = plausible_range(unit)
    bad = np.flatnonzero((raw < low) | (raw >= high))
    if len(bad):
        i = int(bad[0])
        _check_unit(int(raw[i]), unit, src.where, int(lines[i]), "timestamp",
                    "spot trade files" if spot else "derivatives trade files")
    step = np.diff(ts_ns)
    if (step < 0).any() and not (step <= 0).all():
        i = int(np.flatnonzero(step < 0 if (step > 0).sum() >= (step < 0).sum() else step > 0)[0]) + 1
        raise DataError("timestamp goes the other way from the line before: a trades file is in time order "
                        "(newest first or oldest first, not both)", path=src.where, line=int(lines[i]),
                        field="timestamp")
    if (step < 0).any():                  # newest first: read oldest first
        ts_ns, px, qty, side = ts_ns[::-1], px[::-1], qty[::-1], side[::-1]
    out = np.zeros(len(ts_ns), dtype=EVENT_DTYPE)
    out["ev"] = (TRADE | side).astype(np.uint64)
    out["exch_ts"] = ts_ns
    out["local_ts"] = ts_ns
    out["px"], out["qty"] = px, qty
    return TradesRead(out, symbols, len(ts_ns))


def _symbols_column(block: bytes, header) -> set:
    """The symbols named in the first rows (derivatives files carry one per row)."""
    col = header.index("symbol")
    rows = block.split(b"\n", 50)[1:50]
    return {r.split(b",")[col].strip().decode("utf-8", "replace") for r in rows if r.count(b",") >= col}


def _trade_error(src: Source, block: bytes, line0: int, line: int, col: int, err: int, header, spot: bool):
    field = header[col] if col < len(header) else f"column {col + 1}"
    if err == E_COLUMNS:
        return DataError(f"expected {len(header)} comma-separated fields as the header has, got {col}",
                         path=src.where, line=line, field="fields")
    if err == E_SIDE:
        return DataError("expected Buy or Sell", path=src.where, line=line, field=field)
    if field == "timestamp" and err == csvparse.E_OVERFLOW and not spot:
        text = block.split(b"\n")[line - line0 - 1].split(b",")[col].strip()
        whole = int(text.split(b".")[0]) if text.split(b".")[0].isdigit() else 0
        fits = unit_of(whole)
        if fits is not None:
            return DataError(f"timestamp {whole} is a time in {fits}, but Bybit's derivatives trade files give s",
                             path=src.where, line=line, field=field)
    kind = csvparse.FLOAT if field != "timestamp" else (csvparse.INT if spot else csvparse.SECONDS_NS)
    return DataError(csvparse.describe_error(err, kind), path=src.where, line=line, field=field)


# ---------------------------------------------------------------- read


def _instrument(symbol: str, derivatives: bool, events: np.ndarray, options: ReadOptions):
    priced = (events["ev"] & np.uint64(0xFF)) != DEPTH_CLEAR
    tick = decimal_step(events["px"][priced])
    lot = decimal_step(events["qty"][priced], ODD_SIZES_SHARE)
    inverse = _INVERSE.match(symbol) if derivatives else None
    if inverse:
        default = Instrument(symbol=symbol, tick_size=tick, lot_size=1.0, contract_multiplier=1.0, kind=INVERSE,
                             settlement=inverse.group(1))
    else:
        default = Instrument(symbol=symbol, tick_size=tick, lot_size=lot)
    return instrument_with_overrides(default, options), default


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    sources = [source(os.fspath(p)) for p in paths]
    chunks, symbols, depths, notes, by_kind = [], set(), set(), [], {}
    rows, partial_until, derivatives = 0, None, False
    for src in sources:
        if src.kind == "book":
            got = read_book(src, counter, options)
            chunks.append(got.columns.events() if len(got.columns) else np.zeros(0, EVENT_DTYPE))
            symbols |= got.symbols
            depths |= got.depths
            notes += got.notes
            rows += got.lines
            for k, n in got.by_kind.items():
                by_kind[k] = by_kind.get(k, 0) + n
            if not got.opened_with_snapshot and partial_until is None:
                partial_until = got.first_snapshot_ts
            derivatives |= any(d >= 500 for d in got.depths)
        else:
            got = read_trades(src, counter)
            chunks.append(got.events)
            symbols |= got.symbols
            rows += got.rows
            by_kind["trade"] = by_kind.get("trade", 0) + got.rows
            derivatives |= src.kind == "trades_derivatives"
    if len(symbols) > 1:
        raise DataError(f"inputs hold several symbols ({', '.join(sorted(symbols))}): convert each separately",
                        field="INPUT")
    events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
    if not len(events):
        raise DataError("no orderbook messages or trades in the inputs", path=", ".join(map(os.fspath, paths)))
    finish_clears(events)
    symbol = symbols.pop() if symbols else (options.symbol or "?")
    instrument, default = _instrument(symbol, derivatives, events, options)
    notes += [
        "exch_ts is the matching engine's time (cts, else ts) and local_ts the time Bybit pushed the message (ts): "
        "the archive has no receive time, so feed latency is Bybit's push delay only; trades have one time "
        "(local_ts = exch_ts)",
        f"tick {default.tick_size:g} and lot {default.lot_size:g} inferred as the finest decimal step of the prices "
        f"and sizes seen; give --tick-size/--lot-size for the exchange's own",
    ]
    if depths:
        notes.append(f"order book depth {'/'.join(map(str, sorted(depths)))} levels "
                     f"(Bybit archives: 500 for derivatives, 200 for spot)")
    if default.inverse:
        notes.append(f"inverse contract: sizes are USD contracts of 1 USD, settled in {default.settlement}")
    meta = DatasetMeta(source_format=FORMAT, sources=[s.where for s in sources], source_rows=rows,
                       source_rows_by_kind=by_kind, skipped=counter.count, skipped_examples=list(counter.first),
                       notes=notes, book_partial_until_ts=partial_until)
    return Conversion(events=events, instrument=instrument, meta=meta)
