"""COIN-M (inverse) captures end to end: inferred from the symbol, booked in the coin, overrides checked.

The COIN-M sample is the USD-M sample re-expressed in contracts of 10 USD
(bench/coinm_sample.py), so the same quoting on both must make about the same
USD: the COIN-M EPnL in ETH times the mid. Issue 12 item 2: booked as linear,
a COIN-M run's EPnL was thousands of times the USD-M one.
"""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys

import msgspec
import numpy as np
import pytest

import feeds
from feeds.instrument import Instrument
from tests.conftest import REPO
from tests.files import save_events

COINM = REPO / "data" / "samples" / "ethusd_perp_20240808_head.gz"
USDM = REPO / "data" / "samples" / "ethusdt_usdm_20240808_head.gz"
COINM_LINES = 1500          # the COIN-M sample is the USD-M sample's first 1500 lines


def cmm(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def config(tmp_path, name, data, qty, instrument="") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[data]
files = ["{data}"]
[strategy]
name = "fixed_spread"
compute_ns = 0
[strategy.wake]
every_ns = 100_000_000
[strategy.params]
half_spread_ticks = 1
qty = {qty}
max_position = {5 * qty}
[fees]
maker = 0.0002
taker = 0.0005
{instrument}
""")
    return str(path)


def refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("cmm: error: ") and all(w in lines[0] for w in words), lines[0]


def test_coinm_capture_is_inverse_in_contracts_of_10_usd():
    conv = feeds.read([str(COINM)])
    assert conv.instrument == Instrument(symbol="ETHUSD_PERP", tick_size=0.01, lot_size=1.0, contract_multiplier=10.0,
                                         kind="inverse", settlement="ETH")
    assert any("COIN-M" in note for note in conv.meta.notes)
    assert feeds.read([str(USDM)]).instrument.kind == "linear"


def test_coinm_sample_is_the_usdm_sample_in_contracts():
    """Same lines, times and prices; an ETH size q at price p is round(q·p/10) contracts (at least 1)."""
    with gzip.open(COINM, "rt") as c, gzip.open(USDM, "rt") as u:
        pairs = list(zip(c, u))
    assert len(pairs) == COINM_LINES
    coin_line, usd_line = next(pair for pair in pairs if "@trade" in pair[0])       # the first trade
    coin, usd = json.loads(coin_line.split(" ", 1)[1]), json.loads(usd_line.split(" ", 1)[1])
    assert coin["stream"] == "ethusd_perp@trade" and usd["stream"] == "ethusdt@trade"
    assert coin["data"]["p"] == usd["data"]["p"] == "2681.62" and usd["data"]["q"] == "1.000"
    assert coin["data"]["q"] == "268"        # 1 ETH x 2681.62 / 10 USD


def test_linear_event_files_keep_their_instrument_bytes(tmp_path):
    """A linear spec is written without kind/settlement, as before; an inverse one with them."""
    linear = Instrument(symbol="ETHUSDT", tick_size=0.01, lot_size=0.001)
    assert linear.to_json() == b'{"symbol":"ETHUSDT","tick_size":0.01,"lot_size":0.001,"contract_multiplier":1.0}'
    inverse = msgspec.structs.replace(linear, symbol="ETHUSD_PERP", kind="inverse", settlement="ETH")
    events = feeds.read([str(COINM)]).events
    save_events(tmp_path / "c.npz", events, inverse)
    assert feeds.load(tmp_path / "c.npz").instrument == inverse


def _fills_epnl(out, mult: float) -> float:
    """EPnL in the coin recomputed from fills.csv: cash = Σ side·qty·mult/price − fees, marked at the last mid."""
    with open(out / "fills.csv") as f:
        fills = list(csv.DictReader(f))
    sign = {"buy": 1.0, "sell": -1.0}
    cash = sum(sign[r["side"]] * float(r["qty"]) * mult / float(r["price"]) - float(r["fee"]) for r in fills)
    pos = sum(sign[r["side"]] * float(r["qty"]) for r in fills)
    mid = np.load(out / "ticks.npz")["mid"][-1]
    return cash - pos * mult / mid


def test_coinm_backtest_reports_pnl_in_the_coin(tmp_path):
    """FixedSpread on COIN-M (268 contracts = ~1 ETH) and on USD-M (1 ETH) over the same 1500 lines:
    the coin EPnL times the mid is the USD-M EPnL to within 1% (sizes rounded to whole contracts)."""
    usdm = tmp_path / "usdm.gz"
    with gzip.open(USDM, "rt") as f, gzip.open(usdm, "wt") as g:
        g.writelines(line for _, line in zip(range(COINM_LINES), f))
    runs = {}
    for name, data, qty in (("usdm", usdm, 1.0), ("coinm", COINM, 268)):
        out = tmp_path / name
        proc = cmm("backtest", "--config", config(tmp_path, name, data, qty), "--out", out)
        assert proc.returncode == 0, proc.stderr
        runs[name] = (json.loads((out / "metrics.json").read_text()), proc.stdout, out)
    usd, usd_stdout, _ = runs["usdm"]
    coin, coin_stdout, coin_out = runs["coinm"]
    assert "settlement" not in usd and "contract_kind" not in usd and "settlement" not in usd_stdout
    assert coin["settlement"] == "ETH" and coin["contract_kind"] == "inverse"
    assert "settlement            ETH (inverse contracts)" in coin_stdout
    assert f"EPnL                  {coin['epnl']:,.8f} ETH" in coin_stdout
    assert coin["n_fills"] == usd["n_fills"] > 0
    assert coin["epnl"] == pytest.approx(_fills_epnl(coin_out, 10.0), rel=1e-9, abs=1e-12)
    mid = np.load(coin_out / "ticks.npz")["mid"][-1]
    assert coin["epnl"] * mid == pytest.approx(usd["epnl"], rel=0.01)
    assert coin["fees"] * mid == pytest.approx(usd["fees"], rel=0.01)


def test_inconsistent_overrides_are_refused(tmp_path):
    """The config may state the kind, coin and size; what contradicts a COIN-M symbol is one line, exit 2."""
    cases = {
        'kind = "linear"': ("ETHUSD_PERP", "booked as linear"),
        'settlement = "USDT"': ("settles in ETH, not USDT",),
        "contract_multiplier = 100": ("10 USD each, not 100",),
    }
    for i, (line, words) in enumerate(cases.items()):
        path = config(tmp_path, f"bad{i}", COINM, 268, f"[instrument]\n{line}\n")
        refused(cmm("backtest", "--config", path, "--out", tmp_path / f"out{i}"), *words)
        assert not (tmp_path / f"out{i}").exists()
    path = config(tmp_path, "nocoin", USDM, 1.0, '[instrument]\nkind = "inverse"\n')
    refused(cmm("backtest", "--config", path, "--out", tmp_path / "nocoin"), "names no settlement coin")


def test_convert_refuses_a_wrong_contract_size(tmp_path):
    """``--contract-multiplier 100`` on ETHUSD_PERP (10 USD contracts) is refused and writes nothing."""
    out = tmp_path / "e.npz"
    refused(cmm("data", "convert", COINM, "--out", out, "--contract-multiplier", "100"), "10 USD each, not 100")
    assert not out.exists()


def test_a_coinm_file_booked_linear_is_refused_unless_the_config_says_inverse(tmp_path):
    """An event file of a COIN-M symbol with a linear spec (as converted before inverse support) is refused;
    the config's ``[instrument]`` stating kind, coin and size makes it run in the coin."""
    events = feeds.read([str(COINM)]).events
    old = tmp_path / "old.npz"
    save_events(old, events, Instrument(symbol="ETHUSD_PERP", tick_size=0.01, lot_size=1.0))
    refused(cmm("backtest", "--config", config(tmp_path, "old", old, 268), "--out", tmp_path / "a"),
            "booked as linear", 'kind = "inverse"')
    fixed = config(tmp_path, "fixed", old, 268,
                   '[instrument]\nkind = "inverse"\nsettlement = "ETH"\ncontract_multiplier = 10\n')
    proc = cmm("backtest", "--config", fixed, "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["settlement"] == "ETH"
