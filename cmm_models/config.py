"""The training config: one TOML file parsed into typed Structs, so the schema is this code.

Every table forbids unknown keys, so a typo is one error line naming the key,
not a silently ignored setting. Paths in ``[data] files`` and a teacher given
as a path are relative to the config file. ``configs/cmm_tiny.toml`` is a
complete, commented example.

The features, dataset, distillation and MoE tables are the Structs of the modules
that use them (:class:`~bundle.features.FeatureParams`, :class:`~cmm_models.dataset.DatasetConfig`,
:class:`~cmm_models.distill.DistillConfig`, :class:`~cmm_models.moe.MoEConfig`),
so a parameter is declared, defaulted and checked in one place.
"""
from __future__ import annotations

import os

import msgspec

from common import config as tomlconfig
from bundle.features import FeatureParams
from common.config import ConfigError, DataConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Table

from cmm_models.dataset import DatasetConfig
from cmm_models.distill import DistillConfig
from cmm_models.moe import MoEConfig
from cmm_models.regimes import DEFAULT_WINDOW_NS

class RegimeConfig(Table):
    window_ns: PositiveInt = DEFAULT_WINDOW_NS     # tried first; must be one of [features] rv_windows_ns
    min_rows: PositiveInt = 50                     # samples every regime needs in train, validation and test


class TeacherConfig(Table):
    """``model``: "default" (pretrained all-MiniLM-L6-v2), "tiny" (a small BERT built from ``layers`` and
    ``hidden``, random init), or a local Hugging Face model directory.

    The teacher trains on every train sample. ``steps`` is a ceiling: every ``eval_every`` steps it is
    scored on ``val_samples`` evenly spaced validation samples (0: all; the curve's cost, not the
    training's), and training stops after ``patience`` scores without a better one, keeping the best
    weights. The learning rate warms up linearly over ``warmup_steps`` and then follows a cosine to
    ``lr * final_lr_fraction`` at ``steps``."""

    model: str = "default"
    layers: PositiveInt = 4
    hidden: PositiveInt = 32
    steps: PositiveInt = 2000
    lr: Positive = 1e-3
    final_lr_fraction: NonNegative = 0.05
    warmup_steps: NonNegativeInt = 100
    batch_size: PositiveInt = 64
    weight_decay: NonNegative = 0.01
    eval_every: PositiveInt = 50
    patience: PositiveInt = 6
    val_samples: NonNegativeInt = 2048
    seed: int = 0
    latency_repeats: PositiveInt = 200     # per-decision timings of the teacher (1 thread)


class ProbeConfig(Table):
    eps: Positive = 0.1
    draws: PositiveInt = 4
    samples: PositiveInt = 512             # validation rows probed, evenly spaced
    seed: int = 0


class ExportConfig(Table):
    latency_repeats: PositiveInt = 20000   # per-decision timings of the bundle (1 thread)


class TrainConfig(Table):
    data: DataConfig
    # torch CPU threads. One by default: the students and the tiny teacher are too small to gain from
    # more, oversubscribed cores make them several times slower, and results repeat byte for byte only
    # at the same count. A large teacher may use more (configs/cmm_goog.toml uses 2).
    threads: PositiveInt = 1
    features: FeatureParams = FeatureParams()
    dataset: DatasetConfig = DatasetConfig()
    regimes: RegimeConfig = RegimeConfig()
    teacher: TeacherConfig = TeacherConfig()
    probe: ProbeConfig = ProbeConfig()
    distill: DistillConfig = DistillConfig()
    moe: MoEConfig = MoEConfig()
    export: ExportConfig = ExportConfig()


def load(path: str, teacher: str | None = None) -> TrainConfig:
    """Parse and check a config file; ``teacher`` (the ``--teacher`` option) replaces ``[teacher] model``.

    Every problem is a :class:`ConfigError` naming the key.
    """
    cfg = tomlconfig.load(path, TrainConfig)
    model = cfg.teacher.model
    if teacher is not None:
        model = os.path.abspath(teacher)
    elif model not in ("default", "tiny"):
        model = tomlconfig.resolve(path, model)
    if model not in ("default", "tiny") and not os.path.isfile(os.path.join(model, "config.json")):
        raise ConfigError(f"{model}: not a Hugging Face model directory (no config.json); use \"default\", "
                               "\"tiny\" or a local model directory", path=path, field="teacher.model")
    if cfg.teacher.steps <= cfg.teacher.warmup_steps:      # the schedule would never leave its warm-up
        raise ConfigError(f"steps {cfg.teacher.steps} leave nothing after warmup_steps {cfg.teacher.warmup_steps}",
                          path=path, field="teacher.steps")
    if cfg.regimes.window_ns not in cfg.features.rv_windows_ns:
        raise ConfigError(f"{cfg.regimes.window_ns} is not one of features.rv_windows_ns "
                               f"{list(cfg.features.rv_windows_ns)}", path=path, field="regimes.window_ns")
    files = [tomlconfig.resolve(path, f) for f in cfg.data.files]
    for file in files:
        if not os.path.isfile(file):
            raise ConfigError(f"{file}: no such file", path=path, field="data.files")
    return msgspec.structs.replace(cfg, data=msgspec.structs.replace(cfg.data, files=files),
                                   teacher=msgspec.structs.replace(cfg.teacher, model=model))
