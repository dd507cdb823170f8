"""Open text inputs (plain, .gz, or members of a .zip) and turn I/O faults into DataErrors.

A truncated gzip or zip is detected while reading, not at open time, so line
iteration is wrapped to report where the stream broke.
"""
from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from typing import Iterator

from common.errors import DataError

_IO_FAULTS = (EOFError, OSError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile)


def read_bytes(path: str, member: str | None = None) -> bytes:
    """The whole (decompressed) content of a plain, .gz or zip-member file."""
    try:
        if member is not None:
            with zipfile.ZipFile(path) as zf:
                return zf.read(member)
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except KeyError:
        raise DataError(f"zip has no member {member!r}", path=path) from None
    except _IO_FAULTS as e:
        where = f"{path}[{member}]" if member else path
        raise DataError(f"corrupt or truncated {_kind(path)}: {e}", path=where) from None


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without newline) of a plain or .gz text file.

    A line cut off by a truncated archive raises a DataError naming the last
    complete line, never a bare EOFError.
    """
    lineno = 0
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(io.BufferedReader(f, 1 << 20) if opener is gzip.open else f, 1):
                yield lineno, raw.rstrip(b"\r\n")
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except _IO_FAULTS as e:
        raise DataError(f"corrupt or truncated {_kind(path)} after line {lineno}: {e}",
                        path=path, line=lineno + 1) from None


def _kind(path: str) -> str:
    if path.endswith(".gz"):
        return "gzip stream"
    if path.endswith(".zip"):
        return "zip archive"
    return "file"
