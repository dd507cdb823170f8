"""Causal market features: one Numba implementation for training and for trading.

Training replays an event array through :func:`replay_features`; a live
strategy keeps a :class:`FeatureState` and calls :func:`update` on every
LOCAL-flagged event as it arrives (or :func:`apply_rows` on a batch), then
:func:`snapshot` at each decision (:func:`advance` does both in one call); a backtest that knows its decision times
in advance replays the engine's own arrays ahead of it with
:func:`replay_until`, the loop :func:`replay_features` runs. Both paths run the same jitted functions,
so a model is never trained on features that trading computes differently.

Only what the strategy knows is used: LOCAL-flagged rows, in row order, at
``local_ts`` (ns). A decision at time ``t`` sees exactly the rows with
``local_ts <= t``. The book is an L2 price-level book over a preset tick range
(dense arrays, like the engine's), fed by DEPTH, DEPTH_SNAPSHOT, DEPTH_BBO and
DEPTH_CLEAR; a bid at or through the best ask hides the crossed asks (the best
ask moves to the first non-empty ask above it; their quantities are kept and
count again once the bid retreats, as in hftbacktest), and vice versa. Levels
outside the range are ignored. TRADE rows feed
the trade flow. Every other kind (L3 messages, trading status) is ignored.

Definitions, with ``m(u)`` the mid after the last LOCAL row with
``local_ts <= u`` (NaN while either side of the book is empty), ``bb``/``ba``
the best bid/ask in ticks and ``now`` the decision time. No column but ``mid``
carries a price level or a raw size, so a model trained on one day reads
another day at another price level, and an instrument of similar
microstructure, on the same scale: prices enter as ticks and log returns,
sizes as logs or ratios. In schema order:

- ``mid``: ``(bb + ba) / 2 * tick_size``, in price units; NaN if one-sided.
  It is carried for the targets and the strategy's quotes, and is **not a
  model input** (:data:`CONTEXT_COLUMNS`; its normalized input is 0).
- ``spread_ticks``: ``ba - bb``; NaN if one-sided.
- ``imbalance_N``: ``(B - A) / (B + A)``, where B (A) is the total quantity on
  the N best non-empty bid (ask) levels; NaN when B + A = 0.
- ``log_bid_depth_N``, ``log_ask_depth_N``: ``ln(1 + B)`` and ``ln(1 + A)``.
- per flow window T, over TRADE rows with ``local_ts`` in ``(now - T, now]``:
  ``flow_imbalance_T`` = sum of qty x side (+1 BUY-flagged aggressor, -1
  SELL, 0 unflagged) over the sum of qty (0 without trades), in [-1, 1];
  ``log_flow_volume_T`` = ``ln(1 + sum of qty)``; ``log_trade_count_T`` =
  ``ln(1 + number of TRADE rows)``.
- per return horizon h: ``log_return_h`` = ``ln(m(now) / m(now - h))``.
- per volatility window V: ``rv_V`` = realized volatility of the mid sampled
  every ``rv_step`` s back from now: ``sqrt(sum_{k=0}^{K-1} (ln m(now - k s) -
  ln m(now - (k+1) s))^2)`` with ``K = V / s``; not annualized.
- per spread window S (none by default): ``mean_spread_S`` = the mean of the
  spread in ticks sampled every ``rv_step`` s back from now,
  ``(1/K) sum_{k=0}^{K-1} spread(now - k s)`` with ``K = S / s``; and
  ``log_spread_ratio_S`` = ``ln(spread_ticks / mean_spread_S)``.

With spread windows the spread enters a model relative to its recent level
only: ``spread_ticks`` and ``mean_spread_S`` become context columns (carried,
not model inputs) and ``log_spread_ratio_S`` is the input. The spread's level
drifts within a day (on the AAPL day of the study, the test split's mean
spread is 11.0 ticks, the train split's 16.4), and a model that reads the
level learns the train period's. The level is what a model's spread target is
relative to (``cmm_models.dataset.target_bases``).

Any term that needs ``m(u)`` where it is NaN makes the feature NaN (the first
``max(h, V, S)`` of a session, a one-sided book). History is kept in two rings of
``ring_capacity`` (a power of two) entries: one per distinct ``local_ts`` at which the mid
or the spread changed, one per distinct ``local_ts`` with trades. A window reaching past the
oldest kept entry gives NaN rather than a silently truncated value.

:class:`FeatureSchema` names the columns and holds every parameter; bump
``FEATURE_VERSION`` on any change to a definition, so a model bundle trained on
other features is refused instead of being fed the wrong inputs.
"""
from __future__ import annotations

