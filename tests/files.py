"""Writing event files in tests as the command line does: atomically, through :func:`feeds.store.write`."""
from __future__ import annotations

from common.atomic import atomic_write
from feeds.store import write


def save_events(path, events, instrument=None, meta=None, compress: bool = True) -> None:
    with atomic_write(path) as f:
        write(f, events, instrument, meta, compress)
