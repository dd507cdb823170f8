"""CMMStrategy over the engine: new_events, training-equal features, decision time, the order diff, the bundle
check, the worked example and the shipped config end to end."""
from __future__ import annotations

import functools
import importlib
import json

import numpy as np
import pytest

from engine import views as engine
from engine.views import EngineConfig, LatencyConfig, make_sim
from feeds import events as E
from common.errors import DataError
from bundle.features import replay_features
from runtime import session as backtest
from strategies.api import WakePolicy
from strategies.base import Strategy
from bundle.features import FeatureParams
from strategies.cmm import NO_QUOTE_REASONS, CMMParams, CMMStrategy
from runtime.config import load
from strategies.examples.reduce_only import ReduceOnlyCMM, ReduceOnlyParams
from runtime.backtest import load_events, run_and_write
from tests import engine_events
from tests.conftest import REPO
from tests.test_backtest_cli import assert_fills_reconcile, backtest as run_cli, cmm

MS = 1_000_000
TICK = 0.01
BUNDLE = str(REPO / "data" / "bundles" / "goog_sample")
CONFIG = REPO / "configs" / "backtest_cmm.toml"


stream = functools.partial(engine_events.stream, feed_latency=MS)   # seen 1 ms after the exchange


def sim_for(events):
    latency = LatencyConfig(place_entry_ns=MS, place_response_ns=MS, cancel_entry_ns=MS, cancel_response_ns=MS,
                            modify_entry_ns=MS, modify_response_ns=MS)
    return make_sim(events, EngineConfig(tick_size=TICK, lot_size=1.0, latency=latency))


class Fixed(CMMStrategy):
    """CMM with the model's answer fixed (mid change 0, spread 2 ticks, volume 1): the hooks around it run."""

    target = np.array([0.0, 2.0, np.log1p(1.0)])      # the model predicts log1p of the volume

    def predict(self, x, regime):
        b = self.bundle
        return (self.target - b.target_mean) / b.target_std, np.ones(1)


def fixed(cls=Fixed, compute_ns=0, **params):
    p = (ReduceOnlyParams if issubclass(cls, ReduceOnlyCMM) else CMMParams)(
        bundle=BUNDLE, levels=1, rho=1.0, max_orders=2, **params)
    return cls(p, wake=WakePolicy(every_ns=10 * MS), compute_ns=compute_ns)


BOOK = [(E.DEPTH, 1, 0, 100.00, 5.0), (E.DEPTH, -1, 0, 100.04, 5.0)]   # mid 100.02: quotes 100.01 / 100.03


class Collector(Strategy):
    def __init__(self):
        super().__init__(wake=WakePolicy(every_ns=7 * MS))
        self.rows, self.again = [], []

    def on_timer(self, ctx):
        self.rows.append(ctx.new_events())
        self.again.append(len(ctx.new_events()))

    on_stop = on_timer          # the rows after the last wake-up


def test_new_events_returns_each_local_row_once_in_order():
    events = stream(*BOOK, (E.TRADE, -1, 15 * MS, 100.00, 1.0), (E.DEPTH, 1, 15 * MS, 100.00, 4.0),
                    (E.DEPTH, -1, 30 * MS, 100.03, 2.0))
    s = Collector()
    backtest.run(s, sim_for(events), TICK, 1.0)
    got = np.concatenate(s.rows)
    local = events[(events["ev"] & E.LOCAL) != 0]
    local["ev"] &= ~np.uint64(E.EXCH)       # as we see them: on the local timeline only
    for name in ("ev", "exch_ts", "local_ts", "px", "qty", "order_id"):
        np.testing.assert_array_equal(got[name], local[name])
    assert got.dtype == E.EVENT_DTYPE and set(s.again) == {0}
    assert [len(r) for r in s.rows] == [2, 0, 2, 0, 1]      # wakes at 7, 14, 21, 28 ms, then the stop

class Recording(CMMStrategy):
    def features(self, ctx):
        x = super().features(ctx)
        self.seen.append((ctx.now, x.copy()))
        return x

    def on_start(self, ctx):
        super().on_start(ctx)
        self.seen = []


