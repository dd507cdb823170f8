"""Databento DBN files (``.dbn``, ``.dbn.zst``) of the MBO schema into L3 events and the L2 book.

A DBN file is a metadata header (``DBN``, a version byte, its length, then the
dataset, schema, symbols and symbology) followed by fixed-layout binary records,
each opening with its length and record type. Prices are fixed-point int64 in
units of 1e-9; times are ns since the epoch: ``ts_event`` the matching
engine's, ``ts_recv`` Databento's capture server's. We take ``ts_event`` as
``exch_ts`` and ``ts_recv`` as ``local_ts``.

``databento-dbn`` (Databento's own Rust decoder) reads the header, gives the
MBO record's layout (``MBOMsg._dtypes``) and decodes instrument definitions,
upgrading those of older DBN versions. The MBO records themselves, the bulk of
a file, are viewed in place with that layout: its decoder makes one Python
object per record (about 0.5 M records/s), where a numpy view costs nothing.
``zstandard`` inflates ``.dbn.zst``.

What becomes which event, and why T and F records do not change the book
twice, is in :mod:`feeds.readers.databento_book`. The tick size comes from an
instrument definition record (``min_price_increment``) in the inputs: give the
day's ``definition`` file beside its ``mbo`` file, or ``--tick-size``.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import numba as nb
import numpy as np

from common.errors import DataError, SkipCounter
from feeds.events import EVENT_DTYPE
from feeds.instrument import Instrument
from feeds.readers import databento_book as book
from feeds.readers.base import Conversion, ReadOptions, instrument_with_overrides
from feeds.readers.binance import finish_clears
from feeds.store import DatasetMeta
from feeds.timeunits import plausible_range, unit_of

FORMAT = "databento"
DBN_MAGIC = b"DBN"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
RTYPE_MBO = 0xA0
RTYPE_DEFINITION = 0x13
HEADER_BYTES = 16                 # every record opens with length, rtype, publisher, instrument, ts_event
EVENTS_PER_CALL = 1 << 20         # events written per call of the jitted pass (64 MiB)
MISSING = ("reading Databento DBN files needs databento-dbn and zstandard: "
           "pip install 'cmm-engine[databento]'")


def _lib():
    try:
        import databento_dbn
        import zstandard
    except ImportError:
        raise DataError(MISSING, field="format") from None
    return databento_dbn, zstandard


def sniff(path: str) -> bool:
    """A DBN stream, plain or zstd-compressed (``.dbn.zst``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head[:3] == DBN_MAGIC or (head == ZSTD_MAGIC and os.fspath(path).endswith(".dbn.zst"))


# ---------------------------------------------------------------- the bytes of one file


def _raw_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path=path) from None
    if data[:4] != ZSTD_MAGIC:
        return data
    _, zstandard = _lib()
    try:
        _check_frames(zstandard, data)
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            return reader.read()
    except (zstandard.ZstdError, ValueError) as e:
        raise DataError(f"corrupt or truncated zstd stream: {e}", path=path) from None


def _check_frames(zstandard, data: bytes) -> None:
    """Walk the zstd frames' block headers: python-zstandard inflates a cut stream without a word, and a
    cut that falls between two DBN records would leave a shorter file that reads as whole."""
    pos = 0
    while pos < len(data):
        if data[pos + 1:pos + 4] == b"\x2a\x4d\x18" and 0x50 <= data[pos] <= 0x5F:     # a skippable frame
            pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
            continue
        params = zstandard.get_frame_parameters(data[pos:pos + 18])
        pos += zstandard.frame_header_size(data[pos:pos + 18])
        last = False
        while not last:
            if pos + 3 > len(data):
                raise ValueError(f"the stream ends inside a frame at byte {len(data):,}")
            header = int.from_bytes(data[pos:pos + 3], "little")
            last, kind, size = header & 1, (header >> 1) & 3, header >> 3
            pos += 3 + (1 if kind == 1 else size)
        pos += 4 if params.has_checksum else 0
    if pos > len(data):
        raise ValueError(f"the stream ends inside a frame at byte {len(data):,}")


