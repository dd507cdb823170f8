"""Inverse (coin-margined) contracts in the engine: fills, fees and marking to mid in the coin, by hand.

A contract is ``mult`` USD; long ``q`` from ``entry`` to ``exit`` makes
``q·mult·(1/entry − 1/exit)`` coin. The book: bid 1999, ask 2001 (mid 2000);
a seller prints through our bid at 2000 at t=10 (we fill as maker); at t=20
the book moves to 2099 / 2101 (mid 2100).
"""
from __future__ import annotations

import numpy as np
import pytest

from analysis.results import collect
from engine import kernel as K
from engine.codes import BUY, GTC, LIMIT, SELL
from engine.models.config import FeeConfig
from engine.state import F_CASH, F_FEE, F_LBAL, F_POS, F_VALUE
from tests.engine_events import book, sim

ROWS = (book(0, {1999: 10}, {2001: 10}) + [(10, "trade", "s", 1990, 5), (10, "trade", "b", 2010, 5)]
        + [(20, "depth", "b", 1999, 0), (20, "depth", "s", 2001, 0)] + book(20, {2099: 10}, {2101: 10}))


def _filled(side, qty, **cfg):
    S = sim(ROWS, contract_multiplier=10.0, inverse=True, **cfg)
    K.goto(S, 5)
    K.submit(S, side, 2000, qty, GTC, LIMIT)
    K.goto(S, 100)
    return S


@pytest.mark.parametrize("side, sign", [(BUY, 1), (SELL, -1)])
def test_inverse_pnl_is_in_the_coin(side, sign):
    """Buy 3 contracts of 10 USD at 2000, mark at 2100: 3·10·(1/2000 − 1/2100) coin; a short loses as much."""
    S = _filled(side, 3.0)
    assert S.floats[F_POS] == 3.0 * sign
    assert S.floats[F_CASH] == pytest.approx(sign * 3 * 10 / 2000)          # coin received for a buy
    tk = collect(S).ticks
    assert tk["mid"][-1] == 2100.0
    assert tk["epnl"][-1] == pytest.approx(sign * 3 * 10 * (1 / 2000 - 1 / 2100), rel=1e-12)
    assert tk["epnl"][-1] == pytest.approx(sign * 7.142857142857143e-4, rel=1e-12)
    at_entry = np.flatnonzero(tk["position"] != 0)[0]        # marked at the entry price: nothing made yet
    assert tk["epnl"][at_entry] == pytest.approx(0.0, abs=1e-15)


def test_inverse_fees_and_notional_are_in_the_coin():
    """The notional of 3 contracts of 10 USD at 2000 is 30/2000 = 0.015 coin; a 2 bp maker fee is 3e-6 coin."""
    S = _filled(BUY, 3.0, fees=FeeConfig(maker=0.0002))
    assert S.floats[F_VALUE] == pytest.approx(0.015, rel=1e-12)
    assert S.floats[F_FEE] == pytest.approx(3e-6, rel=1e-12)
    assert S.floats[F_CASH] == pytest.approx(0.015 - 3e-6, rel=1e-12)
    assert S.floats[F_LBAL] == pytest.approx(0.015, rel=1e-12)         # the strategy's balance, before fees
    assert collect(S).ticks["epnl"][-1] == pytest.approx(30 * (1 / 2000 - 1 / 2100) - 3e-6, rel=1e-12)


def test_linear_books_as_before():
    """The same fill linear, multiplier 10: cash −3·10·2000, EPnL 3·10·(2100 − 2000)."""
    S = sim(ROWS, contract_multiplier=10.0)
    K.goto(S, 5)
    K.submit(S, BUY, 2000, 3.0, GTC, LIMIT)
    K.goto(S, 100)
    assert S.floats[F_CASH] == -60000.0
    assert collect(S).ticks["epnl"][-1] == 3000.0
