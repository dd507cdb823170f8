"""What every reader takes and returns.

A reader module exposes ``FORMAT`` (its name), ``sniff(path) -> bool`` and
``read(paths, options) -> Conversion``. It reports bad input only through
:class:`~common.errors.DataError` (via ``SkipCounter`` where skipping is safe),
returns events in source order with EXCH/LOCAL flags unset, and leaves
timestamp correction and timeline ordering to :func:`feeds.formats.read`,
which does them once for every format.
"""
from __future__ import annotations

from typing import Callable, Literal, Protocol, Sequence

import msgspec
import numpy as np

from common.errors import SkipCounter
from feeds.instrument import Instrument
from feeds.store import DatasetMeta


class Steps(Protocol):
    """Where a reader reports its work: a progress bar, or nothing. Market data does not draw."""

    def update(self, advance: float = 1.0) -> None: ...
    def __enter__(self) -> "Steps": ...
    def __exit__(self, *exc) -> None: ...


class _NoSteps:
    def update(self, advance: float = 1.0) -> None:
        pass

    def __enter__(self) -> "_NoSteps":
        return self

    def __exit__(self, *exc) -> None:
        pass


def no_progress(total: float, label: str) -> Steps:
    """The default: count nothing, draw nothing."""
    return _NoSteps()


class ReadOptions(msgspec.Struct, frozen=True):
    on_error: Literal["raise", "skip"] = "raise"
    # Instrument fields given by the user override what a format implies.
    symbol: str | None = None
    tick_size: float | None = None
    lot_size: float | None = None
    contract_multiplier: float | None = None
    # Added to the smallest feed latency when local clocks ran behind the exchange's.
    base_latency_ns: int = 0
    # Read several inputs as separate captures (each a fresh book and clock), not one stream.
    fresh_book_per_input: bool = False
    # ``progress(total, label)`` opens what a reader counts its steps on; the command line passes a bar.
    progress: Callable[[float, str], Steps] = no_progress


class Conversion(msgspec.Struct):
    """Events read from one or more inputs of one format, with spec and provenance."""

    events: np.ndarray
    instrument: Instrument
    meta: DatasetMeta
    # Event index where each input read as a capture of its own starts; its clock is corrected alone.
    input_starts: list[int] = []


def instrument_with_overrides(default: Instrument, options: ReadOptions) -> Instrument:
    """The format's implied instrument, with any user-given fields replacing its own."""
    fields = {
        "symbol": options.symbol,
        "tick_size": options.tick_size,
        "lot_size": options.lot_size,
        "contract_multiplier": options.contract_multiplier,
    }
    return msgspec.structs.replace(default, **{k: v for k, v in fields.items() if v is not None})


def typed_meta(source_format: str, paths: Sequence[str], typed_rows: Sequence[tuple[str, int]],
               counter: SkipCounter, notes: list[str]) -> DatasetMeta:
    """Provenance of inputs that each hold one data type (a vendor's trades, book, quotes files)."""
    by_type: dict[str, int] = {}
    for data_type, rows in typed_rows:
        by_type[data_type] = by_type.get(data_type, 0) + rows
    return DatasetMeta(source_format=source_format, sources=list(paths),
                       source_rows=sum(by_type.values()) + counter.count, source_rows_by_kind=by_type,
                       skipped=counter.count, skipped_examples=list(counter.first), notes=notes)
