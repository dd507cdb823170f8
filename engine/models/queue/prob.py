"""The probability queue models (hftbacktest ``ProbQueueModel``), over one probability formula each.

A depth decrease ``chg`` (net of the trades already counted) is split between
ahead of and behind us, coming from behind with probability
``p = prob(front, back, n)``::

    est_front = front - (1 - p) * chg + min(back - p * chg, 0)
    front     = min(est_front, new_qty)

A formula is a :class:`ProbQueue` subclass with a ``prob(front, back, n)``
method (``n``: the config's ``queue.power``). It runs with IEEE division, as
hftbacktest's Rust does: an empty level gives 0/0 = NaN, which ``min`` resolves
as Rust's ``f64::min`` does (to the new size).
"""
import numpy as np
from numba.extending import overload_method

from engine.models.queue import QueueType
from engine.models.queue.fmin import fmin
from engine.models.queue.l2 import L2Queue
from engine.models.unit import implementation
from engine.state import F_QPOW, OF_FRONT, OF_QUEUE_STATE


class ProbQueue(L2Queue):
    """Base of the probability models: ``depth`` is theirs, ``prob`` each formula's."""

    def depth(self, S, slot, prev_qty, new_qty):
        q = S.orders_f
        chg = prev_qty - new_qty - q[slot, OF_QUEUE_STATE]
        q[slot, OF_QUEUE_STATE] = 0.0
        if chg < 0.0:
            q[slot, OF_FRONT] = fmin(q[slot, OF_FRONT], new_qty)
            return
        front = q[slot, OF_FRONT]
        back = prev_qty - front
        p = self.prob(front, back, S.floats[F_QPOW])
        if np.isinf(p):
            p = 1.0
        est = front - (1.0 - p) * chg + fmin(back - p * chg, 0.0)
        q[slot, OF_FRONT] = fmin(est, new_qty)


@overload_method(QueueType, "prob", jit_options={"error_model": "numpy"})
def _prob(self, front, back, n):
    return implementation(self, QueueType, "prob")
