"""Fees (maker/taker, notional/per unit, rebates), accounting with the multiplier, per-tick metrics."""
from __future__ import annotations

import numpy as np
import pytest

from engine import kernel as K
from engine.codes import BUY, GTC, IOC, LIMIT
from engine.models.config import FeeConfig
from engine.state import (F_CASH, F_FEE, F_LBAL, F_LFEE, F_LPOS, F_POS, F_VALUE, F_VOLUME, FL_MAKER, FLF_FEE,
                          I_NTICKS)
from analysis.results import collect
from tests.engine_events import book, sim

# Bid 100x10, ask 102x5 (mid 101). A seller prints through our bid at 10: our resting buy fills as maker.
ROWS = (book(0, {100: 10}, {102: 5}) + [(10, "trade", "s", 99, 1)]
        + [(20, "depth", "s", 102, 0), (20, "depth", "s", 104, 5)])


def _maker(**cfg):
    S = sim(ROWS, **cfg)
    K.goto(S, 5)
    K.submit(S, BUY, 100, 2.0, GTC, LIMIT)
    K.goto(S, 100)
    return S


def _taker(**cfg):
    S = sim(ROWS, **cfg)
    K.goto(S, 5)
    K.submit(S, BUY, 102, 3.0, IOC, LIMIT)
    K.goto(S, 100)
    return S


@pytest.mark.parametrize("cfg, fee", [
    (dict(fees=FeeConfig(maker=0.0002, taker=0.0005)), 0.0002 * 200),
    (dict(fees=FeeConfig(maker=-0.0001, taker=0.0005)), -0.0001 * 200),        # rebate: fee is negative
    (dict(fees=FeeConfig(maker=0.01, mode="per_unit")), 0.01 * 2),
    (dict(fees=FeeConfig(maker=0.0002), contract_multiplier=10.0), 0.0002 * 2000),
])
def test_maker_fees(cfg, fee):
    S = _maker(**cfg)
    mult = cfg.get("contract_multiplier", 1.0)
    assert S.fl_i[0, FL_MAKER] == 1
    assert S.fl_f[0, FLF_FEE] == pytest.approx(fee)
    assert S.floats[F_FEE] == pytest.approx(fee) and S.floats[F_LFEE] == pytest.approx(fee)
    assert S.floats[F_CASH] == pytest.approx(-200.0 * mult - fee)
    assert S.floats[F_LBAL] == pytest.approx(-200.0 * mult)       # hftbacktest's balance is before fees
    assert S.floats[F_POS] == 2.0 and S.floats[F_LPOS] == 2.0
    assert S.floats[F_VOLUME] == 2.0 and S.floats[F_VALUE] == pytest.approx(200.0 * mult)


@pytest.mark.parametrize("cfg, fee", [
    (dict(fees=FeeConfig(maker=0.0002, taker=0.0005)), 0.0005 * 306),
    (dict(fees=FeeConfig(taker=0.02, mode="per_unit")), 0.02 * 3),
])
def test_taker_fees(cfg, fee):
    S = _taker(**cfg)
    assert S.fl_i[0, FL_MAKER] == 0
    assert S.floats[F_FEE] == pytest.approx(fee)
    assert S.floats[F_CASH] == pytest.approx(-306.0 - fee)


def test_per_tick_metrics():
    """Ticks: (0) bid only: no mid; (1) mid 101 -> equity_0 = 0; (2) trade at 10, we hold 2 at 100:
    epnl = -200 - 0.04 + 2*101 = 1.96; (3) ask 102 gone: mid carried (101); (4) ask 104: mid 102,
    epnl = -200.04 + 204 = 3.96. map = running mean |q|; rpt = epnl / 1 fill."""
    S = _maker(fees=FeeConfig(maker=0.0002))
    assert S.ints[I_NTICKS] == 5
    tk = collect(S).ticks
    assert np.isnan(tk["mid"][0])
    np.testing.assert_allclose(tk["mid"][1:], [101, 101, 101, 102])
    np.testing.assert_allclose(tk["position"], [0, 0, 2, 2, 2])
    np.testing.assert_allclose(tk["epnl"][1:], [0, 1.96, 1.96, 3.96])
    np.testing.assert_allclose(tk["map"], [0, 0, 2 / 3, 4 / 4, 6 / 5])
    np.testing.assert_allclose(tk["rpt"], [0, 0, 1.96, 1.96, 3.96])
    np.testing.assert_array_equal(tk["ts"], [0, 0, 10, 20, 20])
