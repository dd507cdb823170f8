"""Our FixedSpread kernel against hftbacktest 2.4.4 on the same generated L2 stream, fill for fill.

RiskAverse queue, NoPartialFillExchange, constant 1 ms entry and response latency, zero fees. The
hftbacktest side is the same strategy written against its API (bench/vs_hftbacktest.py).
"""
import numpy as np
import pytest

pytest.importorskip("hftbacktest")

from bench.gen_l2 import generate, instrument  # noqa: E402
from bench.vs_hftbacktest import run_hftbacktest, run_ours  # noqa: E402


@pytest.fixture(scope="module")
def stream():
    return generate(50_000, seed=11), instrument()


@pytest.mark.parametrize("interval", [1_000_000, 100_000_000])
def test_fills_position_and_balance_equal_hftbacktest(stream, interval):
    events, inst = stream
    theirs = run_hftbacktest(events, inst, interval)
    ours = run_ours(events, inst, interval)
    assert len(theirs["fills"]) > 10          # the strategy really trades on this stream
    assert ours["wakes"] == theirs["wakes"]
    # Rows of (order id, side, exchange time, price tick, qty), sorted by order id.
    np.testing.assert_array_equal(ours["fills"], theirs["fills"])
    assert len(ours["fills"]) == theirs["num_trades"]
    assert ours["position"] == theirs["position"]
    assert ours["balance"] == pytest.approx(theirs["balance"], abs=1e-9)
