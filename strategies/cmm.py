"""CMMStrategy: causal features -> volatility regime -> the bundle's experts -> a trapezoidal quote ladder.

At each timer wake-up (the model was trained on a fixed decision grid, so the
strategy decides on its timer; the events other wake-ups saw are applied at
the next decision) it runs six hooks, each a method a variant may override:

1. :meth:`~CMMStrategy.features`: apply the market events seen since the last
   decision (``ctx.new_events()``) to an incremental :mod:`bundle.features`
   state, the code the model was trained on, and take the feature vector now;
2. :meth:`~CMMStrategy.classify_regime`: the bundle's frozen volatility
   thresholds applied to the regime feature (-1 while it is not finite);
3. :meth:`~CMMStrategy.predict`: one call to the TorchScript model, which
   routes to the regime's experts and weights them (Hájek) inside; None while
   a feature is not finite, as no training sample had one;
4. :meth:`~CMMStrategy.aggregate`: the model's normalized output in market
   units: predicted mid ``m = mid + mid_change_ticks * tick``, spread ``s``
   (ticks, clipped to ``[min_spread_ticks, max_spread_ticks]``) and traded
   volume ``V = exp(log1p_volume) - 1`` (at least 0) over the model's horizon
   (the model predicts the log, so ``V`` is nearer the median than the mean);
5. :meth:`~CMMStrategy.build_ladder`: the trapezoidal ladder of
   :func:`strategies.ladder.build` (levels, sizes ``rho * V`` per side,
   inventory skew, post-only);
6. :meth:`~CMMStrategy.risk_check`: :func:`strategies.ladder.limit`, the hard
   position limit and the order count.

The orders then change only by the difference (:func:`strategies.ladder.diff`):
nothing is sent when the ladder is what already rests. With no prediction the
ladder is empty, so resting quotes are withdrawn.

Live, a decision delays its orders by all of its work, so a decision is two
jitted calls around the model call: steps 1-2 with the model's normalized
input (:func:`strategies.cmm_kernel.inputs_now`), then steps 4-6 and the
order diff (:func:`strategies.cmm_kernel.decide_on`), whose messages go out
in the same call where the venue runs it on its engine (``ctx.on_engine``: a
backtest's and paper trading's; the strategy process of ``--transport zmq``
sends them after, through ``send_messages``). A variant that overrides
``features``, ``classify_regime`` or ``predict`` runs those hooks one by one,
and one that overrides ``aggregate``, ``build_ladder``, ``risk_check`` or
``requote`` runs those, over the same kernels, with the same results to the
bit. Each decision's clock after each stage is kept (:data:`MARKS`,
:meth:`~CMMStrategy.stage_marks`) for paper trading's breakdown of a reaction.

Steps 1-3 read market data only, so with a timer-only wake policy they can run
ahead of the engine for many decisions at once (``inference``: ``"auto"``, the
default, batches whenever it can and runs per tick otherwise; ``"batched"``
insists, and a run where it cannot apply is refused with one line; see
:mod:`strategies.cmm_batch`, which gives the per-tick path's results to the
bit). A variant that overrides ``features``, ``classify_regime`` or
``predict`` runs per tick, since its hooks may read more than the market.
Batched and fused, with a declared decision time, a backtest runs each batch's
wake-ups in one jitted call that steps the engine itself
(:meth:`~CMMStrategy.run_timer_wakeups`), which leaves no Python between
two decisions; a variant that overrides ``on_timer`` is woken one by one.

The decision time is measured by default (``compute_ns = None``): the engine
holds the wake-up's orders for the wall time the callbacks took, so a slower
model quotes later (batched: each decision's own work plus its share of its
batch). Each decision's own wall time (features through the order
messages) is kept; :meth:`~CMMStrategy.decision_latency_ns` gives it to the
runner, which reports p50 and p99, and :meth:`~CMMStrategy.decision_latency_parts_ns`
its split into the model call and the rest.

Each decision is also recorded (:meth:`~CMMStrategy.decision_record`: time,
mid, prediction, regime, inner quotes, expert weights) after its time is
taken, so recording costs the simulation nothing; the runner writes it to
``decisions.npz`` for the comparison report's plots.

Every decision's normalized features are checked against the training data:
its largest |z| (in training standard deviations, over the model's input
columns) above ``max_abs_z`` makes it *out of range*. Such decisions are
counted, the first one is logged on stderr with the feature that is furthest
out, and ``out_of_range = "withdraw"`` pulls the quotes on them (the default,
``"quote"``, keeps quoting and only counts). A decision that quotes nothing
has one reason (:data:`NO_QUOTE_REASONS`): no finite features yet (warm-up), out
of range (withdrawn), or an empty ladder (a predicted volume under one lot,
or the position limit). The decision record carries both per decision, the
backtest's ``metrics.json`` their counts (:func:`quote_stats`), and the run
ends with one line on stderr when any decision quoted nothing.

The bundle is loaded and verified at start and refused, with one line, when
its ``variant`` (``model.json``) is not one the strategy runs (the named
variants of :mod:`strategies.cmm_variants` each take their own; ``cmm``
takes any MoE bundle), when its targets are not :data:`bundle.manifest.TARGET_NAMES`,
or when its feature definitions are not the ones this strategy computes
(``features`` in the params). The tick size may differ: every model input is
in ticks, logs or ratios, so a bundle trained on one instrument runs on
another of similar microstructure. The feature book covers the first
price seen (the local mid, else the first priced event) +- ``book_band`` of
it; levels outside are ignored, so a live session must choose a band wide
enough for its day.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Literal, NamedTuple

import msgspec
import numpy as np

from bundle.loader import Bundle, load_bundle
from bundle.manifest import TARGET_NAMES, Variant
from common.errors import DataError
from engine.views import WOKE_END
from feeds.events import DEPTH, DEPTH_BBO, DEPTH_SNAPSHOT, KIND_MASK, LOCAL, TRADE
from bundle.features import SECOND, FeatureParams, FeatureSchema, advance, new_state, snapshot
from common.config import ConfigError

from strategies import cmm_kernel, ladder
from strategies.api import Context, WakePolicy
from strategies.base import Strategy
from strategies.cmm_batch import Ahead
from strategies.params import ConfigPath, Fraction, NonNegative, NonNegativeInt, Positive, PositiveInt

_PRICED = np.array([DEPTH, TRADE, DEPTH_SNAPSHOT, DEPTH_BBO], dtype=np.uint64)

# Why a decision quoted nothing, by its code in the decision record's ``no_quote`` (0: it quoted).
QUOTED = 0
NO_QUOTE_REASONS = {1: "warm_up", 2: "out_of_range", 3: "empty_ladder"}
WARM_UP, OUT_OF_RANGE, EMPTY_LADDER = 1, 2, 3


# The decision record's columns (CMMStrategy.decision_record) and their types, beside the expert weights.
RECORD_FIELDS = ("ts", "mid", "pred_mid", "pred_spread_ticks", "pred_volume", "regime", "bid", "ask", "max_abs_z",
                 "out_of_range", "no_quote")
RECORD_TYPES = tuple({"ts": np.int64, "regime": np.int64, "out_of_range": bool, "no_quote": np.int8}.get(
    name, np.float64) for name in RECORD_FIELDS)

# A decision's clock (perf_counter_ns, CMMStrategy.marks): its start, then the end of each stage. Batched,
# features, regime and model are one stage (taken from the batch); per tick, features and regime are one
# stage unless a variant overrides a hook of steps 1-3, and "model" is the model call alone. "ladder" is
# the aggregate, the ladder, the risk cut and the order diff, and on an engine the messages too; "send"
# the messages where they go out after it; "record" the decision record.
MARKS = ("start", "features", "regime", "model", "ladder", "send", "record")
START, FEATURES, REGIME, MODEL, LADDER, SEND, RECORD = range(len(MARKS))


class CMMParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bundle: ConfigPath                     # the model bundle directory, relative to the config
    features: FeatureParams = FeatureParams()  # must match the bundle's, or the run is refused
    levels: PositiveInt = 3                # K quotes per side
    level_spacing_ticks: PositiveInt = 1   # between consecutive levels
    size_slope: float = 0.0                # level k gets a share ~ 1 + slope * k (k = 0 innermost)
    rho: NonNegative = 0.5                 # each side quotes rho * V_hat in total
    min_lots: NonNegativeInt = 0           # ... but at least this many lots (0: V_hat alone may empty the ladder)
    min_spread_ticks: Positive = 1.0       # the predicted spread is clipped to [min, max]
    max_spread_ticks: Positive = 500.0
    skew_ticks: NonNegative = 0.0          # price shift at |position| = max_position, against the position
    max_position: Positive = 100.0         # hard limit on |position| if every quote of a side filled
    max_orders: PositiveInt = 6            # quotes kept at once, innermost first
    book_band: Fraction = 0.2              # the feature book spans the first price +- this share of it
    torch_threads: PositiveInt = 1         # threads for the model (latency measured as the bundle's teacher)
    inference: Literal["auto", "per_tick", "batched"] = "auto"   # auto: batched where it applies
    batch: PositiveInt = 1024              # decisions whose features and model outputs are computed at once
    max_abs_z: Positive = 8.0              # a decision with a normalized input beyond this is out of range
    out_of_range: Literal["quote", "withdraw"] = "quote"   # what an out-of-range decision does (it is counted)

    def __post_init__(self):
        if 1.0 + self.size_slope * (self.levels - 1) <= 0:
            raise ValueError(f"size_slope {self.size_slope} gives level {self.levels - 1} no size")
        if self.max_spread_ticks < self.min_spread_ticks:
            raise ValueError("max_spread_ticks is below min_spread_ticks")


class Prediction(NamedTuple):
    """One decision's view of the next horizon, in market units."""

    mid: float                 # predicted mid price (m_hat)
    spread_ticks: float        # predicted spread (s_hat)
    volume: float              # predicted traded volume (V_hat)
    regime: int
    weights: np.ndarray        # the experts' weights in the aggregate


