"""``cmm data`` end to end, as a user runs it: real files, real processes, exit codes, one-line errors."""
from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

import feeds
from feeds import events as E
from tests.conftest import REPO, SAMPLES, shared_path

LOBSTER_SAMPLE = SAMPLES / "GOOG_2012-06-21_10_head.zip"
BINANCE_SAMPLE = SAMPLES / "ethusdt_usdm_20240808_head.gz"


def cmm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cmm: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_convert_then_info_on_lobster_sample(tmp_path):
    out = tmp_path / "goog.npz"
    proc = cmm("data", "convert", LOBSTER_SAMPLE, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    ef = feeds.load(out)
    assert ef.instrument.symbol == "GOOG" and ef.meta.source_format == "lobster"
    info = cmm("data", "info", out)
    assert info.returncode == 0, info.stderr
    assert f"source rows {ef.meta.source_rows:,}" in info.stdout
    assert "never crossed" in info.stdout and "both monotonic" in info.stdout


def test_convert_is_deterministic(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for out in (a, b):
        assert cmm("data", "convert", BINANCE_SAMPLE, "--out", out).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def _truncate_line(src, dst, lineno: int) -> None:
    with gzip.open(src, "rb") as f:
        lines = f.read().split(b"\n")
    lines[lineno - 1] = lines[lineno - 1][: len(lines[lineno - 1]) // 2]
    with gzip.open(dst, "wb") as f:
        f.write(b"\n".join(lines))


def test_truncated_json_line_fails_then_skips(tmp_path):
    bad = tmp_path / "cut.gz"
    _truncate_line(BINANCE_SAMPLE, bad, 100)
    out = tmp_path / "out.npz"
    proc = cmm("data", "convert", bad, "--out", out)
    assert_one_line_error(proc, f"{bad}:100:")
    assert not out.exists()
    assert not list(tmp_path.glob(".out.npz*")), "a temp file was left behind"
    proc = cmm("data", "convert", bad, "--out", out, "--on-error", "skip")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 bad line" in proc.stdout
    assert feeds.load(out).meta.skipped == 1


@pytest.mark.parametrize("args,needles", [
    (["data", "convert", "missing.gz", "--out", "x.npz"], ["missing.gz: no such file"]),
    (["data", "convert", "README.md", "--out", "x.npz"], ["README.md", "unknown format"]),
    (["data", "info", "README.md"], ["README.md", ".npz"]),
    (["data", "convert", "README.md", "--out", "x.txt"], ["--out", ".npz"]),
    (["data", "convert", "README.md", "--out", "x.npz", "--format", "parquet"], ["--format"]),
    (["data", "convert", "README.md", "--out", "x.npz", "--tick-size", "-1"], ["--tick-size", "positive"]),
    (["data"], ["data"]),
])
def test_bad_arguments_and_inputs_get_one_line(args, needles):
    assert_one_line_error(cmm(*args), *needles)


def test_unwritable_output_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = cmm("data", "convert", BINANCE_SAMPLE, "--out", blocker / "out.npz")
    assert proc.returncode != 0
    assert blocker.read_text() == "not a directory"


def test_validate_passes_on_samples():
    for sample in (LOBSTER_SAMPLE, BINANCE_SAMPLE):
        proc = cmm("data", "validate", sample)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip().endswith("valid")


@pytest.mark.shared_data
def test_goog_level_10_counts_reconcile_with_message_rows(tmp_path):
    src = shared_path("lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
    out = tmp_path / "goog.npz"
    assert cmm("data", "convert", src, "--out", out).returncode == 0
    info = cmm("data", "info", out)
    assert info.returncode == 0 and "source rows 147,916" in info.stdout
    ef = feeds.load(out)
    assert ef.meta.source_rows == 147_916
    assert sum(ef.meta.source_rows_by_kind.values()) == 147_916
    # Every message row is one L3 event on the local timeline, tagged with its LOBSTER type in ival;
    # a visible execution is a TRADE plus the FILL of the resting order.
    local = ef.events[(ef.events["ev"] & np.uint64(E.LOCAL)) != 0]
    kind = local["ev"] & np.uint64(E.KIND_MASK)
    from_messages = local[np.isin(kind, np.array([E.ADD_ORDER, E.CANCEL_ORDER, E.FILL, E.TRADING_STATUS],
                                                 dtype=np.uint64))
                          | ((kind == E.TRADE) & (local["ival"] == 5))]
    assert len(from_messages) == 147_916


@pytest.mark.shared_data
def test_binance_usdm_capture_converts(tmp_path):
    src = shared_path("binance", "usdm", "ethusdt_20240808.gz")
    out = tmp_path / "eth.npz"
    proc = cmm("data", "convert", src, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert feeds.load(out).meta.source_rows == 74_655


def test_info_prints_prices_at_the_ticks_decimals(tmp_path):
    out = tmp_path / "sample.npz"
    assert cmm("data", "convert", SAMPLES / "sample_events.csv", "--out", out).returncode == 0
    info = cmm("data", "info", out)
    assert info.returncode == 0, info.stderr
    assert "prices      59999.5 .. 60000.6\n" in info.stdout
    # The best ask is tick index * 0.1 = 60000.200000000004 in floats; it prints as the tick writes it.
    assert "final best bid 60000.0, best ask 60000.2, 3 bid / 3 ask levels" in info.stdout
    assert feeds.Instrument("X", 0.25, 1.0).price_text(101.0) == "101.00"
    assert feeds.Instrument("X", 0.01, 1.0).price_text(60000.65) == "60000.65"     # :g wrote 60000.6
