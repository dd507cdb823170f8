"""The latency-model interface (hftbacktest's ``LatencyModel`` trait), per request kind.

- ``entry(S, kind, ts)``: ns from sending a request of ``kind`` at ``ts`` until it
  reaches the exchange;
- ``response(S, kind, ts)``: ns from the exchange handling it at ``ts`` until
  the response reaches us (fills answer as new orders do).

A model is a :class:`LatencyModel` subclass in a file of its own, named once in
``engine/models/latency/registry.py``.
"""
from numba.extending import overload_method

from engine.models.unit import Unit, UnitType, implementation, register_kind


class LatencyType(UnitType):
    """Numba type of a latency model."""


register_kind(LatencyType)


class LatencyModel(Unit):
    """Base of every latency model."""

    numba_type = LatencyType


@overload_method(LatencyType, "entry")
def _entry(self, S, kind, ts):
    return implementation(self, LatencyType, "entry")


@overload_method(LatencyType, "response")
def _response(self, S, kind, ts):
    return implementation(self, LatencyType, "response")
