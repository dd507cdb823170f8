"""A queue model written the way a new one is: one file (and one registry line, in the test that uses it).

Optimistic: nobody is ahead of us, so a trade at our price fills us at once, up to its size.
"""
from engine.models.queue import QueueModel


class Optimistic(QueueModel):
    def new_order(self, S, slot, level_qty):
        pass

    def trade(self, S, slot, qty):
        pass

    def is_filled(self, S, slot, qty):
        return qty

    def executed(self, S, slot, qty):
        pass

    def depth(self, S, slot, prev_qty, new_qty):
        pass
