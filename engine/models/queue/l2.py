"""What every L2 queue model shares: the queue ahead starts at the level's size and trades at our price eat it.

``OF_QUEUE_STATE`` holds the quantity traded at our price since the level's last depth
update (hftbacktest's ``cum_trade``). We are reached once ``round(front/lot) < 0``:
the quantity that traded beyond the queue ahead, ``floor(-front/lot)*lot``, is
ours to fill; what we fill of it is taken back off that overrun.
"""
import numpy as np

from engine.models.queue import QueueModel
from engine.state import F_LOT, OF_FRONT, OF_QUEUE_STATE


class L2Queue(QueueModel):
    """The part of hftbacktest's L2 queue models that does not depend on how depth changes are split."""

    def new_order(self, S, slot, level_qty):
        S.orders_f[slot, OF_FRONT] = level_qty
        S.orders_f[slot, OF_QUEUE_STATE] = 0.0

    def trade(self, S, slot, qty):
        S.orders_f[slot, OF_FRONT] -= qty
        S.orders_f[slot, OF_QUEUE_STATE] += qty

    def is_filled(self, S, slot, qty):
        lot = S.floats[F_LOT]
        front = S.orders_f[slot, OF_FRONT]
        if np.round(front / lot) < 0.0:
            return np.floor(-front / lot) * lot
        return 0.0

    def executed(self, S, slot, qty):
        S.orders_f[slot, OF_FRONT] += qty
