"""``cmm backtest`` end to end on the sample in the repo: outputs, reconciliation, determinism, bad configs."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

import feeds
from engine.views import count_ticks
from tests.conftest import REPO, shared_path

FIXED_SPREAD = REPO / "configs" / "backtest_fixed_spread.toml"
AVELLANEDA_STOIKOV = REPO / "configs" / "backtest_avellaneda_stoikov.toml"
METRIC_KEYS = {"epnl", "map", "rpt", "pnlmap", "n_fills", "sharpe", "max_drawdown", "episodes"}
OUTPUTS = ("metrics.json", "ticks.npz", "fills.csv", "orders.csv", "config.toml", "equity.png", "inventory.png")


def cmm(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True, cwd=REPO)


def backtest(config, out) -> dict:
    proc = cmm("backtest", "--config", config, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "EPnL" in proc.stdout and f"results in {out}" in proc.stdout
    return json.loads((out / "metrics.json").read_text())


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_fills_reconcile(out, metrics) -> None:
    fills = read_csv(out / "fills.csv")
    orders = {int(o["order_id"]): o for o in read_csv(out / "orders.csv")}
    assert len(fills) == metrics["n_fills"]
    executed = defaultdict(float)
    for f in fills:
        executed[int(f["order_id"])] += float(f["qty"])
    for oid, qty in executed.items():
        assert float(orders[oid]["executed"]) == pytest.approx(qty), oid
    for oid, o in orders.items():
        if o["status"] == "filled":
            assert executed[oid] == pytest.approx(float(o["qty"]))
    signed = sum(float(f["qty"]) * (1 if f["side"] == "buy" else -1) for f in fills)
    assert metrics["final_position"] == pytest.approx(signed)


def test_fixed_spread_config_writes_every_output(tmp_path):
    out = tmp_path / "fs"
    metrics = backtest(FIXED_SPREAD, out)
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["n_fills"] > 0 and metrics["episodes"]["count"] > 1
    ticks = np.load(out / "ticks.npz")
    assert set(ticks.files) == {"ts", "mid", "position", "epnl", "map", "rpt", "quoted"}
    events = feeds.read([REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"]).events
    assert len(ticks["ts"]) == count_ticks(events) == metrics["ticks"]
    assert ticks["epnl"][-1] == pytest.approx(metrics["epnl"])
    assert np.all(np.diff(ticks["ts"]) >= 0)
    assert_fills_reconcile(out, metrics)


def test_same_config_gives_identical_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    backtest(FIXED_SPREAD, a)
    backtest(FIXED_SPREAD, b)
    for name in ("metrics.json", "ticks.npz", "fills.csv", "orders.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("config", [FIXED_SPREAD, AVELLANEDA_STOIKOV])
def test_python_strategy_and_kernel_fill_identically(tmp_path, config):
    kernel_config = tmp_path / "kernel.toml"
    text = config.read_text().replace('mode = "python"', 'mode = "kernel"')
    text = text.replace('"../data/samples/', f'"{REPO}/data/samples/')
    kernel_config.write_text(text)
    py = backtest(config, tmp_path / "py")
    kern = backtest(kernel_config, tmp_path / "kern")
    assert py["n_fills"] > 0
    assert (tmp_path / "py" / "fills.csv").read_bytes() == (tmp_path / "kern" / "fills.csv").read_bytes()
    assert py["epnl"] == kern["epnl"]


def _bad_config(tmp_path, old: str, new: str):
    path = tmp_path / "bad.toml"
    text = FIXED_SPREAD.read_text().replace('"../data/samples/', f'"{REPO}/data/samples/')
    assert old in text
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old,new,needles", [
    ("half_spread_ticks = 2", "half_spred_ticks = 2", ["strategy.params", "half_spred_ticks"]),
    ("[fees]", "[fees]\nmakr = 0.1", ["fees", "makr"]),
    ("[metrics]", "[instrument]\ntick_size = -0.01\n\n[metrics]", ["instrument.tick_size", ">"]),
    ("every_ns = 100_000_000", 'every_ns = "fast"', ["strategy.wake.every_ns", "int"]),
    ('name = "fixed_spread"', 'name = "fixed_sprd"', ["strategy.name", "fixed_spread"]),
    ('model = "risk_averse"', 'model = "fifo"', ["queue.model"]),
    ("[strategy]", "[strategy", ["TOML"]),
])
def test_bad_config_gets_one_line(tmp_path, old, new, needles):
    proc = cmm("backtest", "--config", _bad_config(tmp_path, old, new), "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmm: error: ") and "bad.toml" in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path):
    proc = cmm("backtest", "--config", tmp_path / "nope.toml", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "nope.toml" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.shared_data
def test_l3_queue_on_full_goog_level_10_reconciles(tmp_path):
    src = shared_path("lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
    config = tmp_path / "l3.toml"
    text = FIXED_SPREAD.read_text().replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', f'"{src}"')
    config.write_text(text.replace('model = "risk_averse"', 'model = "l3"'))
    out = tmp_path / "l3"
    metrics = backtest(config, out)
    assert metrics["n_fills"] > 100
    assert metrics["ticks"] == len(np.load(out / "ticks.npz")["ts"])
    assert_fills_reconcile(out, metrics)


def _with_latency_file(tmp_path, content: str):
    lat = tmp_path / "latency.csv"
    lat.write_text(content)
    config = tmp_path / "lat.toml"
    text = FIXED_SPREAD.read_text().replace('"../data/samples/', f'"{REPO}/data/samples/')
    config.write_text(text.replace("cancel_response_ns = 1_000_000\n",
                                   'cancel_response_ns = 1_000_000\nfile = "latency.csv"\n'))
    return config


def test_recorded_latency_file_is_used(tmp_path):
    # The sample starts 2012-06-21 09:30 New York; a slow 50 ms link all day long.
    t0, t1 = 1_340_285_400_000_000_000, 1_340_308_800_000_000_000
    slow = _with_latency_file(tmp_path, f"request_ts,exchange_ts,response_ts\n{t0},{t0 + 50_000_000},{t0 + 100_000_000}\n"
                                        f"{t1},{t1 + 50_000_000},{t1 + 100_000_000}\n")
    fast = backtest(FIXED_SPREAD, tmp_path / "fast")
    slow_metrics = backtest(slow, tmp_path / "slow")
    assert slow_metrics["n_fills"] != fast["n_fills"] or slow_metrics["epnl"] != fast["epnl"]
    fills = read_csv(tmp_path / "slow" / "fills.csv")
    assert all(int(f["local_ts"]) - int(f["exch_ts"]) == 50_000_000 for f in fills)   # response leg of the table


@pytest.mark.parametrize("content,needle", [
    ("request,exchange,response\n1,2,3\n", "expected the header"),
    ("request_ts,exchange_ts,response_ts\n1,2\n", "latency.file"),
    ("request_ts,exchange_ts,response_ts\n5,4,6\n", "request <= exchange <= response"),
])
def test_bad_latency_file_gets_one_line(tmp_path, content, needle):
    proc = cmm("backtest", "--config", _with_latency_file(tmp_path, content), "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr
