"""The study config (``configs/study.toml``): datasets, seeds, methods, episodes, fees, stress; the schema is this code.

Paths are relative to the config file. Each dataset names a training config (``cmm train``'s) and
backtest templates: ``cmm`` gives the venue (queue, latency, fees, metrics, instrument) and the CMM
family's strategy params and wake policy; ``avellaneda_stoikov`` and ``fixed_spread`` give those
strategies' own ``[strategy]`` tables, run on the same venue.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from common import config as tomlconfig
from common.config import ConfigError, Finite, PositiveInt, Seconds, Share, Table

# Every method the paper's table has. The teacher twice: its measured decision time charged, and none,
# so that latency and prediction separate.
METHODS = ("teacher", "teacher_free", "cmm", "single_student", "cmm_mean", "cmm_gating", "cmm_no_regime",
           "cmm_no_layer", "avellaneda_stoikov", "fixed_spread")
Method = Literal["teacher", "teacher_free", "cmm", "single_student", "cmm_mean", "cmm_gating", "cmm_no_regime",
                 "cmm_no_layer", "avellaneda_stoikov", "fixed_spread"]


class Templates(Table):
    cmm: str                               # a CMM backtest config: the venue, CMM's params and wake policy
    avellaneda_stoikov: str | None = None  # its [strategy] table is used
    fixed_spread: str | None = None


class Dataset(Table):
    name: str
    train: str                             # a ``cmm train`` config; its [dataset] fractions split the data
    backtest: Templates
    timezone: str = "auto"                 # the exchange day of [data] start/end (runtime.window)
    episode_s: Seconds | None = None       # this dataset's episodes (a short capture needs short ones)


class Shock(Table):
    """The synthetic flash move of the stress table (:mod:`study.shock`), run on the first seed's models."""

    enabled: bool = True
    at: Share = 0.5                        # where in the test window it starts, as a share of the window
    move_bp: Annotated[float, msgspec.Meta(gt=0, le=5000)] = 100.0   # how far every price falls, in bp of the mid
    duration_s: Seconds = 30.0             # how long prices stay down before they come back
    methods: list[Method] = msgspec.field(default_factory=lambda: ["teacher", "cmm", "single_student", "cmm_mean",
                                                                   "avellaneda_stoikov", "fixed_spread"])


class StudyConfig(Table):
    datasets: Annotated[list[Dataset], msgspec.Meta(min_length=1)]
    seeds: Annotated[list[int], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: [0, 1, 2])
    methods: list[Method] = msgspec.field(default_factory=lambda: list(METHODS))
    episode_s: Seconds = 60.0              # the test window is cut into episodes this long
    maker_fee: Finite = 0.0                # no maker rebate by default (the fee per notional of a maker fill)
    rebate: Finite = -0.0002               # the rebate row: CMM and the teacher again with this maker fee
    stress_share: Share = 0.2              # the most volatile episodes (the top quintile) for the stress table
    bootstrap: PositiveInt = 2000          # resamples of the paired episode differences
    shock: Shock = Shock()


def load(path: str) -> StudyConfig:
    cfg = tomlconfig.load(path, StudyConfig)
    names = [d.name for d in cfg.datasets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two datasets are named {name!r}", path=path, field="datasets.name")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError("a seed is listed twice", path=path, field="seeds")

    def resolved(d: Dataset) -> Dataset:
        t = d.backtest
        paths = {k: tomlconfig.resolve(path, v) for k, v in msgspec.structs.asdict(t).items() if v is not None}
        return msgspec.structs.replace(d, train=tomlconfig.resolve(path, d.train),
                                       backtest=msgspec.structs.replace(t, **paths))
    return msgspec.structs.replace(cfg, datasets=[resolved(d) for d in cfg.datasets])
