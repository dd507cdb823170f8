"""Constant latency per request kind: ``[latency]``'s ``*_entry_ns`` and ``*_response_ns``.

``ints[I_LAT + 2*(kind - REQ_NEW)]`` is the entry latency of a request kind and the
next slot its response latency (new, modify, cancel: the order of ``REQ_*``).
"""
from engine.codes import REQ_NEW
from engine.models.latency import LatencyModel
from engine.state import I_LAT


class Constant(LatencyModel):
    def entry(self, S, kind, ts):
        return S.ints[I_LAT + 2 * (kind - REQ_NEW)]

    def response(self, S, kind, ts):
        return S.ints[I_LAT + 2 * (kind - REQ_NEW) + 1]
