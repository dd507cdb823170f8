"""The CMM family by name on the shipped bundles: every variant runs, each refuses another's bundle, and the
teacher sees the training windows and decides far slower than CMM. A 12-minute slice of the repo's GOOG sample
(the features need 5 minutes to warm up) keeps it fast."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import feeds
from common.atomic import atomic_write
from engine.views import EngineConfig, make_sim
from bundle.loader import load_bundle
from common.errors import DataError
from bundle.features import replay_features
from runtime import session as backtest
from strategies.api import WakePolicy
from strategies.cmm import CMMParams, CMMStrategy
from runtime.config import load
from strategies.registry import STRATEGIES
from runtime.backtest import load_events, run_and_write
from strategies.teacher_strategy import TeacherStrategy
from tests.conftest import REPO

MINUTE = 60_000_000_000
BUNDLES = REPO / "data" / "bundles"
VARIANT_BUNDLE = {"cmm": "goog_sample", "teacher": "goog_sample_variants/teacher",
                  "single_student": "goog_sample_variants/single_student", "cmm_mean": "goog_sample_variants/mean",
                  "cmm_gating": "goog_sample_variants/gate", "cmm_no_regime": "goog_sample_variants/no_regime",
                  "cmm_no_layer": "goog_sample_variants/no_layer"}
CMM_CONFIG = (REPO / "configs" / "backtest_cmm.toml").read_text()


@pytest.fixture(scope="module")
def sample_slice(tmp_path_factory):
    """The first 12 minutes of the sample as an event file, with its events and instrument."""
    events, instrument = load_events(load(str(REPO / "configs" / "backtest_cmm.toml")))
    start = int(events["local_ts"][0])
    events = events[events["local_ts"] <= start + 12 * MINUTE]
    path = tmp_path_factory.mktemp("slice") / "goog_12min.npz"
    with atomic_write(path) as f_out:
        feeds.write(f_out, events, instrument)
    return path, events, instrument


def config_for(tmp_path, data, name: str, bundle: str) -> str:
    """backtest_cmm.toml with another strategy name and bundle, on ``data``, written with absolute paths."""
    text = CMM_CONFIG.replace('name = "cmm"', f'name = "{name}"')
    text = text.replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', json.dumps(str(data)))
    text = text.replace('"../data/bundles/goog_sample"', json.dumps(str(BUNDLES / bundle)))
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def test_every_name_of_the_family_is_registered_and_each_config_points_at_its_bundle():
    assert set(VARIANT_BUNDLE) | {"fixed_spread", "avellaneda_stoikov"} == set(STRATEGIES)
    for name, bundle in VARIANT_BUNDLE.items():
        if name == "cmm":
            continue
        cfg = load(str(REPO / "configs" / f"backtest_{name}.toml"))
        assert cfg.strategy.name == name and cfg.strategy.params["bundle"] == f"../data/bundles/{bundle}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(VARIANT_BUNDLE))
def test_each_variant_runs_on_the_sample(name, sample_slice, tmp_path):
    data, _, _ = sample_slice
    out = tmp_path / "out"
    bt = run_and_write(config_for(tmp_path, data, name, VARIANT_BUNDLE[name]), str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["decision_latency_us"]["p50"] > 0 and np.isfinite(metrics["epnl"])
    with np.load(out / "decisions.npz") as d:
        assert len(d["ts"]) == len(bt.decisions["ts"]) > 600          # one a second for 12 minutes
        predicted = np.isfinite(d["pred_mid"])
        assert 0.3 < predicted.mean() < 0.7                          # after the 5-minute warm-up
        weights = d["weights"][predicted]
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
        assert weights.shape[1] == len(d["expert_names"]) and (np.isfinite(d["bid"]) | np.isfinite(d["ask"])).any()
    assert bt.summary.n_fills > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name, bundle", [("cmm_mean", "goog_sample"), ("cmm", "goog_sample_variants/teacher"),
                                          ("teacher", "goog_sample_variants/gate")])
def test_a_variant_refuses_another_models_bundle(name, bundle, sample_slice, tmp_path):
    data, _, _ = sample_slice
    with pytest.raises(DataError) as err:
        run_and_write(config_for(tmp_path, data, name, bundle), str(tmp_path / "out"))
    message = str(err.value)
    assert "model.json: variant:" in message and "this strategy runs" in message and "\n" not in message


def run_in_process(strategy_type, bundle: str, events, instrument):
    strategy = strategy_type(CMMParams(bundle=str(BUNDLES / bundle)), wake=WakePolicy(every_ns=1_000_000_000),
                             compute_ns="measured")
    sim = make_sim(events, EngineConfig(tick_size=instrument.tick_size, lot_size=instrument.lot_size))
    backtest.run(strategy, sim, instrument.tick_size, instrument.lot_size)
    return strategy


def model_decision_p50_us(strategy) -> float:
    """Median wall time of the decisions that called the model (the warm-up ones do not)."""
    called = np.isfinite(strategy.decision_record()["pred_mid"])
    return float(np.percentile(strategy.decision_latency_ns()[called], 50)) / 1e3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_teacher_windows_are_the_training_windows_and_it_decides_far_slower_than_cmm(sample_slice):
    _, events, instrument = sample_slice
    teacher = run_in_process(TeacherStrategy, VARIANT_BUNDLE["teacher"], events, instrument)
    last = int(teacher.decision_record()["ts"][-1])
    grid = (last // teacher.dt_ns - np.arange(teacher.window)[::-1]) * teacher.dt_ns
    trained = replay_features(events, teacher.bundle.schema, grid)
    assert np.isfinite(trained).all()
    np.testing.assert_allclose(teacher.history, trained, rtol=0, atol=0)

    cmm = run_in_process(CMMStrategy, VARIANT_BUNDLE["cmm"], events, instrument)
    assert model_decision_p50_us(teacher) > 3 * model_decision_p50_us(cmm)


def test_shipped_side_bundles_verify_name_their_variant_and_stay_small():
    side = BUNDLES / "goog_sample_variants"
    assert sorted(p.name for p in side.iterdir()) == ["gate", "mean", "no_layer", "no_regime", "single_student",
                                                     "teacher"]
    for directory in side.iterdir():
        bundle = load_bundle(directory)
        assert bundle.layout["variant"] == bundle.variant == directory.name
        assert bundle.kind == ("teacher" if directory.name == "teacher" else "moe")
    assert sum(f.stat().st_size for f in BUNDLES.rglob("*") if f.is_file()) < 2_000_000


def test_the_teacher_runs_without_transformers_or_the_training_code():
    code = ("import sys, torch; from strategies.registry import STRATEGIES; from bundle.loader import load_bundle; "
            f"b = load_bundle({str(BUNDLES / VARIANT_BUNDLE['teacher'])!r}); "
            "y, w = b.model(torch.zeros(b.layout['window'], b.schema.n_features)); assert y.shape == (3,); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'cmm_models')))")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
