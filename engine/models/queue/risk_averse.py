"""RiskAverse (hftbacktest ``RiskAdverseQueueModel``): every cancellation comes from behind us.

A depth update only ever lowers the queue ahead to the new level size.
"""
from engine.models.queue.fmin import fmin
from engine.models.queue.l2 import L2Queue
from engine.state import OF_FRONT


class RiskAverse(L2Queue):
    def depth(self, S, slot, prev_qty, new_qty):
        S.orders_f[slot, OF_FRONT] = fmin(S.orders_f[slot, OF_FRONT], new_qty)
