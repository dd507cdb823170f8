"""Our event file: round trips, chunked streaming, atomic writes, and damaged files."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

import feeds
from feeds import events as E
from common.atomic import atomic_write
from common.errors import DataError
from feeds.store import DatasetMeta, iter_chunks, load, load_header
from tests.files import save_events

INSTRUMENT = feeds.Instrument("BTCUSDT", 0.1, 0.001, 1.0)


def _events(n: int, start: int = 0) -> np.ndarray:
    ev = E.empty(n)
    i = np.arange(start, start + n)
    ev["ev"] = np.where(i % 2, E.DEPTH | E.BUY, E.TRADE | E.SELL).astype(np.uint64) | np.uint64(E.EXCH | E.LOCAL)
    ev["exch_ts"] = 1_000 + i * 10
    ev["local_ts"] = 1_005 + i * 10
    ev["px"] = 100.0 + i * 0.1
    ev["qty"] = i % 7
    ev["order_id"] = i
    ev["ival"] = -i
    ev["fval"] = i / 3
    return ev


def _meta() -> DatasetMeta:
    return DatasetMeta(source_format="csv", sources=["a.csv"], source_rows=5, source_rows_by_kind={"depth": 5},
                       skipped=1, skipped_examples=["a.csv:3: side: bad"], notes=["a note"],
                       book_partial_until_ts=1_010, local_ts_offset_ns=7)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    path = tmp_path / "day.npz"
    events = _events(1000)
    save_events(path, events, INSTRUMENT, _meta(), compress=compress)
    got = load(path)
    assert np.array_equal(got.events, events) and got.events.dtype == E.EVENT_DTYPE
    assert got.instrument == INSTRUMENT
    assert got.meta == _meta()
    assert load_header(path) == (1000, INSTRUMENT, _meta())


def test_events_alone_and_empty(tmp_path):
    save_events(tmp_path / "bare.npz", _events(3))
    got = load(tmp_path / "bare.npz")
    assert got.instrument is None and got.meta is None and len(got.events) == 3
    save_events(tmp_path / "empty.npz", E.empty(0), INSTRUMENT)
    assert len(load(tmp_path / "empty.npz").events) == 0
    assert list(iter_chunks([tmp_path / "empty.npz"])) == []


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 5000])
def test_iter_chunks_across_files_equals_concatenation(tmp_path, chunk):
    parts = [_events(n, start) for n, start in ((130, 0), (1, 130), (0, 131), (999, 131))]
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"part{i}.npz")
        save_events(paths[-1], part, INSTRUMENT)
    chunks = list(iter_chunks(paths, chunk_events=chunk))
    assert all(0 < len(c) <= chunk for c in chunks)
    assert np.array_equal(np.concatenate(chunks), np.concatenate(parts))


def test_iter_chunks_refuses_a_nonpositive_chunk(tmp_path):
    with pytest.raises(DataError, match="positive"):
        list(iter_chunks([tmp_path / "x.npz"], chunk_events=0))


def test_save_refuses_another_dtype(tmp_path):
    with pytest.raises(DataError, match="64-byte event record"):
        save_events(tmp_path / "bad.npz", np.zeros(3))
    assert os.listdir(tmp_path) == []


def test_load_refuses_another_dtype(tmp_path):
    path = tmp_path / "floats.npz"
    np.savez(path, data=np.zeros(8))
    with pytest.raises(DataError, match="event_dtype") as info:
        load(path)
    assert info.value.field == "data"
    np.savez(path, prices=_events(2))
    with pytest.raises(DataError, match="no 'data' member"):
        load(path)


def test_atomic_write_keeps_the_old_file_and_no_temp_on_failure(tmp_path):
    path = tmp_path / "day.npz"
    save_events(path, _events(5), INSTRUMENT)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"half a file")
            raise RuntimeError("disk full")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["day.npz"]


def test_save_failing_at_the_rename_leaves_no_temp(tmp_path):
    target = tmp_path / "taken.npz"
    target.mkdir()              # a directory where the file should go: the final rename fails
    with pytest.raises(DataError, match="taken.npz: cannot write: Is a directory"):   # one line, not a traceback
        save_events(target, _events(5))
    assert sorted(os.listdir(tmp_path)) == ["taken.npz"]


def _damaged(tmp_path, how: str):
    path = tmp_path / f"{how}.npz"
    save_events(path, _events(20_000), INSTRUMENT, _meta())
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "flipped":
        start = len(raw) // 3
        raw[start:start + 64] = bytes(b ^ 0xFF for b in raw[start:start + 64])
    elif how == "garbage":
        raw = bytearray(b"not a zip at all" * 10)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage"])
def test_damaged_file_is_a_data_error(tmp_path, how):
    path = _damaged(tmp_path, how)
    with pytest.raises(DataError) as info:
        load(path)
    assert info.value.path == str(path)
    with pytest.raises(DataError):
        list(iter_chunks([path], chunk_events=100))


def test_array_cut_short_inside_an_intact_zip(tmp_path):
    path = tmp_path / "short.npz"
    header_and_part = _npy_bytes(_events(10))[:-64 * 3]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.npy", header_and_part)
    with pytest.raises(DataError, match="header promises 10 events"):
        load(path)


def test_bad_instrument_member(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, data=_events(2), instrument=np.frombuffer(b'{"symbol": "X"}', dtype=np.uint8))
    with pytest.raises(DataError) as info:
        load(path)
    assert info.value.field == "instrument"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