def check_schema(bundle: Bundle, schema: FeatureSchema, path: str) -> None:
    """DataError, one line naming the first differing definition, unless the bundle's features are ``schema``."""
    if msgspec.structs.replace(bundle.schema, tick_size=schema.tick_size) == schema:
        return
    for field in FeatureParams.__struct_fields__:       # the tick size may differ: inputs are in ticks
        ours, theirs = getattr(schema, field), getattr(bundle.schema, field)
        if ours != theirs:
            raise DataError(f"the bundle's model was trained on {field} = {theirs}, the strategy computes "
                            f"{ours}: the feature schemas differ", path=f"{path}/feature_schema.json",
                            field=field)


def check_targets(bundle: Bundle, path: str) -> None:
    """DataError, one line, unless the bundle predicts :data:`TARGET_NAMES` (in that order)."""
    found = tuple(bundle.layout.get("target_names", ()))
    if found != TARGET_NAMES:
        raise DataError(f"the bundle predicts {list(found)}; this strategy reads {list(TARGET_NAMES)}: retrain it",
                        path=f"{path}/model.json", field="target_names")


def quote_stats(record: dict[str, np.ndarray] | None) -> dict:
    """From a CMM decision record: the decisions, how many were out of range and their share, and the
    count of each reason a decision quoted nothing (:data:`NO_QUOTE_REASONS`); {} for another record."""
    if not record or "no_quote" not in record:
        return {}
    reasons = np.asarray(record["no_quote"])
    n = int(reasons.size)
    out_of_range = int(np.count_nonzero(np.asarray(record["out_of_range"])))
    return {"decisions": n, "out_of_range_decisions": out_of_range,
            "out_of_range_share": out_of_range / n if n else 0.0,
            "no_quote": {name: int(np.count_nonzero(reasons == code)) for code, name in NO_QUOTE_REASONS.items()}}


