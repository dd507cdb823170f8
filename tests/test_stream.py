"""Streamed backtests (runtime/stream.py): any chunk size gives the whole-array run's results, byte for byte.

Three "days" of bench/gen_l2.py's stream, five seconds apart, so the book, our orders, their queues and
the latency rings cross two file boundaries and two gaps, and the live engine drops and spills rows
many times over at the small chunk sizes hypothesis draws.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bench.gen_l2 import generate, instrument, split_days
from cmm.cli import main as cmm
from runtime import backtest, stream
from runtime.config import load
from tests.files import save_events

DAY_GAP_NS = 5_000_000_000
RESULT_FILES = ("metrics.json", "ticks.npz", "fills.csv", "orders.csv", "equity.png", "inventory.png")


def config_text(files: list[str], extra: str = "") -> str:
    return f"""[data]
files = {files!r}
gap_s = 1
{extra}
[strategy]
name = "fixed_spread"
compute_ns = 0
[strategy.wake]
every_ns = 50_000_000
[strategy.params]
half_spread_ticks = 1
qty = 1
max_position = 5
[metrics]
episode_s = 1
"""


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    d = tmp_path_factory.mktemp("days")
    files = []
    for k, day in enumerate(split_days(generate(6_000, seed=3), 3, DAY_GAP_NS)):
        files.append(str(d / f"day{k}.npz"))
        save_events(files[-1], day, instrument())
    path = d / "fixed_spread.toml"
    path.write_text(config_text(files))
    cfg = load(str(path))
    return str(path), cfg, backtest.run(cfg, str(path))


def test_the_whole_run_fills_and_states_its_gaps(days):
    _, _, whole = days
    s = whole.summary
    assert s.n_fills > 10 and whole.events > 6_000        # a trade moving the best adds rows
    assert [round(g.seconds) for g in s.gaps] == [5, 5]       # the two nights, never silently joined
    assert all(g.end_ts - g.start_ts > DAY_GAP_NS - 10**9 for g in s.gaps)


@settings(max_examples=8, deadline=None)
@given(chunk=st.one_of(st.integers(16, 256), st.integers(257, 8_000)))
def test_any_chunk_size_gives_the_whole_array_run(days, chunk):
    path, cfg, whole = days
    streamed = stream.run(cfg, path, chunk)
    assert streamed.summary == whole.summary
    assert streamed.result.fills.tobytes() == whole.result.fills.tobytes()
    assert streamed.result.orders.tobytes() == whole.result.orders.tobytes()
    assert streamed.result.account == whole.result.account
    got = {name: np.concatenate([c[name] for c in streamed.result.ticks.chunks(997)]) for name in whole.result.ticks}
    for name, column in whole.result.ticks.items():
        assert got[name].tobytes() == column.tobytes(), name


def test_the_results_directories_are_the_same_bytes(days, tmp_path):
    path, _, _ = days
    assert cmm(["backtest", "--config", path, "--out", str(tmp_path / "whole")]) == 0
    assert cmm(["backtest", "--config", path, "--out", str(tmp_path / "streamed"),
                "--chunk-events", "2048"]) == 0
    for name in RESULT_FILES:
        a, b = (tmp_path / run / name for run in ("whole", "streamed"))
        assert a.read_bytes() == b.read_bytes(), name


def test_what_cannot_stream_is_refused_in_one_line(days, tmp_path, capsys):
    path, cfg, _ = days
    kernel = tmp_path / "kernel.toml"
    kernel.write_text(config_text(cfg.data.files).replace('compute_ns = 0', 'compute_ns = 0\nmode = "kernel"'))
    assert cmm(["backtest", "--config", str(kernel), "--out", str(tmp_path / "k"), "--chunk-events", "4096"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "strategy.mode" in err and "kernel" in err
    csv = tmp_path / "x.csv"
    csv.write_text("not events\n")
    other = tmp_path / "csv.toml"
    other.write_text(config_text([str(csv)], "chunk_events = 4096"))
    assert cmm(["backtest", "--config", str(other), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.csv" in err and "cmm data convert" in err
    assert not os.path.exists(tmp_path / "c")
