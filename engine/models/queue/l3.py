"""L3: the exact FIFO behind the real order ids (the order-level book is engine/l3.py).

Our order queues behind every real order resting at its price when it arrives
(``OF_QUEUE_STATE`` is the book's slot counter then). Order-level rows move the queue
ahead (``engine.l3.apply``), so trades and level totals do not: a trade reaches
us only by the part larger than the queue ahead, and then leaves it as it is.
"""
import numpy as np

from engine import l3
from engine.models.queue import QueueModel
from engine.state import F_LOT, OF_FRONT


class L3(QueueModel):
    order_level = True

    def new_order(self, S, slot, level_qty):
        l3.join(S, slot, level_qty)

    def trade(self, S, slot, qty):
        pass

    def is_filled(self, S, slot, qty):
        lot = S.floats[F_LOT]
        over = qty - S.orders_f[slot, OF_FRONT]
        return np.floor(over / lot) * lot if np.round(over / lot) > 0.0 else 0.0

    def executed(self, S, slot, qty):
        pass

    def depth(self, S, slot, prev_qty, new_qty):
        pass
