"""Checks every event array passes before it is written or replayed.

Readers catch defects at the line they occur; these checks are the last line
of defence for every format alike (and the whole of ``cmm data validate`` for
an existing event file): no NaN or infinite price or size where one is needed,
no negative size, no zero or negative price on book events, and prices within
a span of ticks a book can hold.

An event file is checked again when it is loaded to be replayed
(:func:`load_replayable`): it may come from hftbacktest, an older version, or a
hand, and files listed out of time order would otherwise replay a history
that never happened.
"""
from __future__ import annotations

import os
from typing import Sequence

import msgspec
import numba as nb
import numpy as np

from common.errors import DataError
from feeds.events import (ADD_ORDER, CANCEL_ORDER, DEPTH, DEPTH_BBO, DEPTH_SNAPSHOT, EXCH, FILL, KIND_MASK,
                          KIND_NAMES, LOCAL, MODIFY_ORDER, TRADE)
from feeds.store import EventFile, load

PRICED_KINDS = np.array([DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, MODIFY_ORDER, FILL],
                        dtype=np.uint64)
SIZED_KINDS = np.array([DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, CANCEL_ORDER,
                        MODIFY_ORDER, FILL], dtype=np.uint64)


PRICED_BY_KIND = np.isin(np.arange(KIND_MASK + 1, dtype=np.uint64), PRICED_KINDS)   # kind -> has a price
_SIZED = np.isin(np.arange(KIND_MASK + 1, dtype=np.uint64), SIZED_KINDS)


@nb.njit(cache=True)
def _all_ok(ev, px, qty, priced, sized) -> bool:
    for i in range(ev.shape[0]):
        kind = ev[i] & KIND_MASK
        if priced[kind] and not (np.isfinite(px[i]) and px[i] > 0):
            return False
        if sized[kind] and not (np.isfinite(qty[i]) and qty[i] >= 0):
            return False
    return True


def events_ok(events: np.ndarray) -> bool:
    """Whether :func:`check_events` would pass ``events``, in one jitted pass and no allocation.

    The feed checks every batch it receives with this (its hot path), and
    :func:`check_events` only for a batch that fails, to say what is wrong.
    """
    return _all_ok(events["ev"], events["px"], events["qty"], PRICED_BY_KIND, _SIZED)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_events(events: np.ndarray, source: str = "<events>", first: int = 0) -> None:
    """Raise a DataError naming the first event that breaks a rule (numbered from ``first``: a chunk's place)."""
    if len(events) == 0:
        return
    kind = events["ev"] & np.uint64(KIND_MASK)
    px, qty = events["px"], events["qty"]
    priced = np.isin(kind, PRICED_KINDS)
    sized = np.isin(kind, SIZED_KINDS)
    rules = (
        (priced & ~np.isfinite(px), "px", "expected a finite price"),
        (priced & np.isfinite(px) & (px <= 0), "px", "expected a positive price"),
        (sized & ~np.isfinite(qty), "qty", "expected a finite size"),
        (sized & (qty < 0), "qty", "expected a size >= 0"),
    )
    for bad, field, expected in rules:
        if bad.any():
            i = _first(bad)
            name = KIND_NAMES.get(int(kind[i]), f"kind {int(kind[i])}")
            raise DataError(f"event {first + i} ({name}): {expected}, got {float(events[field][i])!r}",
                            path=source, field=field)


# The engine and the book checker keep dense arrays over the ticks between the
# lowest and highest price (tens of bytes a tick). A real day spans thousands
# of ticks and years of BTC at 0.01 about ten million; a wider span is a bad
# price (1e12 instead of 100), and allocating for it would exhaust memory.
MAX_BOOK_TICKS = 1 << 24
NO_PRICES = (float("inf"), float("-inf"))


@nb.njit(cache=True)
def _priced_range(ev, px, priced):
    """``(count, lowest, highest)`` of the finite positive prices on rows of a priced kind, in one pass
    (paper trading checks every feed batch: numpy's dozen passes over a few rows cost tens of us)."""
    n, low, high = 0, np.inf, -np.inf
    for i in range(ev.size):
        p = px[i]
        if priced[ev[i] & KIND_MASK] and np.isfinite(p) and p > 0:
            n += 1
            low = min(low, p)
            high = max(high, p)
    return n, low, high


