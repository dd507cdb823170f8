"""Issue 12 item 14: huge inputs are streamed or refused, never read whole into memory.

Text inputs are parsed a block of whole lines at a time, so a small gzip that
inflates to hundreds of MiB of blank lines costs a block of memory, not its
size; an ``.npy`` header may claim no more events than its file holds. The
memory tests measure the converting process's peak RSS (``ru_maxrss``) in a
fresh interpreter, against the same command on a file without the padding.
"""
from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from common.errors import DataError, SkipCounter
from feeds.events import EVENT_DTYPE
from feeds.readers import csvparse
from feeds.readers.base import ReadOptions
from feeds.readers.csv import read_file
from feeds.readers.lobster import MESSAGE_KINDS
from feeds.readers.textio import MAX_LINE_BYTES, iter_blocks
from feeds.store import iter_chunks, load, load_header
from tests.test_cli import REPO, assert_one_line_error, cmm

SAMPLE = REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"
MIB = 1 << 20
PADDING = 256 * MIB          # blank lines a small file inflates to
ALLOWED = 64 * MIB           # peak RSS the padding may add: a few blocks, not the padding
CSV_PREAMBLE = b"# symbol=X\n# tick_size=0.01\nexch_ts,local_ts,event,side,price,qty\n"
CSV_HEAD = CSV_PREAMBLE + b"1723075200000000000,1723075200000350000,depth,bid,100.00,2\n"


# ---------------------------------------------------------------- .npy headers


def _npy_header(n: int) -> bytes:
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=EVENT_DTYPE))
    header["shape"] = (n,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def test_an_npy_header_may_claim_only_the_events_its_file_holds(tmp_path):
    """Today's main allocates what the header says: 56.8 PiB for 10**15 events, a traceback."""
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.npy", _npy_header(10 ** 15) + bytes(EVENT_DTYPE.itemsize))
    for read in (load, load_header, lambda p: list(iter_chunks([p]))):
        with pytest.raises(DataError, match="header promises 1,000,000,000,000,000 events, the file holds 1"):
            read(path)
    assert_one_line_error(cmm("data", "info", path), "huge.npz", "data", "header promises")
    bare = tmp_path / "huge.npy"                  # hftbacktest's other layout: a bare .npy
    bare.write_bytes(_npy_header(10 ** 15) + bytes(EVENT_DTYPE.itemsize))
    assert_one_line_error(cmm("data", "convert", bare, "--format", "hftbacktest", "--tick-size", "0.01",
                              "--out", tmp_path / "out.npz"), "huge.npy", "header promises")
    assert not (tmp_path / "out.npz").exists()


def test_a_zip_entry_may_not_claim_more_than_its_stored_bytes(tmp_path):
    """The zip directory's size is checked too: a stored (uncompressed) entry cannot inflate."""
    path = tmp_path / "claims.npz"
    body = _npy_header(2) + bytes(2 * EVENT_DTYPE.itemsize)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.npy", body)
    raw = bytearray(path.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", len(body) * 1000)   # uncompressed size
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"claims {len(body) * 1000:,} bytes from {len(body):,} stored"):
        load(path)


# ---------------------------------------------------------------- blocks of text


@pytest.mark.parametrize("how", ["plain", "gz", "zip"])
def test_blocks_are_whole_lines_that_make_up_the_file(tmp_path, how):
    text = b"".join(b"%d,%s\n" % (i, b"x" * (i % 13)) for i in range(500)) + b"last line, no newline"
    path, member = tmp_path / "t.csv", None
    if how == "plain":
        path.write_bytes(text)
    elif how == "gz":
        path = tmp_path / "t.csv.gz"
        path.write_bytes(gzip.compress(text))
    else:
        path, member = tmp_path / "t.zip", "inner.csv"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(member, text)
    blocks = list(iter_blocks(str(path), member, size=97))
    assert b"".join(b for _, b in blocks) == text
    assert all(b.endswith(b"\n") for _, b in blocks[:-1]) and len(blocks) > 10
    assert [line0 for line0, _ in blocks] == [text[:text.index(b)].count(b"\n") for _, b in blocks]


def test_a_line_longer_than_a_block_allows_is_refused(tmp_path):
    path = tmp_path / "one.csv"
    path.write_bytes(b"1,2\n" + b"9" * (MAX_LINE_BYTES + 10))
    with pytest.raises(DataError, match="a line longer than") as err:
        list(iter_blocks(str(path), size=MAX_LINE_BYTES))
    assert err.value.line == 2


def test_lobster_rows_parse_the_same_in_blocks_as_whole():
    with zipfile.ZipFile(SAMPLE) as zf:
        name = next(n for n in zf.namelist() if "message" in n)
        text = zf.read(name)
    whole = csvparse.parse(text, MESSAGE_KINDS)
    blocks = csvparse.parse_blocks(iter_blocks(str(SAMPLE), name, size=4096), MESSAGE_KINDS)
    assert len(whole) == text.count(b"\n") == len(blocks)
    for field in ("floats", "ints", "lines"):
        assert np.array_equal(getattr(whole, field), getattr(blocks, field)), field


def test_our_csv_reads_across_block_boundaries_with_true_line_numbers(tmp_path):
    """More than one 8 MiB block of rows: every row read, and a bad row late in the file named by its line."""
    n = 150_000                                   # about 9 MiB of rows
    i = np.arange(n)
    rows = "".join(f"{1723075200000000000 + k},{1723075200000350000 + k},depth,bid,{100 + k % 10}.25,{k % 7}\n"
                   for k in i)
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(CSV_PREAMBLE + rows.encode(), 1))
    got = read_file(str(path), ReadOptions(), SkipCounter(), "x")
    assert len(got.events) == n and len(rows) > 8 * MIB
    assert np.array_equal(got.events["exch_ts"], 1723075200000000000 + i)
    assert np.array_equal(got.events["px"], 100 + i % 10 + 0.25)
    assert np.array_equal(got.lines, i + 4)       # three lines of preamble and header
    bad = rows.replace("1723075200000140000,", "1723075200000140000,x", 1)
    path.write_bytes(gzip.compress(CSV_PREAMBLE + bad.encode(), 1))
    with pytest.raises(DataError) as err:
        read_file(str(path), ReadOptions(), SkipCounter(), "x")
    assert (err.value.line, err.value.field) == (140_004, "local_ts")


