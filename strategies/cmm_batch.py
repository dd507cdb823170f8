"""CMM's batched inference: the features and model outputs of many timer wake-ups at once, applied one by one.

With a timer-only wake policy the wake-ups are known in advance (each is the
previous one plus ``every_ns``: :func:`engine.views.advance` restarts the
timer at the wake-up's own time), and at a timer wake-up at ``t`` the engine
has replayed exactly the LOCAL rows up to the first one later than ``t``. CMM's
features, regime and model call read market data only, so for the next
``size`` wake-ups they can be computed ahead of the engine, with the one
feature implementation (:func:`bundle.features.replay_until`, which stops at
that same row), and the model run over all of them: one call per regime, as
the TorchScript module takes one regime per call. They are then applied at
each wake-up as the per-tick path would (aggregate, ladder, risk check, order
diff), against the live position and book: with a declared decision time, a
whole batch in one jitted call that also steps the engine from one wake-up to
the next (:func:`strategies.cmm_kernel.run_timer`, which the session lets the
strategy run: :meth:`strategies.base.Strategy.run_timer_wakeups`), so no
Python runs between two decisions; otherwise (a measured decision time, whose
clock is Python's, or a variant that overrides a hook of steps 4-6) ``on_timer``
applies them one wake-up at a time.

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
    """The inputs of the next ``size`` decisions, computed when the previous batch is used up.

    A batch's arrays are new at each batch, so a decision may keep its rows (a decision record keeps the
    weights): ``times`` [size] (the wake-ups, ns), ``x`` [size, F] (raw features), ``regimes``,
    ``finite`` (bool: the features are finite, so the model ran), ``y`` / ``w`` (the model's normalized
    output and expert weights; rows without finite features are not set) and ``z`` (the largest |z|,
    -1 without finite features). Decisions ``[next, size)`` are still to be taken."""

    def __init__(self, state: FeatureState, bundle: Bundle, regime_column: int, every_ns: int, size: int,
                 market: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]):
        self.state, self.bundle = state, bundle
        self.regime_column, self.every_ns, self.size = regime_column, every_ns, size
        self.ev, self.local_ts, self.px, self.qty, self.row = market
        self.times = np.empty(0, dtype=np.int64)
        self.next = 0
        self.share_ns = 0            # each decision's share of the batch that computed it
        self.model_share_ns = 0      # ... and of its model calls

    @property
    def used_up(self) -> bool:
        return self.next == len(self.times)

    def take(self, now: int) -> tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray] | None, int, float]:
        """The features, regime and model output for the wake-up at ``now``, the ns spent on a new batch, and
        the decision's largest |z| (-1 without finite features), as :meth:`bundle.loader.Bundle.decide` gives."""
        spent = self.compute(now) if self.used_up else 0
        i = self.next
        if self.times[i] != now:
            raise RuntimeError(f"batched inference computed the wake-up at {self.times[i]} ns, "
                               f"the engine woke at {now} ns")
        self.next += 1
        out = (self.y[i], self.w[i]) if self.finite[i] else None
        return self.x[i], self.regimes.item(i), out, spent, self.z.item(i)

    def _repeats(self, x: np.ndarray, regimes: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Which decisions give the model the bits of the decision before them: the same regime and the
        same model inputs, bit for bit (a quiet market between two wake-ups). The module is a function of
        its input's bits (each row on a 64-byte boundary, one thread: see
        :meth:`bundle.loader.Bundle.model_input`), so such a decision's outputs are its predecessor's,
        and the model runs only on the others (over a day of LOBSTER GOOG, 3,410 of 23,254)."""
        bits = x[:, self.bundle.used].view(np.int64)        # -0.0 is not 0.0 here: the model might tell
        repeats = np.zeros(len(x), dtype=bool)
        repeats[1:] = ((bits[1:] == bits[:-1]).all(axis=1) & (regimes[1:] == regimes[:-1]) & finite[1:]
                       & finite[:-1])
        return repeats

    def compute(self, first: int) -> int:
        """Compute the batch of wake-ups ``first``, ``first + every_ns``, ...; the ns it took."""
        t0 = time.perf_counter_ns()
        times = first + self.every_ns * np.arange(self.size, dtype=np.int64)
        self.next = 0
        x = np.empty((self.size, len(self.bundle.feature_mean)))
        self.row = replay_until(self.state, self.ev, self.local_ts, self.px, self.qty, self.row, times, x)
        regimes = self.bundle.regimes.classify_all(x[:, self.regime_column])
        finite = np.isfinite(x).all(axis=1)
        repeats = self._repeats(x, regimes, finite)
        y = w = None
        z = np.full(self.size, -1.0)
        model_ns = 0
        for regime in np.unique(regimes[finite & ~repeats]):
            rows = np.flatnonzero(finite & ~repeats & (regimes == regime))
            t1 = time.perf_counter_ns()
            y_rows, w_rows, z[rows] = self.bundle.decide_batch(x[rows], int(regime))
            model_ns += time.perf_counter_ns() - t1
            if y is None:
                y = np.zeros((self.size, y_rows.shape[1]), dtype=y_rows.dtype)
                w = np.zeros((self.size, w_rows.shape[1]), dtype=w_rows.dtype)
            y[rows], w[rows] = y_rows, w_rows
        if y is None:            # no finite row: the outputs are never read, but a jitted loop takes arrays
            y = np.zeros((self.size, len(self.bundle.target_mean)), dtype=np.float32)
            w = np.zeros((self.size, len(self.bundle.layout.get("experts", ()))), dtype=np.float32)
        if repeats.any():        # a repeat takes the outputs of the decision it repeats
            source = np.maximum.accumulate(np.where(repeats, 0, np.arange(self.size)))
            y, w, z = y[source], w[source], z[source]
        self.model_share_ns = model_ns // self.size
        self.times, self.x, self.regimes, self.finite, self.y, self.w, self.z = times, x, regimes, finite, y, w, z
        spent = time.perf_counter_ns() - t0
        self.share_ns = spent // self.size
        return spent
