"""``cmm data convert`` and ``cmm data info`` on every Tardis and Binance Vision sample, in process."""
from __future__ import annotations

import gzip

import pytest

from cmm.cli import main
from tests.conftest import SAMPLES

VENDOR_SAMPLES = sorted(str(p.relative_to(SAMPLES)) for p in [*(SAMPLES / "tardis").glob("*.csv.gz"),
                                                               *(SAMPLES / "binance_vision").glob("*/*.zip")])


def test_there_is_a_sample_per_data_type():
    assert len(VENDOR_SAMPLES) == 8


@pytest.mark.parametrize("name", VENDOR_SAMPLES)
def test_each_sample_converts_and_its_book_never_crosses(tmp_path, capsys, name):
    out = tmp_path / "x.npz"
    assert main(["data", "convert", str(SAMPLES / name), "--out", str(out), "--no-progress"]) == 0
    assert main(["data", "info", str(out)]) == 0
    info = capsys.readouterr().out
    fmt = "tardis" if name.startswith("tardis") else "binance-vision"
    assert f"source      {fmt}: " in info
    assert "book        never crossed" in info


def test_a_file_in_the_wrong_unit_is_one_line_and_exit_2(tmp_path, capsys):
    src = SAMPLES / "tardis" / "binance-futures_quotes_2024-08-08_ETHUSDT.csv.gz"
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    ms = [lines[0]] + [",".join(c[:2] + [c[2][:-3], c[3][:-3]] + c[4:]) for c in (r.split(",") for r in lines[1:])]
    bad = tmp_path / "quotes.csv"
    bad.write_text("\n".join(ms) + "\n")
    assert main(["data", "convert", str(bad), "--out", str(tmp_path / "q.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "quotes.csv:2: timestamp:" in err and "a time in ms, not µs" in err
    assert not (tmp_path / "q.npz").exists()