def test_blank_lines_before_our_csv_header_are_skipped_with_their_line_numbers(tmp_path):
    path = tmp_path / "late.csv.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\n" * (64 * MIB) + b"# tick_size=0.01\n\r\n \t\n" + CSV_HEAD.split(b"\n", 2)[2])
    got = read_file(str(path), ReadOptions(), SkipCounter(), "x")
    assert got.lines.tolist() == [64 * MIB + 5] and got.instrument.tick_size == 0.01


# ---------------------------------------------------------------- peak memory


def _peak_rss_of_convert(path, out) -> tuple[int, str]:
    """Peak RSS in bytes of ``cmm data convert path`` run alone in a fresh interpreter, and its stderr."""
    probe = ("import resource, subprocess, sys\n"
             f"p = subprocess.run([sys.executable, '-m', 'cmm', 'data', 'convert', {str(path)!r}, '--out', "
             f"{str(out)!r}], capture_output=True, text=True)\n"
             "sys.stderr.write(p.stderr)\n"
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    code, kib = proc.stdout.split()
    assert code == "0", proc.stderr
    return int(kib) * 1024, proc.stderr


def _gzip_csv(path, padding: int):
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(CSV_HEAD)
        for _ in range(padding // (16 * MIB)):
            f.write(b"\n" * (16 * MIB))
    return path


def _lobster_zip(path, padding: int):
    with zipfile.ZipFile(SAMPLE) as src:
        names = src.namelist()
        message, book = (next(n for n in names if kind in n) for kind in ("message", "orderbook"))
        first = {n: src.read(n).split(b"\n", 1)[0] + b"\n" for n in (message, book)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(message, "w", force_zip64=True) as f:
            f.write(first[message])
            for _ in range(padding // (16 * MIB)):
                f.write(b"\n" * (16 * MIB))
        zf.writestr(book, first[book])
    return path


@pytest.mark.parametrize("make,suffix", [(_gzip_csv, ".csv.gz"), (_lobster_zip, ".zip")])
def test_a_small_file_of_blank_lines_converts_in_bounded_memory(tmp_path, make, suffix):
    """Today's main reads the 256 MiB whole and sizes its arrays by the newlines: +460 MiB here (+35 now),
    and at 1 GiB a 64 GiB allocation that fails with a traceback."""
    small = make(tmp_path / f"small{suffix}", 0)
    padded = make(tmp_path / f"padded{suffix}", PADDING)
    assert padded.stat().st_size < MIB
    base, _ = _peak_rss_of_convert(small, tmp_path / "small.npz")
    peak, _ = _peak_rss_of_convert(padded, tmp_path / "padded.npz")
    assert peak - base < ALLOWED, f"peak RSS {peak / MIB:.0f} MiB against {base / MIB:.0f} MiB without padding"
    assert load_header(tmp_path / "padded.npz")[0] == load_header(tmp_path / "small.npz")[0] > 0
