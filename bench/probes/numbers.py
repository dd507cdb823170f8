"""Issue 12, items 6, 15 and 16: position limits in whole lots, bounded config numbers, a bundle's contract.

- 6: FixedSpread trading 0.01 lots under ``max_position = 0.1`` on the GOOG
  sample must stop at 10 lots (it reached 0.11): these cases must succeed and
  their fills must stay within the limit.
- 15: nan, inf and implausible config numbers are one line naming the file
  and the key, before anything is written.
- 16: a bundle whose ``model.pt`` breaks its contract, with the manifest
  rewritten to match, is one line naming ``model.pt``, before anything is
  written.
"""
from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from bench.probes import REPO, SAMPLES, Probe

FIXED_SPREAD = REPO / "configs" / "backtest_fixed_spread.toml"
CMM = REPO / "configs" / "backtest_cmm.toml"
BUNDLE = REPO / "data" / "bundles" / "goog_sample"
LOT = 0.01


def _config(tmp: Path, template: Path = FIXED_SPREAD, *edits: tuple[str, str]) -> Path:
    """``template`` with its paths made absolute and each ``(pattern, replacement)`` applied (one line each)."""
    text = template.read_text().replace('"../data/', f'"{REPO}/data/')
    for pattern, replacement in edits:
        text, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
        assert n == 1, pattern
    path = tmp / "probe.toml"
    path.write_text(text)
    return path


def _backtest(*edits: tuple[str, str]):
    return lambda tmp: ["backtest", "--config", str(_config(tmp, FIXED_SPREAD, *edits)), "--out", "out"]


def _nothing_written(tmp: Path, result) -> str | None:
    return "out/ was written" if (tmp / "out").exists() else None


def _within_ten_lots(tmp: Path, result) -> str | None:
    """The fills never take |position| past 10 lots of 0.01."""
    position, worst = 0, 0
    with open(tmp / "out" / "fills.csv") as f:
        for row in csv.DictReader(f):
            position += round(float(row["qty"]) / LOT) * (1 if row["side"] == "buy" else -1)
            worst = max(worst, abs(position))
    return None if worst == 10 else f"|position| reached {worst} lots, limit 10"


def _small_lots(mode: str):
    return _backtest((r"^qty = 100\b", "qty = 0.01"), (r"^max_position = 500\b", "max_position = 0.1"),
                     (r"^mode = \"python\"", f'mode = "{mode}"'),
                     (r"^\[queue\]", f"[instrument]\nlot_size = {LOT}\n\n[queue]"))


def _tick_in_data(tmp: Path) -> list[str]:
    data = tmp / "tiny_tick.csv"
    data.write_text((SAMPLES / "sample_events.csv").read_text().replace("# tick_size=0.1\n", "# tick_size=1e-300\n"))
    config = _config(tmp, FIXED_SPREAD, (r"^files = .*", f'files = ["{data}"]'))
    return ["backtest", "--config", str(config), "--out", "out"]


def _bundle_with(module_source: str):
    """A copy of the shipped bundle whose model.pt is ``module_source`` scripted, with the manifest rewritten."""
    def setup(tmp: Path) -> list[str]:
        import importlib.util

        import torch

        from bundle.manifest import write_manifest

        directory = tmp / "bundle"
        shutil.copytree(BUNDLE, directory)
        source = tmp / "their_model.py"          # TorchScript compiles from a source file, as a user's would be
        source.write_text("from typing import Tuple\n\nimport torch\n" + module_source)
        spec = importlib.util.spec_from_file_location("their_model", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        torch.jit.save(torch.jit.script(module.Model().eval()), str(directory / "model.pt"))
        write_manifest(directory, "moe")
        config = _config(tmp, CMM, (r'^bundle = "\S+"', f'bundle = "{directory}"'))
        return ["backtest", "--config", str(config), "--out", "out"]
    return setup


SCALAR_AND_INT = '''
class Model(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return features.sum(), torch.ones(9, dtype=torch.int64)
'''
NO_REGIME = '''
class Model(torch.nn.Module):
    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return features[..., :3], torch.softmax(features[..., :9], -1)
'''
NAN_OUT = '''
class Model(torch.nn.Module):
    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        return features[..., :3] / 0.0, torch.softmax(features[..., :9], -1)
'''


def _not_torchscript(tmp: Path) -> list[str]:
    from bundle.manifest import write_manifest

    directory = tmp / "bundle"
    shutil.copytree(BUNDLE, directory)
    (directory / "model.pt").write_bytes(b"not a model")
    write_manifest(directory, "moe")
    return ["backtest", "--config", str(_config(tmp, CMM, (r'^bundle = "\S+"', f'bundle = "{directory}"'))),
            "--out", "out"]


CASES = [
    Probe(6, "limit_in_lots_fixed_spread_python", _small_lots("python"), refused=False, check=_within_ten_lots),
    Probe(6, "limit_in_lots_fixed_spread_kernel", _small_lots("kernel"), refused=False, check=_within_ten_lots),
    Probe(15, "config_maker_nan", _backtest((r"^maker = .*", "maker = nan")), check=_nothing_written),
    Probe(15, "config_taker_minus_inf", _backtest((r"^taker = .*", "taker = -inf")), check=_nothing_written),
    Probe(15, "config_maker_200_percent", _backtest((r"^maker = .*", "maker = 2.0")), check=_nothing_written),
    Probe(15, "config_episode_s_inf", _backtest((r"^episode_s = .*", "episode_s = inf")), check=_nothing_written),
    Probe(15, "config_tick_size_1e-300",
          _backtest((r"^\[queue\]", "[instrument]\ntick_size = 1e-300\n\n[queue]")), check=_nothing_written),
    Probe(15, "data_tick_size_1e-300", _tick_in_data, check=_nothing_written),
    Probe(15, "config_latency_9e18_ns",
          _backtest((r"^place_entry_ns = .*", "place_entry_ns = 9_000_000_000_000_000_000")),
          check=_nothing_written),
    Probe(15, "config_compute_ns_9e18",
          _backtest((r"^compute_ns = .*", "compute_ns = 9_000_000_000_000_000_000")), check=_nothing_written),
    Probe(15, "config_wake_every_ns_9e18",
          _backtest((r"^every_ns = .*", "every_ns = 9_000_000_000_000_000_000")), check=_nothing_written),
    Probe(15, "config_qty_inf", _backtest((r"^qty = .*", "qty = inf")), check=_nothing_written),
    Probe(16, "bundle_scalar_and_int_outputs", _bundle_with(SCALAR_AND_INT), check=_nothing_written),
    Probe(16, "bundle_forward_without_regime", _bundle_with(NO_REGIME), check=_nothing_written),
    Probe(16, "bundle_nan_outputs", _bundle_with(NAN_OUT), check=_nothing_written),
    Probe(16, "bundle_model_not_torchscript", _not_torchscript, check=_nothing_written),
]
