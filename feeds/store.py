"""Our event file: an hftbacktest-compatible ``.npz`` plus the instrument spec.

Members of the zip:

- ``data``: the events, ``EVENT_DTYPE`` (the only member hftbacktest reads);
- ``instrument``: the :class:`Instrument` as JSON bytes;
- ``meta``: the :class:`DatasetMeta` provenance as JSON bytes.

:func:`write` writes into a file object (callers pick an atomic one). :func:`iter_chunks` streams the events of any
number of files a bounded chunk at a time, decompressing on the fly, so memory
stays flat however long the history.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from typing import Iterable, Iterator

import msgspec
import numpy as np

from common.errors import DataError
from feeds.events import DEPTH_BBO, EVENT_DTYPE, KIND_MASK
from feeds.instrument import Instrument

SCHEMA_VERSION = 1
DEFAULT_CHUNK = 1 << 20
_READ_BYTES = 1 << 22   # zip members read through a buffer of this size


class DatasetMeta(msgspec.Struct, forbid_unknown_fields=False):
    """Where the events came from, so counts can be reconciled with the source."""

    source_format: str
    sources: list[str]
    schema_version: int = SCHEMA_VERSION
    source_rows: int = 0                      # lines or rows read from the inputs
    source_rows_by_kind: dict[str, int] = {}  # e.g. LOBSTER message types
    skipped: int = 0                          # bad lines skipped under --on-error skip
    skipped_examples: list[str] = []
    notes: list[str] = []                     # what a user must know (partial book, corrections)
    book_partial_until_ts: int | None = None  # local_ts from which the book is complete
    local_ts_offset_ns: int = 0               # added to local_ts to remove negative feed latency


class EventFile(msgspec.Struct):
    events: np.ndarray
    instrument: Instrument | None
    meta: DatasetMeta | None


def _bytes_member(obj: msgspec.Struct) -> np.ndarray:
    return np.frombuffer(msgspec.json.encode(obj), dtype=np.uint8)


def write(f, events: np.ndarray, instrument: Instrument | None = None, meta: DatasetMeta | None = None,
          compress: bool = True, bbo: bool = True) -> int:
    """Write events (and spec, provenance) as an event file into the binary file ``f``; returns the events written.

    Where the bytes land is the caller's choice: the command line writes through
    :func:`common.atomic.atomic_write`, so a file is whole or absent.

    ``bbo=False`` leaves out the ``DEPTH_BBO`` rows (and says so in the meta's notes).
    hftbacktest skips them while our engine applies them, so a file with them
    fills differently in the two; without them the two agree (docs/data-formats.md).
    """
    if events.dtype != EVENT_DTYPE:
        raise DataError(f"events have dtype {events.dtype}, expected the 64-byte event record",
                        path=_name(f), field="data")
    if not bbo:
        events, meta = without_bbo(events, meta)
    members = {"data": events}
    if instrument is not None:
        members["instrument"] = np.frombuffer(instrument.to_json(), dtype=np.uint8)
    if meta is not None:
        members["meta"] = _bytes_member(meta)
    write_npz(f, members, compress)
    return len(events)


def without_bbo(events: np.ndarray, meta: DatasetMeta | None = None) -> tuple[np.ndarray, DatasetMeta | None]:
    """The events less their ``DEPTH_BBO`` rows, and the meta with a note of how many went."""
    keep = (events["ev"] & np.uint64(KIND_MASK)) != DEPTH_BBO
    dropped = int(len(events) - np.count_nonzero(keep))
    if meta is not None and dropped:
        meta = msgspec.structs.replace(meta, notes=[*meta.notes, f"{dropped:,} DEPTH_BBO rows left out "
                                                                 "(--no-bbo): the book is the depth rows' alone"])
    return (events[keep] if dropped else events), meta


def _name(f) -> str | None:
    """The path a file object was opened at, where it has one (a temp file opened by fd has none)."""
    name = getattr(f, "name", None)
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else None


# A fixed member timestamp: numpy's savez stamps the wall clock, which would make
# two conversions of the same input differ by their zip headers.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class Chunked(msgspec.Struct):
    """An array written to an .npz without being held: ``n`` rows of ``dtype``, which ``chunks()`` yields in
    order (a new iterator each call)."""

    dtype: np.dtype
    n: int
    chunks: object


def write_npz(f, members: dict[str, np.ndarray | Chunked], compress: bool = True) -> None:
    """Write arrays as an .npz (numpy's layout) whose bytes depend only on the arrays.

    A :class:`Chunked` member is streamed in: the same bytes as its whole array, since a member's
    bytes are its header and its rows, and deflate's output does not depend on how its input was cut."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
        for name, array in members.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as member:
                if isinstance(array, Chunked):
                    _write_chunked(member, array)
                else:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _write_chunked(member, array: Chunked) -> None:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0, dtype=array.dtype))
    header["shape"] = (array.n,)
    np.lib.format._write_array_header(member, header, None)
    written = 0
    for chunk in array.chunks():
        chunk = np.ascontiguousarray(chunk, dtype=array.dtype)
        member.write(chunk.tobytes())
        written += len(chunk)
    if written != array.n:
        raise AssertionError(f"a streamed array promised {array.n} rows and gave {written}")


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"not a readable .npz (zip) file: {e}", path=path) from None


# Deflate cannot shrink data by more than about 1032:1, so a member's claimed
# size above this many times its stored bytes is a lie (a crafted or damaged zip).
MAX_DEFLATE_RATIO = 1100


def _member_bytes(zf: zipfile.ZipFile, path: str) -> int:
    """The ``data.npy`` member's uncompressed size, once it is shown to be possible for the bytes on disk.

    A header is trusted only as far as the file can back it: the event count it
    claims must fill the member exactly (see :func:`_read_header`), and the
    member cannot inflate beyond what deflate allows of its compressed bytes,
    so nothing is allocated for events the file cannot hold.
    """
    info = zf.getinfo("data.npy")
    stored = min(info.compress_size, os.path.getsize(path))   # the directory's word, bounded by the disk's
    limit = stored * (MAX_DEFLATE_RATIO if info.compress_type != zipfile.ZIP_STORED else 1)
    if info.file_size > limit:
        raise DataError(f"zip entry claims {info.file_size:,} bytes from {stored:,} stored: "
                        f"more than its compression allows", path=path, field="data")
    return info.file_size


def _read_header(f, path: str, member_bytes: int | None) -> tuple[tuple[int, ...], np.dtype]:
    """The event array's shape and dtype; with ``member_bytes`` (the bytes the header and array
    may fill), the event count must be exactly what they hold. ``None``: only sniffing, no count kept."""
    try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
    except (ValueError, EOFError, SyntaxError) as e:
        raise DataError(f"bad .npy header: {e}", path=path, field="data") from None
    if fortran or len(shape) != 1:
        raise DataError(f"expected a 1-D event array, got shape {shape}", path=path, field="data")
    if dtype != EVENT_DTYPE:
        raise DataError(f"expected the 64-byte event record (hftbacktest event_dtype), got {dtype}",
                        path=path, field="data")
    held = None if member_bytes is None else (member_bytes - f.tell()) // EVENT_DTYPE.itemsize
    if held is not None and shape[0] != held:
        raise DataError(f"truncated: header promises {shape[0]:,} events, the file holds {held:,}",
                        path=path, field="data")
    return shape, dtype


def _read_json_member(zf: zipfile.ZipFile, name: str, typ, path: str):
    if name + ".npy" not in zf.namelist():
        return None
    try:
        with zf.open(name + ".npy") as f:
            raw = np.lib.format.read_array(f)
        return msgspec.json.decode(raw.tobytes(), type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        raise DataError(f"bad {name} record: {e}", path=path, field=name) from None


def load_header(path: str | os.PathLike) -> tuple[int, Instrument | None, DatasetMeta | None]:
    """Number of events, spec and provenance, without reading the events."""
    path = os.fspath(path)
    with _open_zip(path) as zf:
        if "data.npy" not in zf.namelist():
            raise DataError("no 'data' member: not an event file", path=path, field="data")
        try:
            with zf.open("data.npy") as f:
                shape, _ = _read_header(f, path, _member_bytes(zf, path))
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise DataError(f"corrupt or truncated: {e}", path=path) from None
        return (shape[0], _read_json_member(zf, "instrument", Instrument, path),
                _read_json_member(zf, "meta", DatasetMeta, path))


def iter_chunks(paths: Iterable[str | os.PathLike], chunk_events: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    """Yield the events of each file in order, at most ``chunk_events`` at a time."""
    if chunk_events <= 0:
        raise DataError(f"chunk size must be positive, got {chunk_events}", field="chunk_events")
    for p in paths:
        path = os.fspath(p)
        with _open_zip(path) as zf:
            if "data.npy" not in zf.namelist():
                raise DataError("no 'data' member: not an event file", path=path, field="data")
            try:
                with zf.open("data.npy") as f:
                    (n,), _ = _read_header(f, path, _member_bytes(zf, path))
                    remaining = n
                    while remaining:
                        take = min(remaining, chunk_events)
                        raw = f.read(take * EVENT_DTYPE.itemsize)
                        if len(raw) != take * EVENT_DTYPE.itemsize:
                            raise DataError(f"truncated: header promises {n} events, data ends early",
                                            path=path, field="data")
                        yield np.frombuffer(raw, dtype=EVENT_DTYPE).copy()
                        remaining -= take
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise DataError(f"corrupt or truncated: {e}", path=path) from None


def load(path: str | os.PathLike) -> EventFile:
    """Read a whole event file (ours or hftbacktest's).

    The events are read straight from the zip member into one preallocated array, so
    loading needs the array's size in memory once, not twice (raw bytes plus a copy).
    """
    path = os.fspath(path)
    n, instrument, meta = load_header(path)
    events = np.empty(n, dtype=EVENT_DTYPE)
    with _open_zip(path) as zf:
        try:
            with zf.open("data.npy") as f:
                _read_header(f, path, _member_bytes(zf, path))
                view = memoryview(events.view(np.uint8))
                got = 0
                while got < events.nbytes:
                    k = f.readinto(view[got:got + _READ_BYTES])
                    if not k:
                        raise DataError(f"truncated: header promises {n} events, data ends early",
                                        path=path, field="data")
                    got += k
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise DataError(f"corrupt or truncated: {e}", path=path) from None
    return EventFile(events=events, instrument=instrument, meta=meta)


def is_event_file(path: str) -> bool:
    """True when ``path`` is a zip holding a ``data.npy`` member (ours or hftbacktest's)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "data.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
