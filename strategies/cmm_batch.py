"""CMM's batched inference: the features and model outputs of many timer wake-ups at once, applied one by one.

With a timer-only wake policy the wake-ups are known in advance (each is the
previous one plus ``every_ns``: :func:`engine.views.advance` restarts the
timer at the wake-up's own time), and at a timer wake-up at ``t`` the engine
has replayed exactly the LOCAL rows up to the first one later than ``t``. CMM's
features, regime and model call read market data only, so for the next
``size`` wake-ups they can be computed ahead of the engine, with the one
feature implementation (:func:`bundle.features.replay_until`, which stops at
that same row), and the model run over all of them: one call per regime, as
the TorchScript module takes one regime per call. The strategy's loop then
applies them at each wake-up as the per-tick path would (aggregate, ladder,
risk check, order diff), against the live position and book.

The results are the per-tick path's to the bit: the features are the same
function on the same rows, normalization is elementwise, and the bundle's
module runs a ``[B, F]`` batch decision by decision through the same kernels
as a ``[F]`` call (``cmm_models.export.FusedMoE``; the tests check the
shipped bundles, and that whole backtests write identical bytes).

A measured decision time charges each decision its own work at its wake-up
plus an equal share (floor of time / ``size``) of the batch that computed its
inputs, instead of the whole batch to the wake-up that happened to run it.
"""
from __future__ import annotations

import time

import numpy as np

from bundle.loader import Bundle
from bundle.features import FeatureState, replay_until


class Ahead:
    """The inputs of the next ``size`` decisions, computed when the previous batch is used up."""

    def __init__(self, state: FeatureState, bundle: Bundle, regime_column: int, every_ns: int, size: int,
                 market: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]):
        self.state, self.bundle = state, bundle
        self.regime_column, self.every_ns, self.size = regime_column, every_ns, size
        self.ev, self.local_ts, self.px, self.qty, self.row = market
        self.x = np.empty((size, len(bundle.feature_mean)))
        self.times: list[int] = []
        self.next = 0
        self.share_ns = 0            # each decision's share of the batch that computed it
        self.model_share_ns = 0      # ... and of its model calls

    def take(self, now: int) -> tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray] | None, int, float]:
        """The features, regime and model output for the wake-up at ``now``, the ns spent on a new batch, and
        the decision's largest |z| (-1 without finite features), as :meth:`bundle.loader.Bundle.decide` gives."""
        spent = 0
        if self.next == len(self.times):
            t0 = time.perf_counter_ns()
            self._compute(now)
            spent = time.perf_counter_ns() - t0
            self.share_ns = spent // self.size
        i = self.next
        if self.times[i] != now:
            raise RuntimeError(f"batched inference computed the wake-up at {self.times[i]} ns, "
                               f"the engine woke at {now} ns")
        self.next += 1
        # The batch's arrays are new at each batch, so its rows may be kept (a decision record keeps the weights).
        out = (self.y[i], self.w[i]) if self.finite[i] else None
        return self.x[i], self.regimes[i], out, spent, self.z[i]

    def _compute(self, now: int) -> None:
        times = now + self.every_ns * np.arange(self.size, dtype=np.int64)
        self.next = 0
        self.row = replay_until(self.state, self.ev, self.local_ts, self.px, self.qty, self.row, times, self.x)
        regimes = self.bundle.regimes.classify_all(self.x[:, self.regime_column])
        finite = np.isfinite(self.x).all(axis=1)
        self.y = self.w = None
        z = np.full(self.size, -1.0)
        model_ns = 0
        for regime in np.unique(regimes[finite]):
            rows = np.flatnonzero(finite & (regimes == regime))
            t0 = time.perf_counter_ns()
            y, w, z[rows] = self.bundle.decide_batch(self.x[rows], int(regime))
            model_ns += time.perf_counter_ns() - t0
            if self.y is None:
                self.y = np.empty((self.size, y.shape[1]), dtype=y.dtype)
                self.w = np.empty((self.size, w.shape[1]), dtype=w.dtype)
            self.y[rows], self.w[rows] = y, w
        self.model_share_ns = model_ns // self.size
        # Python numbers, read once per decision: the loop that applies them is Python.
        self.times, self.regimes, self.finite, self.z = times.tolist(), regimes.tolist(), finite.tolist(), z.tolist()
