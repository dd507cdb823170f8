"""A bundle's model is checked against its contract at load, and its manifest against a signature when asked.

Issue 12 item 16: the manifest is a checksum, so anyone who can write the
bundle's directory can replace ``model.pt`` and rewrite ``manifest.json``.
Before this, such a module that returned a scalar and integer weights loaded
and traded; one with the wrong inputs was a traceback. Each bad module below
is TorchScript, written into a copy of the shipped bundle with a manifest
rewritten to match, as the issue's user did.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Tuple

import pytest
import torch

from bundle.loader import load_bundle
from bundle.manifest import write_manifest
from bundle.signature import KEY_ENV, SIGNATURE
from common.errors import DataError
from tests.conftest import REPO

SHIPPED = REPO / "data" / "bundles" / "goog_sample"
CMM_CONFIG = REPO / "configs" / "backtest_cmm.toml"


class ScalarAndIntOutputs(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return features.sum(), torch.ones(9, dtype=torch.int64)


class IntPredictions(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return (features[..., :3] * 100).long(), torch.softmax(features[..., :9], -1)


class NanPredictions(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return features[..., :3] / 0.0, torch.softmax(features[..., :9], -1)


class TooFewWeights(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return features[..., :3], torch.softmax(features[..., :4], -1)


class NoBatch(torch.nn.Module):
    """Right for one decision, wrong for a batch: it flattens."""

    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        flat = features.reshape(-1)
        return flat[:3], torch.softmax(flat[:9], -1)


class NoRegime(torch.nn.Module):
    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return features[..., :3], torch.softmax(features[..., :9], -1)


class OneOutput(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> torch.Tensor:
        return features[..., :3]


class FailsOnUnknownRegime(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if regime < 0:
            raise RuntimeError("regime out of range")
        return features[..., :3], torch.softmax(features[..., :9], -1)


def rewritten(tmp_path, module: torch.nn.Module | None = None, raw: bytes | None = None, eval_mode: bool = True):
    """A copy of the shipped bundle with ``model.pt`` replaced and the manifest rewritten to match."""
    directory = tmp_path / "bundle"
    shutil.copytree(SHIPPED, directory)
    if module is not None:
        torch.jit.save(torch.jit.script(module.eval() if eval_mode else module), str(directory / "model.pt"))
    if raw is not None:
        (directory / "model.pt").write_bytes(raw)
    write_manifest(directory, "moe")
    return directory


@pytest.mark.parametrize("module, needles", [
    (ScalarAndIntOutputs(), ["predictions are float32 []", "expected float32 [3]"]),
    (IntPredictions(), ["predictions are int64 [3]", "expected float32 [3]"]),
    (NanPredictions(), ["predictions are not all finite"]),
    (TooFewWeights(), ["weights are float32 [4]", "expected float32 [9]"]),
    (NoBatch(), ["on a batch of 2", "predictions are float32 [3]", "expected float32 [2, 3]"]),
    (NoRegime(), ["forward is (Tensor) -> Tuple[Tensor, Tensor]", "a moe model is (Tensor, int)"]),
    (OneOutput(), ["forward is (Tensor, int) -> Tensor"]),
    (FailsOnUnknownRegime(), ["in regime -1, the model fails", "regime out of range"]),
], ids=lambda v: type(v).__name__ if isinstance(v, torch.nn.Module) else "")
def test_a_model_that_breaks_the_contract_is_refused_with_one_line(tmp_path, module, needles):
    directory = rewritten(tmp_path, module)
    with pytest.raises(DataError) as err:
        load_bundle(directory)
    message = str(err.value)
    assert message.startswith(str(directory / "model.pt")) and "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_a_model_saved_in_training_mode_is_refused(tmp_path):
    directory = rewritten(tmp_path, IntPredictions(), eval_mode=False)
    with pytest.raises(DataError, match="cannot be frozen to trade: RuntimeError: Freezing is currently only"):
        load_bundle(directory)


def test_a_model_pt_that_is_not_torchscript_is_refused(tmp_path):
    directory = rewritten(tmp_path, raw=b"PK\x03\x04 not a model")
    with pytest.raises(DataError, match="not a TorchScript module"):
        load_bundle(directory)


def test_every_shipped_bundle_keeps_its_contract():
    for directory in [SHIPPED, *sorted((REPO / "data" / "bundles" / "goog_sample_variants").iterdir())]:
        bundle = load_bundle(directory)
        assert bundle.kind == ("teacher" if directory.name == "teacher" else "moe")


def _cmm_backtest(tmp_path, bundle, env=None) -> subprocess.CompletedProcess:
    config = tmp_path / "cmm.toml"
    config.write_text(CMM_CONFIG.read_text().replace('"../data/bundles/goog_sample"', f'"{bundle}"')
                      .replace('"../data/samples/', f'"{REPO}/data/samples/'))
    return subprocess.run([sys.executable, "-m", "cmm", "backtest", "--config", str(config), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, **(env or {})))


def test_cmm_backtest_refuses_the_scalar_and_int_model_in_one_line(tmp_path):
    proc = _cmm_backtest(tmp_path, rewritten(tmp_path, ScalarAndIntOutputs()))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("cmm: error: ") and "model.pt: outputs" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


# ---- the optional signature: CMM_BUNDLE_KEY_FILE names a key file of at least 32 bytes

@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "exporter.key"
    path.write_bytes(bytes(range(32)))
    return path


def test_a_bundle_signed_with_the_key_loads(tmp_path, key_file, monkeypatch):
    monkeypatch.setenv(KEY_ENV, str(key_file))
    directory = rewritten(tmp_path)                   # write_manifest signs with the key in the environment
    assert (directory / SIGNATURE).read_text().startswith("hmac-sha256:")
    assert load_bundle(directory).kind == "moe"


def test_with_a_key_an_unsigned_bundle_is_refused(key_file, monkeypatch):
    monkeypatch.setenv(KEY_ENV, str(key_file))
    with pytest.raises(DataError, match="the bundle is not signed"):
        load_bundle(SHIPPED)


def test_with_a_key_a_bundle_signed_with_another_is_refused(tmp_path, key_file, monkeypatch):
    other = tmp_path / "other.key"
    other.write_bytes(bytes(range(1, 33)))
    monkeypatch.setenv(KEY_ENV, str(other))
    directory = rewritten(tmp_path)
    monkeypatch.setenv(KEY_ENV, str(key_file))
    with pytest.raises(DataError, match="does not match manifest.json"):
        load_bundle(directory)


def test_a_rewritten_manifest_loses_its_signature(tmp_path, key_file, monkeypatch):
    """Replacing the model and rewriting the manifest without the key leaves no valid signature behind."""
    monkeypatch.setenv(KEY_ENV, str(key_file))
    directory = rewritten(tmp_path)
    monkeypatch.delenv(KEY_ENV)
    torch.jit.save(torch.jit.load(str(SHIPPED / "model.pt")), str(directory / "model.pt"))
    write_manifest(directory, "moe")
    assert not (directory / SIGNATURE).exists()
    monkeypatch.setenv(KEY_ENV, str(key_file))
    with pytest.raises(DataError, match="not signed"):
        load_bundle(directory)


def test_a_short_key_is_refused(tmp_path, monkeypatch):
    short = tmp_path / "short.key"
    short.write_bytes(b"hunter2\n")
    monkeypatch.setenv(KEY_ENV, str(short))
    with pytest.raises(DataError, match="a bundle key of 8 bytes; expected at least 32"):
        load_bundle(SHIPPED)


def test_cmm_backtest_with_a_key_refuses_an_unsigned_bundle_in_one_line(tmp_path, key_file):
    proc = _cmm_backtest(tmp_path, SHIPPED, env={KEY_ENV: str(key_file)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "not signed" in lines[0], proc.stderr


def test_cmm_keys_sign_bundle_signs_a_verified_bundle(tmp_path, key_file, monkeypatch):
    directory = tmp_path / "bundle"
    shutil.copytree(SHIPPED, directory)
    proc = subprocess.run([sys.executable, "-m", "cmm", "keys", "sign-bundle", str(directory), "--key-file",
                           str(key_file)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == f"signed {directory / SIGNATURE}", proc.stderr
    monkeypatch.setenv(KEY_ENV, str(key_file))
    assert load_bundle(directory).kind == "moe"
    (directory / "regimes.json").write_text("{}")       # a changed bundle is not signed: verify refuses it first
    proc = subprocess.run([sys.executable, "-m", "cmm", "keys", "sign-bundle", str(directory)], capture_output=True,
                          text=True, cwd=REPO, env=dict(os.environ))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "regimes.json" in lines[0], proc.stderr
