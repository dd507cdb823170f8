"""hftbacktest's own event files: an ``.npz`` with a ``data`` member, or a bare ``.npy``.

The record is byte-for-byte ours, so reading is mostly undoing hftbacktest's
timeline split. Its ``correct_event_order`` (hftbacktest/data/validation.py)
emits every source row either once with EXCH|LOCAL, or, when the row sits at
different places on the two timelines, twice: an EXCH-only copy in exchange
order and a LOCAL-only copy in local order. Keeping the rows that carry LOCAL
plus the rows carrying neither flag (files never passed through
``correct_event_order``) therefore yields every source row exactly once, in
local-timestamp order, which is the order a capture received them in; EXCH-only
rows are the dropped duplicates. The flags are then cleared, and
:func:`feeds.formats.read` splits the timelines again its own way.

Event kinds from 100 up are hftbacktest's user-defined range: its Binance
converter, for one, writes mark price and funding rate there. Only in files
:func:`feeds.store.save` wrote (with our ``meta`` member) do they mean ours
(100 is TRADING_STATUS); elsewhere they, and any kind we do not know, are
dropped with a note.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from typing import Sequence

import numpy as np

from common.errors import DataError
from feeds.events import EVENT_DTYPE, EXCH, KIND_MASK, KIND_NAMES, LOCAL, TRADING_STATUS
from feeds.instrument import Instrument
from feeds.readers.base import Conversion, ReadOptions, instrument_with_overrides
from feeds.store import DatasetMeta, _read_header, load

FORMAT = "hftbacktest"

DEFAULT_LOT_SIZE = 1.0
_FAULTS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError, SyntaxError)


def _npy_is_events(f) -> bool:
    try:
        _read_header(f, "", None)
        return True
    except (DataError, *_FAULTS):
        return False


def sniff(path: str) -> bool:
    """A zip with a ``data.npy`` member, or a ``.npy``, holding the 64-byte event record."""
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if "data.npy" not in zf.namelist():
                    return False
                with zf.open("data.npy") as f:
                    return _npy_is_events(f)
        with open(path, "rb") as f:
            return _npy_is_events(f)
    except (*_FAULTS, RuntimeError, NotImplementedError):
        return False


def _load_npy(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        (n,), _ = _read_header(f, path, os.path.getsize(path))   # n is what the file holds
        raw = f.read(n * EVENT_DTYPE.itemsize)
    return np.frombuffer(raw, dtype=EVENT_DTYPE).copy()


def load_file(path: str) -> tuple[np.ndarray, Instrument | None, DatasetMeta | None]:
    """Events, and our instrument and meta members when the file has them."""
    try:
        if zipfile.is_zipfile(path):
            f = load(path)
            return f.events, f.instrument, f.meta
        return _load_npy(path), None, None
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except (*_FAULTS, RuntimeError, NotImplementedError) as e:
        # zipfile raises these for damaged or unsupported members (bad CRC, unknown compression).
        raise DataError(f"corrupt or truncated event file: {e}", path=path) from None


def source_rows(events: np.ndarray) -> np.ndarray:
    """Mask of the rows that are the source rows once each: LOCAL ones and those with no timeline flag."""
    ev = events["ev"]
    local = (ev & np.uint64(LOCAL)) != 0
    exch = (ev & np.uint64(EXCH)) != 0
    return local | ~exch


def _known_kinds(ours: bool) -> np.ndarray:
    known = [k for k in KIND_NAMES if ours or k != TRADING_STATUS]
    return np.array(known, dtype=np.uint64)


def _instrument(path: str, stored: Instrument | None, options: ReadOptions,
                symbol: str) -> tuple[Instrument, list[str]]:
    if stored is not None:
        return instrument_with_overrides(stored, options), []
    if options.tick_size is None:
        raise DataError("hftbacktest files do not record the tick size: give it with --tick-size "
                        "(and --lot-size)", path=path, field="tick_size")
    notes = [] if options.lot_size is not None else [
        f"{os.path.basename(path)}: no lot size given: assumed {DEFAULT_LOT_SIZE} (use --lot-size)"]
    default = Instrument(symbol=symbol, tick_size=options.tick_size,
                         lot_size=DEFAULT_LOT_SIZE)
    return instrument_with_overrides(default, options), notes


def _stem(path: str) -> str:
    return os.path.basename(path).split(".")[0]


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    chunks, notes, instrument, last = [], [], None, None
    rows = 0
    with options.progress(len(paths), "hftbacktest") as bar:
        for path in paths:
            events, stored, stored_meta = load_file(path)
            got, more_notes = _instrument(path, stored, options, _stem(paths[0]))
            if instrument is not None and got != instrument:
                raise DataError(f"instrument {got} differs from the first input's {instrument}; "
                                f"convert each separately", path=path, field="instrument")
            instrument = got
            notes += more_notes
            rows += len(events)
            events = events[source_rows(events)]
            kind = events["ev"] & np.uint64(KIND_MASK)
            known = np.isin(kind, _known_kinds(ours=stored_meta is not None))
            if not known.all():
                dropped = np.unique(kind[~known], return_counts=True)
                detail = ", ".join(f"kind {int(k)}: {int(c):,}" for k, c in zip(*dropped))
                notes.append(f"{os.path.basename(path)}: dropped events of kinds outside our event "
                             f"record ({detail})")
                events = events[known]
            if stored_meta is not None:
                notes += [f"{os.path.basename(path)}: {n}" for n in stored_meta.notes]
            events["ev"] &= ~np.uint64(EXCH | LOCAL)
            if len(events):
                if last is not None and events["local_ts"][0] < last:
                    raise DataError("starts before the previous input ends: give inputs in time order",
                                    path=path, field="local_ts")
                last = int(events["local_ts"][-1])
            chunks.append(events)
            bar.update()
    events = np.concatenate(chunks) if chunks else np.zeros(0, dtype=EVENT_DTYPE)
    counts = np.bincount((events["ev"] & np.uint64(KIND_MASK)).astype(np.int64), minlength=256)
    meta = DatasetMeta(
        source_format=FORMAT,
        sources=list(paths),
        source_rows=rows,
        source_rows_by_kind={KIND_NAMES[k]: int(counts[k]) for k in KIND_NAMES if counts[k]},
        notes=notes,
    )
    return Conversion(events=events, instrument=instrument, meta=meta)