def check_price_span(events: np.ndarray, tick_size: float, source: str = "<events>", first: int = 0,
                     seen: tuple[float, float] = NO_PRICES) -> tuple[float, float]:
    """Refuse prices spread over more than ``MAX_BOOK_TICKS`` ticks; return the (lowest, highest) price.

    ``seen`` is the range of earlier chunks of the same stream and ``first`` the
    number of this chunk's first event, so a stream is checked a chunk at a time.
    The error names the price furthest from this chunk's median: the outlier.
    """
    n, low, high = _priced_range(events["ev"], events["px"], PRICED_BY_KIND)
    if n == 0:
        return seen
    lo, hi = min(seen[0], low), max(seen[1], high)
    span = round(hi / tick_size) - round(lo / tick_size)
    if span > MAX_BOOK_TICKS:
        kind = events["ev"] & np.uint64(KIND_MASK)
        px = events["px"]
        priced = np.isin(kind, PRICED_KINDS) & np.isfinite(px) & (px > 0)
        prices = px[priced]
        median = float(np.median(prices))
        i = int(np.flatnonzero(priced)[np.argmax(np.abs(prices - median))])
        raise DataError(f"event {first + i} ({KIND_NAMES.get(int(kind[i]), 'kind')}): price {float(px[i])!r} is "
                        f"implausible: prices span {lo:g} .. {hi:g}, {span:,} ticks of {tick_size:g}; "
                        f"expected at most {MAX_BOOK_TICKS:,}", path=source, field="px")
    return lo, hi


TIMELINES = ((EXCH, "exch_ts"), (LOCAL, "local_ts"))


class Last(msgspec.Struct, frozen=True):
    """Where a stream's timelines stand: the last timestamp on each, and the file it came from."""

    exch_ts: int | None = None
    local_ts: int | None = None
    exch_ts_path: str | None = None
    local_ts_path: str | None = None


_ORDERED = "an event file must be ordered on both timelines, as cmm data convert writes it"


def check_timelines(events: np.ndarray, source: str = "<events>", first: int = 0, last: Last = Last()) -> Last:
    """Refuse events that go back in time on the exchange or the local timeline; return where they end.

    ``last`` is where the stream stood before this chunk, so a step back across
    chunks or files is caught; across files it means they were given out of
    time order.
    """
    ev = events["ev"]
    ends = msgspec.structs.asdict(last)
    for flag, field in TIMELINES:
        rows = np.flatnonzero((ev & np.uint64(flag)) != 0)
        if len(rows) == 0:
            continue
        ts = events[field][rows]
        before, before_path = getattr(last, field), getattr(last, field + "_path")
        if before is not None and ts[0] < before:
            if before_path != source:
                raise DataError(f"starts at {field} {int(ts[0])}, before the previous file "
                                f"{os.path.basename(before_path)} ends ({before}): give the files in time order",
                                path=source, field=field)
            raise DataError(f"event {first + int(rows[0])}: {field} {int(ts[0])} goes back from {before}; "
                            f"{_ORDERED}", path=source, field=field)
        back = np.flatnonzero(ts[1:] < ts[:-1])
        if len(back):
            k = int(back[0])
            raise DataError(f"event {first + int(rows[k + 1])}: {field} {int(ts[k + 1])} goes back from "
                            f"{int(ts[k])}; {_ORDERED}", path=source, field=field)
        ends[field], ends[field + "_path"] = int(ts[-1]), source
    return Last(**ends)


def load_replayable(paths: Sequence[str | os.PathLike]) -> EventFile:
    """The events of one or more event files, in the order given, checked as convert checks what it writes.

    Values (:func:`check_events`), both timelines across the files, and one
    instrument for all. The price span is the caller's to check: it knows the
    tick size in force (a config may override the file's).
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise DataError("no input files given", field="data.files")
    loaded, last = [], Last()
    for path in paths:
        f = load(path)
        if loaded and f.instrument != loaded[0].instrument:
            raise DataError("instrument differs from the first file's", path=path, field="instrument")
        check_events(f.events, source=path)
        last = check_timelines(f.events, path, last=last)
        loaded.append(f)
    events = np.concatenate([f.events for f in loaded]) if len(loaded) > 1 else loaded[0].events
    return EventFile(events=events, instrument=loaded[0].instrument, meta=loaded[0].meta)


def find_gaps(events: np.ndarray, last_local: int | None, gap_ns: int) -> tuple[list[tuple[int, int]], int | None]:
    """Jumps of local time longer than ``gap_ns`` between consecutive LOCAL rows (a night between two
    days' files, a feed outage), as ``(from_ts, to_ts)``; ``last_local`` is where the stream stood before
    this chunk. Returns the gaps and where the stream stands after it."""
    ts = events["local_ts"][(events["ev"] & np.uint64(LOCAL)) != 0]
    if len(ts) == 0:
        return [], last_local
    if last_local is not None:
        ts = np.concatenate([[last_local], ts])
    jumps = np.flatnonzero(np.diff(ts) > gap_ns)
    return [(int(ts[k]), int(ts[k + 1])) for k in jumps], int(ts[-1])
