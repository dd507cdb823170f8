"""End-of-run and per-episode metrics, from the per-tick arrays a run records.

Definitions (the README's Metrics section states them for users):

- ``epnl_t = (cash_t + q_t*mid_t*mult) - (cash_0 + q_0*mid_0*mult)``, cash net
  of fees, 0 the first tick with a mid; for inverse contracts ``-q_t*mult/mid_t``
  in place of ``q_t*mid_t*mult``, and every amount is in the settlement coin;
- ``map_t`` = mean of ``|q|`` over the ticks so far;
- ``rpt_t = epnl_t / (own fills so far)``;
- ``pnlmap = epnl / map`` at the end (None when we never held a position);
- ``max_drawdown`` = the largest fall of ``epnl`` from a running peak;
- episodes: consecutive windows of ``episode_ns`` on the tick clock, from the
  first tick. Each has its own EPnL (change over the episode), MAP (mean |q|
  over its ticks), fills, RPT and PnLMAP; ``sharpe`` is mean / std (ddof 1) of
  the per-episode EPnLs, not annualised, None with fewer than two episodes;
- ``quoted_bid_share`` / ``quoted_ask_share``: the share of the run's time
  during which we had a live order on that side at the exchange.
"""
from __future__ import annotations

import math

import msgspec
import numpy as np

from analysis.results import RunResult
from engine.views import QUOTED_ASK, QUOTED_BID


class Episode(msgspec.Struct, frozen=True):
    start_ts: int
    end_ts: int
    epnl: float
    map: float
    rpt: float | None
    pnlmap: float | None
    n_fills: int
    ticks: int


class Stat(msgspec.Struct, frozen=True):
    mean: float | None
    std: float | None


class EpisodeSummary(msgspec.Struct, frozen=True):
    length_s: float
    count: int
    epnl: Stat
    map: Stat
    pnlmap: Stat
    n_fills: Stat
    items: list[Episode]


class Summary(msgspec.Struct, frozen=True):
    epnl: float
    map: float
    rpt: float | None
    pnlmap: float | None
    n_fills: int
    volume: float
    notional: float
    fees: float
    final_position: float
    sharpe: float | None
    max_drawdown: float
    quoted_bid_share: float
    quoted_ask_share: float
    ticks: int
    start_ts: int
    end_ts: int
    episodes: EpisodeSummary


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _ratio(a: float, b: float) -> float | None:
    return _finite(a / b) if b else None


def max_drawdown(epnl: np.ndarray) -> float:
    x = epnl[np.isfinite(epnl)]
    if len(x) == 0:
        return 0.0
    return float(np.max(np.maximum.accumulate(x) - x))


def _stat(values: list[float | None]) -> Stat:
    x = np.array([v for v in values if v is not None], dtype=np.float64)
    if len(x) == 0:
        return Stat(None, None)
    return Stat(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else None)


def episodes(result: RunResult, episode_ns: int) -> list[Episode]:
    ts = result.ticks["ts"]
    if len(ts) == 0:
        return []
    epnl = np.nan_to_num(result.ticks["epnl"], nan=0.0)
    absq = np.abs(result.ticks["position"])
    ep = (ts - ts[0]) // episode_ns
    bounds = np.flatnonzero(np.diff(ep)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(ts)]])
    fill_ts = result.fills["exch_ts"]
    out = []
    before = 0.0
    for a, b in zip(starts, ends):
        t0 = int(ts[0] + ep[a] * episode_ns)
        t1 = t0 + episode_ns
        pnl = float(epnl[b - 1] - before)
        before = float(epnl[b - 1])
        m = float(absq[a:b].mean())
        fills = int(np.count_nonzero((fill_ts >= t0) & (fill_ts < t1)))
        out.append(Episode(start_ts=t0, end_ts=t1, epnl=pnl, map=m, rpt=_ratio(pnl, fills),
                           pnlmap=_ratio(pnl, m), n_fills=fills, ticks=int(b - a)))
    return out


def quoted_share(ts: np.ndarray, quoted: np.ndarray) -> float:
    """Share of the run's time (tick clock) during which ``quoted`` held."""
    if len(ts) < 2 or ts[-1] == ts[0]:
        return 0.0
    dt = np.diff(ts)
    return float(np.sum(dt * quoted[:-1]) / (ts[-1] - ts[0]))


def summarize(result: RunResult, episode_ns: int) -> Summary:
    if episode_ns <= 0:
        raise ValueError("episode length must be positive")
    t = result.ticks
    n = len(t["ts"])
    epnl = float(np.nan_to_num(t["epnl"][-1])) if n else 0.0
    mean_abs_q = float(t["map"][-1]) if n else 0.0
    acct = result.account
    eps = episodes(result, episode_ns)
    ep_pnl = [e.epnl for e in eps]
    sharpe = _stat(ep_pnl)
    quoted = t["quoted"]
    quoted_bid = (quoted & QUOTED_BID) != 0
    quoted_ask = (quoted & QUOTED_ASK) != 0
    return Summary(
        epnl=epnl, map=mean_abs_q, rpt=_ratio(epnl, acct.n_fills), pnlmap=_ratio(epnl, mean_abs_q),
        n_fills=acct.n_fills, volume=acct.volume, notional=acct.notional, fees=acct.fees,
        final_position=acct.position,
        sharpe=_ratio(sharpe.mean, sharpe.std) if sharpe.std else None,
        max_drawdown=max_drawdown(t["epnl"]),
        quoted_bid_share=quoted_share(t["ts"], quoted_bid), quoted_ask_share=quoted_share(t["ts"], quoted_ask),
        ticks=n, start_ts=int(t["ts"][0]) if n else 0, end_ts=int(t["ts"][-1]) if n else 0,
        episodes=EpisodeSummary(length_s=episode_ns / 1e9, count=len(eps), epnl=sharpe,
                                map=_stat([e.map for e in eps]), pnlmap=_stat([e.pnlmap for e in eps]),
                                n_fills=_stat([float(e.n_fills) for e in eps]), items=eps),
    )