def test_incremental_features_equal_the_training_replay_on_the_sample():
    cfg = load(str(CONFIG))
    events, instrument = load_events(cfg)
    s = Recording(CMMParams(bundle=BUNDLE), wake=WakePolicy(every_ns=1_000 * MS), compute_ns=0)
    backtest.run(s, make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size)),
                 instrument.tick_size, instrument.lot_size)
    ts = np.array([t for t, _ in s.seen])
    ours = np.array([x for _, x in s.seen])
    trained = replay_features(events, s.bundle.schema, ts)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(trained))
    np.testing.assert_allclose(ours, trained, rtol=0, atol=0, equal_nan=True)
    assert np.isfinite(ours[-1]).all()


def test_declared_decision_time_delays_the_fill():
    # Quotes leave at the 10 ms wake-up. A seller trades at 100.00 at 15.5 ms, through our bid at 100.01:
    # with no decision time the bid reached the exchange at 11 ms and fills; held 5 ms it arrives at 16 ms.
    events = stream(*BOOK, (E.TRADE, -1, 15 * MS + MS // 2, 100.00, 1.0), (E.DEPTH, 1, 40 * MS, 100.00, 5.0))
    fast = backtest.run(fixed(compute_ns=0), sim_for(events), TICK, 1.0)
    slow = backtest.run(fixed(compute_ns=5 * MS), sim_for(events), TICK, 1.0)
    assert len(fast.fills) == 1 and fast.fills[0]["price"] == pytest.approx(100.01)
    assert fast.account.position == 1.0
    assert len(slow.fills) == 0 and slow.account.position == 0.0


def test_order_diff_sends_nothing_while_nothing_changes():
    # Book constant for 50 ms: the first wake-up places a bid and an ask, the next four send nothing.
    # At 50 ms the ask moves out to 100.06 (mid 100.03): each side is cancelled and placed one tick up.
    events = stream(*BOOK, (E.DEPTH, -1, 50 * MS, 100.06, 5.0), (E.DEPTH, -1, 50 * MS, 100.04, 0.0),
                    (E.DEPTH, 1, 100 * MS, 100.00, 5.0))
    sim = sim_for(events)
    s = fixed()
    backtest.run(s, sim, TICK, 1.0)
    assert engine.requests_sent(sim) == 2 + 4
    assert len(s.decision_latency_ns()) == 10 and (s.decision_latency_ns() > 0).all()


def test_worked_example_quotes_only_the_reducing_side():
    # max_position 2, reduce-only from 1: after the bid fills (position 1) plain CMM quotes a new bid,
    # the example only keeps its ask.
    events = stream(*BOOK, (E.TRADE, -1, 15 * MS, 100.00, 1.0), (E.DEPTH, 1, 60 * MS, 100.00, 5.0))
    plain = backtest.run(fixed(max_position=2.0), sim_for(events), TICK, 1.0)
    example = backtest.run(fixed(ReduceOnlyExample, max_position=2.0), sim_for(events), TICK, 1.0)
    assert plain.account.position == example.account.position == 1.0
    buys = lambda r: int((r.orders["side"] == 1).sum())
    assert buys(plain) == 2 and buys(example) == 1
    assert int((example.orders["side"] == -1).sum()) == 1


class ReduceOnlyExample(ReduceOnlyCMM, Fixed):
    pass


def test_worked_example_runs_on_the_sample():
    cfg = load(str(CONFIG))
    events, instrument = load_events(cfg)
    s = ReduceOnlyCMM(ReduceOnlyParams(bundle=BUNDLE, rho=1.0, max_position=100, reduce_only_at=0.3))
    result = backtest.run(s, make_sim(events, EngineConfig(tick_size=instrument.tick_size,
                                                           lot_size=instrument.lot_size)),
                          instrument.tick_size, instrument.lot_size)
    assert len(result.fills) > 0 and abs(result.account.position) <= 100


def test_mismatched_feature_schema_is_refused_at_start():
    s = fixed(features=FeatureParams(depth_levels=10))
    with pytest.raises(DataError) as err:
        backtest.run(s, sim_for(stream(*BOOK)), TICK, 1.0)
    line = str(err.value)
    assert "\n" not in line and "feature_schema.json: depth_levels:" in line and "trained on" in line


def test_mismatched_feature_schema_is_one_line_from_the_command_line(tmp_path):
    text = CONFIG.read_text().replace("depth_levels = 5", "depth_levels = 10").replace('"../', f'"{REPO}/')
    config = tmp_path / "bad.toml"
    config.write_text(text)
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "out")
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    assert proc.stderr.count("\n") == 1 and "depth_levels" in proc.stderr and "feature schemas differ" in proc.stderr


def test_impossible_feature_parameters_are_one_line_from_the_command_line(tmp_path):
    text = CONFIG.read_text().replace("depth_levels = 5", "depth_levels = 5\nrv_step_ns = 7_000_000_000")
    config = tmp_path / "bad.toml"
    config.write_text(text.replace('"../', f'"{REPO}/'))
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "out")
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    assert proc.stderr.count("\n") == 1 and "strategy.params.features: rv window 60000000000 ns is not a multiple " \
        "of rv_step_ns 7000000000" in proc.stderr, proc.stderr


def test_cmm_config_end_to_end(tmp_path):
    out = tmp_path / "cmm"
    metrics = run_cli(CONFIG, out)
    assert {"epnl", "map", "rpt", "pnlmap"} <= metrics.keys()
    latency = metrics["decision_latency_us"]
    assert 0 < latency["p50"] <= latency["p99"]
    # The split: the model call and the rest of each decision, both measured, the model the smaller part
    # at the median (features, ladder, order diff and sending are jitted; the model is TorchScript).
    model, rest = metrics["decision_model_us"], metrics["decision_rest_us"]
    assert 0 < model["p50"] <= model["p99"] and 0 < rest["p50"] <= rest["p99"]
    assert model["p50"] < latency["p50"] and rest["p50"] < latency["p50"]
    assert metrics["n_fills"] > 0
    assert_fills_reconcile(out, metrics)
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_out_of_range_decisions_are_counted_logged_once_and_withdrawn(tmp_path, capsys):
    """A strict range (|z| > 2) on the sample: every decision beyond it is counted, the first logged once, and
    with out_of_range = "withdraw" it quotes nothing; metrics.json's counts are the decision record's."""
    from tests.test_cmm_batched import config

    path = config(tmp_path, "cmm", "auto", extra='max_abs_z = 2.0\nout_of_range = "withdraw"\n')
    bt = run_and_write(path, str(tmp_path / "out"))
    d = np.load(tmp_path / "out" / "decisions.npz")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    beyond = d["max_abs_z"] > 2.0
    assert 100 < beyond.sum() < len(beyond) - 100              # the check bites, and not everywhere
    assert (d["out_of_range"] == beyond).all()
    assert metrics["out_of_range_decisions"] == int(beyond.sum()) == bt.summary.out_of_range_decisions
    assert metrics["out_of_range_share"] == pytest.approx(beyond.mean())
    assert metrics["decisions"] == len(beyond)
    reasons = NO_QUOTE_REASONS
    assert metrics["no_quote"]["out_of_range"] == int(beyond.sum())            # each withdrawn, none quoted
    assert all(reasons[code] == "out_of_range" for code in d["no_quote"][beyond])
    assert np.isnan(d["bid"][beyond]).all() and np.isnan(d["ask"][beyond]).all()
    warm = d["max_abs_z"] < 0
    assert metrics["no_quote"]["warm_up"] == int(warm.sum()) > 0
    err = capsys.readouterr().err
    assert err.count("out of the training range") == 1 and "counted in metrics.json" in err
    assert "CMMStrategy: quoted on" in err and f"out_of_range {int(beyond.sum()):,}" in err


