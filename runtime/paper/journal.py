"""The paper trader's append-only journal: what it received, and what its orders, fills and position became.

Paper trading is deterministic in what it receives: the same feed batches, in
the same order, give the same orders and fills (the engine runs on the feed's
timestamps; a measured decision time is journaled with them). So the journal
records each step's *input* (the feed batch, a snapshot resync, the feed's
clock moving on in a quiet market, a stale-feed quote pull, the end of the stream) together with its *outcome* (the orders
sent, the fills, the position and cash after it) in one record, and a trader
killed at any instant resumes by re-running the journaled steps: the state
rebuilt is the state lost, and every fill it re-derives is checked against the
journal's. A step not yet journaled when the trader died is simply fetched
from the feed again, so nothing is lost and nothing is counted twice.

File format: records of ``[u32 length][u32 crc32][msgpack payload]``, little
endian, the first a :class:`JournalHeader`. Writes are appended and handed to
the kernel (:meth:`Journal.sync`) once per poll of the feed, after the steps it
handled: a trader killed at any instant, even by SIGKILL, loses none of them.
The fsync that puts them on the disk runs in a thread of its own, as soon as it
can and coalescing the requests that came while it ran, because on a virtual
disk it takes a quarter of a millisecond and at times several
(``bench/journal_sync.py``), and a trading loop that waited for it would leave
the next ticks in the socket all that time. So a
machine that crashes can lose the last few milliseconds of steps; those were
never acknowledged to anyone, and resuming fetches them from the feed again. A
failed fsync is raised at the next :meth:`Journal.sync`, never dropped.
A crash can leave a torn last record: one cut short by the end of the file,
whose bytes are the start of a record. Reading stops before it and resuming
truncates it away. Anything else that is not a record (a flipped byte, garbage
or zeros where a record should be) is damage, and it is refused with its byte
offset: dropping it would silently drop every step after it.

A journal is written by one trader at a time: :class:`Journal` holds an
exclusive ``flock`` on it for its life, so a second ``cmm paper --resume`` of
the same journal is refused instead of interleaving its records.
"""
from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from typing import Iterator, Literal, Union

import msgspec

from common.errors import DataError
from feeds.instrument import Instrument

JOURNAL_VERSION = 1
FRAME = struct.Struct("<II")
MAX_RECORD = 64 << 20


class JournalHeader(msgspec.Struct, tag="header", frozen=True):
    version: int
    config_sha256: str          # a journal resumes only with the config that wrote it
    topic: str
    instrument: Instrument
    started_ns: int


class JournalFill(msgspec.Struct, frozen=True, array_like=True):
    order_id: int
    side: int                   # 1 buy, -1 sell
    exch_ts: int
    local_ts: int
    maker: bool
    price: float
    qty: float
    fee: float


class JournalOrder(msgspec.Struct, frozen=True, array_like=True):
    """A request the strategy sent: ``kind`` new, modify or cancel; ``side`` 1 buy, -1 sell; it reaches the
    exchange at ``arrives_ts``."""

    order_id: int
    kind: str
    side: int
    price: float
    qty: float
    arrives_ts: int


class Step(msgspec.Struct, tag="step", frozen=True):
    kind: Literal["batch", "snapshot", "clock", "stale", "end"]
    seq: int                    # the feed's seq after this step
    session: int                # the publisher's session
    events: bytes = b""         # the received records (batch) or the snapshot's
    clock_ns: int = 0           # clock: every event up to this local time has been received
    charges_ns: list[int] = []  # measured decision times of the wake-ups in this step, in order
    orders: list[JournalOrder] = []
    fills: list[JournalFill] = []
    position: float = 0.0       # after the step, at the exchange
    cash: float = 0.0
    fees: float = 0.0


Record = Union[JournalHeader, Step]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


class JournalError(DataError):
    """A journal that cannot be resumed from."""


def read(path: str) -> tuple[JournalHeader, list[Step], int]:
    """The header, every complete step, and the byte length they span (a torn tail is past it)."""
    header, steps, good = None, [], 0
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise JournalError(f"cannot read journal: {e.strerror}", path=path) from None
    for record, end in _records(data, path):
        if header is None:
            if not isinstance(record, JournalHeader):
                raise JournalError("the first record is not a journal header", path=path)
            if record.version != JOURNAL_VERSION:
                raise JournalError(f"journal version {record.version}, expected {JOURNAL_VERSION}", path=path)
            header = record
        elif isinstance(record, Step):
            steps.append(record)
        else:
            raise JournalError("a second header", path=path)
        good = end
    if header is None:
        raise JournalError("no journal header: the trader died before it wrote one; start afresh", path=path)
    return header, steps, good


