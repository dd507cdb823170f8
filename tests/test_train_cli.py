"""``cmm train`` end to end on the repo's LOBSTER sample: a verified bundle that loads, resume, one-line errors,
and the same seed giving the same bundle bytes. A smaller config than configs/cmm_tiny.toml keeps it fast."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cmm import cli
from cmm_models import config
from bundle.loader import load_bundle, verify
from bundle.manifest import FILES, MOE_VARIANTS, TARGET_NAMES, Variant, data_digest, training_overlap

from tests.conftest import REPO, SAMPLES

torch.set_num_threads(1)

SMALL_FILES = [(SAMPLES / "GOOG_2012-06-21_10_head.zip").as_posix()]
SMALL = f"""
[data]
files = ["{SMALL_FILES[0]}"]

[dataset]
dt_ns = 200_000_000
horizon_ns = 1_000_000_000
window = 8

[teacher]
model = "tiny"
layers = 3
hidden = 16
steps = 20
warmup_steps = 2
eval_every = 10
val_samples = 300
latency_repeats = 5

[probe]
draws = 1
samples = 48

[distill]
hidden = 8
steps = 40

[moe]
steps = 40

[export]
latency_repeats = 200
"""
# measured on every run, so excluded from the byte comparison (and with them the manifest that hashes them)
MEASURED = {"teacher_latency.json", "manifest.json"}


def train(config_path, out, *extra) -> int:
    return cli.main(["train", "--config", str(config_path), "--out", str(out), "--threads", "1",
                     "--no-progress", *extra])


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def run_dir(small_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    assert train(small_config, out) == 0
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # torch 2.13 marks torch.jit.load deprecated
def test_train_writes_a_verified_bundle_and_a_report(run_dir):
    manifest = verify(run_dir / "bundle")
    assert sorted(manifest.files) == sorted(FILES) and manifest.kind == "moe"
    for variant in (*MOE_VARIANTS[1:], Variant.SINGLE_STUDENT, Variant.TEACHER):
        assert verify(run_dir / "bundles" / variant).kind == variant.kind
    module = torch.jit.load(str(run_dir / "bundle" / "model.pt"))
    bundle = load_bundle(run_dir / "bundle")
    prediction, weights = module(torch.zeros(bundle.schema.n_features), 1)
    assert prediction.shape == (3,) and weights.shape == (9,)
    assert float(weights.sum()) == pytest.approx(1.0) and (weights[:3] == 0).all() and (weights[6:] == 0).all()
    report = json.loads((run_dir / "report.json").read_text())
    models = report["errors"]
    test_rows = report["rows"]["test"]
    for name in ("teacher", "single_student", "moe", "moe_mean", "moe_gate", "moe_no_regime", "moe_no_layer"):
        assert models[name]["rows"] == test_rows > 1000 and len(models[name]["mse_normalized"]) == 3
    assert sum(name.startswith("expert_") for name in models) == 9
    # the interface the study reads: R² per split, model and target, naive predictors beside the models
    for split in ("val", "test"):
        table = report["r2"][split]
        for name in ("teacher", "single_student", "moe", "moe_projection", "moe_cosine", "moe_mean", "moe_gate",
                     "train_mean", "persistence", "ewma", "expert_r1_deep"):
            assert set(table[name]) == set(TARGET_NAMES), name
        # R² = 1 - MSE / the split's variance, so the split's own mean would score 0 and the train mean less
        assert all(v <= 1e-12 for v in table["train_mean"].values())
    test = report["r2"]["test"]
    var = [mse / (1 - r) for mse, r in zip(models["persistence"]["mse"], test["persistence"].values())]
    assert [mse / v for mse, v in zip(models["train_mean"]["mse"], var)] == \
        pytest.approx([1 - r for r in test["train_mean"].values()])
    occupancy = report["occupancy"]
    assert set(occupancy) == {"train", "val", "test"}
    assert all(n >= 50 for row in occupancy.values() for n in row.values())
    assert sum(occupancy["test"].values()) == test_rows
    for confidence in ("projection", "cosine"):
        d = report["moe_diagnostics"][confidence]
        assert 0 < d["entropy_share"] <= 1 and 0 <= d["top_is_best"] <= 1 and d["tau"] > 0
    curve = report["validation_curve"]
    assert [p["step"] for p in curve["points"]] == [10, 20] and curve["best_step"] in (10, 20)
    assert curve["train_rows"] == report["rows"]["train"]      # nothing thinned for training
    assert (run_dir / "validation_curve.png").stat().st_size > 0
    # the manifest records what the model was fitted on; a backtest can ask whether it overlaps
    training = manifest.training
    assert training.data_sha256 == data_digest(SMALL_FILES) and training.fitted == ("train", "val")
    train, val, test_span = (training.splits[k] for k in ("train", "val", "test"))
    assert train[0] < train[1] < val[0] < val[1] < test_span[0] < test_span[1]
    assert training_overlap(manifest, SMALL_FILES, train[0], train[0]) == ["train"]
    assert training_overlap(manifest, SMALL_FILES, train[1], test_span[1]) == ["train", "val"]
    assert training_overlap(manifest, SMALL_FILES, test_span[0], test_span[1]) == []
    other = str(SAMPLES / "ethusdt_usdm_20240808_head.gz")
    assert training_overlap(manifest, [other], train[0], test_span[1]) == []
    assert report["latency"]["bundle"]["p50_us"] > 0 and report["latency"]["teacher_over_cmm"] > 0
    assert len(report["probe"]["attribution"]) == 3
    for name in ("report.md", "probe_heatmap.png", "expert_weights.png", "probe/probe.json"):
        assert (run_dir / name).stat().st_size > 0


def test_resume_skips_finished_stages_and_force_redoes_them(run_dir, small_config, capsys):
    before = (run_dir / "bundle" / "model.pt").stat().st_mtime_ns
    assert train(small_config, run_dir) == 0
    out = capsys.readouterr().out
    for stage in ("teacher", "probe", "students", "moe", "bundle"):
        assert f"{stage}: up to date, skipped" in out
    assert (run_dir / "bundle" / "model.pt").stat().st_mtime_ns == before
    # a changed MoE setting redoes the MoE and the export, not what comes before
    changed = small_config.parent / "changed.toml"
    changed.write_text(SMALL.replace("[moe]\nsteps = 40", "[moe]\nsteps = 41"))
    assert train(changed, run_dir) == 0
    out = capsys.readouterr().out
    assert "students: up to date, skipped" in out and "moe: done" in out and "bundle: done" in out
    assert train(small_config, run_dir, "--force") == 0
    assert "skipped" not in capsys.readouterr().out


def test_same_seed_same_bundle_bytes(run_dir, small_config, tmp_path):
    again = tmp_path / "again"
    assert train(small_config, again) == 0
    for name in sorted(set(FILES) - MEASURED):
        assert (again / "bundle" / name).read_bytes() == (run_dir / "bundle" / name).read_bytes(), name
    first, second = verify(run_dir / "bundle"), verify(again / "bundle")
    assert {k: v for k, v in first.files.items() if k not in MEASURED} == \
        {k: v for k, v in second.files.items() if k not in MEASURED}


def test_a_tampered_bundle_is_refused_in_one_line(run_dir, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(run_dir / "bundle", bundle)
    raw = bytearray((bundle / "model.pt").read_bytes())
    raw[len(raw) // 2] ^= 1
    (bundle / "model.pt").write_bytes(bytes(raw))
    with pytest.raises(Exception) as err:
        load_bundle(bundle)
    message = str(err.value)
    assert "model.pt" in message and "changed after export" in message and "\n" not in message


@pytest.mark.parametrize("edit, key", [
    (("[distill]\nhidden = 8", "[distill]\nhiden = 8"), "distill"),
    (("steps = 20", "steps = -3"), "teacher.steps"),
    (("[distill]\nhidden = 8", "[features]\nring_capacity = 3\n[distill]\nhidden = 8"),
     "features: ring_capacity 3 is not a power of two"),
    (('model = "tiny"', 'model = "no/such/dir"'), "teacher.model"),
])
def test_a_bad_config_is_one_line(tmp_path, capsys, edit, key):
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.replace(*edit))
    assert train(path, tmp_path / "out") == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cmm: error: ") and key in err, err
    assert not (tmp_path / "out").exists()


def test_shipped_configs_parse():
    for name in ("cmm_tiny.toml", "cmm_sample.toml"):
        cfg = config.load(str(REPO / "configs" / name))
        assert cfg.teacher.model == "tiny" and all(f.endswith(".zip") for f in cfg.data.files)


def test_shipped_bundle_verifies_and_loads():
    bundle = load_bundle(REPO / "data" / "bundles" / "goog_sample")
    prediction, weights = bundle.model(torch.zeros(bundle.schema.n_features), -1)
    assert prediction.shape == (3,) and float(weights.sum()) == pytest.approx(1.0)


def test_r2_and_the_naive_predictors_by_hand():
    from cmm_models.report import EWMA_HALFLIFE_HORIZONS, naive_predictions, r2

    y = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 1.0], [5.0, 4.0, 2.0], [np.nan] * 3])
    naive = naive_predictions(y, np.array([10.0, 20.0, 30.0]), horizon_steps=1)
    # persistence: the last value realized by the decision (y[i - 1]); none yet at row 0: the train mean
    np.testing.assert_array_equal(naive["persistence"][:3], [[10, 20, 30], [1, 2, 0], [3, 2, 1]])
    alpha = 1 - 0.5 ** (1 / EWMA_HALFLIFE_HORIZONS)
    np.testing.assert_allclose(naive["ewma"][2], [1 + alpha * 2, 2.0, alpha * 1.0])
    np.testing.assert_array_equal(naive["ewma"][3], naive["ewma"][3])      # a NaN target is skipped, not spread
    assert np.isfinite(naive["ewma"]).all()
    # R² = 1 - MSE / variance of the rows scored: the rows' own mean scores 0, a perfect guess 1
    rows = y[:3]
    scored = r2(np.broadcast_to(rows.mean(0), rows.shape), rows)
    assert scored["mid_change_ticks"] == pytest.approx(0.0) and scored["log1p_volume"] == pytest.approx(0.0)
    assert scored["avg_spread_ticks"] == pytest.approx(0.0)
    assert r2(rows, rows)["mid_change_ticks"] == 1.0
    assert r2(rows + 1.0, rows)["mid_change_ticks"] == pytest.approx(1 - 1 / np.var([1, 3, 5]))
    assert r2(np.zeros((2, 3)), np.ones((2, 3)))["log1p_volume"] is None     # a constant target has no R²
