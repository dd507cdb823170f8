"""A queue model added from outside the engine: a file (tests/engine_optimistic_queue.py) and one registry line.

It runs through the same entry points as the built-in ones (the engine, the TOML config, a backtest), and
its fills are the ones computed by hand for a tiny stream.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.config import ConfigError
from engine import kernel as K
from engine.codes import BUY, FILLED, GTC, LIMIT, NEW
from engine.models.config import QueueConfig
from engine.models.queue.registry import QUEUE_MODELS
from engine.state import FL_TICK, FL_XTS, FLF_QTY, I_NFILLS, O_XSTATUS
from feeds.instrument import Instrument
from runtime import backtest
from runtime.config import load
from tests.conftest import REPO
from tests.engine_events import book, events, sim
from tests.files import save_events
from tests.engine_optimistic_queue import Optimistic


@pytest.fixture(autouse=True)
def optimistic():
    QUEUE_MODELS["optimistic"] = Optimistic          # the one line that registers a model
    yield
    del QUEUE_MODELS["optimistic"]


# Bid 100 holds 10 lots when our buy of 2 joins it at t=10; a 1-lot sell trade prints at 100 at t=20.
ROWS = book(0, {100: 10}, {102: 10}) + [(20, "trade", "s", 100, 1), (30, "depth", "b", 100, 9)]


def _engine_fills(model):
    S = sim(ROWS, queue=QueueConfig(model=model))
    K.goto(S, 10)
    K.submit(S, BUY, 100, 2.0, GTC, LIMIT)
    K.run_to_end(S)
    k = int(S.ints[I_NFILLS])
    return [(int(S.fl_i[j, FL_XTS]), int(S.fl_i[j, FL_TICK]), float(S.fl_f[j, FLF_QTY])) for j in range(k)], \
        int(S.orders_i[0, O_XSTATUS])


def test_a_trade_at_our_price_fills_an_optimistic_order_at_once():
    # Optimistic: nothing ahead, the 1-lot trade reaches us; without partial fills the whole order executes.
    assert _engine_fills("optimistic") == ([(20, 100, 2.0)], FILLED)
    # RiskAverse on the same rows: 10 lots ahead, the trade leaves 9; no fill.
    assert _engine_fills("risk_averse") == ([], NEW)


def test_partial_fills_take_the_trade_size():
    S = sim(ROWS, queue=QueueConfig(model="optimistic", partial_fills=True))
    K.goto(S, 10)
    K.submit(S, BUY, 100, 2.0, GTC, LIMIT)
    K.run_to_end(S)
    assert int(S.ints[I_NFILLS]) == 1 and S.fl_f[0, FLF_QTY] == 1.0     # min(trade 1, leaves 2)


T0 = 1_700_000_000_000_000_000
CONFIG = """
[data]
files = ["{data}"]

[strategy]
name = "fixed_spread"
compute_ns = 0

[strategy.wake]
every_ns = 1000

[strategy.params]
half_spread_ticks = 1
qty = 2
max_position = 10

[queue]
model = "{model}"
"""


def _backtest(tmp_path, model):
    # Book 100 x 102: FixedSpread quotes bid 100 and ask 102 (mid 101 -/+ 1 tick) at the wake-up at T0+1000,
    # with no latency; a 1-lot sell trade prints at 100 at T0+5000.
    rows = book(T0, {100: 10}, {102: 10}) + [(T0 + 5000, "trade", "s", 100, 1), (T0 + 8000, "depth", "b", 100, 9)]
    data = tmp_path / "tiny.npz"
    save_events(data, events(rows), Instrument(symbol="X", tick_size=1.0, lot_size=1.0))
    path = tmp_path / f"{model}.toml"
    path.write_text(CONFIG.format(data=data, model=model))
    return backtest.run(load(str(path)), str(path)).result.fills


def test_a_backtest_runs_the_registered_model(tmp_path):
    fills = _backtest(tmp_path, "optimistic")
    assert len(fills) == 1
    assert (fills[0]["side"], fills[0]["exch_ts"], fills[0]["price"], fills[0]["qty"]) == (1, T0 + 5000, 100.0, 2.0)
    assert fills[0]["maker"]
    assert len(_backtest(tmp_path, "risk_averse")) == 0


def test_an_unknown_model_is_one_line_naming_the_key_and_the_models(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.format(data=tmp_path / "none.npz", model="fifo"))
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert "queue.model" in str(e.value) and "'optimistic'" in str(e.value) and "'risk_averse'" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_process_that_cannot_import_the_model_still_runs_from_the_cache(tmp_path):
    """The engine's cache index now lists the optimistic model; a run elsewhere, where ``tests`` is not
    importable, reads that index and must neither import the model nor fail for want of it."""
    assert len(_backtest(tmp_path, "risk_averse")) == 0
    assert len(_backtest(tmp_path, "optimistic")) == 1
    path = tmp_path / "risk_averse.toml"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "nothing_here")
    code = ("import sys; sys.path = [p for p in sys.path if p not in ('', %r)]; "
            "from runtime import backtest; from runtime.config import load; "
            "print(len(backtest.run(load(%r), %r).result.fills))" % (str(REPO), str(path), str(path)))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0"]