def _record_starts() -> tuple[bytes, bytes]:
    """The bytes every encoded header and every encoded step begins with (its map size, tag and first key):
    a torn record's payload is a prefix of one of these, or begins with one."""
    instrument = Instrument(symbol="", tick_size=1.0, lot_size=1.0)
    headers = [_encoder.encode(JournalHeader(version=v, config_sha256="", topic="", instrument=instrument,
                                             started_ns=0)) for v in (0, 1)]
    steps = [_encoder.encode(Step(kind=kind, seq=0, session=0)) for kind in ("batch", "end")]
    return os.path.commonprefix(headers), os.path.commonprefix(steps)


_RECORD_STARTS = _record_starts()


def _torn(payload: bytes) -> bool:
    """Whether the bytes of a record cut short by the end of the file can be the start of a record."""
    return any(start.startswith(payload) or payload.startswith(start) for start in _RECORD_STARTS)


def _records(data: bytes, path: str) -> Iterator[tuple[Record, int]]:
    """Each record and the offset just past it; stops before a torn last record, refuses any other damage."""
    pos = 0
    while pos + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, pos)
        start, end = pos + FRAME.size, pos + FRAME.size + length
        if length > MAX_RECORD:
            raise _damaged(path, pos, f"a record length of {length:,} bytes (at most {MAX_RECORD:,})")
        payload = data[start:end]
        if end > len(data):
            if _torn(payload):
                return                  # the last write, cut short by a crash
            raise _damaged(path, pos, f"a record of {length:,} bytes that the file ends inside, "
                                      f"and not the start of a record")
        if zlib.crc32(payload) != crc:
            raise _damaged(path, pos, "its checksum does not match (a changed byte, or not a record)")
        try:
            record = _decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise _damaged(path, pos, f"not a journal record ({e})") from None
        yield record, end
        pos = end


def _damaged(path: str, offset: int, what: str) -> JournalError:
    return JournalError(f"damaged at byte offset {offset:,}: {what}; only a torn last record may be dropped, "
                        f"so the journal cannot be resumed past it", path=path)


class _Syncer:
    """fsyncs one file in a thread of its own whenever asked; requests that come while it runs make one more."""

    def __init__(self, fd: int, path: str):
        self._fd = fd
        self._path = path
        self._wanted = threading.Event()
        self._closing = False
        self.failed: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="journal-fsync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self.check()
        self._wanted.set()

    def check(self) -> None:
        """JournalError if an fsync of the thread's failed."""
        if self.failed is not None:
            raise JournalError(f"cannot make the journal durable: fsync failed: {self.failed.strerror}",
                               path=self._path)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                os.fsync(self._fd)
            except OSError as e:
                self.failed = e
                return

    def stop(self) -> None:
        """Join the thread; the caller makes the last fsync itself."""
        self._closing = True
        self._wanted.set()
        self._thread.join()


class Journal:
    """Appends records; :meth:`sync` hands everything appended so far to the kernel and has it made durable
    in the background (see the module docstring); :meth:`close` waits until it is. Holds the journal's lock."""

    def __init__(self, path: str, header: JournalHeader | None = None):
        """A new journal with ``header`` (an existing file is an error), or an existing one reopened for
        appending (lock it before reading it to resume, then :meth:`truncate` its torn tail away)."""
        self.path = path
        if header is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise JournalError("a journal already exists: resume it with --resume, or remove it",
                                   path=path) from None
            self._f = os.fdopen(fd, "ab")
            self._lock()
            self.append(header)
            self._durable()
            _fsync_dir(path)
        else:
            try:
                self._f = open(path, "r+b")
            except OSError as e:
                raise JournalError(f"cannot open journal: {e.strerror}", path=path) from None
            self._lock()
        self._syncer = _Syncer(self._f.fileno(), path)

    def _lock(self) -> None:
        """Exclusive for this trader's life (released when the file closes, or the process dies)."""
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            raise JournalError("the journal is in use by another cmm paper (it holds the journal's lock): "
                               "stop that one first", path=self.path) from None

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` bytes (the records :func:`read` trusted) and append after them."""
        self._f.truncate(length)
        self._f.seek(0, os.SEEK_END)

    def append(self, record: Record) -> None:
        payload = _encoder.encode(record)
        self._f.write(FRAME.pack(len(payload), zlib.crc32(payload)) + payload)

    def sync(self) -> None:
        """What was appended is the kernel's now (a killed trader loses none of it); on the disk soon."""
        self._f.flush()
        self._syncer.request()

    def _durable(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        """Everything appended on the disk, then the file (and its lock) released."""
        self._syncer.stop()
        self._syncer.check()
        self._durable()
        self._f.close()


def _fsync_dir(path: str) -> None:
    """Make the journal's directory entry durable too."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
