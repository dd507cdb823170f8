"""Stream text inputs (plain, .gz, or members of a .zip) and turn I/O faults into DataErrors.

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


# Text is parsed a block at a time, so memory follows the rows a file holds,
# not its size: a small gzip can inflate to gigabytes of blank lines.
BLOCK_BYTES = 1 << 23
MAX_LINE_BYTES = 1 << 20   # a longer "line" is not a text file of rows


def _open(path: str, member: str | None):
    if member is not None:
        zf = zipfile.ZipFile(path)
        try:
            return zf.open(member)
        finally:
            zf.close()   # the member keeps its own handle on the archive
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def iter_blocks(path: str, member: str | None = None, size: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield (lines before the block, block) of a plain, .gz or zip-member text file, in order.

    Each block ends just after a newline (the last may end at the end of the
    file), so no line is split between two; together they are the whole file.
    """
    where = f"{path}[{member}]" if member else path
    lines = 0
    carry = b""
    try:
        with _open(path, member) as f:
            while True:
                data = f.read(size)
                if not data:
                    break
                data = carry + data
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > MAX_LINE_BYTES:
                        raise DataError(f"a line longer than {MAX_LINE_BYTES:,} bytes: not a text file of rows",
                                        path=where, line=lines + 1)
                    carry = data
                    continue
                block, carry = data[:cut], data[cut:]
                yield lines, block
                lines += block.count(b"\n")
        if carry:
            yield lines, carry
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except KeyError:
        raise DataError(f"zip has no member {member!r}", path=path) from None
    except _IO_FAULTS as e:
        raise DataError(f"corrupt or truncated {_kind(path)} after line {lines}: {e}", path=where) from None


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