class Collector2(Collector):
    """Collector reading the same rows as the engine's columns."""

    def on_timer(self, ctx):
        ev, local_ts, px, qty = ctx.new_event_columns()
        local = (ev & np.uint64(E.LOCAL)) != 0
        self.rows.append((ev[local] & ~np.uint64(E.EXCH), local_ts[local], px[local], qty[local]))
        self.again.append(len(ctx.new_event_columns()[0]))

    on_stop = on_timer


def test_new_event_columns_are_the_new_events_without_a_copy():
    events = stream(*BOOK, (E.TRADE, -1, 15 * MS, 100.00, 1.0), (E.DEPTH, 1, 15 * MS, 100.00, 4.0),
                    (E.DEPTH, -1, 30 * MS, 100.03, 2.0))
    s = Collector2()
    backtest.run(s, sim_for(events), TICK, 1.0)
    local = events[(events["ev"] & E.LOCAL) != 0]
    local["ev"] &= ~np.uint64(E.EXCH)
    for k, name in enumerate(("ev", "local_ts", "px", "qty")):
        np.testing.assert_array_equal(np.concatenate([r[k] for r in s.rows]), local[name])
    assert [len(r[0]) for r in s.rows] == [2, 0, 2, 0, 1] and set(s.again) == {0}


class HookByHook(CMMStrategy):
    """CMM with requote overridden (by its own code): the hooks run one by one instead of the fused kernel."""

    requotes = 0

    def requote(self, ctx, quotes):
        HookByHook.requotes += 1
        super().requote(ctx, quotes)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("inference", ["per_tick", "batched"])
def test_the_fused_decision_writes_the_bytes_of_the_hooks_one_by_one(tmp_path, inference):
    """strategies/cmm_kernel.decide against aggregate -> build_ladder -> risk_check -> requote, each the
    Python hook over its own kernel: the sample's backtest, every output file, byte for byte."""
    from tests.test_cmm_batched import config

    path = config(tmp_path, "cmm", inference)
    fused = run_and_write(path, str(tmp_path / "fused"))
    hooked = tmp_path / "hooks.toml"
    hooked.write_text(open(path).read().replace('name = "cmm"', 'name = "tests.test_cmm_strategy:HookByHook"'))
    named = importlib.import_module("tests.test_cmm_strategy").HookByHook    # the class the config names
    named.requotes = 0
    hooks = run_and_write(str(hooked), str(tmp_path / "hooks"))
    assert named.requotes == len(hooks.decisions["ts"]) > 2000
    for name in ("fills.csv", "orders.csv", "ticks.npz", "decisions.npz"):
        assert (tmp_path / "fused" / name).read_bytes() == (tmp_path / "hooks" / name).read_bytes(), name
    assert fused.summary == hooks.summary and hooks.summary.n_fills > 50


class InputsByHook(CMMStrategy):
    """CMM with predict overridden (by its own code): features, classify_regime and predict run one by one
    instead of the one jitted call of features, regime and the model's input."""

    predictions = 0

    def predict(self, x, regime):
        InputsByHook.predictions += 1
        return super().predict(x, regime)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_decision_inputs_in_one_call_write_the_bytes_of_the_hooks_one_by_one(tmp_path):
    """strategies/cmm_kernel.inputs_now against features -> classify_regime -> predict (Bundle.decide), per tick:
    the sample's backtest, every output file, byte for byte."""
    from tests.test_cmm_batched import config

    path = config(tmp_path, "cmm", "per_tick")
    one_call = run_and_write(path, str(tmp_path / "one_call"))
    hooked = tmp_path / "hooks.toml"
    hooked.write_text(open(path).read().replace('name = "cmm"', 'name = "tests.test_cmm_strategy:InputsByHook"'))
    named = importlib.import_module("tests.test_cmm_strategy").InputsByHook
    named.predictions = 0
    hooks = run_and_write(str(hooked), str(tmp_path / "hooks"))
    assert named.predictions > 2000
    for name in ("fills.csv", "orders.csv", "ticks.npz", "decisions.npz"):
        assert (tmp_path / "one_call" / name).read_bytes() == (tmp_path / "hooks" / name).read_bytes(), name
    assert one_call.summary == hooks.summary and hooks.summary.n_fills > 50
