"""Random and damaged input: every reader either parses it or raises DataError, nothing else.

Each case starts from real sample lines (or random bytes) and damages them the
ways files really break: cut short, a byte flipped, a column dropped, junk
inserted. The whole of ``feeds.read`` runs, so the shared checks and timeline
ordering see the surviving rows too.
"""
from __future__ import annotations

import gzip
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feeds
from common.atomic import atomic_write
from common.errors import DataError
from feeds.readers.base import ReadOptions
from tests.conftest import SAMPLES

LOBSTER = SAMPLES / "GOOG_2012-06-21_10_head.zip"
STEM = "GOOG_2012-06-21_34200000_57600000"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lobster_head(kind: str, rows: int = 12) -> bytes:
    with zipfile.ZipFile(LOBSTER) as zf:
        return b"\n".join(zf.read(f"{STEM}_{kind}_10.csv").split(b"\n")[:rows]) + b"\n"


MESSAGE = _lobster_head("message")
ORDERBOOK = _lobster_head("orderbook")
CSV = (SAMPLES / "sample_events.csv").read_bytes()


def _small_event_file() -> bytes:
    conv = feeds.read([str(SAMPLES / "sample_events.csv")], "csv")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npz"
        with atomic_write(path) as f_out:
            feeds.write(f_out, conv.events, conv.instrument, conv.meta, compress=False)
        return path.read_bytes()


NPZ = _small_event_file()


@st.composite
def damaged(draw, base: bytes) -> bytes:
    """``base`` with one to three realistic defects."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "drop_column", "insert", "swap_lines"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if how == "truncate":
            data = data[:at]
        elif how == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if how == "drop_column":
                fields = lines[i].split(b",")
                del fields[draw(st.integers(0, len(fields) - 1))]
                lines[i] = b",".join(fields)
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def write_flipped(path: Path, base: bytes, flips) -> Path:
    """``base`` with each (offset, xor mask) of ``flips`` applied, written to ``path``."""
    data = bytearray(base)
    for at, mask in flips:
        data[at] ^= mask
    path.write_bytes(bytes(data))
    return path


def _parses_or_data_error(paths, fmt: str, options: ReadOptions) -> None:
    try:
        feeds.read([str(p) for p in paths], fmt, options)
    except DataError:
        pass


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


OPTIONS = st.sampled_from([ReadOptions(), ReadOptions(on_error="skip"), ReadOptions(on_error="skip", tick_size=0.5)])


@FUZZ
@given(message=st.one_of(damaged(MESSAGE), st.binary(max_size=300)),
       orderbook=st.one_of(st.just(ORDERBOOK), damaged(ORDERBOOK)), options=OPTIONS)
def test_lobster(workdir, message, orderbook, options):
    msg = workdir / f"{STEM}_message_10.csv"
    msg.write_bytes(message)
    (workdir / f"{STEM}_orderbook_10.csv").write_bytes(orderbook)
    _parses_or_data_error([msg], "lobster", options)


@FUZZ
@given(data=st.one_of(damaged(CSV), st.binary(max_size=300)), gz=st.booleans(), options=OPTIONS)
def test_csv(workdir, data, gz, options):
    path = workdir / ("events.csv.gz" if gz else "events.csv")
    if gz:   # a gzip of the damaged text, or the damaged text pretending to be gzip
        data = gzip.compress(data) if data[:1] != b"\x1f" else data
    path.write_bytes(data)
    _parses_or_data_error([path], "csv", options)


@FUZZ
@given(data=st.one_of(damaged(NPZ), st.binary(max_size=300)), options=OPTIONS)
def test_hftbacktest(workdir, data, options):
    path = workdir / "events.npz"
    path.write_bytes(data)
    _parses_or_data_error([path], "hftbacktest", options)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(NPZ) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_hftbacktest_npz_payload_flips(workdir, flips):
    """Flips anywhere in an uncompressed npz: headers, JSON members, event fields, the zip directory."""
    path = write_flipped(workdir / "flipped.npz", NPZ, flips)
    _parses_or_data_error([path], "hftbacktest", ReadOptions(tick_size=0.1))


def test_the_undamaged_bases_parse(workdir):
    """The fuzz bases are good input, so the damage is what the tests exercise."""
    (workdir / f"{STEM}_message_10.csv").write_bytes(MESSAGE)
    (workdir / f"{STEM}_orderbook_10.csv").write_bytes(ORDERBOOK)
    assert len(feeds.read([str(workdir / f"{STEM}_message_10.csv")], "lobster").events) > 11
    (workdir / "base.npz").write_bytes(NPZ)
    assert np.array_equal(feeds.read([str(workdir / "base.npz")], "hftbacktest").events,
                          feeds.read([str(SAMPLES / "sample_events.csv")], "csv").events)


TARDIS_L2 = gzip.decompress((SAMPLES / "tardis" / "binance-futures_incremental_book_L2_2024-08-08_ETHUSDT.csv.gz")
                            .read_bytes()).split(b"\n")
TARDIS = {   # the header, the last snapshot rows and the first updates: every path of the reader
    "l2": b"\n".join(TARDIS_L2[:1] + TARDIS_L2[1995:2010]) + b"\n",
    "snap": b"\n".join(gzip.decompress((SAMPLES / "tardis" / "binance-futures_book_snapshot_5_2024-08-08_ETHUSDT"
                                        ".csv.gz").read_bytes()).split(b"\n")[:8]) + b"\n",
}


@FUZZ
@given(kind=st.sampled_from(sorted(TARDIS)), data=st.data(), options=OPTIONS)
def test_tardis(workdir, kind, data, options):
    text = data.draw(st.one_of(damaged(TARDIS[kind]), st.binary(max_size=300)))
    path = workdir / f"binance-futures_{kind}.csv"
    path.write_bytes(text)
    _parses_or_data_error([path], "tardis", options)


def _vision(name: str, rows: int) -> bytes:
    with zipfile.ZipFile(SAMPLES / "binance_vision" / name) as zf:
        return b"\n".join(zf.read(zf.namelist()[0]).split(b"\n")[:rows]) + b"\n"


VISION = {"ETHUSDT-trades-2024-08-08.csv": _vision("spot/ETHUSDT-trades-2024-08-08.zip", 10),
          "ETHUSDT-bookTicker-2024-08-08.csv": _vision("um/ETHUSDT-bookTicker-2024-08-08.zip", 10),
          "ETHUSDT-aggTrades-2024-08-08.csv": _vision("um/ETHUSDT-aggTrades-2024-08-08.zip", 10)}


@FUZZ
@given(name=st.sampled_from(sorted(VISION)), data=st.data(), zipped=st.booleans(), options=OPTIONS)
def test_binance_vision(workdir, name, data, zipped, options):
    text = data.draw(st.one_of(damaged(VISION[name]), st.binary(max_size=300)))
    path = workdir / (name[:-4] + ".zip" if zipped else name)
    if zipped:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(name, text)
    else:
        path.write_bytes(text)
    _parses_or_data_error([path], "binance-vision", options)


def test_the_vendor_bases_parse(workdir):
    for kind, text in TARDIS.items():
        (workdir / f"base_{kind}.csv").write_bytes(text)
        assert len(feeds.read([str(workdir / f"base_{kind}.csv")], "tardis").events) > 5
    for name, text in VISION.items():
        (workdir / name).write_bytes(text)
        assert len(feeds.read([str(workdir / name)], "binance-vision").events) >= 9
