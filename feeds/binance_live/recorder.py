"""The raw capture of a live Binance feed: ``<local_ts_ns> <json>`` lines, gzip, one file per symbol and period.

The lines are the ones :mod:`feeds.readers.binance` reads, and exactly the ones
the connector fed its books (after de-duplication), so ``cmm data convert`` of
a recording gives the events the connector published.

A file is written under a temp name (``NAME.part``) and renamed into place
when its hour or day ends, or when the recorder stops cleanly (Ctrl-C,
SIGTERM): a file with its final name is always whole. :meth:`Recorder.sync`
(once per batch of lines) flushes the gzip stream and fsyncs, so after a crash
the ``.part`` file holds every synced line, readable with ``zcat`` up to its
truncated end. Files are named ``<symbol>_<market>_<YYYYMMDD>.gz`` (per day)
or ``..._<YYYYMMDD>T<HH>.gz`` (per hour), by the UTC time of their first line;
a name taken already (a restart within the period) gets ``_01``, ``_02``, ...
"""
from __future__ import annotations

import gzip
import os
import time

from common.errors import DataError, cannot_write

PERIOD_NS = {"hour": 3600 * 10**9, "day": 86400 * 10**9}
PART = ".part"
COMPRESS_LEVEL = 6      # gzip's own default; Python's 9 spends more time per line (bench/live_binance.py) to save little


class _File:
    def __init__(self, final: str):
        self.final = final
        self.part = final + PART
        self.raw = open(self.part, "wb")
        self.gz = gzip.GzipFile(filename=os.path.basename(final), mode="wb", fileobj=self.raw, mtime=0,
                                compresslevel=COMPRESS_LEVEL)
        self.lines = 0

    def sync(self) -> None:
        self.gz.flush()          # Z_SYNC_FLUSH: every line so far decompresses
        self.raw.flush()
        os.fsync(self.raw.fileno())

    def close(self) -> None:
        self.gz.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.part, self.final)


class Recorder:
    """Per symbol, the open capture file of the current period; ``on_rotate(symbol)`` after each new file."""

    def __init__(self, out_dir: str, market: str, rotate: str = "hour", on_rotate=None):
        if rotate not in PERIOD_NS:
            raise DataError(f"expected one of {', '.join(PERIOD_NS)}, got {rotate!r}", field="--rotate")
        self.out_dir = out_dir
        self.market = market
        self.rotate = rotate
        self.period = PERIOD_NS[rotate]
        self.on_rotate = on_rotate
        self.files: dict[str, tuple[int, _File]] = {}     # symbol -> (period index, file)
        self.written: list[str] = []                      # finished files, in order
        self.lines = 0
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as e:
            raise cannot_write(out_dir, e, field="--out") from None

    def _name(self, symbol: str, ts: int) -> str:
        stamp = time.strftime("%Y%m%dT%H" if self.rotate == "hour" else "%Y%m%d", time.gmtime(ts // 10**9))
        base = os.path.join(self.out_dir, f"{symbol.lower()}_{self.market}_{stamp}")
        name, k = base + ".gz", 0
        while os.path.exists(name) or os.path.exists(name + PART):
            k += 1
            name = f"{base}_{k:02d}.gz"      # sorts after the first name, so a glob lists them in time order
        return name

    def write(self, symbol: str, line: bytes) -> None:
        """One capture line (no newline): ``<local_ts_ns> <json>``."""
        ts = int(line[:line.index(b" ")])
        period = ts // self.period
        current = self.files.get(symbol)
        rotated = False
        try:
            if current is None or current[0] != period:
                if current is not None:
                    self._finish(current[1])
                    rotated = True
                current = (period, _File(self._name(symbol, ts)))
                self.files[symbol] = current
            current[1].gz.write(line + b"\n")
        except OSError as e:
            raise cannot_write(current[1].part if current else self.out_dir, e) from None
        current[1].lines += 1
        self.lines += 1
        if rotated and self.on_rotate is not None:
            self.on_rotate(symbol)

    def _finish(self, f: _File) -> None:
        f.close()
        self.written.append(f.final)

    def sync(self) -> None:
        """Every line written so far is on disk (in the ``.part`` files)."""
        for _, f in self.files.values():
            try:
                f.sync()
            except OSError as e:
                raise cannot_write(f.part, e) from None

    def close(self) -> None:
        """Finish every open file and rename it into place."""
        for symbol, (_, f) in list(self.files.items()):
            try:
                self._finish(f)
            except OSError as e:
                raise cannot_write(f.part, e) from None
            del self.files[symbol]
