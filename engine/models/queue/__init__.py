"""The queue-model interface: where our resting order stands in its price level's queue.

The methods of hftbacktest's ``QueueModel`` trait, over one order slot of the
``Sim`` (its queue state is ``orders_f[slot, OF_FRONT]``, the quantity ahead of us, and
``orders_f[slot, OF_QUEUE_STATE]``, one number the model keeps for itself):

- ``new_order(S, slot, level_qty)``: the order reached the exchange and joins
  the back of its level, which held ``level_qty``;
- ``trade(S, slot, qty)``: a trade of ``qty`` printed at the order's price;
- ``is_filled(S, slot, qty)``: after that trade, the quantity that reached the
  order (0: none yet);
- ``executed(S, slot, qty)``: a trade that reached the order filled ``qty`` of
  it (with partial fills it may stay open, at the queue front);
- ``depth(S, slot, prev_qty, new_qty)``: the level at the order's price changed;
- ``order_level``: True if it follows order-level (L3) rows instead of levels.

A model is a :class:`QueueModel` subclass in a file of its own, named once in
``engine/models/queue/registry.py``.
"""
from numba.extending import overload_attribute, overload_method

from engine.models.unit import Unit, UnitType, implementation, register_kind


class QueueType(UnitType):
    """Numba type of a queue model."""


register_kind(QueueType)


class QueueModel(Unit):
    """Base of every queue model."""

    numba_type = QueueType
    order_level = False


@overload_method(QueueType, "new_order")
def _new_order(self, S, slot, level_qty):
    return implementation(self, QueueType, "new_order")


@overload_method(QueueType, "trade")
def _trade(self, S, slot, qty):
    return implementation(self, QueueType, "trade")


@overload_method(QueueType, "is_filled")
def _is_filled(self, S, slot, qty):
    return implementation(self, QueueType, "is_filled")


@overload_method(QueueType, "executed")
def _executed(self, S, slot, qty):
    return implementation(self, QueueType, "executed")


@overload_method(QueueType, "depth")
def _depth(self, S, slot, prev_qty, new_qty):
    return implementation(self, QueueType, "depth")


@overload_attribute(QueueType, "order_level")
def _order_level(self):
    value = self.cls.order_level
    return lambda self: value
