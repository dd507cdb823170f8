"""Training samples: features on a decision grid, the three targets, chronological splits.

Decisions fall every ``dt_ns`` from the first LOCAL row's ``local_ts``
(rounded up to a multiple of ``dt_ns``) to the last. Features come from
:func:`bundle.features.replay_features`, the code trading runs. With
``k = horizon_ns / dt_ns`` grid steps (H must be a multiple of dt), the
targets at decision ``t_i`` use only what happens in ``(t_i, t_i + H]``:

- ``mid_change_ticks``: ``(mid(t_i + H) - mid(t_i)) / tick_size``, mids of the
  local book (the ``mid`` feature column);
- ``avg_spread_ticks``: the mean of the ``spread_ticks`` column at the k grid
  points ``t_{i+1} .. t_{i+k}`` (sampled on the decision grid, not time-weighted);
- ``log1p_volume``: ``ln(1 + V)``, V the total qty of LOCAL TRADE rows with
  ``local_ts`` in ``(t_i, t_i + H]``. A log, because volume is heavy-tailed
  (an MSE on raw volume is the few busiest seconds' error) and its level
  differs from day to day and instrument to instrument.

The grid is cut chronologically into train / validation / test (no
shuffling). A decision is a sample of its split when its last ``window``
feature vectors and its targets are finite and its target horizon ends inside
the split: the last k decisions of each split are dropped, so no target
overlaps the next split. A window may reach back across a split boundary;
that is past information, available at the decision. Normalization
statistics come from the train split only.

Where the features include a recent mean spread (``[features]
spread_windows_ns``), the models learn the spread as its log ratio to the
shortest one (:func:`target_bases`): the spread's level drifts within a session
(on the AAPL day the train mean's test-split R² is -2.06), so a model of the
level learns the train split's level and carries it into the test split, while
the ratio to the recent level travels. :class:`Normalization` takes the log
ratio before scaling and multiplies the base back after, so every prediction
and every score is in the target's own units.

One event array should hold one session: a grid across an overnight gap would
sample a stale book.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np

from feeds.events import KIND_MASK, LOCAL, TRADE
from bundle.features import FeatureSchema, duration_name, replay_features
from bundle.manifest import TARGET_NAMES

STD_FLOOR = 1e-12          # below this a column is constant; it is scaled by 1 instead

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, lt=1)]


class DatasetConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dt_ns: PositiveInt = 100_000_000        # decision grid step
    horizon_ns: PositiveInt = 1_000_000_000  # target horizon H
    window: PositiveInt = 32                 # feature vectors per teacher input
    train_fraction: Fraction = 0.7
    val_fraction: Fraction = 0.15            # the rest is test

    def __post_init__(self):
        if self.horizon_ns % self.dt_ns:
            raise ValueError(f"horizon_ns {self.horizon_ns} is not a multiple of dt_ns {self.dt_ns}")
        if self.train_fraction + self.val_fraction >= 1.0:
            raise ValueError("train_fraction + val_fraction must leave a test split")

    @property
    def horizon_steps(self) -> int:
        return self.horizon_ns // self.dt_ns


@dataclass(frozen=True)
class Dataset:
    """Raw (unnormalized) features and targets on the decision grid, and each split's samples."""

    schema: FeatureSchema
    config: DatasetConfig
    decision_ts: np.ndarray    # i8[n]
    features: np.ndarray       # f8[n, F]
    targets: np.ndarray        # f8[n, 3], NaN where the horizon runs past the data
    train: np.ndarray          # sample indices into the grid, increasing
    val: np.ndarray
    test: np.ndarray
    bounds: tuple[int, int]    # first grid index of validation and of test


