"""Tick data: one 64-byte event record, readers for every format, our event files.

The API most callers need::

    conv = feeds.read(["GOOG.zip"])            # detect the format, read, check, order
    feeds.save("goog.npz", conv.events, conv.instrument, conv.meta)
    for chunk in feeds.iter_chunks(["day1.npz", "day2.npz"]):   # bounded memory
        ...
"""
from .book_check import BookCheck, check_book
from .errors import DataError
from .events import EVENT_DTYPE
from .formats import FORMATS, detect, read, resolve_format
from .info import Summary, format_summary, summarize
from .instrument import Instrument
from .reader import Conversion, ReadOptions
from .store import DatasetMeta, EventFile, iter_chunks, load, load_header, save

__all__ = [
    "BookCheck", "Conversion", "DataError", "DatasetMeta", "EVENT_DTYPE", "EventFile", "FORMATS",
    "Instrument", "ReadOptions", "Summary", "check_book", "detect", "format_summary", "iter_chunks",
    "load", "load_header", "read", "resolve_format", "save", "summarize",
]
