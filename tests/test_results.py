"""A run's per-tick results worked out of the engine's tick log a chunk at a time: the same values however
the log is cut, a warm-up cut off with MAP restarted, and no second full copy of the results in memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from analysis.metrics import summarize
from analysis.results import TICK_FIELDS, after_warmup, collect, tick_arrays
from engine.codes import BUY, GTC, LIMIT
from engine.views import QUOTED_BID, EngineConfig, FeeConfig, elapse, make_sim, run_to_end, submit
from feeds import events as E
from feeds.ordering import order_timelines
from tests.engine_events import book, sim

# Bid 100x10, ask 102x5; a bid at 99 at 7, while our bid is live. A seller prints through our bid at 10
# (we buy 2 at 100, maker fee 0.04); then the ask 102 goes (mid carried: 101) and an ask 104 comes (mid
# 102). Six ticks, at 0, 0, 7, 10, 20, 20.
ROWS = (book(0, {100: 10}, {102: 5}) + [(7, "depth", "b", 99, 3), (10, "trade", "s", 99, 1)]
        + [(20, "depth", "s", 102, 0), (20, "depth", "s", 104, 5)])


def _run():
    S = sim(ROWS, fees=FeeConfig(maker=0.0002))
    elapse(S, 5)                     # the clock starts at the first row, 0
    submit(S, BUY, 100, 2.0, GTC, LIMIT)
    elapse(S, 95)
    return S


def _joined(ticks, chunk):
    parts = list(ticks.chunks(chunk))
    return {name: np.concatenate([p[name] for p in parts]) for name in TICK_FIELDS}


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 16])
def test_the_same_columns_however_the_log_is_cut(chunk):
    ticks = collect(_run()).ticks
    assert ticks.n == 6
    got = _joined(ticks, chunk)
    assert got["ts"].tolist() == [0, 0, 7, 10, 20, 20]
    assert np.isnan(got["mid"][0]) and got["mid"][1:].tolist() == [101, 101, 101, 101, 102]
    assert got["position"].tolist() == [0, 0, 0, 2, 2, 2]
    # equity_0 = 0 at the first mid; -200.04 + 2 * 101 = 1.96 after the fill; -200.04 + 2 * 102 = 3.96
    np.testing.assert_allclose(got["epnl"][1:], [0, 0, 1.96, 1.96, 3.96])
    assert got["map"].tolist() == [0, 0, 0, 2 / 4, 4 / 5, 6 / 6]          # running mean of |position|
    assert got["rpt"].tolist() == [0, 0, 0, *got["epnl"][3:]]            # EPnL over our 1 fill
    assert got["quoted"].tolist() == [0, 0, QUOTED_BID, 0, 0, 0]        # our bid live at the exchange at 7
    whole = tick_arrays(ticks)
    for name in TICK_FIELDS:
        np.testing.assert_array_equal(whole[name], got[name], err_msg=name)
        np.testing.assert_array_equal(ticks[name], got[name], err_msg=name)
        alone = np.concatenate([c[name] for c in ticks.chunks(chunk, names=(name,))])   # one column's pass
        np.testing.assert_array_equal(alone, got[name], err_msg=name)
        assert whole[name].dtype == got[name].dtype


@pytest.mark.parametrize("chunk", [1, 2, 1 << 16])
def test_a_warm_up_cut_off_restarts_map(chunk):
    result = collect(_run())
    epnl = result.ticks["epnl"]
    later = after_warmup(result, 3).ticks
    assert later.n == 3
    got = _joined(later, chunk)
    assert got["ts"].tolist() == [10, 20, 20]
    assert got["position"].tolist() == [2, 2, 2]
    assert got["map"].tolist() == [2 / 1, 4 / 2, 6 / 3]
    np.testing.assert_array_equal(got["epnl"], epnl[3:])
    assert after_warmup(result, 6).ticks.n == 0 and list(after_warmup(result, 6).ticks.chunks()) == []


def _long_stream(n: int) -> np.ndarray:
    """A book of bid 100 / ask 102 whose ask size changes ``n`` times, a row a nanosecond."""
    ev = E.empty(n + 2)
    ev["ev"][:2] = [E.DEPTH | E.BUY, E.DEPTH | E.SELL]
    ev["ev"][2:] = E.DEPTH | E.SELL
    ev["px"][:2] = [100.0, 102.0]
    ev["px"][2:] = 102.0
    ev["qty"] = 1.0 + np.arange(n + 2) % 7
    ev["exch_ts"] = ev["local_ts"] = np.arange(n + 2)
    return order_timelines(ev)


def test_collecting_and_summarising_hold_no_second_copy():
    """Collected and summarised, a run's results add its timestamps (8 bytes a tick) and a chunk's
    temporaries to the engine's tick log; built whole they would be 49 bytes a tick."""
    n = 1_000_000
    S = make_sim(_long_stream(n), EngineConfig(tick_size=1.0, lot_size=1.0))
    run_to_end(S)
    tracemalloc.start()
    try:
        result = collect(S)
        summary = summarize(result, 1_000)     # 1,000 ticks an episode: metrics hold an episode at a time
        collected = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        whole = tick_arrays(result.ticks)
        built = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.ticks == result.ticks.n == n + 2 and whole["mid"][-1] == 101.0
    assert collected < 8 * n + (8 << 20)
    assert built > 49 * n
