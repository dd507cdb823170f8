"""The fee-model interface: ``fee(S, rate, qty, amount)`` is what a fill of ``qty`` worth ``amount`` costs.

``rate`` is the maker or taker rate (negative: a rebate); ``amount`` is
``multiplier * price * qty`` (inverse contracts: ``multiplier * qty / price``, in
the coin). A model is a :class:`FeeModel` subclass in a file of its own, named
once in ``engine/models/fees/registry.py``.
"""
from numba.extending import overload_method

from engine.models.unit import Unit, UnitType, implementation, register_kind


class FeeType(UnitType):
    """Numba type of a fee model."""


register_kind(FeeType)


class FeeModel(Unit):
    """Base of every fee model."""

    numba_type = FeeType


@overload_method(FeeType, "fee")
def _fee(self, S, rate, qty, amount):
    return implementation(self, FeeType, "fee")
