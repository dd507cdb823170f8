"""Checks every event array passes before it is written or replayed.

Readers catch defects at the line they occur; these checks are the last line
of defence for every format alike (and the whole of ``cmm data validate`` for
an existing event file): no NaN or infinite price or size where one is needed,
no negative size, no zero or negative price on book events.
"""
from __future__ import annotations

import numpy as np

from common.errors import DataError
from feeds.events import (ADD_ORDER, CANCEL_ORDER, DEPTH, DEPTH_BBO, DEPTH_SNAPSHOT, FILL, KIND_MASK,
                     KIND_NAMES, MODIFY_ORDER, TRADE)

PRICED_KINDS = np.array([DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, MODIFY_ORDER, FILL],
                        dtype=np.uint64)
SIZED_KINDS = np.array([DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO, ADD_ORDER, CANCEL_ORDER,
                        MODIFY_ORDER, FILL], dtype=np.uint64)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_events(events: np.ndarray, source: str = "<events>") -> None:
    """Raise a DataError naming the first event that breaks a rule."""
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
            raise DataError(f"event {i} ({name}): {expected}, got {events[field][i]!r}",
                            path=source, field=field)
