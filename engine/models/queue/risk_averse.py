"""RiskAverse (hftbacktest ``RiskAdverseQueueModel``): every cancellation comes from behind us.

A depth update only ever lowers the queue ahead to the new level size.
"""
from engine.models.queue.fmin import fmin
from engine.models.queue.l2 import L2Queue
from engine.state import Q_FRONT


class RiskAverse(L2Queue):
    def depth(self, S, slot, prev_qty, new_qty):
        S.of[slot, Q_FRONT] = fmin(S.of[slot, Q_FRONT], new_qty)
