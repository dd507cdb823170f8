"""Issue 12, items 5 and 14: event files and feed messages checked on load; huge inputs in bounded memory.

Item 5: ``cmm backtest`` and ``cmm feed replay`` must refuse an event file that
``cmm data convert`` would never have written: infinite prices, files out of
time order, a price far outside the book's range. Item 14: a text input that
inflates to a gigabyte of blank lines, and an ``.npy`` header that claims more
events than its file holds, must be refused (or read) without exhausting memory.

Each case builds its files from the GOOG sample in the repo, converted once.
"""
from __future__ import annotations

import functools
import gzip
import subprocess
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from bench.probes import SAMPLES, Probe
from common.atomic import atomic_write
from feeds.events import EVENT_DTYPE

GOOG = SAMPLES / "GOOG_2012-06-21_10_head.zip"
CONFIG = """[data]
files = {files}
format = "npz"
[strategy]
name = "fixed_spread"
[strategy.params]
half_spread_ticks = 2
qty = 100
max_position = 500
"""
GIB = 1 << 30


@functools.lru_cache(maxsize=1)
def _sample():
    import feeds
    conv = feeds.read([str(GOOG)])
    return conv.events, conv.instrument


def _save(path: Path, events: np.ndarray) -> Path:
    import feeds
    with atomic_write(path) as f:
        feeds.write(f, events, _sample()[1])
    return path


def _with_bad_prices(tmp: Path, value: float, count: int) -> Path:
    events = _sample()[0].copy()
    depth = np.flatnonzero(events["px"] > 0)
    events["px"][depth[len(depth) // 2:len(depth) // 2 + count]] = value
    return _save(tmp / "bad.npz", events)


def _backtest(tmp: Path, files: list[Path]) -> list[str]:
    (tmp / "bt.toml").write_text(CONFIG.format(files=[str(f) for f in files]))
    return ["backtest", "--config", str(tmp / "bt.toml"), "--out", str(tmp / "out")]


def _replay(files: list[Path]) -> list[str]:
    return ["feed", "replay", *map(str, files), "--bind", "tcp://127.0.0.1:0", "--speed", "max", "--exit-at-end"]


def _halves(tmp: Path) -> tuple[Path, Path]:
    events = _sample()[0]
    cut = len(events) // 2
    return _save(tmp / "first.npz", events[:cut]), _save(tmp / "second.npz", events[cut:])


def _no_output(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
    return "wrote results" if (tmp / "out").exists() else None


def _wrote_one_event(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
    import feeds
    n = feeds.load_header(tmp / "x.npz")[0] if (tmp / "x.npz").exists() else None
    return None if n == 1 else f"wrote {n} events, expected 1"


def _npy_header_claims(tmp: Path) -> Path:
    """A zip whose data.npy header says 10**15 events, followed by one event's bytes."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=EVENT_DTYPE))
    header["shape"] = (10 ** 15,)
    raw = bytearray()

    class _Sink:
        def write(self, b):
            raw.extend(b)
    np.lib.format.write_array_header_1_0(_Sink(), header)
    path = tmp / "huge_header.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.npy", bytes(raw) + bytes(EVENT_DTYPE.itemsize))
    return path


def _gzip_of_newlines(path: Path, head: bytes, size: int) -> Path:
    """``head`` then ``size`` bytes of newlines, gzipped (about 1 MB per GiB)."""
    block = b"\n" * (1 << 24)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(head)
        for _ in range(size // len(block)):
            f.write(block)
    return path


def _lobster_of_newlines(tmp: Path) -> Path:
    """A LOBSTER zip whose message file is one real row then a GiB of blank lines."""
    path = tmp / "GOOG_2012-06-21_10_blank.zip"
    with zipfile.ZipFile(GOOG) as src:
        names = src.namelist()
        message = next(n for n in names if "message" in n)
        book = next(n for n in names if "orderbook" in n)
        first_msg = src.read(message).split(b"\n", 1)[0] + b"\n"
        first_book = src.read(book).split(b"\n", 1)[0] + b"\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(message, "w", force_zip64=True) as f:
            f.write(first_msg)
            block = b"\n" * (1 << 24)
            for _ in range(GIB // len(block)):
                f.write(block)
        zf.writestr(book, first_book)
    return path


CSV_HEAD = (b"# symbol=X\n# tick_size=0.01\nexch_ts,local_ts,event,side,price,qty\n"
            b"1723075200000000000,1723075200000350000,depth,bid,100.00,2\n")

def _csv_with_price(tmp: Path, price: bytes) -> Path:
    path = tmp / "x.csv"
    path.write_bytes(CSV_HEAD + b"1723075200000000001,1723075200000350001,depth,ask,%s,1\n" % price
                     + b"1723075200000000002,1723075200000350002,depth,ask,100.02,1\n")
    return path


def _bare_npy_header_claims(tmp: Path) -> Path:
    """hftbacktest's bare .npy layout, its header saying 10**15 events."""
    with zipfile.ZipFile(_npy_header_claims(tmp)) as zf:
        raw = zf.read("data.npy")
    path = tmp / "huge.npy"
    path.write_bytes(raw)
    return path


CASES = [
    Probe(5, "backtest: 50 infinite prices", lambda t: _backtest(t, [_with_bad_prices(t, np.inf, 50)]),
          check=_no_output),
    Probe(5, "backtest: a price of 1e12", lambda t: _backtest(t, [_with_bad_prices(t, 1e12, 1)]),
          check=_no_output),
    Probe(5, "backtest: two files in reverse time order", lambda t: _backtest(t, list(_halves(t))[::-1]),
          check=_no_output),
    Probe(5, "backtest: two files in time order", lambda t: _backtest(t, list(_halves(t))), refused=False),
    Probe(5, "feed replay: 50 infinite prices", lambda t: _replay([_with_bad_prices(t, np.inf, 50)])),
    Probe(5, "feed replay: a price of 1e12", lambda t: _replay([_with_bad_prices(t, 1e12, 1)])),
    Probe(5, "feed replay: two files in reverse time order", lambda t: _replay(list(_halves(t))[::-1])),
    Probe(5, "convert: a price of 1e12 in our CSV",
          lambda t: ["data", "convert", str(_csv_with_price(t, b"1e12")), "--out", str(t / "x.npz")],
          check=lambda t, r: "wrote x.npz" if (t / "x.npz").exists() else None),
    Probe(14, "convert: bare .npy header claims 1e15 events",
          lambda t: ["data", "convert", str(_bare_npy_header_claims(t)), "--format", "hftbacktest",
                     "--tick-size", "0.01", "--out", str(t / "x.npz")]),
    Probe(14, "data info: .npy header claims 1e15 events", lambda t: ["data", "info", str(_npy_header_claims(t))]),
    Probe(14, "backtest: .npy header claims 1e15 events", lambda t: _backtest(t, [_npy_header_claims(t)])),
    Probe(14, "convert: csv.gz of 1 GiB of blank lines",
          lambda t: ["data", "convert", str(_gzip_of_newlines(t / "x.csv.gz", CSV_HEAD, GIB)),
                     "--out", str(t / "x.npz")], refused=False, check=_wrote_one_event, timeout_s=120),
    Probe(14, "convert: LOBSTER message of 1 GiB of blank lines",
          lambda t: ["data", "convert", str(_lobster_of_newlines(t)), "--out", str(t / "x.npz")],
          refused=False, timeout_s=120),
]