from typing import Annotated, NamedTuple

import msgspec
import numba as nb
import numpy as np

from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK, LOCAL, SELL, TRADE

FEATURE_VERSION = 2         # 2: no raw size or price level among the model inputs
SECOND = 1_000_000_000
MAX_TICK_RANGE = 1 << 26          # 64M ticks: 1 GiB of book arrays; larger means a bad price

# Columns computed for the targets and the quotes, never fed to a model: a price level does not travel.
CONTEXT_COLUMNS = ("mid",)

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Durations = Annotated[tuple[PositiveInt, ...], msgspec.Meta(min_length=1)]

NO_BID = np.iinfo(np.int64).min
NO_ASK = np.iinfo(np.int64).max

# FeatureState.ints slots: the book's best ticks and range, entries ever written to each ring,
# parameters, then the flow windows, return horizons, rv and spread windows from slot WINDOWS on.
(BEST_BID, BEST_ASK, LB, UB, N_MIDS, N_TRADES, DEPTH_LEVELS, RV_STEP, N_FLOW, N_HORIZONS, N_RV, N_SPREAD,
 WINDOWS) = range(13)
# Rows of FeatureState.depth, .ring_ts and .mid_ring.
BID, ASK = 0, 1
MIDS, TRADES = 0, 1
PX, LOG, SPREAD = 0, 1, 2
# Columns of the trade ring's running totals.
CUM_SIGNED, CUM_VOLUME, CUM_COUNT = 0, 1, 2


