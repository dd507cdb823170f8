"""Accounting and causality invariants over random L2 streams and random order actions (hypothesis)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from engine import kernel as K
from engine.codes import FOK, GTC, GTX, IOC, LIMIT, MARKET
from engine.models.config import FeeConfig, LatencyConfig, QueueConfig
from engine.state import (F_CASH, F_FEE, F_LPOS, F_POS, FL_ID, FL_SIDE, FL_XTS, FLF_FEE, FLF_PRICE, FLF_QTY,
                          I_NFILLS, O_ID, O_USED, OF_QTY, OF_XEXEC)
from tests.engine_events import sim

MODELS = ["risk_averse", "power_prob", "log_prob", "power_prob2", "log_prob2", "power_prob3"]

market_row = st.one_of(
    st.tuples(st.just("depth"), st.just("b"), st.integers(95, 100), st.integers(0, 10)),
    st.tuples(st.just("depth"), st.just("s"), st.integers(101, 106), st.integers(0, 10)),
    st.tuples(st.just("trade"), st.sampled_from(["b", "s"]), st.integers(96, 105), st.integers(1, 6)),
)
action = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from([1, -1]), st.integers(95, 106), st.integers(1, 4),
              st.sampled_from([GTC, GTC, GTX, IOC, FOK]), st.sampled_from([LIMIT, LIMIT, LIMIT, MARKET])),
    st.tuples(st.just("cancel"), st.integers(1, 12)),
    st.tuples(st.just("modify"), st.integers(1, 12), st.integers(95, 106), st.integers(1, 4)),
)


@settings(max_examples=50, deadline=None)
@given(gaps=st.lists(st.integers(0, 20), min_size=5, max_size=60), data=st.data(),
       model=st.sampled_from(MODELS), partial=st.booleans(), mult=st.sampled_from([1.0, 3.0]),
       entry=st.integers(0, 15), cancel_entry=st.integers(0, 15), compute=st.integers(0, 10))
def test_invariants(gaps, data, model, partial, mult, entry, cancel_entry, compute):
    t = np.cumsum(gaps)
    rows = [(0, "depth", "b", 100, 5), (0, "depth", "s", 101, 5)]
    rows += [(int(ts),) + data.draw(market_row) for ts in t]
    S = sim(rows, feed_latency=data.draw(st.integers(0, 10)), queue=QueueConfig(model=model, partial_fills=partial),
            contract_multiplier=mult, fees=FeeConfig(maker=-0.0001, taker=0.0003),
            latency=LatencyConfig(place_entry_ns=entry, place_response_ns=3, modify_entry_ns=entry,
                                  modify_response_ns=3, cancel_entry_ns=cancel_entry, cancel_response_ns=3),
            max_orders=64)
    K.set_compute_ns(S, compute)
    arrives, canceled_at = {}, {}
    for when, act in data.draw(st.lists(st.tuples(st.integers(0, int(t[-1]) + 5), action), max_size=25)):
        if when < K.now(S):
            continue
        K.goto(S, when)
        sent = when + compute
        if act[0] == "submit":
            oid = K.submit(S, act[1], act[2], float(act[3]), act[4], act[5])
            arrives[oid] = sent + entry
        elif act[0] == "cancel":
            if K.cancel(S, act[1]) == 0:
                canceled_at.setdefault(act[1], sent + cancel_entry)
        else:
            K.modify(S, act[1], act[2], float(act[3]))
    K.run_to_end(S)
    n = S.ints[I_NFILLS]
    fid, side, xts = S.fl_i[:n, FL_ID], S.fl_i[:n, FL_SIDE], S.fl_i[:n, FL_XTS]
    qty, price, fee = S.fl_f[:n, FLF_QTY], S.fl_f[:n, FLF_PRICE], S.fl_f[:n, FLF_FEE]
    assert np.isclose(S.floats[F_POS], np.sum(side * qty))
    assert np.isclose(S.floats[F_LPOS], S.floats[F_POS])       # every response has arrived
    assert np.isclose(S.floats[F_CASH], -np.sum(side * price * qty * mult) - np.sum(fee))
    assert np.isclose(S.floats[F_FEE], np.sum(fee))
    for slot in range(S.orders_i.shape[0]):
        if S.orders_i[slot, O_USED] == 0:
            continue
        oid = S.orders_i[slot, O_ID]
        mine = fid == oid
        assert np.isclose(np.sum(qty[mine]), S.orders_f[slot, OF_XEXEC])
        assert S.orders_f[slot, OF_XEXEC] <= S.orders_f[slot, OF_QTY] + 1e-9            # never beyond its size
        if mine.any():
            assert xts[mine].min() >= arrives[oid]                         # not before it reached the exchange
            if oid in canceled_at:
                assert xts[mine].max() <= canceled_at[oid]                 # not after a cancel reached it