def check_variant(bundle: Bundle, accepted: tuple[Variant, ...] | None, path: str) -> None:
    """DataError, one line, unless the bundle's ``variant`` is accepted (None: any MoE variant, not the teacher)."""
    if (bundle.kind == "moe") if accepted is None else (bundle.variant in accepted):
        return
    wanted = " or ".join(repr(str(v)) for v in accepted) if accepted else "a MoE bundle"
    raise DataError(f"the bundle holds the {str(bundle.variant)!r} model; this strategy runs {wanted}",
                    path=f"{path}/model.json", field="variant")


class CMMStrategy(Strategy):
    Params = CMMParams
    wake = WakePolicy(every_ns=SECOND)
    compute_ns = None
    variants: tuple[Variant, ...] | None = None  # the bundle variants it runs; None: any MoE bundle

    # ---- lifecycle
    def on_start(self, ctx: Context) -> None:
        import torch

        p = self.params
        if self.wake.every_ns is None:
            raise ConfigError("cmm decides on its timer: set strategy.wake.every_ns", field="strategy.wake")
        torch.set_num_threads(p.torch_threads)
        self.bundle = load_bundle(p.bundle)
        check_variant(self.bundle, self.variants, p.bundle)
        check_targets(self.bundle, p.bundle)
        self.schema = p.features.schema(ctx.tick_size)
        check_schema(self.bundle, self.schema, p.bundle)
        self.regime_column = self.schema.index(self.bundle.regimes.feature)
        self.mid_column = self.schema.index("mid")
        self.state = None
        self.row = np.full(self.schema.n_features, np.nan)
        self._latency: list[int] = []
        # The decision record: blocks of columns (RECORD_FIELDS) and weights, then the rows of per-tick
        # decisions not in a block yet, as tuples and each one's weights (None without a prediction).
        self._blocks: list[tuple[list[np.ndarray], np.ndarray]] = []
        self._records: list[tuple] = []
        self._weights: list[np.ndarray | None] = []
        self._n_experts = len(self.bundle.layout.get("experts", []))
        self._z: float = -1.0        # this decision's largest |z| (-1: no model input was formed)
        self._first_out_of_range = True
        self.batched = self._batching(ctx)
        self._ahead: Ahead | None = None
        self._adjust = (0, 0)        # this wake-up's ns spent on a batch, and its decision's share of one
        self._model_ns: list[int] = []   # each decision's model time (batched: its share of the batch's calls)
        self.marks = [0] * len(MARKS)    # the last decision's clock (perf_counter_ns) at each of MARKS
        # Steps 1-2 and the model's input in one jitted call, and steps 4-6 and the order diff in another,
        # unless a variant overrides one of their hooks.
        self.own_inputs = not self._overrides("features", "classify_regime", "predict")
        self.fused = not self._overrides("aggregate", "build_ladder", "risk_check", "requote")
        self._floats, self._ints = cmm_kernel.params_vectors(p, ctx.tick_size, ctx.lot_size)
        self._prediction = np.full(3, np.nan)
        self._ladder = np.zeros((4, p.levels), dtype=np.int64)
        self._messages, self._qty = cmm_kernel.scratch(self._ints, p.levels)
        self._no_output = np.zeros(len(self.bundle.target_mean), dtype=np.float32)
        self._rehearsed_ts: int | None = None    # the time of the last decision the model made: rehearse()'s
        self._rehearsal_row = np.full(self.schema.n_features, np.nan)
        self._last_rows: tuple = ()      # the last decision's new rows (rehearse(): the same compiled code)

    def _overrides(self, *hooks: str) -> str | None:
        """The first of ``hooks`` this strategy's class overrides, if any."""
        return next((hook for hook in hooks if getattr(type(self), hook) is not getattr(CMMStrategy, hook)), None)

    def _batching(self, ctx: Context) -> bool:
        """Whether decisions run batched (:mod:`strategies.cmm_batch`); ConfigError if insisted on and impossible."""
        mode = self.params.inference
        if mode == "per_tick":
            return False
        why = None
        wake = self.wake
        if wake.every_events is not None or wake.on_top_change:
            why = "needs a timer-only wake policy (strategy.wake.every_ns alone)"
        elif not hasattr(ctx, "market_ahead"):
            why = "needs a backtest: this venue cannot replay the market ahead"
        elif (hook := self._overrides("features", "classify_regime", "predict")) is not None:
            why = f"cannot run {type(self).__name__}, which overrides {hook}()"
        if why is not None and mode == "batched":
            raise ConfigError(f'inference = "batched" {why}; use "auto" or "per_tick"',
                              field="strategy.params.inference")
        return why is None

    def on_timer(self, ctx: Context) -> None:
        marks = self.marks
        t0 = marks[START] = time.perf_counter_ns()
        x, regime, out = self._inputs(ctx)
        p = self.params
        out_of_range = self._z > p.max_abs_z
        quote = out is not None and not (out_of_range and p.out_of_range == "withdraw")
        if self.fused:
            n_bid, n_ask, prediction = self._decide(ctx, x, regime, out, quote)
            tick = ctx.tick_size
            bid = self._ladder[ladder.BID_TICKS, 0] * tick if n_bid else math.nan
            ask = self._ladder[ladder.ASK_TICKS, 0] * tick if n_ask else math.nan
        else:
            quotes = ladder.Ladder()
            prediction = None
            if quote:
                prediction = self.aggregate(ctx, x, regime, *out)
                quotes = self.risk_check(ctx, self.build_ladder(ctx, prediction))
            marks[LADDER] = time.perf_counter_ns()
            self.requote(ctx, quotes)
            n_bid, n_ask = len(quotes.bid_ticks), len(quotes.ask_ticks)
            bid = quotes.bid_ticks[0] * ctx.tick_size if n_bid else math.nan
            ask = quotes.ask_ticks[0] * ctx.tick_size if n_ask else math.nan
        t1 = marks[SEND] = time.perf_counter_ns()
        self._latency.append(self._own_ns(t1 - t0))
        if out is not None:              # after the orders: the decision rehearse() repeats
            self._rehearsed_ts = ctx.now
        reason = QUOTED if n_bid or n_ask else \
            WARM_UP if out is None else OUT_OF_RANGE if prediction is None else EMPTY_LADDER
        if out_of_range and self._first_out_of_range:
            self._log_out_of_range(ctx.now, x)
        self._record(ctx, regime, prediction, bid, ask, out_of_range, reason)
        marks[RECORD] = time.perf_counter_ns()

    def _decide(self, ctx: Context, x: np.ndarray, regime: int, out, quote: bool):
        """Steps 4-6 and the order diff in one call, with the messages sent in the same call where the venue
        runs it on its engine (:func:`strategies.cmm_kernel.decide_on`), else sent after it
        (:func:`strategies.cmm_kernel.decide`); ``(n_bid, n_ask, the Prediction or None)``."""
        y = out[0] if quote else self._no_output
        on_engine = getattr(ctx, "on_engine", None)
        if on_engine is not None:
            n_bid, n_ask = self._decide_on(on_engine, x, y, quote, True)
            self.marks[LADDER] = time.perf_counter_ns()
        else:
            n_bid, n_ask, m = self._ladder_and_diff(ctx, x, y, quote)
            self.marks[LADDER] = time.perf_counter_ns()
            ctx.send_messages(self._messages[:m], self._qty[:m])
        if not quote:
            return n_bid, n_ask, None
        pmid, spread, volume = self._prediction.tolist()
        return n_bid, n_ask, Prediction(mid=pmid, spread_ticks=spread, volume=volume, regime=regime, weights=out[1])

    def _ladder_and_diff(self, ctx: Context, x: np.ndarray, y: np.ndarray, quote: bool) -> tuple[int, int, int]:
        """:func:`strategies.cmm_kernel.decide` on model output ``y`` against the orders live now, into the
        strategy's scratch arrays (the prediction, the ladder, the messages): ``(n_bid, n_ask, messages)``."""
        columns = ctx.order_columns()
        room = cmm_kernel.diff_room(columns.ints.shape[1], self.params.levels)
        if len(self._qty) < room:
            self._messages, self._qty = np.empty((room, 3), dtype=np.int64), np.empty(room)
        b = self.bundle
        return cmm_kernel.decide(
            quote, y, b.target_std, b.target_mean, b.target_base, x, x[self.mid_column], ctx.position,
            ctx.best_bid, ctx.best_ask, self._floats, self._ints, *columns, self._prediction, self._ladder,
            self._messages, self._qty)

    def _decide_on(self, on_engine, x: np.ndarray, y: np.ndarray, quote: bool, send: bool) -> tuple[int, int]:
        """:func:`strategies.cmm_kernel.decide_on` on the venue's engine (``ctx.on_engine``), into the strategy's
        scratch arrays, sending with ``send``: ``(n_bid, n_ask)``."""
        b = self.bundle
        n_bid, n_ask, _, _ = on_engine(cmm_kernel.decide_on, send, quote, y, b.target_std, b.target_mean,
                                       b.target_base, x, x[self.mid_column], self._floats, self._ints,
                                       self._prediction, self._ladder, self._messages, self._qty)
        return n_bid, n_ask

    def rehearse(self, ctx: Context) -> None:
        """The last per-tick decision again, kept nowhere: the features' snapshot at its time, its regime,
        the model on its input, and (unless a variant replaced them) the ladder and the order diff
        against the orders live now, into the same scratch arrays a decision writes before it sends
        (so the very cache lines it will use are the ones warmed). Nothing is sent; no state moves."""
        if self._rehearsed_ts is None:
            return
        x = self._rehearsal_row
        if self.own_inputs:              # the same features, so the bundle's input is rewritten with its own bits
            self._features_and_input(ctx, at=self._rehearsed_ts)
        else:
            snapshot(self.state, self._rehearsed_ts, x)
            self.classify_regime(x)      # for its code and data only: the bundle re-runs its last regime
        y = self.bundle.rehearse()
        if self.fused:
            on_engine = getattr(ctx, "on_engine", None)
            if on_engine is not None:
                self._decide_on(on_engine, x, y, True, False)
            else:
                self._ladder_and_diff(ctx, x, y, True)

    def _log_out_of_range(self, now: int, x: np.ndarray) -> None:
        """One line, once a run: the first out-of-range decision and its feature furthest from training."""
        self._first_out_of_range = False
        b = self.bundle
        z = np.where(b.used, (np.asarray(x, dtype=np.float64).reshape(-1, len(b.feature_mean))[-1] - b.feature_mean)
                     / b.feature_std, 0.0)
        worst = int(np.argmax(np.abs(z)))
        print(f"{type(self).__name__}: decision at {now} ns is out of the training range: "
              f"{b.schema.names[worst]} is {z[worst]:+.1f} training std from its mean (|z| > "
              f"{self.params.max_abs_z:g}); counted in metrics.json (out_of_range_share), logged once",
              file=sys.stderr)

    def on_stop(self, ctx: Context) -> None:
        stats = quote_stats(self.decision_record())
        silent = {k: v for k, v in stats.get("no_quote", {}).items() if v}
        if silent:
            n = stats["decisions"]
            print(f"{type(self).__name__}: quoted on {n - sum(silent.values()):,} of {n:,} decisions; no quote: "
                  + ", ".join(f"{why} {count:,}" for why, count in silent.items())
                  + f"; out of range: {stats['out_of_range_decisions']:,}", file=sys.stderr)

    def run_timer_wakeups(self, ctx: Context, horizon: int) -> tuple[int, int] | None:
        """Batched and fused, once the features have started: the rest of the current batch's decisions (a new
        batch's, from the next wake-up, when it is used up) in one jitted call that steps the engine from
        one wake-up to the next (:func:`strategies.cmm_kernel.run_timer`), with what :meth:`on_timer` gives
        to the bit: the same orders, records, counts and log line. A decision's own time
        (:meth:`decision_latency_ns`) is then the call's time less the batch's, shared equally, plus its
        share of the batch. None where it does not apply: per tick, a variant that overrides a hook of
        steps 4-6 or ``on_timer``, or before the first price (:meth:`start_features`)."""
        if not (self.batched and self.fused and self.state is not None) or "on_timer" in vars(self) or \
                type(self).on_timer is not CMMStrategy.on_timer:
            return None
        t0 = time.perf_counter_ns()
        if self._ahead is None:
            self._ahead = Ahead(self.state, self.bundle, self.regime_column, self.wake.every_ns, self.params.batch,
                                ctx.market_ahead())
        a, p, b = self._ahead, self.params, self.bundle
        spent = a.compute(ctx.now + self.wake.every_ns) if a.used_up else 0
        first = a.next
        out_of_range = a.z > p.max_abs_z
        quote = a.finite & ~out_of_range if p.out_of_range == "withdraw" else a.finite
        predictions = np.full((len(a.times), 3), np.nan)
        record = np.empty((len(a.times), 4))
        k, reason = cmm_kernel.run_timer(ctx.sim, self.wake.every_ns, horizon, a.times, first, quote, a.y, a.x,
                                         self.mid_column, b.target_std, b.target_mean, b.target_base, self._floats,
                                         self._ints, self._prediction, self._ladder, predictions, record)
        a.next = k
        if reason == cmm_kernel.WOKE_ELSEWHERE:
            raise RuntimeError(f"batched inference computed the wake-up at {a.times[k]} ns, "
                               f"the engine woke at {ctx.now} ns")
        n = k - first
        if n:
            own = (time.perf_counter_ns() - t0 - spent) // n + a.share_ns
            self._latency.extend([own] * n)
            self._model_ns.extend([a.model_share_ns] * n)
            self._record_batch(a, slice(first, k), quote, out_of_range, predictions, record)
        return n + (reason == WOKE_END), reason

    def _record_batch(self, a: Ahead, rows: slice, quote: np.ndarray, out_of_range: np.ndarray,
                      predictions: np.ndarray, record: np.ndarray) -> None:
        """:meth:`_record` (and the out-of-range line) for the decisions ``rows`` of batch ``a``, run by
        :func:`strategies.cmm_kernel.run_timer` (``quote``, ``predictions``, ``record`` as it took them)."""
        quote, out_of_range, record = quote[rows], out_of_range[rows], record[rows]
        if self._first_out_of_range and out_of_range.any():
            first = rows.start + int(np.argmax(out_of_range))
            self._log_out_of_range(int(a.times[first]), a.x[first])
        reason = np.where(record[:, cmm_kernel.REC_QUOTES] > 0, QUOTED,
                          np.where(~a.finite[rows], WARM_UP, np.where(~quote, OUT_OF_RANGE, EMPTY_LADDER)))
        pred = predictions[rows]
        weights = a.w[rows].astype(np.float64)
        weights[~quote] = np.nan
        self._flush_records()
        self._blocks.append(([a.times[rows], record[:, cmm_kernel.REC_MID], pred[:, cmm_kernel.PRED_MID],
                              pred[:, cmm_kernel.PRED_SPREAD], pred[:, cmm_kernel.PRED_VOLUME], a.regimes[rows],
                              record[:, cmm_kernel.REC_BID], record[:, cmm_kernel.REC_ASK], a.z[rows], out_of_range,
                              reason.astype(np.int8)], weights))
        self._z = float(a.z[rows.stop - 1])

    def _inputs(self, ctx: Context) -> tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray] | None]:
        """Steps 1-3: the features, regime and model output now, from a batch once the features have started."""
        marks = self.marks
        if self.batched and self.state is not None:
            if self._ahead is None:
                self._ahead = Ahead(self.state, self.bundle, self.regime_column, self.wake.every_ns,
                                    self.params.batch, ctx.market_ahead())
            x, regime, out, spent, self._z = self._ahead.take(ctx.now)
            self._adjust = (spent, self._ahead.share_ns)
            self._model_ns.append(self._ahead.model_share_ns)
            marks[FEATURES] = marks[REGIME] = marks[MODEL] = time.perf_counter_ns()
            return x, regime, out
        if self.own_inputs:
            x = self.row
            regime, self._z = self._features_and_input(ctx)
            t = marks[FEATURES] = marks[REGIME] = time.perf_counter_ns()
            out = self.bundle.run(regime) if self._z >= 0.0 else None
        else:
            x = self.features(ctx)
            marks[FEATURES] = time.perf_counter_ns()
            regime = self.classify_regime(x)
            self.bundle.last_z[0] = -1.0
            t = marks[REGIME] = time.perf_counter_ns()
            out = self.predict(x, regime)
            self._z = float(self.bundle.last_z[0])
        marks[MODEL] = time.perf_counter_ns()
        self._model_ns.append(marks[MODEL] - t)
        return x, regime, out

    def _features_and_input(self, ctx: Context, at: int | None = None) -> tuple[int, float]:
        """Steps 1-2 and the model's input in one jitted call (:func:`strategies.cmm_kernel.inputs_now`), for a
        strategy whose ``features``, ``classify_regime`` and ``predict`` are these: the new rows applied and
        the features now into ``self.row``, normalized into the bundle's input; ``(regime, largest |z|)``, -1
        for both while no price is known. ``at``: the features at that time instead, with no new rows (the
        rehearsal of the last decision, into its own row)."""
        if at is None:
            rows = ev, local_ts, px, qty = ctx.new_event_columns()
            if self.state is None and not self.start_features(ctx, ev, px):
                return -1, -1.0
            now, row = ctx.now, self.row
            self._last_rows = rows
        else:
            ev, local_ts, px, qty = self._last_rows
            now, row = at, self._rehearsal_row
        b = self.bundle
        return cmm_kernel.inputs_now(self.state, ev, local_ts, px, qty, at is None, now, row, self.regime_column,
                                     b.regimes.low, b.regimes.high, b.feature_mean, b.feature_std, b.used, b.inputs)

    def _own_ns(self, wall_ns: int) -> int:
        """This decision's time: the wall time less the batch it computed for later ones, plus its share."""
        spent, share = self._adjust
        return wall_ns - spent + share

    def charged_ns(self, wall_ns: int) -> int:
        """A batched decision is charged its own work and its share of its batch (see :mod:`strategies.cmm_batch`)."""
        ns = self._own_ns(wall_ns)
        self._adjust = (0, 0)
        return ns

    def decision_latency_ns(self) -> np.ndarray:
        return np.array(self._latency, dtype=np.int64)

    def stage_marks(self) -> list[tuple[str, int]]:
        """The last decision's clock at its start and after each stage (:data:`MARKS`), for paper trading's
        breakdown of a reaction (:func:`runtime.paper.loop.reaction_stages`)."""
        return list(zip(MARKS, self.marks))

    def decision_latency_parts_ns(self) -> dict[str, np.ndarray]:
        """Each decision's time split: ``model`` (the model call; batched: the decision's share of its
        batch's calls) and ``rest`` (features, regime, ladder, order diff and sending: the time less the model)."""
        total = self.decision_latency_ns()
        model = np.array(self._model_ns[:len(total)], dtype=np.int64)
        return {"model": model, "rest": total - model}

    def _record(self, ctx: Context, regime: int, prediction: Prediction | None, bid: float, ask: float,
                out_of_range: bool, reason: int) -> None:
        """Keep the decision's row; ``bid`` / ``ask`` are the inner quote prices (NaN: none)."""
        if prediction is None:
            nan = math.nan
            self._records.append((ctx.now, ctx.mid, nan, nan, nan, regime, bid, ask, self._z, out_of_range, reason))
            self._weights.append(None)
        else:
            self._records.append((ctx.now, ctx.mid, prediction.mid, prediction.spread_ticks, prediction.volume,
                                  regime, bid, ask, self._z, out_of_range, reason))
            self._weights.append(prediction.weights)

    def _flush_records(self) -> None:
        """The per-tick rows kept since the last block (:meth:`_record`) as one more block of columns."""
        if self._records:
            columns = [np.array(col, dtype=dtype) for col, dtype in zip(zip(*self._records), RECORD_TYPES)]
            weights = np.full((len(self._weights), self._n_experts), np.nan)
            for i, w in enumerate(self._weights):
                if w is not None:
                    weights[i] = w
            self._blocks.append((columns, weights))
            self._records, self._weights = [], []

    def decision_record(self) -> dict[str, np.ndarray]:
        """One row per decision: ``ts, mid, pred_mid, pred_spread_ticks, pred_volume, regime, bid, ask``
        (inner quote prices, NaN when none), ``max_abs_z`` (-1 without a model input), ``out_of_range``
        (bool), ``no_quote`` (0 quoted, else a code of :data:`NO_QUOTE_REASONS`), and ``weights``
        [n, experts] (NaN without a prediction), plus ``expert_names``."""
        self._flush_records()
        blocks = self._blocks or [([np.empty(0, dtype=dtype) for dtype in RECORD_TYPES],
                                   np.empty((0, self._n_experts)))]
        out = {name: np.concatenate([columns[i] for columns, _ in blocks])
               for i, name in enumerate(RECORD_FIELDS)}
        out["weights"] = np.concatenate([weights for _, weights in blocks])
        out["expert_names"] = np.array([e["name"] for e in self.bundle.layout.get("experts", [])], dtype=str)
        return out

    # ---- the hooks
    def features(self, ctx: Context) -> np.ndarray:
        """The feature vector now (float64, schema order), after the events since the last call."""
        ev, local_ts, px, qty = ctx.new_event_columns()
        if self.start_features(ctx, ev, px):
            advance(self.state, ev, local_ts, px, qty, ctx.now, self.row)
        return self.row

    def start_features(self, ctx: Context, ev: np.ndarray, px: np.ndarray) -> bool:
        """Make the incremental feature state once a price is known (the local mid, else the first priced
        LOCAL row of ``ev``, ``px``); False while none is (nothing to apply)."""
        if self.state is None:
            first = self._first_price(ctx, ev, px)
            if first is None:           # no price yet: nothing in these rows moves a feature
                return False
            centre = first / ctx.tick_size
            band = self.params.book_band * centre
            self.state = new_state(self.schema, math.floor(centre - band), math.ceil(centre + band))
        return True

    def classify_regime(self, x: np.ndarray) -> int:
        return self.bundle.regimes.classify(float(x[self.regime_column]))

    def predict(self, x: np.ndarray, regime: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The model's normalized predictions and expert weights: the one model call per decision."""
        return self.bundle.decide(x, regime)

    def aggregate(self, ctx: Context, x: np.ndarray, regime: int, y: np.ndarray, weights: np.ndarray) -> Prediction:
        """The aggregated normalized output in market units (the bundle weighs its experts itself)."""
        p, b = self.params, self.bundle
        mid, spread, volume = cmm_kernel.aggregate(y, b.target_std, b.target_mean, b.target_base, x,
                                                   x[self.mid_column], ctx.tick_size, p.min_spread_ticks,
                                                   p.max_spread_ticks)
        return Prediction(mid=mid, spread_ticks=spread, volume=volume, regime=regime, weights=weights)

    def build_ladder(self, ctx: Context, prediction: Prediction) -> ladder.Ladder:
        p = self.params
        tick = ctx.tick_size
        volume = max(prediction.volume, p.min_lots * ctx.lot_size / p.rho) if p.rho > 0 else prediction.volume
        return ladder.build(
            prediction.mid / tick, prediction.spread_ticks, volume, ctx.position,
            _tick_or_none(ctx.best_bid, tick), _tick_or_none(ctx.best_ask, tick), levels=p.levels,
            spacing=p.level_spacing_ticks, slope=p.size_slope, rho=p.rho, lot=ctx.lot_size,
            skew_ticks=p.skew_ticks, max_position=p.max_position)

    def risk_check(self, ctx: Context, quotes: ladder.Ladder) -> ladder.Ladder:
        p = self.params
        return ladder.limit(quotes, ctx.position, p.max_position, p.max_orders, ctx.lot_size)

    # ---- orders
    def requote(self, ctx: Context, quotes: ladder.Ladder) -> None:
        """Send only the difference between the live orders and ``quotes`` (rule: :mod:`strategies.ladder`)."""
        array, n_bid, n_ask = ladder.array_of(quotes)
        ctx.send_messages(*ladder.diff_messages(ctx.order_columns(), array, n_bid, n_ask, ctx.lot_size))

    @staticmethod
    def _first_price(ctx: Context, ev: np.ndarray, px: np.ndarray) -> float | None:
        if math.isfinite(ctx.mid):
            return ctx.mid
        priced = np.flatnonzero(np.isin(ev & np.uint64(KIND_MASK), _PRICED) & (ev & np.uint64(LOCAL) != 0))
        return float(px[priced[0]]) if priced.size else None


def _tick_or_none(price: float, tick: float) -> int | None:
    return None if math.isnan(price) else round(price / tick)
