"""Bundles: a changed, missing or extra file is refused with one clear line; the same seed gives the same bytes."""
from __future__ import annotations

import hashlib
import shutil

import msgspec
import numpy as np
import pytest
import torch

from bundle.manifest import TARGET_NAMES
from cmm_models.dataset import Normalization
from cmm_models.experts import Expert
from cmm_models.export import export_bundle
from cmm_models.moe import MixtureOfExperts, MoEConfig, train_moe
from cmm_models.regimes import RegimeThresholds
from bundle.loader import load_bundle, verify
from bundle.manifest import FILES, MANIFEST, Variant, canonical, digest_of, write_manifest
from common.errors import DataError
from bundle.features import FeatureSchema

from tests.conftest import REPO

torch.set_num_threads(1)
SCHEMA = FeatureSchema(tick_size=0.01)
F = SCHEMA.n_features


def make_bundle(directory, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, F)).astype(np.float32)
    y = x[:, :3].astype(np.float32)
    regime = rng.integers(0, 3, 200)
    moe = MixtureOfExperts([Expert(F, seed=seed + i) for i in range(9)], [i // 3 for i in range(9)],
                           [f"e{i}" for i in range(9)], MoEConfig(steps=20, seed=seed))
    train_moe(moe, x, y, regime, device="cpu")
    norm = Normalization(schema=SCHEMA, target_names=TARGET_NAMES, target_base=("", "spread_ticks", ""),
                         feature_mean=[0.5] * F, feature_std=[2.0] * F,
                         target_mean=[0.0, 1.0, 10.0], target_std=[1.0, 0.5, 3.0])
    export_bundle(moe, directory, norm, RegimeThresholds("rv_300s", 1e-4, 3e-4), {"p50_us": 2500.0, "threads": 1})
    return moe


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundle") / "b"
    make_bundle(directory)
    return directory


def copy(bundle_dir, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(bundle_dir, target)
    return target


def test_bundle_loads_and_runs(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert sorted(bundle.manifest.files) == sorted(FILES)
    assert bundle.schema == SCHEMA and bundle.regimes.classify(2e-4) == 1
    prediction, weights = bundle.model(torch.zeros(F), 1)
    assert prediction.shape == (3,) and weights.shape == (9,)
    assert (weights[:3] == 0).all() and (weights[6:] == 0).all()


def test_denormalize_multiplies_the_base_back(bundle_dir):
    """The spread is learned as ln(spread / base): 0.4 normalized is 1.0 + 0.4 * 0.5 = 1.2, so e^1.2 times a
    base of 3 ticks; the other targets are levels (mean + z * std)."""
    bundle = load_bundle(bundle_dir)
    x = np.zeros(F)
    x[SCHEMA.index("spread_ticks")] = 3.0
    np.testing.assert_allclose(bundle.denormalize(np.array([0.5, 0.4, -1.0]), x),
                               [0.5, 3.0 * np.exp(1.2), 10.0 - 3.0])


def test_a_target_base_that_is_no_feature_column_is_refused(bundle_dir, tmp_path):
    directory = copy(bundle_dir, tmp_path)
    path = directory / "normalization.json"
    path.write_text(path.read_text().replace('"spread_ticks"', '"spread"'))
    write_manifest(directory, "moe")
    with pytest.raises(DataError, match=r"normalization\.json: target_base: expected a feature column or \"\", "
                                        r"found 'spread'"):
        load_bundle(directory)


def test_decide_is_the_eager_model_on_features_normalized_in_float64(tmp_path):
    """What trading calls per decision: raw features in, the eager MoE's outputs out, fresh arrays each call."""
    moe = make_bundle(tmp_path / "b", seed=1).eval()
    bundle = load_bundle(tmp_path / "b")
    rows = 5000.0 + np.random.default_rng(2).standard_normal((4, F))      # price-sized: float32 first would round
    kept = []
    for row, regime in zip(rows, (0, 1, 2, -1)):
        prediction, weights = bundle.decide(row, regime)
        normalized = ((row - 0.5) / 2.0).astype(np.float32)
        normalized[0] = 0.0                          # the mid: carried, never a model input
        np.testing.assert_array_equal(bundle.inputs, normalized)
        assert bundle.last_z[0] == np.abs(normalized).max()      # the decision's distance from training
        eager_prediction, eager_weights = moe(torch.from_numpy(normalized)[None], torch.tensor([regime]))
        np.testing.assert_allclose(prediction, eager_prediction[0].detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(weights, eager_weights[0].detach().numpy(), rtol=1e-5, atol=1e-6)
        assert weights.sum() == pytest.approx(1.0, abs=1e-6)
        # A rehearsal (paper trading, between ticks) is the same call again: the same bits, the input kept.
        np.testing.assert_array_equal(bundle.rehearse(), prediction)
        np.testing.assert_array_equal(bundle.inputs, normalized)
        kept.append((prediction, prediction.copy(), weights, weights.copy()))
    for prediction, copied_prediction, weights, copied_weights in kept:     # later calls wrote none of them
        np.testing.assert_array_equal(prediction, copied_prediction)
        np.testing.assert_array_equal(weights, copied_weights)
    before = bundle.inputs.copy()
    row = rows[0].copy()
    row[5] = np.inf
    assert bundle.decide(row, 1) is None and bundle.last_z[0] == -1.0
    row[5] = np.nan
    assert bundle.decide(row, 1) is None
    np.testing.assert_array_equal(bundle.inputs, before)
    with pytest.raises(ValueError, match="shape of the model's input"):
        bundle.decide(rows[:2], 1)
    _, _, z = bundle.decide_batch(rows, 2)                  # the batch gives each row's |z| as decide() does
    assert z.tolist() == [np.abs(((r - 0.5) / 2.0).astype(np.float32)[1:]).max() for r in rows]
    batch = torch.from_numpy(((rows - 0.5) / 2.0).astype(np.float32))    # the runtime keeps the batch semantics
    for ours, scripted in zip(bundle.runtime(batch, 2), bundle.model(batch, 2)):
        assert ours.shape == scripted.shape and torch.equal(ours, scripted)


@pytest.mark.parametrize("name", FILES + (MANIFEST,))
def test_one_changed_byte_is_refused(bundle_dir, tmp_path, name):
    directory = copy(bundle_dir, tmp_path)
    path = directory / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        load_bundle(directory)
    line = str(err.value)
    assert "\n" not in line and name in line
    if name != MANIFEST:
        assert "sha256: expected" in line and "found" in line


def test_missing_and_extra_files_are_refused(bundle_dir, tmp_path):
    directory = copy(bundle_dir, tmp_path)
    (directory / "regimes.json").unlink()
    with pytest.raises(DataError, match=r"regimes\.json: listed in manifest\.json but missing"):
        verify(directory)
    directory = copy(bundle_dir, tmp_path / "extra")
    (directory / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.txt: not listed in manifest\.json"):
        verify(directory)
    (directory / "notes.txt").unlink()
    (directory / MANIFEST).unlink()
    with pytest.raises(DataError, match="no manifest.json"):
        verify(directory)


def test_the_manifest_names_the_kind_and_model_json_the_variant(bundle_dir, tmp_path):
    bundle = load_bundle(bundle_dir)
    assert bundle.manifest.kind == bundle.kind == "moe" and bundle.variant is Variant.HAJEK
    assert b'"kind": "moe"' in (bundle_dir / MANIFEST).read_bytes()
    # A manifest from before the field has no kind: model.json's variant gives it, and its bytes still verify.
    legacy = copy(REPO / "data" / "bundles" / "goog_sample_variants" / "teacher", tmp_path / "legacy")
    old = msgspec.structs.replace(verify(legacy), kind=None, training=None, digest="")
    (legacy / MANIFEST).write_bytes(canonical(msgspec.structs.replace(old, digest=digest_of(old))))
    assert b'"kind"' not in (legacy / MANIFEST).read_bytes()
    teacher = load_bundle(legacy)
    assert teacher.manifest.kind is None and teacher.kind == "teacher" and teacher.variant is Variant.TEACHER
    directory = copy(bundle_dir, tmp_path / "contradicts")
    write_manifest(directory, "teacher")
    with pytest.raises(DataError, match=r"manifest\.json: kind: the manifest says a 'teacher' model, "
                                        r"model\.json's variant 'hajek' is a 'moe' one"):
        load_bundle(directory)
    directory = copy(bundle_dir, tmp_path / "unknown")
    path = directory / "model.json"
    path.write_bytes(path.read_bytes().replace(b'"variant": "hajek"', b'"variant": "median"'))
    write_manifest(directory, "moe")
    with pytest.raises(DataError, match=r"model\.json: variant: expected one of hajek, mean, gate, no_regime, "
                                        r"no_layer, single_student, teacher, found 'median'$"):
        load_bundle(directory)


def test_same_seed_same_bytes(bundle_dir, tmp_path):
    make_bundle(tmp_path / "again")
    for name in FILES + (MANIFEST,):
        first = hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest()
        assert hashlib.sha256((tmp_path / "again" / name).read_bytes()).hexdigest() == first, name
    make_bundle(tmp_path / "other", seed=1)
    assert (tmp_path / "other" / "model.pt").read_bytes() != (bundle_dir / "model.pt").read_bytes()


def test_feeds_bundle_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, bundle.loader; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_bytes_in_another_process(bundle_dir, tmp_path):
    """torch.jit.save alone writes a random id and hash-seed-ordered constants; the export must not."""
    import os
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, 'tests'); from test_bundle import make_bundle; "
            f"make_bundle({str(tmp_path / 'proc')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO),
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert (tmp_path / "proc" / "model.pt").read_bytes() == (bundle_dir / "model.pt").read_bytes()


def test_a_regime_is_the_same_one_value_at_a_time_or_all_at_once():
    from bundle.loader import Regimes
    r = Regimes(feature="vol", low=0.1, high=0.2)
    vol = np.array([0.0, 0.1, 0.1000001, 0.2, 0.25, np.nan, np.inf, -np.inf])
    assert list(r.classify_all(vol)) == [r.classify(float(v)) for v in vol] == [0, 0, 1, 1, 2, -1, -1, -1]
