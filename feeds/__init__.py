"""Tick data: one 64-byte event record, readers for every format, our event files.

The API most callers need::

    conv = feeds.read(["GOOG.zip"])            # detect the format, read, check, order
    with atomic_write("goog.npz") as f:        # common.atomic: whole or absent
        feeds.write(f, conv.events, conv.instrument, conv.meta)
    for chunk in feeds.iter_chunks(["day1.npz", "day2.npz"]):   # bounded memory
        ...
"""
from feeds.book_check import BookCheck, check_book
from common.errors import DataError
from feeds.events import EVENT_DTYPE
from feeds.formats import FORMATS, detect, read, resolve_format
from feeds.info import Summary, format_summary, summarize
from feeds.instrument import Instrument
from feeds.readers.base import Conversion, ReadOptions
from feeds.store import DatasetMeta, EventFile, iter_chunks, load, load_header, write

__all__ = [
    "BookCheck", "Conversion", "DataError", "DatasetMeta", "EVENT_DTYPE", "EventFile", "FORMATS",
    "Instrument", "ReadOptions", "Summary", "check_book", "detect", "format_summary", "iter_chunks",
    "load", "load_header", "read", "resolve_format", "write", "summarize",
]