class Normalization(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-column mean and std of features and of the targets the models learn, fitted on the train split only.

    ``target_base`` names, per target, the feature column whose value at the decision the model's target is
    relative to ("" for none): the model learns ``ln(target / base)``, and trading's ``bundle.loader``
    multiplies the base back."""

    schema: FeatureSchema
    target_names: tuple[str, ...]
    target_base: tuple[str, ...]
    feature_mean: list[float]
    feature_std: list[float]
    target_mean: list[float]
    target_std: list[float]

    def features(self, x: np.ndarray) -> np.ndarray:
        """The model's input: z-scores of the input columns, 0 in the context columns (the price level),
        as trading's ``bundle.loader`` computes it."""
        z = ((x - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)).astype(np.float32)
        z[..., ~self.schema.model_inputs] = 0.0
        return z

    def residual(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Targets [N, 3] at the decisions of raw feature rows ``x`` [N, F] as the models learn them: ``ln(y / base)``
        where the target has a base, else ``y``."""
        out = np.array(y, dtype=np.float64)
        for k, column in enumerate(self.target_base):
            if column:
                out[..., k] = np.log(out[..., k] / np.asarray(x, dtype=np.float64)[..., self.schema.index(column)])
        return out

    def from_residual(self, r: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Undo :meth:`residual`: what the models learn back to target units."""
        out = np.array(r, dtype=np.float64)
        for k, column in enumerate(self.target_base):
            if column:
                out[..., k] = np.exp(out[..., k]) * np.asarray(x, dtype=np.float64)[..., self.schema.index(column)]
        return out

    def targets(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Targets in target units at the decisions of raw feature rows ``x``, as the models' normalized outputs."""
        return ((self.residual(y, x) - np.asarray(self.target_mean)) / np.asarray(self.target_std)).astype(np.float32)

    def targets_raw(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Undo :meth:`targets`: normalized predictions at the decisions of raw feature rows ``x`` back to
        ticks and quantities."""
        return self.from_residual(np.asarray(y, dtype=np.float64) * np.asarray(self.target_std)
                                  + np.asarray(self.target_mean), x)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> "Normalization":
        return msgspec.json.decode(raw, type=cls)


def decision_times(events: np.ndarray, dt_ns: int) -> np.ndarray:
    """Every ``dt_ns`` from the first LOCAL row (rounded up to a multiple) to the last."""
    local_ts = events["local_ts"][(events["ev"] & LOCAL) != 0]
    if local_ts.size == 0:
        return np.empty(0, dtype=np.int64)
    first = -(-int(local_ts[0]) // dt_ns) * dt_ns
    return np.arange(first, int(local_ts[-1]) + 1, dt_ns, dtype=np.int64)


def compute_targets(events: np.ndarray, schema: FeatureSchema, decision_ts: np.ndarray,
                    features: np.ndarray, horizon_steps: int) -> np.ndarray:
    """The three targets of each decision on a regular grid; NaN where t + H is past the grid."""
    n, k = decision_ts.size, horizon_steps
    out = np.full((n, len(TARGET_NAMES)), np.nan)
    if n <= k:
        return out
    mid = features[:, schema.index("mid")]
    spread = features[:, schema.index("spread_ticks")]
    out[: n - k, 0] = (mid[k:] - mid[: n - k]) / schema.tick_size
    out[: n - k, 1] = np.lib.stride_tricks.sliding_window_view(spread[1:], k).mean(axis=1)
    trades = events[((events["ev"] & LOCAL) != 0) & ((events["ev"] & KIND_MASK) == TRADE)]
    cum_volume = np.concatenate(([0.0], np.cumsum(trades["qty"])))
    volume_to = cum_volume[np.searchsorted(trades["local_ts"], decision_ts, side="right")]
    out[: n - k, 2] = np.log1p(np.maximum(volume_to[k:] - volume_to[: n - k], 0.0))
    return out


def _samples(usable: np.ndarray, start: int, stop: int, horizon_steps: int) -> np.ndarray:
    idx = np.arange(start, max(start, stop - horizon_steps))
    return idx[usable[idx]]


def build(events: np.ndarray, schema: FeatureSchema, config: DatasetConfig) -> Dataset:
    """Features, targets and chronological splits for one session of events."""
    decision_ts = decision_times(events, config.dt_ns)
    features = replay_features(events, schema, decision_ts)
    targets = compute_targets(events, schema, decision_ts, features, config.horizon_steps)
    n, w = decision_ts.size, config.window
    finite_row = np.isfinite(features).all(axis=1)
    window_finite = np.zeros(n, dtype=bool)
    if n >= w:
        bad_before = np.concatenate(([0], np.cumsum(~finite_row)))
        window_finite[w - 1:] = (bad_before[w:] - bad_before[: n - w + 1]) == 0
    usable = window_finite & np.isfinite(targets).all(axis=1)
    val_start = int(n * config.train_fraction)
    test_start = int(n * (config.train_fraction + config.val_fraction))
    k = config.horizon_steps
    return Dataset(
        schema=schema, config=config, decision_ts=decision_ts, features=features, targets=targets,
        train=_samples(usable, 0, val_start, k), val=_samples(usable, val_start, test_start, k),
        test=_samples(usable, test_start, n, k), bounds=(val_start, test_start),
    )


def target_bases(schema: FeatureSchema) -> tuple[str, ...]:
    """Per target, the feature column the models predict a log ratio to ("" for none): the spread's to the
    shortest ``mean_spread_*`` column when the schema has one; the mid change and the volume are their own."""
    spread = f"mean_spread_{duration_name(min(schema.spread_windows_ns))}" if schema.spread_windows_ns else ""
    return ("", spread, "")


def _std(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return np.where(std < STD_FLOOR, 1.0, std)


def fit_normalization(ds: Dataset) -> Normalization:
    """Feature stats over the finite feature rows before validation starts; target stats (as the models
    learn them, :meth:`Normalization.residual`) over the train samples. Nothing from validation or test enters."""
    if ds.train.size == 0:
        raise ValueError("the train split has no samples: the session is shorter than the warm-up "
                         "(longest return or volatility window), the window and the horizon")
    rows = ds.features[: ds.bounds[0]]
    rows = rows[np.isfinite(rows).all(axis=1)]
    norm = Normalization(schema=ds.schema, target_names=TARGET_NAMES, target_base=target_bases(ds.schema),
                         feature_mean=[], feature_std=[], target_mean=[], target_std=[])
    y = norm.residual(ds.targets[ds.train], ds.features[ds.train])
    return msgspec.structs.replace(
        norm,
        feature_mean=rows.mean(axis=0).tolist(), feature_std=_std(rows).tolist(),
        target_mean=y.mean(axis=0).tolist(), target_std=_std(y).tolist(),
    )


def windows(features: np.ndarray, idx: np.ndarray, window: int) -> np.ndarray:
    """The last ``window`` feature vectors up to and including each decision in ``idx``:
    ``[len(idx), window, F]``, oldest first."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size and idx.min() < window - 1:
        raise ValueError(f"decision {int(idx.min())} has fewer than {window} feature vectors before it")
    rows = idx[:, None] + np.arange(1 - window, 1)
    return features[rows]