class DbnFile(NamedTuple):
    """One input: its metadata, its MBO records (a structured array) and their record numbers."""

    path: str
    metadata: object              # databento_dbn.Metadata
    mbo: np.ndarray
    record_no: np.ndarray         # 1-based number of each MBO record among all the file's records
    definitions: list             # databento_dbn.InstrumentDefMsg (upgraded)
    other: dict[int, int]         # rtype -> count of records neither MBO nor definition


@nb.njit(cache=True)
def _walk(body, start_of, rtype_of, length_of):
    """Record starts, types and lengths; returns (records, error offset or -1)."""
    n = body.shape[0]
    pos = 0
    k = 0
    while pos < n:
        if pos + HEADER_BYTES > n:
            return k, pos
        length = np.int64(body[pos]) * 4
        if length < HEADER_BYTES or pos + length > n:
            return k, pos
        start_of[k] = pos
        rtype_of[k] = body[pos + 1]
        length_of[k] = length
        k += 1
        pos += length
    return k, -1


@nb.njit(cache=True)
def _gather(body, starts, size, out):
    for r in range(starts.shape[0]):
        s = starts[r]
        for j in range(size):
            out[r, j] = body[s + j]


def _mbo_dtype(dbn, ts_out: bool) -> np.dtype:
    fields = list(dbn.MBOMsg._dtypes)
    if ts_out:
        fields.append(("ts_out", "u8"))
    return np.dtype(fields)


