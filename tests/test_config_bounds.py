"""Every number of a config is bounded where it is parsed: nan, inf and implausible values are one line, exit 2.

Issue 12 item 15, from a user's probes: ``maker = nan`` printed EPnL 0.0,
``episode_s = inf`` and ``tick_size = 1e-300`` were OverflowError tracebacks,
and a latency of 9e18 ns wrapped the int64 clock and ran like 1 ms (a wake-up
timer of 9e18 ns never fired, and the run quoted nothing).
"""
from __future__ import annotations

import math
import re

import pytest

from engine.views import EngineConfig, FeeConfig, LatencyConfig, make_sim
from common.config import ConfigError
from tests import engine_events
from tests.conftest import REPO
from tests.test_backtest_cli import _bad_config, cmm


def _one_line_naming(proc, tmp_path, *needles) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmm: error: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("old,new,needles", [
    ("maker = -0.0002", "maker = nan", ["bad.toml", "fees.maker", "finite"]),
    ("taker = 0.0007", "taker = -inf", ["bad.toml", "fees.taker", "finite"]),
    ("maker = -0.0002", "maker = -2.0", ["bad.toml", "fees", "maker = -2.0", "-200%"]),
    ("episode_s = 60", "episode_s = inf", ["bad.toml", "metrics.episode_s", "finite"]),
    ("episode_s = 60", "episode_s = 1e12", ["bad.toml", "metrics.episode_s", "<= 31622400"]),
    ("[metrics]", "[instrument]\ntick_size = 1e-300\n\n[metrics]", ["bad.toml", "instrument.tick_size", ">= 1e-12"]),
    ("[metrics]", "[instrument]\nlot_size = nan\n\n[metrics]", ["bad.toml", "instrument.lot_size", "finite"]),
    ("place_entry_ns = 1_000_000", "place_entry_ns = 9_000_000_000_000_000_000",
     ["bad.toml", "latency.place_entry_ns", "<= 3600000000000"]),
    ("compute_ns = 0", "compute_ns = 9_000_000_000_000_000_000", ["bad.toml", "strategy.compute_ns"]),
    ("every_ns = 100_000_000", "every_ns = 9_000_000_000_000_000_000", ["bad.toml", "strategy.wake", "at most a year"]),
    ("qty = 100 ", "qty = inf ", ["bad.toml", "strategy.params.qty", "finite"]),
    ("max_position = 500 ", "max_position = nan ", ["bad.toml", "strategy.params.max_position", "finite"]),
])
def test_implausible_config_number_is_one_line(tmp_path, old, new, needles):
    proc = cmm("backtest", "--config", _bad_config(tmp_path, old, new), "--out", tmp_path / "out")
    _one_line_naming(proc, tmp_path, *needles)


def test_a_tick_size_in_the_data_that_overflows_the_book_is_one_line(tmp_path):
    """The data file's own tick size is checked too, where the book's tick range is made."""
    data = tmp_path / "tiny_tick.csv"
    data.write_text((REPO / "data" / "samples" / "sample_events.csv").read_text()
                    .replace("# tick_size=0.1\n", "# tick_size=1e-300\n"))
    config = tmp_path / "bad.toml"
    config.write_text((REPO / "configs" / "backtest_fixed_spread.toml").read_text()
                      .replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', f'"{data}"'))
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "out")
    _one_line_naming(proc, tmp_path, "tick_size", "1e-300", "span")


def test_the_engine_refuses_what_a_config_would_have(tmp_path):
    """Built in Python, without a config file: the same bounds hold at the engine's door."""
    with pytest.raises(ValueError, match="maker = nan"):
        FeeConfig(maker=math.nan)
    rows = engine_events.book(0, {100: 1.0}, {101: 1.0})
    with pytest.raises(ConfigError, match="latencies"):
        engine_events.sim(rows, latency=LatencyConfig(place_entry_ns=9 * 10**18))
    with pytest.raises(ConfigError, match="span"):
        engine_events.sim(rows, tick_size=1e-300)
    assert make_sim(engine_events.events(rows), EngineConfig(tick_size=1.0, lot_size=1.0, tick_range_pad=20))


@pytest.mark.parametrize("table, line, needles", [
    ("[distill]", "lr = nan", ["distill.lr", "finite"]),
    ("[distill]", "task_weight = 1.5", ["distill.task_weight", "<= 1"]),
    ("[moe]", "tau = inf", ["moe.tau", "finite"]),
    ("[moe]", "steps = -5", ["moe.steps", ">= 1"]),
    ("[teacher]", "weight_decay = nan", ["teacher.weight_decay", "finite"]),
])
def test_implausible_training_number_is_refused_naming_the_key(tmp_path, table, line, needles):
    from cmm_models import config as train_config

    text = (REPO / "configs" / "cmm_tiny.toml").read_text().replace('"../data/', f'"{REPO}/data/')
    head, sep, body = text.partition(f"\n{table}")
    key = line.split(" = ")[0]
    body = re.sub(rf"(?m)^{key} = .*$", "", body, count=1)     # the table's own setting, if it has one
    path = tmp_path / "train.toml"
    path.write_text(head + sep + f"\n{line}" + body)
    with pytest.raises(ConfigError) as err:
        train_config.load(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