def duration_name(ns: int) -> str:
    """A duration as the shortest exact label: 60s, 1500ms, 250us, 7ns."""
    for unit, size in (("s", SECOND), ("ms", 1_000_000), ("us", 1_000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


class FeatureParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every parameter of the feature definitions but the tick size, which comes from the data (durations in ns).

    Declared once: a training config's ``[features]`` table and a CMM
    strategy's ``features`` parameter are this Struct, and a
    :class:`FeatureSchema` is it plus the tick size.
    """

    depth_levels: PositiveInt = 5
    flow_windows_ns: Durations = (10 * SECOND,)
    return_horizons_ns: Durations = (1 * SECOND, 10 * SECOND, 60 * SECOND)
    rv_windows_ns: Durations = (60 * SECOND, 300 * SECOND)
    rv_step_ns: PositiveInt = 1 * SECOND
    ring_capacity: PositiveInt = 1 << 16
    # Added after version 2 with no column by default, so a schema written without it reads as it was.
    spread_windows_ns: tuple[PositiveInt, ...] = ()

    def __post_init__(self):
        if self.ring_capacity & (self.ring_capacity - 1):
            raise ValueError(f"ring_capacity {self.ring_capacity} is not a power of two")
        for kind, windows in (("rv", self.rv_windows_ns), ("spread", self.spread_windows_ns)):
            for window in windows:
                if window % self.rv_step_ns:
                    raise ValueError(f"{kind} window {window} ns is not a multiple of rv_step_ns {self.rv_step_ns}")

    def schema(self, tick_size: float) -> "FeatureSchema":
        """The schema these parameters define for an instrument of ``tick_size``."""
        return FeatureSchema(tick_size=tick_size, **msgspec.structs.asdict(self))


class FeatureSchema(FeatureParams, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The feature columns and every parameter that defines them: :class:`FeatureParams` and the tick size.

    ``names`` is derived from the parameters; it is stored so a reader of a
    bundle sees the columns, and a stored list that does not match is refused.
    """

    tick_size: PositiveFloat
    version: int = FEATURE_VERSION
    names: tuple[str, ...] = ()

    def __post_init__(self):
        if self.version != FEATURE_VERSION:
            raise ValueError(f"feature schema version {self.version}, this code computes version "
                             f"{FEATURE_VERSION}: retrain, or use the code the model was trained with")
        super().__post_init__()
        expected = self._derived_names()
        if not self.names:
            msgspec.structs.force_setattr(self, "names", expected)
        elif tuple(self.names) != expected:
            raise ValueError(f"feature names {list(self.names)} do not match the parameters, "
                             f"which give {list(expected)}")

    def _derived_names(self) -> tuple[str, ...]:
        n = self.depth_levels
        names = ["mid", "spread_ticks", f"imbalance_{n}", f"log_bid_depth_{n}", f"log_ask_depth_{n}"]
        for w in self.flow_windows_ns:
            label = duration_name(w)
            names += [f"flow_imbalance_{label}", f"log_flow_volume_{label}", f"log_trade_count_{label}"]
        names += [f"log_return_{duration_name(h)}" for h in self.return_horizons_ns]
        names += [f"rv_{duration_name(v)}" for v in self.rv_windows_ns]
        for v in self.spread_windows_ns:
            names += [f"mean_spread_{duration_name(v)}", f"log_spread_ratio_{duration_name(v)}"]
        return tuple(names)

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def context_columns(self) -> tuple[str, ...]:
        """The columns carried but not read by a model: the price level, and with spread windows the
        spread's level (its ratio to its recent mean is read instead; module docstring)."""
        if not self.spread_windows_ns:
            return CONTEXT_COLUMNS
        return (*CONTEXT_COLUMNS, "spread_ticks", *(f"mean_spread_{duration_name(v)}" for v in self.spread_windows_ns))

    @property
    def model_inputs(self) -> np.ndarray:
        """bool [F]: the columns a model reads; the :meth:`context_columns` are not."""
        context = self.context_columns
        return np.array([name not in context for name in self.names])

    def index(self, name: str) -> int:
        """The column of feature ``name``; KeyError naming the columns when absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no feature {name!r}; the schema has {list(self.names)}") from None

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> "FeatureSchema":
        return msgspec.json.decode(raw, type=cls)


class FeatureState(NamedTuple):
    """Everything :func:`update` and :func:`snapshot` read and write, as numpy arrays.

    Few arrays, because calling a jitted function from Python costs about 0.4 us
    per array in the state (a live strategy calls per event or per decision).
    """

    depth: np.ndarray         # f8[2, ub - lb + 1]: bid, ask quantity at tick lb + i
    ints: np.ndarray          # i8: the slots named above
    tick_size: np.ndarray     # f8[1]
    ring_ts: np.ndarray       # i8[2, capacity]: local_ts at which the mid changed; with trades
    mid_ring: np.ndarray      # f8[3, capacity]: the mid from then on (NaN: one-sided), its log, the spread in ticks
    trade_cum: np.ndarray     # f8[capacity, 3]: signed volume, volume, count of all trades up to then


def new_state(schema: FeatureSchema, lb_tick: int, ub_tick: int) -> FeatureState:
    """An empty state whose book covers ticks ``lb_tick..ub_tick``; levels outside are ignored.

    Replay takes the range from the events (:func:`tick_range`); live trading
    must choose one wide enough for the session (e.g. the opening price +- 20%).
    """
    size = int(ub_tick) - int(lb_tick) + 1
    if size <= 0 or size > MAX_TICK_RANGE:
        raise ValueError(f"tick range {lb_tick}..{ub_tick} holds {size} ticks; it must hold 1..{MAX_TICK_RANGE}")
    cap = schema.ring_capacity
    ints = [NO_BID, NO_ASK, lb_tick, ub_tick, 0, 0, schema.depth_levels, schema.rv_step_ns,
            len(schema.flow_windows_ns), len(schema.return_horizons_ns), len(schema.rv_windows_ns),
            len(schema.spread_windows_ns)]
    ints += [*schema.flow_windows_ns, *schema.return_horizons_ns, *schema.rv_windows_ns, *schema.spread_windows_ns]
    return FeatureState(
        depth=np.zeros((2, size)), ints=np.array(ints, dtype=np.int64), tick_size=np.array([schema.tick_size]),
        ring_ts=np.zeros((2, cap), dtype=np.int64), mid_ring=np.full((3, cap), np.nan),
        trade_cum=np.zeros((cap, 3)),
    )


def tick_range(events: np.ndarray, tick_size: float) -> tuple[int, int]:
    """The lowest and highest tick of any LOCAL book row: the range replay needs."""
    kind = events["ev"] & KIND_MASK
    book_row = (kind == DEPTH) | (kind == DEPTH_SNAPSHOT) | (kind == DEPTH_BBO)
    rows = book_row & ((events["ev"] & LOCAL) != 0)
    if not rows.any():
        return 0, 0
    ticks = np.round(events["px"][rows] / tick_size)
    return int(ticks.min()), int(ticks.max())


# ---- the book ------------------------------------------------------------------------------

@nb.njit(cache=True)
def _next_bid_below(bid, tick, lb):
    t = min(tick, lb + bid.size) - 1
    while t >= lb:
        if bid[t - lb] > 0.0:
            return t
        t -= 1
    return NO_BID


@nb.njit(cache=True)
def _next_ask_above(ask, tick, lb):
    t = max(tick, lb - 1) + 1
    ub = lb + ask.size - 1
    while t <= ub:
        if ask[t - lb] > 0.0:
            return t
        t += 1
    return NO_ASK


@nb.njit(cache=True)
def _set_bid(s, tick, qty):
    lb = s.ints[LB]
    if tick < lb or tick > s.ints[UB]:
        return
    s.depth[BID, tick - lb] = qty
    if qty > 0.0:
        if tick > s.ints[BEST_BID]:
            s.ints[BEST_BID] = tick
            if tick >= s.ints[BEST_ASK]:
                s.ints[BEST_ASK] = _next_ask_above(s.depth[ASK], tick, lb)
    elif tick == s.ints[BEST_BID]:
        s.ints[BEST_BID] = _next_bid_below(s.depth[BID], tick, lb)


@nb.njit(cache=True)
def _set_ask(s, tick, qty):
    lb = s.ints[LB]
    if tick < lb or tick > s.ints[UB]:
        return
    s.depth[ASK, tick - lb] = qty
    if qty > 0.0:
        if tick < s.ints[BEST_ASK]:
            s.ints[BEST_ASK] = tick
            if tick <= s.ints[BEST_BID]:
                s.ints[BEST_BID] = _next_bid_below(s.depth[BID], tick, lb)
    elif tick == s.ints[BEST_ASK]:
        s.ints[BEST_ASK] = _next_ask_above(s.depth[ASK], tick, lb)


@nb.njit(cache=True)
def _clear(s, side, upto):
    """DEPTH_CLEAR: bids from the best down to ``upto`` (side 1), asks up to it (-1), or all (0)."""
    lb, ub = s.ints[LB], s.ints[UB]
    if side == 1:
        if s.ints[BEST_BID] != NO_BID:
            for t in range(max(upto, lb), min(s.ints[BEST_BID], ub) + 1):
                s.depth[BID, t - lb] = 0.0
        s.ints[BEST_BID] = _next_bid_below(s.depth[BID], upto, lb)
    elif side == -1:
        if s.ints[BEST_ASK] != NO_ASK:
            for t in range(max(s.ints[BEST_ASK], lb), min(upto, ub) + 1):
                s.depth[ASK, t - lb] = 0.0
        s.ints[BEST_ASK] = _next_ask_above(s.depth[ASK], upto, lb)
    else:
        s.depth[:] = 0.0
        s.ints[BEST_BID] = NO_BID
        s.ints[BEST_ASK] = NO_ASK


@nb.njit(cache=True)
def _book_mid(s):
    bb, ba = s.ints[BEST_BID], s.ints[BEST_ASK]
    if bb == NO_BID or ba == NO_ASK:
        return np.nan
    return (bb + ba) * 0.5 * s.tick_size[0]


# ---- the rings -----------------------------------------------------------------------------

@nb.njit(cache=True)
def _record_mid(s, ts):
    """Append the book's mid and spread to the mid ring if either changed; one entry per local_ts."""
    mid = _book_mid(s)
    spread = np.nan if np.isnan(mid) else np.float64(s.ints[BEST_ASK] - s.ints[BEST_BID])
    cap = s.ring_ts.shape[1]
    n = s.ints[N_MIDS]
    last = s.mid_ring[PX, (n - 1) & (cap - 1)] if n > 0 else np.nan
    last_spread = s.mid_ring[SPREAD, (n - 1) & (cap - 1)] if n > 0 else np.nan
    if (mid == last or (np.isnan(mid) and np.isnan(last))) and \
            (spread == last_spread or (np.isnan(spread) and np.isnan(last_spread))):
        return
    if n > 0 and s.ring_ts[MIDS, (n - 1) & (cap - 1)] == ts:
        p = (n - 1) & (cap - 1)
    else:
        p = n & (cap - 1)
        s.ring_ts[MIDS, p] = ts
        s.ints[N_MIDS] = n + 1
    s.mid_ring[PX, p] = mid
    s.mid_ring[LOG, p] = np.log(mid)
    s.mid_ring[SPREAD, p] = spread


@nb.njit(cache=True)
def _record_trade(s, ts, signed_qty, qty):
    cap = s.ring_ts.shape[1]
    n = s.ints[N_TRADES]
    if n > 0:
        p = (n - 1) & (cap - 1)
        signed_total = s.trade_cum[p, CUM_SIGNED] + signed_qty
        volume_total = s.trade_cum[p, CUM_VOLUME] + qty
        count_total = s.trade_cum[p, CUM_COUNT] + 1.0
        if s.ring_ts[TRADES, p] == ts:
            s.trade_cum[p, CUM_SIGNED] = signed_total
            s.trade_cum[p, CUM_VOLUME] = volume_total
            s.trade_cum[p, CUM_COUNT] = count_total
            return
    else:
        signed_total, volume_total, count_total = signed_qty, qty, 1.0
    p = n & (cap - 1)
    s.ring_ts[TRADES, p] = ts
    s.trade_cum[p, CUM_SIGNED] = signed_total
    s.trade_cum[p, CUM_VOLUME] = volume_total
    s.trade_cum[p, CUM_COUNT] = count_total
    s.ints[N_TRADES] = n + 1


@nb.njit(cache=True)
def _last_at_or_before(ring_ts, n, u):
    """Logical index of the last ring entry with ts <= u; -1 if all kept entries are later
    and none was overwritten, -2 if the answer was overwritten (unknown)."""
    cap = ring_ts.size
    first = max(0, n - cap)
    lo, hi = first, n          # answer in [first - 1, n - 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if ring_ts[mid & (cap - 1)] <= u:
            lo = mid + 1
        else:
            hi = mid
    if lo > first:
        return lo - 1
    return -1 if first == 0 else -2


@nb.njit(cache=True)
def _mid_at(s, u):
    n = s.ints[N_MIDS]
    i = _last_at_or_before(s.ring_ts[MIDS], n, u)
    if i < 0:
        return np.nan
    return s.mid_ring[PX, i & (s.ring_ts.shape[1] - 1)]


@nb.njit(cache=True)
def _realized_vol(s, now, window, step):
    """Sampled realized volatility: walks the mid ring back once for all K + 1 sample times."""
    cap = s.ring_ts.shape[1]
    n = s.ints[N_MIDS]
    first = max(0, n - cap)
    i = n - 1
    total = 0.0
    later = np.nan
    for k in range(window // step + 1):
        u = now - k * step
        while i >= first and s.ring_ts[MIDS, i & (cap - 1)] > u:
            i -= 1
        if i < first:
            return np.nan      # before the first mid, or overwritten history
        log_mid = s.mid_ring[LOG, i & (cap - 1)]
        if k > 0:
            r = later - log_mid
            total += r * r
        later = log_mid
    return np.sqrt(total)      # NaN if any sampled mid was NaN


@nb.njit(cache=True)
def _mean_spread(s, now, window, step):
    """The spread sampled every ``step`` back from ``now``, K = window / step samples, averaged; one walk back."""
    cap = s.ring_ts.shape[1]
    n = s.ints[N_MIDS]
    first = max(0, n - cap)
    i = n - 1
    total = 0.0
    count = window // step
    for k in range(count):
        u = now - k * step
        while i >= first and s.ring_ts[MIDS, i & (cap - 1)] > u:
            i -= 1
        if i < first:
            return np.nan      # before the first book, or overwritten history
        total += s.mid_ring[SPREAD, i & (cap - 1)]
    return total / count       # NaN if any sampled spread was NaN


# ---- the public kernels --------------------------------------------------------------------

@nb.njit(cache=True)
def update(s, ev, local_ts, px, qty):
    """Apply one LOCAL-flagged event (fields of the event record) to the state."""
    kind = ev & KIND_MASK
    side = 1 if ev & BUY else (-1 if ev & SELL else 0)
    if kind == TRADE:
        _record_trade(s, local_ts, side * qty, qty)
        return
    if kind == DEPTH_CLEAR:
        _clear(s, side, np.int64(np.round(px / s.tick_size[0])))
    elif kind == DEPTH or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO:
        tick = np.int64(np.round(px / s.tick_size[0]))
        if side == 1:
            if kind == DEPTH_BBO:       # a BBO feed: levels better than it are gone
                while s.ints[BEST_BID] != NO_BID and s.ints[BEST_BID] > tick:
                    _set_bid(s, s.ints[BEST_BID], 0.0)
            _set_bid(s, tick, qty)
        elif side == -1:
            if kind == DEPTH_BBO:
                while s.ints[BEST_ASK] != NO_ASK and s.ints[BEST_ASK] < tick:
                    _set_ask(s, s.ints[BEST_ASK], 0.0)
            _set_ask(s, tick, qty)
    else:
        return
    _record_mid(s, local_ts)


@nb.njit(cache=True)
def apply_rows(s, ev, local_ts, px, qty):
    """:func:`update` for every LOCAL-flagged row of a batch, in order (no Python per row)."""
    for i in range(ev.size):
        if ev[i] & LOCAL:
            update(s, ev[i], local_ts[i], px[i], qty[i])


@nb.njit(cache=True)
def snapshot(s, now, out):
    """Write the feature vector at decision time ``now`` into ``out`` (schema order).

    ``now`` must be at or after the local_ts of every row applied so far, and
    every LOCAL row with local_ts <= now must have been applied.
    """
    bb, ba, lb = s.ints[BEST_BID], s.ints[BEST_ASK], s.ints[LB]
    mid = _book_mid(s)
    out[0] = mid
    out[1] = np.nan if np.isnan(mid) else np.float64(ba - bb)

    levels = s.ints[DEPTH_LEVELS]
    bid_depth = 0.0
    found = 0
    t = bb
    while found < levels and t != NO_BID:
        bid_depth += s.depth[BID, t - lb]
        found += 1
        t = _next_bid_below(s.depth[BID], t, lb)
    ask_depth = 0.0
    found = 0
    t = ba
    while found < levels and t != NO_ASK:
        ask_depth += s.depth[ASK, t - lb]
        found += 1
        t = _next_ask_above(s.depth[ASK], t, lb)
    total = bid_depth + ask_depth
    out[2] = (bid_depth - ask_depth) / total if total > 0.0 else np.nan
    out[3] = np.log1p(bid_depth)
    out[4] = np.log1p(ask_depth)

    j = 5
    n = s.ints[N_TRADES]
    cap = s.ring_ts.shape[1]
    slot = WINDOWS
    for w in range(s.ints[N_FLOW]):
        signed = volume = count = 0.0
        if n > 0:
            i = _last_at_or_before(s.ring_ts[TRADES], n, now - s.ints[slot])
            latest = (n - 1) & (cap - 1)
            if i == -2:                   # the window reaches past the kept history
                signed = volume = count = np.nan
            else:
                signed, volume, count = (s.trade_cum[latest, CUM_SIGNED], s.trade_cum[latest, CUM_VOLUME],
                                         s.trade_cum[latest, CUM_COUNT])
                if i >= 0:
                    p = i & (cap - 1)
                    signed -= s.trade_cum[p, CUM_SIGNED]
                    volume -= s.trade_cum[p, CUM_VOLUME]
                    count -= s.trade_cum[p, CUM_COUNT]
                    if count < 0.5:           # no trade in the window: exactly 0, not a rounding residue
                        signed = volume = 0.0
        out[j] = signed / volume if volume > 0.0 else (np.nan if np.isnan(volume) else 0.0)
        out[j + 1] = np.log1p(volume)
        out[j + 2] = np.log1p(count)
        j += 3
        slot += 1

    for h in range(s.ints[N_HORIZONS]):
        out[j] = np.log(mid / _mid_at(s, now - s.ints[slot]))
        j += 1
        slot += 1

    for v in range(s.ints[N_RV]):
        out[j] = _realized_vol(s, now, s.ints[slot], s.ints[RV_STEP])
        j += 1
        slot += 1

    for v in range(s.ints[N_SPREAD]):
        out[j] = _mean_spread(s, now, s.ints[slot], s.ints[RV_STEP])
        out[j + 1] = np.log(out[1] / out[j])      # NaN when either is
        j += 2
        slot += 1


@nb.njit(cache=True)
def advance(s, ev, local_ts, px, qty, now, out):
    """:func:`apply_rows` then :func:`snapshot` at ``now``: a live decision's features in one call."""
    apply_rows(s, ev, local_ts, px, qty)
    snapshot(s, now, out)


@nb.njit(cache=True)
def replay_until(s, ev, local_ts, px, qty, row, decision_ts, out):
    """From ``row`` on: for each decision time, :func:`update` with every LOCAL row up to the first one
    later than it (rows without LOCAL are skipped), then :func:`snapshot` into ``out``; returns the next row.

    The engine's local stream stops at that same row at a timer wake-up, so a
    strategy that knows its wake-ups in advance (CMM's batched inference)
    gets here the features it would compute at each one, from the whole
    replay's arrays.
    """
    n_rows = ev.size
    for d in range(decision_ts.size):
        now = decision_ts[d]
        while row < n_rows:
            if ev[row] & LOCAL:
                if local_ts[row] > now:
                    break
                update(s, ev[row], local_ts[row], px[row], qty[row])
            row += 1
        snapshot(s, now, out[d])
    return row


def replay_features(events: np.ndarray, schema: FeatureSchema, decision_ts: np.ndarray) -> np.ndarray:
    """Features at each decision time, float64 ``[len(decision_ts), n_features]``.

    Runs :func:`update` over the LOCAL rows in row order and :func:`snapshot`
    at each decision (which sees the rows with ``local_ts <= t``), in one
    jitted loop. LOCAL rows must have non-decreasing local_ts (as
    ``feeds.read`` and ``feeds.load`` return them); decisions must be sorted.
    """
    decision_ts = np.ascontiguousarray(decision_ts, dtype=np.int64)
    if decision_ts.size > 1 and (np.diff(decision_ts) < 0).any():
        raise ValueError("decision times must be sorted")
    local = (events["ev"] & LOCAL) != 0
    rows = events[local]
    if rows.size > 1 and (np.diff(rows["local_ts"]) < 0).any():
        raise ValueError("LOCAL rows must be in local_ts order")
    state = new_state(schema, *tick_range(rows, schema.tick_size))
    out = np.empty((decision_ts.size, schema.n_features))
    replay_until(state, rows["ev"], rows["local_ts"], rows["px"], rows["qty"], 0, decision_ts, out)
    return out