def read_file(path: str) -> DbnFile:
    """Split one DBN file into its metadata, MBO records and definitions; a DataError says what is wrong."""
    dbn, _ = _lib()
    data = _raw_bytes(path)
    if data[:3] != DBN_MAGIC or len(data) < 8:
        raise DataError("not a DBN stream: expected it to start with 'DBN' and a version byte", path=path)
    version = data[3]
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data):
        raise DataError(f"truncated DBN metadata: {end:,} bytes announced, {len(data):,} in the file", path=path)
    try:
        metadata = dbn.Metadata.decode(data[:end])
    except (dbn.DBNError, ValueError) as e:
        raise DataError(f"bad DBN metadata (version {version}): {e}", path=path) from None
    schema = getattr(metadata.schema, "value", metadata.schema)
    if schema not in (None, "mbo", "definition"):
        raise DataError(f"schema {schema!r}: only MBO (with its definition files) is read; MBP and trades "
                        f"schemas are aggregates without order ids", path=path, field="schema")
    body = np.frombuffer(data, dtype=np.uint8, offset=end)
    dtype = _mbo_dtype(dbn, bool(metadata.ts_out))
    size = dtype.itemsize
    if len(body) % size == 0 and (body[0::size] == size // 4).all() and (body[1::size] == RTYPE_MBO).all():
        # The usual file, nothing but MBO records: walking it would find just this, so view it as it is
        # (the walk's arrays would cost half the file's size again).
        n = len(body) // size
        return DbnFile(path, metadata, body.view(dtype), np.arange(1, n + 1), [], {})
    n_max = len(body) // HEADER_BYTES + 1
    starts = np.empty(n_max, dtype=np.int64)
    rtypes = np.empty(n_max, dtype=np.uint8)
    lengths = np.empty(n_max, dtype=np.int64)
    n, bad_at = _walk(body, starts, rtypes, lengths)
    if bad_at >= 0:
        raise DataError(f"record {n + 1}: truncated or corrupt record header at byte {end + bad_at:,}",
                        path=path, field="length")
    starts, rtypes, lengths = starts[:n], rtypes[:n], lengths[:n]
    is_mbo = rtypes == RTYPE_MBO
    wrong = np.flatnonzero(is_mbo & (lengths != size))
    if len(wrong):
        i = int(wrong[0])
        raise DataError(f"record {i + 1}: an MBO record of {lengths[i]} bytes, expected {size}", path=path,
                        field="length")
    record_no = np.flatnonzero(is_mbo) + 1
    packed = np.empty((len(record_no), size), dtype=np.uint8)
    _gather(body, starts[is_mbo], size, packed)
    mbo = packed.reshape(-1).view(dtype)
    is_def = rtypes == RTYPE_DEFINITION
    definitions = _definitions(dbn, body, starts[is_def], lengths[is_def], version, bool(metadata.ts_out), path)
    others = rtypes[~is_mbo & ~is_def]
    kinds, counts = np.unique(others, return_counts=True)
    return DbnFile(path, metadata, mbo, record_no, definitions, dict(zip(kinds.tolist(), counts.tolist())))


def _definitions(dbn, body, starts, lengths, version: int, ts_out: bool, path: str) -> list:
    if len(starts) == 0:
        return []
    raw = b"".join(body[s:s + n].tobytes() for s, n in zip(starts, lengths))
    decoder = dbn.DBNDecoder(has_metadata=False, ts_out=ts_out, input_version=version,
                             upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    try:
        decoder.write(raw)
        return [r for r in decoder.decode() if isinstance(r, dbn.InstrumentDefMsg)]
    except (dbn.DBNError, ValueError) as e:
        raise DataError(f"bad instrument definition record: {e}", path=path, field="definition") from None


# ---------------------------------------------------------------- checks


def picked(f: DbnFile, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The file's MBO records of the chosen instrument and their record numbers (views when it is all of them)."""
    return (f.mbo, f.record_no) if pick.all() else (f.mbo[pick], f.record_no[pick])


def _instrument_ids(files: list[DbnFile]) -> np.ndarray:
    """The distinct instrument ids of the MBO records (a file of one instrument costs one comparison)."""
    parts = [ids[:1] if (ids == ids[0]).all() else np.unique(ids)
             for ids in (f.mbo["instrument_id"] for f in files) if len(ids)]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint32)


def _symbols(files: list[DbnFile]) -> dict[int, str]:
    """instrument_id -> symbol, from definitions, else from the metadata's symbology."""
    names: dict[int, str] = {}
    for f in files:
        for symbol, intervals in (f.metadata.mappings or {}).items():     # raw symbol -> [{..., "symbol": id}]
            for interval in intervals:
                ident = str(interval.get("symbol", ""))
                if ident.isdigit():
                    names.setdefault(int(ident), symbol)
    for f in files:
        for d in f.definitions:
            names[int(d.instrument_id)] = d.raw_symbol
    requested = {s for f in files for s in (f.metadata.symbols or [])}
    ids = set(_instrument_ids(files).tolist())
    if len(requested) == 1 and len(ids) == 1 and not names.get(next(iter(ids))):
        names[next(iter(ids))] = requested.pop()       # one symbol asked for, one instrument found
    return names


def _pick_instrument(files: list[DbnFile], names: dict[int, str], options: ReadOptions) -> int:
    ids = _instrument_ids(files)
    if len(ids) == 1:
        return int(ids[0])
    if len(ids) == 0:
        raise DataError("no MBO records in the inputs (only definitions or other schemas)",
                        path=", ".join(f.path for f in files))
    listed = ", ".join(f"{int(i)} ({names.get(int(i), '?')})" for i in ids[:10])
    if options.symbol is not None:
        chosen = [int(i) for i in ids if names.get(int(i)) == options.symbol or str(int(i)) == options.symbol]
        if len(chosen) == 1:
            return chosen[0]
        raise DataError(f"--symbol {options.symbol!r} names none of the inputs' instruments: {listed}",
                        field="--symbol")
    raise DataError(f"the MBO records hold {len(ids)} instruments ({listed}{', ...' if len(ids) > 10 else ''}): "
                    f"the engine trades one; pick it with --symbol", path=", ".join(f.path for f in files),
                    field="instrument_id")


def check_times(values: np.ndarray, record_no: np.ndarray, path: str, field: str) -> None:
    """Refuse a DBN time that is not ns from 2000 to 2100, saying the unit it would fit."""
    low, high = plausible_range("ns")
    v = values.view(np.int64) if values.dtype == np.uint64 else values
    bad = np.flatnonzero((v < low) | (v >= high))
    if len(bad) == 0:
        return
    i = int(bad[0])
    raw = int(values[i])
    unit = unit_of(raw)
    why = (f"is a time in {unit}, not ns as DBN specifies" if unit is not None and unit != "ns"
           else "is not a time from 2000 to 2100 in ns")
    raise DataError(f"record {int(record_no[i])}: {field} {raw} {why}", path=path, field=field)


def _definition_of(files: list[DbnFile], instrument_id: int):
    found = [d for f in files for d in f.definitions if int(d.instrument_id) == instrument_id]
    return found[-1] if found else None


def _fixed(value: int) -> float | None:
    return None if value in (book.UNDEF_PRICE, 0) or value < 0 else value * book.PRICE_SCALE


def _instrument(files, instrument_id: int, names: dict[int, str], options: ReadOptions) -> tuple[Instrument, str]:
    definition = _definition_of(files, instrument_id)
    tick = _fixed(int(definition.min_price_increment)) if definition is not None else None
    multiplier = _fixed(int(definition.unit_of_measure_qty)) if definition is not None else None
    if tick is None and options.tick_size is None:
        raise DataError(f"no instrument definition with a tick for instrument {instrument_id} "
                        f"({names.get(instrument_id, '?')}) in the inputs: give the day's definition file "
                        f"beside the MBO file, or --tick-size", path=", ".join(f.path for f in files),
                        field="tick_size")
    default = Instrument(symbol=names.get(instrument_id, str(instrument_id)), tick_size=tick or options.tick_size,
                         lot_size=1.0, contract_multiplier=multiplier or 1.0)
    source = ("the instrument definition's min_price_increment" + (
        f" and unit_of_measure_qty ({multiplier:g})" if multiplier else "")) if tick else "--tick-size"
    return instrument_with_overrides(default, options), source


def _decimal(fixed: int) -> str:
    """A DBN fixed-point price written exactly (5400000000001 -> '5400.000000001')."""
    whole, frac = divmod(abs(fixed), 10**9)
    text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    return "-" + text if fixed < 0 else text


def _check_ticks(files, picks, tick_size: float, source: str) -> None:
    """Every defined price sits on the tick: a price between ticks means the tick (or the file) is wrong."""
    tick_units = int(round(tick_size / book.PRICE_SCALE))
    if tick_units <= 0:
        return
    for f, pick in zip(files, picks):
        rec, record_no = picked(f, pick)
        action = rec["action"].view(np.uint8)
        priced = ((action == book.A_ADD) | (action == book.A_MODIFY) | (action == book.A_TRADE)
                  | (action == book.A_FILL)) & (rec["price"] != book.UNDEF_PRICE)
        off = np.flatnonzero(priced & (rec["price"] % tick_units != 0))
        if len(off):
            i = int(off[0])
            raise DataError(f"record {int(record_no[i])}: price {_decimal(int(rec['price'][i]))} is "
                            f"not a multiple of the tick {tick_size:g} (from {source})", path=f.path, field="price")


# ---------------------------------------------------------------- read


def _events(files: list[DbnFile], picks: list[np.ndarray], counter: SkipCounter, options: ReadOptions):
    state = book.new_state()
    chunks: list[np.ndarray] = []
    total = sum(int(pick.sum()) for pick in picks)
    out = np.zeros(min(EVENTS_PER_CALL, 3 * total + 64), dtype=EVENT_DTYPE)   # most records make 1 or 2
    for f, pick in zip(files, picks):
        rec, record_no = picked(f, pick)
        cols = (rec["ts_event"], rec["ts_recv"], rec["order_id"], rec["price"], rec["size"], rec["flags"],
                rec["action"].view(np.uint8), rec["side"].view(np.uint8))
        start = 0
        with options.progress(max(len(rec), 1), f"databento {os.path.basename(f.path)}") as bar:
            while start < len(rec):
                nxt, k, error = book.process(*cols, start, state["orders"], state["bids"], state["asks"],
                                             state["touched_bids"], state["touched_asks"], state["group"],
                                             state["stats"], out)
                chunks.append(out[:k].copy())
                if error != book.E_OK:
                    field = {book.E_ACTION: "action", book.E_SIDE: "side", book.E_PRICE: "price",
                             book.E_SIZE: "size"}[error]
                    counter.bad(DataError(f"record {int(record_no[nxt])}: {book.ERRORS[error]}", path=f.path,
                                          field=field))
                    nxt += 1
                elif nxt == start and k == 0:
                    out = np.zeros(2 * len(out), dtype=EVENT_DTYPE)     # one record's events need more room
                bar.update(nxt - start)
                start = nxt
    events = np.concatenate(chunks) if len(chunks) != 1 else chunks[0]      # a lone chunk is a copy already
    finish_clears(events)
    return events, state["stats"]


def _partial_until(rec: np.ndarray, events: np.ndarray) -> int | None:
    """Where the book is whole from, when the first file does not open with a clear: its first R, or never."""
    action = rec["action"].view(np.uint8)
    if action[0] == book.A_CLEAR:
        return None
    clears = np.flatnonzero(action == book.A_CLEAR)
    return int(rec["ts_recv"][clears[0]]) if len(clears) else int(events["local_ts"].max()) + 1


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    files = [read_file(os.fspath(p)) for p in paths]
    names = _symbols(files)
    instrument_id = _pick_instrument(files, names, options)
    picks = [f.mbo["instrument_id"] == instrument_id for f in files]
    last_recv, last_path = None, None
    for f, pick in zip(files, picks):
        rec, record_no = picked(f, pick)
        if not len(rec):
            continue
        publisher = rec["publisher_id"]
        if (publisher != publisher[0]).any():
            publishers = np.unique(publisher)
            raise DataError(f"instrument {instrument_id} has records from {len(publishers)} publishers "
                            f"({', '.join(map(str, publishers[:5]))}): each venue keeps its own book; convert a "
                            f"single-venue dataset", path=f.path, field="publisher_id")
        check_times(rec["ts_recv"], record_no, f.path, "ts_recv")
        check_times(rec["ts_event"], record_no, f.path, "ts_event")
        if last_recv is not None and int(rec["ts_recv"][0]) < last_recv:
            raise DataError(f"starts before the previous input {os.path.basename(last_path)} ends: give inputs "
                            f"in time order", path=f.path, field="ts_recv")
        last_recv, last_path = int(rec["ts_recv"][-1]), f.path
    instrument, tick_source = _instrument(files, instrument_id, names, options)
    _check_ticks(files, picks, instrument.tick_size, tick_source if options.tick_size is None else "--tick-size")
    events, stats = _events(files, picks, counter, options)
    mbo_files = [(f, pick) for f, pick in zip(files, picks) if pick.any()]
    by_action: dict[str, int] = {}
    for f, pick in mbo_files:
        counts = np.bincount(picked(f, pick)[0]["action"].view(np.uint8), minlength=256)
        for a in np.flatnonzero(counts):
            by_action[chr(a)] = by_action.get(chr(a), 0) + int(counts[a])
    notes = [
        "ts_event (the matching engine's time) is exch_ts and ts_recv (Databento's capture time) is local_ts; "
        "snapshot records take ts_recv for both, as their ts_event is each order's own last change",
        "T and F records do not change the book (Databento's rule): a C that follows a fill of the same "
        "order removes from the engine's L3 book only the size beyond the fill",
        f"tick {instrument.tick_size:g} from {tick_source}",
    ]
    partial_until = _partial_until(*picked(*mbo_files[0])[:1], events) if mbo_files else None
    if partial_until is not None:
        notes.append("the file does not open with a snapshot (an R record and F_SNAPSHOT adds): orders resting "
                     "before it are unknown until the first clear")
    notes += [f"{int(n):,} {name}" for n, name in zip(stats, book.STAT_NAMES)
              if n and name not in ("R (clear) records", "snapshot records")]
    others = {rt: n for f in files for rt, n in f.other.items()}
    if others:
        notes.append(f"records of other types ignored (rtype: count): {others}")
    if options.symbol is None and len(names) > 1:
        notes.append(f"instrument {instrument_id} ({instrument.symbol}) read")
    meta = DatasetMeta(
        source_format=FORMAT,
        sources=list(map(os.fspath, paths)),
        source_rows=int(sum(len(f.record_no) for f in files) + sum(len(f.definitions) for f in files)),
        source_rows_by_kind={**by_action, **({"definition": sum(len(f.definitions) for f in files)}
                                              if any(f.definitions for f in files) else {})},
        skipped=counter.count,
        skipped_examples=list(counter.first),
        notes=notes,
        book_partial_until_ts=partial_until,
    )
    return Conversion(events=events, instrument=instrument, meta=meta)
