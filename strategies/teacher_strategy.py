"""TeacherStrategy (``teacher``): the full transformer at every decision, in the CMM framework.

The paper's argument is that the teacher predicts at least as well as the
distilled experts but decides too slowly to keep its edge. This strategy lets
the backtest settle it: everything but the model is CMMStrategy's (features,
regime, ladder, order diff, the measured decision time the engine charges),
and the model is the teacher bundle that ``cmm train`` writes to
``bundles/teacher/``: the transformer traced to TorchScript, so trading
imports neither ``transformers`` nor ``cmm_models``.

The teacher reads a window of feature vectors on its training grid
(``window`` vectors ``dt_ns`` apart, from ``model.json``), not one vector. The
features are therefore advanced grid point by grid point through the events
since the last decision, snapshotting each of the last ``window`` points,
exactly as :func:`bundle.features.replay_features` built the training windows;
that bookkeeping is part of the teacher's cost and is timed with it. No
prediction (and so no quotes) until a whole finite window has been seen.
"""
from __future__ import annotations

import numpy as np

from bundle.features import apply_rows, snapshot
from bundle.manifest import Variant

from strategies.api import Context
from strategies.cmm import CMMStrategy


class TeacherStrategy(CMMStrategy):
    variants = (Variant.TEACHER,)

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.window = int(self.bundle.layout["window"])
        self.dt_ns = int(self.bundle.layout["dt_ns"])
        self.history = np.full((self.window, self.schema.n_features), np.nan)   # oldest first
        self.seen = 0                     # grid points snapshotted so far
        self.next_grid: int | None = None

    def features(self, ctx: Context) -> np.ndarray:
        rows = ctx.new_events()
        if not self.start_features(ctx, rows["ev"], rows["px"]):
            return self.row
        ts = rows["local_ts"]
        if self.next_grid is None:       # the training grid: multiples of dt_ns from the first event on
            first = int(ts[0]) if ts.size else ctx.now
            self.next_grid = -(-first // self.dt_ns) * self.dt_ns
        grid = np.arange(self.next_grid, ctx.now + 1, self.dt_ns, dtype=np.int64)
        done = 0
        if grid.size:
            self.next_grid = int(grid[-1]) + self.dt_ns
            for point in grid[-self.window:]:
                cut = int(np.searchsorted(ts, point, side="right"))
                self._apply(rows, done, cut)
                done = cut
                self.history[:-1] = self.history[1:]
                snapshot(self.state, int(point), self.history[-1])
            self.seen += grid.size
        self._apply(rows, done, len(rows))
        snapshot(self.state, ctx.now, self.row)
        return self.row

    def _apply(self, rows: np.ndarray, start: int, stop: int) -> None:
        if stop > start:
            part = rows[start:stop]
            apply_rows(self.state, part["ev"], part["local_ts"], part["px"], part["qty"])

    def predict(self, x: np.ndarray, regime: int) -> tuple[np.ndarray, np.ndarray] | None:
        """One forward pass of the transformer over the last ``window`` grid vectors."""
        return None if self.seen < self.window else self.bundle.decide(self.history)
