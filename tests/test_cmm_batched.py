"""CMM's batched inference: the per-tick path's bytes for every MoE variant, across batch boundaries and with
market rows exactly at wake-up times; where ``auto`` batches; ``batched`` refused with one line where it cannot
apply; the bundles answering a decision with the same bits alone or in a batch; and variants that take
``on_timer`` or ``on_fill`` woken at every wake-up, with the results of the jitted run of a batch."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import feeds
from common.atomic import atomic_write
from engine.views import EngineConfig, make_sim
from feeds import events as E
from bundle.loader import load_bundle
from bundle.features import replay_features
from runtime import session as backtest
from strategies.api import WakePolicy
from strategies.cmm import CMMParams, CMMStrategy
from runtime.config import load
from strategies.examples.reduce_only import ReduceOnlyCMM, ReduceOnlyParams
from runtime.backtest import load_events, run_and_write
from tests.conftest import REPO
from tests.test_backtest_cli import cmm

SECOND = 1_000_000_000
CONFIGS = REPO / "configs"
BUNDLES = REPO / "data" / "bundles"
OUTPUTS = ("fills.csv", "orders.csv", "ticks.npz", "metrics.json", "decisions.npz")
MOE_BUNDLES = ("goog_sample", "goog_sample_variants/single_student", "goog_sample_variants/mean",
               "goog_sample_variants/gate", "goog_sample_variants/no_regime", "goog_sample_variants/no_layer")


def config(tmp_path, name: str, inference: str, *, compute_ns="1_000_000", data=None, extra: str = "") -> str:
    """configs/backtest_<name>.toml with absolute paths, a declared decision time and ``inference``."""
    text = (CONFIGS / f"backtest_{name}.toml").read_text().replace('"../', f'"{REPO}/')
    text = re.sub(r"(?m)^compute_ns = .*$", f"compute_ns = {compute_ns}", text)
    text = re.sub(r"(?m)^(inference|batch) = .*\n", "", text)
    text = text.replace("[strategy.params]\n", f'[strategy.params]\ninference = "{inference}"\n{extra}')
    if data is not None:
        text = text.replace(f'"{REPO}/data/samples/GOOG_2012-06-21_10_head.zip"', json.dumps(str(data)))
    path = tmp_path / f"{name}_{inference}.toml"
    path.write_text(text)
    return str(path)


def assert_same_bytes(a, b) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["cmm", "single_student", "cmm_mean", "cmm_gating", "cmm_no_regime",
                                  "cmm_no_layer"])
def test_batched_writes_the_per_tick_bytes(name, tmp_path):
    per_tick = run_and_write(config(tmp_path, name, "per_tick"), str(tmp_path / "per_tick"))
    batched = run_and_write(config(tmp_path, name, "batched"), str(tmp_path / "batched"))
    assert_same_bytes(tmp_path / "per_tick", tmp_path / "batched")
    predicted = np.isfinite(batched.decisions["pred_mid"])
    assert predicted.sum() > 1500 and batched.summary.n_fills == per_tick.summary.n_fills > 50
    assert "decision_latency_us" not in json.loads((tmp_path / "batched" / "metrics.json").read_text())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_batch_boundaries_and_rows_at_wake_times_change_nothing(tmp_path):
    # Every LOCAL row within 5 ms before a wake-up moves to the wake-up's own time: the engine has replayed
    # it at that wake-up (local_ts <= now), so the batch must see it too. Batches of 7 decisions put a
    # boundary every 7 s.
    events, instrument = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    t0 = int(min(events["exch_ts"][0], events["local_ts"][0]))
    local = (events["ev"] & E.LOCAL) != 0
    ts = events["local_ts"]
    wake = t0 + -(-(ts - t0) // SECOND) * SECOND
    snap = local & (wake - ts < 5_000_000) & (wake > ts)
    events["local_ts"] = np.where(snap, wake, ts)
    assert snap.sum() > 100 and (np.diff(events["local_ts"][local]) >= 0).all()
    data = tmp_path / "snapped.npz"
    with atomic_write(data) as f_out:
        feeds.write(f_out, events, instrument)
    run_and_write(config(tmp_path, "cmm", "per_tick", data=data), str(tmp_path / "per_tick"))
    run_and_write(config(tmp_path, "cmm", "batched", data=data, extra="batch = 7\n"), str(tmp_path / "batched"))
    assert_same_bytes(tmp_path / "per_tick", tmp_path / "batched")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("bundle", MOE_BUNDLES)
def test_a_decision_gets_the_same_bits_alone_or_in_a_batch(bundle):
    b = load_bundle(BUNDLES / bundle)
    events, _ = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    start = int(events["local_ts"][0])
    x = replay_features(events, b.schema, start + np.arange(300, 1500) * SECOND)
    x = x[np.isfinite(x).all(axis=1)]
    assert len(x) > 1000
    torch.set_num_threads(1)
    for regime in range(3):
        y, w, _ = b.decide_batch(x, regime)            # the batched path's call
        for i in range(0, len(x), 7):                  # the per-tick path's, a row at a time
            y1, w1 = b.decide(x[i], regime)
            assert np.array_equal(y1, y[i]) and np.array_equal(w1, w[i]), (regime, i)
        with torch.inference_mode():                   # and the verified module itself, eagerly
            ym, wm = b.model(b.model_input(x), regime)
        assert np.array_equal(ym.numpy(), y) and np.array_equal(wm.numpy(), w)


class Overrides(CMMStrategy):
    def features(self, ctx):
        return super().features(ctx)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("strategy, wake, inference, batched", [
    (CMMStrategy, WakePolicy(every_ns=SECOND), "auto", True),
    (CMMStrategy, WakePolicy(every_ns=SECOND), "per_tick", False),
    (CMMStrategy, WakePolicy(every_ns=SECOND, every_events=1000), "auto", False),
    (Overrides, WakePolicy(every_ns=SECOND), "auto", False),
    (ReduceOnlyCMM, WakePolicy(every_ns=SECOND), "auto", True),     # overrides risk_check: applied in the loop
])
def test_auto_batches_exactly_where_it_applies(strategy, wake, inference, batched):
    events, instrument = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    events = events[events["local_ts"] <= events["local_ts"][0] + 6 * 60 * SECOND]
    params = (ReduceOnlyParams if strategy is ReduceOnlyCMM else CMMParams)(
        bundle=str(BUNDLES / "goog_sample"), inference=inference)
    s = strategy(params, wake=wake, compute_ns=0)
    backtest.run(s, make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size)),
                 instrument.tick_size, instrument.lot_size)
    assert s.batched is batched and len(s.decision_record()["ts"]) > 300


@pytest.mark.parametrize("name, wake, needle", [
    ("cmm", "on_top_change = true\n", "needs a timer-only wake policy (strategy.wake.every_ns alone)"),
    ("teacher", "", "cannot run TeacherStrategy, which overrides features()"),
])
def test_batched_where_it_cannot_apply_is_one_line(tmp_path, name, wake, needle):
    path = config(tmp_path, name, "batched")
    with open(path) as f:
        text = f.read().replace("[strategy.wake]\n", "[strategy.wake]\n" + wake)
    with open(path, "w") as f:
        f.write(text)
    proc = cmm("backtest", "--config", path, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cmm: error: {path}: strategy.params.inference: "), lines
    assert needle in lines[0] and 'use "auto" or "per_tick"' in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_unknown_inference_is_one_line(tmp_path):
    proc = cmm("backtest", "--config", config(tmp_path, "cmm", "fast"), "--out", tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "strategy.params.inference" in lines[0] and "'per_tick'" in lines[0], lines


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_measured_batched_decision_is_charged_its_share_of_the_batch():
    events, instrument = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    s = CMMStrategy(CMMParams(bundle=str(BUNDLES / "goog_sample"), batch=100), wake=WakePolicy(every_ns=SECOND),
                    compute_ns="measured")
    backtest.run(s, make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size)),
                 instrument.tick_size, instrument.lot_size)
    latency = s.decision_latency_ns()
    last = s._ahead.next                     # the decisions taken from the last batch
    assert s.batched and s._ahead.share_ns > 0 and last > 0
    assert (latency[-last:] > s._ahead.share_ns).all()


class CountsTimers(CMMStrategy):
    """A variant that overrides on_timer: it must be woken at every decision, not skipped by a jitted run."""

    timers = 0

    def on_timer(self, ctx):
        self.timers += 1
        super().on_timer(ctx)


class SeesFills(CMMStrategy):
    """A variant that takes on_fill: every fill must reach it at the wake-up after its response arrives."""

    def on_start(self, ctx):
        self.fills = []
        super().on_start(ctx)

    def on_fill(self, ctx, fill):
        self.fills.append((ctx.now, fill.order_id, fill.local_ts))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("compute_ns", [0, 20_000])
def test_variants_that_take_more_callbacks_are_woken_one_by_one_with_the_same_results(compute_ns):
    events, instrument = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    runs = {}
    for strategy in (CMMStrategy, CountsTimers, SeesFills):
        s = strategy(CMMParams(bundle=str(BUNDLES / "goog_sample"), batch=50), wake=WakePolicy(every_ns=SECOND),
                     compute_ns=compute_ns)
        sim = make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size))
        runs[strategy] = s, backtest.run(s, sim, instrument.tick_size, instrument.lot_size)
    plain, result = runs[CMMStrategy]
    record = plain.decision_record()
    assert plain.batched and len(record["ts"]) > 2000 and len(result.fills) > 50
    for strategy in (CountsTimers, SeesFills):
        s, other = runs[strategy]
        assert np.array_equal(other.fills, result.fills)
        theirs = s.decision_record()
        for name, column in record.items():
            assert np.array_equal(theirs[name], column, equal_nan=column.dtype.kind == "f"), (strategy, name)
    assert runs[CountsTimers][0].timers == len(record["ts"])
    seen = runs[SeesFills][0].fills
    wakes = set(record["ts"].tolist())
    assert [oid for _, oid, _ in seen] == result.fills["order_id"].tolist()
    # each fill is reported at the first wake-up at or after its response reached the strategy
    assert all(now in wakes and now - SECOND < local_ts <= now for now, _, local_ts in seen)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_repeated_decision_gets_what_the_model_gives_it_alone():
    # Quiet seconds repeat the previous decision's model inputs; the batch then copies its outputs instead of
    # calling the model. One batch covers the whole sample, so the strategy's last batch holds every decision.
    events, instrument = load_events(load(str(CONFIGS / "backtest_cmm.toml")))
    s = CMMStrategy(CMMParams(bundle=str(BUNDLES / "goog_sample"), batch=4096), wake=WakePolicy(every_ns=SECOND),
                    compute_ns=0)
    backtest.run(s, make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size)),
                 instrument.tick_size, instrument.lot_size)
    a = s._ahead
    repeats = np.flatnonzero(a._repeats(a.x, a.regimes, a.finite))
    assert len(repeats) > 20
    for i in repeats:
        y, w = s.bundle.decide(a.x[i], int(a.regimes[i]))
        assert np.array_equal(y, a.y[i]) and np.array_equal(w, a.w[i]) and s.bundle.last_z[0] == a.z[i], i
    # bit for bit: a zero's sign is an input the model sees
    x = np.repeat(a.x[repeats[:1]], 2, axis=0)
    column = int(np.flatnonzero(s.bundle.used)[0])
    x[0, column], x[1, column] = 0.0, -0.0
    assert not a._repeats(x, a.regimes[:2] * 0, np.ones(2, dtype=bool))[1]
    x[1, column] = 0.0
    assert a._repeats(x, a.regimes[:2] * 0, np.ones(2, dtype=bool))[1]
