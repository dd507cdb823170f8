"""Issue 12, item 2: inverse (COIN-M) contracts were booked as linear, in contracts of 1.

A COIN-M capture must convert as inverse contracts of 10 USD settled in the
coin and backtest to a PnL in ETH; a spec that contradicts its COIN-M symbol
(from the command line, the config, or a file converted before inverse
support) must be refused with one line, writing nothing.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Optional

import feeds
from common.atomic import atomic_write
from feeds.instrument import Instrument
from feeds.store import write

from bench.probes import SAMPLES, Probe, run_cmm

COINM = SAMPLES / "ethusd_perp_20240808_head.gz"
USDM = SAMPLES / "ethusdt_usdm_20240808_head.gz"


def _config(tmp: Path, data: Path, qty: float, instrument: str = "") -> str:
    (tmp / "bt.toml").write_text(f"""
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
    return str(tmp / "bt.toml")


def _convert_then_backtest(tmp: Path) -> list[str]:
    """Convert first (its own subprocess: the probe is the backtest of what convert wrote)."""
    done = run_cmm(["data", "convert", str(COINM), "--out", str(tmp / "coinm.npz")], tmp, 120)
    if done.returncode != 0:
        raise RuntimeError(f"convert failed: {done.stderr.strip()}")
    return ["backtest", "--config", _config(tmp, tmp / "coinm.npz", 268), "--out", str(tmp / "out")]


def _pnl_in_eth(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
    m = json.loads((tmp / "out" / "metrics.json").read_text())
    if (m.get("contract_kind"), m.get("settlement")) != ("inverse", "ETH"):
        return f"booked as {m.get('contract_kind', 'linear')}, settled in {m.get('settlement')}"
    if not (m["n_fills"] > 0 and 0 < abs(m["epnl"]) < 0.01):      # ~1 ETH quoted for 6 s: far below 0.01 ETH
        return f"EPnL {m['epnl']} ETH over {m['n_fills']} fills: not a coin amount"
    if "EPnL" not in result.stdout or " ETH" not in result.stdout:
        return "summary does not state ETH"
    return None


def _nothing_written(name: str):
    def check(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
        return f"{name} was written" if (tmp / name).exists() else None
    return check


def _override(line: str):
    def setup(tmp: Path) -> list[str]:
        return ["backtest", "--config", _config(tmp, COINM, 268, f"[instrument]\n{line}\n"), "--out", str(tmp / "out")]
    return setup


def _old_linear_file(tmp: Path) -> list[str]:
    """An event file of ETHUSD_PERP with a linear spec of multiplier 1, as today's main converts it."""
    events = feeds.read([str(COINM)]).events
    with atomic_write(tmp / "old.npz") as f:
        write(f, events, Instrument(symbol="ETHUSD_PERP", tick_size=0.01, lot_size=1.0))
    return ["backtest", "--config", _config(tmp, tmp / "old.npz", 268), "--out", str(tmp / "out")]


CASES = [
    Probe(2, "coinm convert+backtest: PnL in ETH", _convert_then_backtest, refused=False, check=_pnl_in_eth),
    Probe(2, "coinm convert --contract-multiplier 100",
          lambda tmp: ["data", "convert", str(COINM), "--out", str(tmp / "e.npz"), "--contract-multiplier", "100"],
          check=_nothing_written("e.npz")),
    Probe(2, "coinm config kind = linear", _override('kind = "linear"'), check=_nothing_written("out")),
    Probe(2, "coinm config settlement = USDT", _override('settlement = "USDT"'), check=_nothing_written("out")),
    Probe(2, "coinm file converted as linear", _old_linear_file, check=_nothing_written("out")),
    Probe(2, "inverse without a settlement coin",
          lambda tmp: ["backtest", "--config", _config(tmp, USDM, 1.0, '[instrument]\nkind = "inverse"\n'),
                       "--out", str(tmp / "out")], check=_nothing_written("out")),
]
