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

from analysis.results import RunResult, tick_chunks
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


class Gap(msgspec.Struct, frozen=True):
    """Local time jumped from ``start_ts`` to ``end_ts`` between two rows of the data (a night, a weekend,
    a missing file): the run went on across it with the book, orders and position it had."""

    start_ts: int
    end_ts: int
    seconds: float


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


class _Drawdown:
    """The largest fall of EPnL from a running peak, over chunks in order (the peak carries over: exact)."""

    def __init__(self):
        self.peak = None
        self.value = 0.0

    def add(self, epnl: np.ndarray) -> None:
        x = epnl[np.isfinite(epnl)]
        if len(x) == 0:
            return
        acc = np.maximum.accumulate(x)
        if self.peak is not None:
            acc = np.maximum(acc, self.peak)
        self.peak = acc[-1]
        self.value = max(self.value, float(np.max(acc - x)))


def max_drawdown(epnl: np.ndarray) -> float:
    d = _Drawdown()
    d.add(epnl)
    return d.value


def _stat(values: list[float | None]) -> Stat:
    x = np.array([v for v in values if v is not None], dtype=np.float64)
    if len(x) == 0:
        return Stat(None, None)
    return Stat(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else None)


class _Episodes:
    """Consecutive ``episode_ns`` windows of the tick clock, over chunks of ticks in order.

    An episode's rows are held until it ends, so its mean |q| is taken over its own contiguous rows
    whatever the chunks: the same floating-point sum as over the whole arrays.
    """

    def __init__(self, episode_ns: int, fill_ts: np.ndarray):
        self.episode_ns = episode_ns
        self.fill_ts = fill_ts
        self.first_ts = None
        self.before = 0.0
        self.open = None          # the current episode's rows so far: (ts, epnl, |q|)
        self.items: list[Episode] = []

    def add(self, ts: np.ndarray, epnl: np.ndarray, absq: np.ndarray) -> None:
        if len(ts) == 0:
            return
        if self.first_ts is None:
            self.first_ts = int(ts[0])
        if self.open is not None:
            ts, epnl, absq = (np.concatenate([a, b]) for a, b in zip(self.open, (ts, epnl, absq)))
        ep = (ts - self.first_ts) // self.episode_ns
        bounds = np.flatnonzero(np.diff(ep)) + 1
        a = 0
        for b in bounds:
            self._close(int(ep[a]), float(epnl[b - 1]), absq[a:b])
            a = b
        self.open = (ts[a:], epnl[a:], absq[a:])

    def finish(self) -> list[Episode]:
        if self.open is not None:
            ts, epnl, absq = self.open
            self._close(int((ts[0] - self.first_ts) // self.episode_ns), float(epnl[-1]), absq)
            self.open = None
        return self.items

    def _close(self, k: int, end_epnl: float, absq: np.ndarray) -> None:
        t0 = int(self.first_ts + k * self.episode_ns)
        t1 = t0 + self.episode_ns
        pnl = end_epnl - self.before
        self.before = end_epnl
        m = float(absq.mean())
        fills = int(np.count_nonzero((self.fill_ts >= t0) & (self.fill_ts < t1)))
        self.items.append(Episode(start_ts=t0, end_ts=t1, epnl=pnl, map=m, rpt=_ratio(pnl, fills),
                                  pnlmap=_ratio(pnl, m), n_fills=fills, ticks=len(absq)))


def episodes(result: RunResult, episode_ns: int) -> list[Episode]:
    e = _Episodes(episode_ns, result.fills["exch_ts"])
    for t in tick_chunks(result.ticks):
        e.add(t["ts"], np.nan_to_num(t["epnl"], nan=0.0), np.abs(t["position"]))
    return e.finish()


class _QuotedTime:
    """The tick-clock ns during which a mask held (each tick's value lasts to the next tick), over chunks:
    integer sums, exact however the ticks are cut."""

    def __init__(self):
        self.ns = 0
        self.first_ts = self.last_ts = self.last = None

    def add(self, ts: np.ndarray, held: np.ndarray) -> None:
        if len(ts) == 0:
            return
        if self.last_ts is not None:
            ts, held = np.concatenate([[self.last_ts], ts]), np.concatenate([[self.last], held])
        else:
            self.first_ts = int(ts[0])
        self.ns += int(np.sum(np.diff(ts) * held[:-1]))
        self.last_ts, self.last = int(ts[-1]), held[-1]

    def share(self) -> float:
        if self.last_ts is None or self.last_ts == self.first_ts:
            return 0.0
        return float(np.int64(self.ns) / np.int64(self.last_ts - self.first_ts))


def quoted_share(ts: np.ndarray, quoted: np.ndarray) -> float:
    """Share of the run's time (tick clock) during which ``quoted`` held."""
    q = _QuotedTime()
    q.add(ts, quoted)
    return q.share()


def summarize(result: RunResult, episode_ns: int) -> Summary:
    """The run's summary; a streamed run's per-tick arrays are read a chunk at a time, to the same figures."""
    if episode_ns <= 0:
        raise ValueError("episode length must be positive")
    n, first_ts, last = 0, 0, None
    drawdown, bid, ask = _Drawdown(), _QuotedTime(), _QuotedTime()
    eps = _Episodes(episode_ns, result.fills["exch_ts"])
    for t in tick_chunks(result.ticks):
        if len(t["ts"]) == 0:
            continue
        if n == 0:
            first_ts = int(t["ts"][0])
        n += len(t["ts"])
        last = t
        drawdown.add(t["epnl"])
        quoted = t["quoted"]
        bid.add(t["ts"], (quoted & QUOTED_BID) != 0)
        ask.add(t["ts"], (quoted & QUOTED_ASK) != 0)
        eps.add(t["ts"], np.nan_to_num(t["epnl"], nan=0.0), np.abs(t["position"]))
    epnl = float(np.nan_to_num(last["epnl"][-1])) if n else 0.0
    mean_abs_q = float(last["map"][-1]) if n else 0.0
    acct = result.account
    items = eps.finish() if n else []
    sharpe = _stat([e.epnl for e in items])
    return Summary(
        epnl=epnl, map=mean_abs_q, rpt=_ratio(epnl, acct.n_fills), pnlmap=_ratio(epnl, mean_abs_q),
        n_fills=acct.n_fills, volume=acct.volume, notional=acct.notional, fees=acct.fees,
        final_position=acct.position,
        sharpe=_ratio(sharpe.mean, sharpe.std) if sharpe.std else None,
        max_drawdown=drawdown.value,
        quoted_bid_share=bid.share(), quoted_ask_share=ask.share(),
        ticks=n, start_ts=first_ts, end_ts=int(last["ts"][-1]) if n else 0,
        episodes=EpisodeSummary(length_s=episode_ns / 1e9, count=len(items), epnl=sharpe,
                                map=_stat([e.map for e in items]), pnlmap=_stat([e.pnlmap for e in items]),
                                n_fills=_stat([float(e.n_fills) for e in items]), items=items),
    )
