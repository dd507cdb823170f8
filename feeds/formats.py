"""One entry point for every input format: detect, read, correct, order.

``read`` dispatches to the format's reader, then does what every format needs
in the same way: checks the events (values, price span), removes negative feed latency, and puts
the events on the two timelines the engine replays.
"""
from __future__ import annotations

import importlib
import os
from typing import Sequence

import msgspec

from common.errors import DataError
from feeds.instrument import Instrument
from feeds.ordering import correct_local_timestamp, order_timelines
from feeds.readers.base import Conversion, ReadOptions
from feeds.validate import check_events, check_price_span

# Checked in this order by ``detect``; the first reader whose sniff says yes wins.
READERS = {
    "hftbacktest": "feeds.readers.hftbacktest_npz",
    "databento": "feeds.readers.databento",
    "lobster": "feeds.readers.lobster",
    "binance": "feeds.readers.binance",
    "bybit": "feeds.readers.bybit",
    "csv": "feeds.readers.csv",
    "tardis": "feeds.readers.tardis",
    "binance-vision": "feeds.readers.binance_vision",
}
FORMATS = ("auto", *READERS)


def reader_module(fmt: str):
    if fmt not in READERS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", field="format")
    return importlib.import_module(READERS[fmt])


def detect(path: str) -> str:
    """The format of ``path``, or a DataError saying none matched."""
    if not os.path.exists(path):
        raise DataError("no such file", path=path)
    for fmt in READERS:
        if reader_module(fmt).sniff(path):
            return fmt
    raise DataError(f"unknown format: none of {', '.join(READERS)} recognises it; "
                    f"name one with --format", path=path)


def resolve_format(paths: Sequence[str], fmt: str = "auto") -> str:
    if not paths:
        raise DataError("no input files given", field="INPUT")
    if fmt != "auto":
        reader_module(fmt)
        return fmt
    found = {p: detect(p) for p in paths}
    kinds = set(found.values())
    if len(kinds) > 1:
        detail = ", ".join(f"{os.path.basename(p)}={k}" for p, k in found.items())
        raise DataError(f"inputs mix formats ({detail}); convert each format separately", field="INPUT")
    return kinds.pop()


def validated_instrument(instrument: Instrument) -> Instrument:
    """Re-check an instrument built or overridden in code against its schema."""
    try:
        return msgspec.convert(msgspec.to_builtins(instrument), Instrument)
    except msgspec.ValidationError as e:
        raise DataError(f"bad instrument: {e}", field="instrument") from None


def read(paths: Sequence[str], fmt: str = "auto", options: ReadOptions = ReadOptions()) -> Conversion:
    """Read inputs of one format into checked events on both timelines."""
    paths = [os.fspath(p) for p in paths]
    fmt = resolve_format(paths, fmt)
    conv = reader_module(fmt).read(paths, options)
    conv.instrument = validated_instrument(conv.instrument)
    check_events(conv.events, source=", ".join(paths))
    check_price_span(conv.events, conv.instrument.tick_size, source=", ".join(paths))
    correct_clocks(conv, paths, options.base_latency_ns)
    conv.events = order_timelines(conv.events)
    return conv


def correct_clocks(conv: Conversion, paths: list[str], base_latency_ns: int) -> None:
    """Remove negative feed latency: once, or per input where inputs are captures of their own.

    ``meta.local_ts_offset_ns`` is the first input's shift; the notes give each one.
    """
    starts = conv.input_starts or [0]
    bounds = [*starts, len(conv.events)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        where = paths[k] if conv.input_starts else ", ".join(paths)
        try:
            offset = correct_local_timestamp(conv.events[a:b], base_latency_ns)   # a view: in place
        except DataError as e:
            raise e.located(where) from None
        if not offset:
            continue
        if k == 0:
            conv.meta.local_ts_offset_ns += offset
            if conv.meta.book_partial_until_ts is not None:
                conv.meta.book_partial_until_ts += offset
        conv.meta.notes.append(f"local clock ran behind the exchange"
                               f"{f' in {where}' if conv.input_starts else ''}: local_ts shifted by "
                               f"+{offset} ns so the smallest feed latency is {base_latency_ns} ns")
