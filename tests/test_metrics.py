"""End-of-run and per-episode metrics against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.metrics import episodes, max_drawdown, quoted_share, summarize
from analysis.results import RunResult
from engine.views import FILL_DTYPE, ORDER_DTYPE, Account
from engine.views import QUOTED_ASK, QUOTED_BID

S = 1_000_000_000


def run_result(ts, epnl, position, fill_ts=(), bid_quoted=None, ask_quoted=None) -> RunResult:
    ts = np.asarray(ts, dtype=np.int64)
    position = np.asarray(position, dtype=np.float64)
    ticks = {"ts": ts, "mid": np.full(len(ts), 100.0), "position": position,
             "epnl": np.asarray(epnl, dtype=np.float64),
             "map": np.cumsum(np.abs(position)) / np.arange(1, len(ts) + 1), "rpt": np.zeros(len(ts))}
    bid = np.zeros(len(ts), dtype=np.int8) if bid_quoted is None else np.asarray(bid_quoted, dtype=np.int8)
    ask = np.zeros(len(ts), dtype=np.int8) if ask_quoted is None else np.asarray(ask_quoted, dtype=np.int8)
    ticks["quoted"] = bid * QUOTED_BID | ask * QUOTED_ASK
    fills = np.zeros(len(fill_ts), dtype=FILL_DTYPE)
    fills["exch_ts"] = fill_ts
    fills["qty"] = 1.0
    account = Account(position=float(position[-1]), cash=0.0, fees=0.0, volume=float(len(fill_ts)),
                      notional=0.0, n_fills=len(fill_ts), contract_multiplier=1.0)
    return RunResult(ticks=ticks, fills=fills, orders=np.zeros(0, dtype=ORDER_DTYPE), account=account)


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    assert max_drawdown(np.array([0.0, 5.0, 2.0, 7.0, 1.0, 3.0])) == 6.0
    assert max_drawdown(np.array([0.0, 1.0, 2.0])) == 0.0
    assert max_drawdown(np.array([np.nan, 4.0, 1.0])) == 3.0


def test_quoted_share_weights_by_time():
    ts = np.array([0, 10, 40, 100])
    # quoted over [0, 10) and [40, 100): 70 of 100
    assert quoted_share(ts, np.array([True, False, True, False])) == pytest.approx(0.7)


def test_episodes_split_on_the_tick_clock():
    # Ticks at 0,1,2 s (episode 0), 3,4 s (episode 1), 6 s (episode 2) with 3 s episodes.
    ts = np.array([0, 1, 2, 3, 4, 6]) * S
    epnl = [0.0, 1.0, 4.0, 2.0, 6.0, 3.0]
    pos = [0.0, 1.0, -2.0, 3.0, 1.0, 0.0]
    r = run_result(ts, epnl, pos, fill_ts=[1 * S, 2 * S, 4 * S])
    eps = episodes(r, 3 * S)
    assert [e.epnl for e in eps] == [4.0, 2.0, -3.0]
    assert [e.map for e in eps] == pytest.approx([1.0, 2.0, 0.0])
    assert [e.n_fills for e in eps] == [2, 1, 0]
    assert [e.rpt for e in eps] == [2.0, 2.0, None]
    assert eps[0].pnlmap == 4.0 and eps[2].pnlmap is None
    assert [(e.start_ts, e.end_ts) for e in eps] == [(0, 3 * S), (3 * S, 6 * S), (6 * S, 9 * S)]


def test_summary_by_hand():
    ts = np.array([0, 1, 2, 3, 4, 6]) * S
    r = run_result(ts, [0.0, 1.0, 4.0, 2.0, 6.0, 3.0], [0.0, 1.0, -2.0, 3.0, 1.0, 0.0],
                   fill_ts=[1 * S, 2 * S, 4 * S],
                   bid_quoted=[1, 1, 1, 0, 0, 0], ask_quoted=[1, 1, 1, 1, 1, 1])
    s = summarize(r, 3 * S)
    assert s.epnl == 3.0
    assert s.map == pytest.approx(7.0 / 6.0)
    assert s.rpt == 1.0
    assert s.pnlmap == pytest.approx(3.0 / (7.0 / 6.0))
    assert s.n_fills == 3
    assert s.max_drawdown == 3.0
    per_episode = np.array([4.0, 2.0, -3.0])
    assert s.sharpe == pytest.approx(per_episode.mean() / per_episode.std(ddof=1))
    assert s.episodes.count == 3
    assert s.episodes.epnl.mean == pytest.approx(1.0)
    assert s.quoted_bid_share == pytest.approx(3 / 6)
    assert s.quoted_ask_share == 1.0


def test_one_episode_has_no_sharpe_and_no_position_has_no_pnlmap():
    r = run_result(np.array([0, 1]) * S, [0.0, 0.0], [0.0, 0.0])
    s = summarize(r, 3600 * S)
    assert s.sharpe is None and s.pnlmap is None and s.rpt is None
