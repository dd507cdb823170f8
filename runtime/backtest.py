"""One backtest from a config: load the data, build the engine, run the strategy, summarise, write.

This is the whole of ``cmm backtest``; the command line only parses its
arguments and prints what this returns.
"""
from __future__ import annotations

import os
import typing

import msgspec
import numpy as np

import feeds
from common.progress import bar
from feeds.readers.base import no_progress
from engine import views as engine
from engine.views import latency_table, make_sim
from analysis.metrics import Gap, Summary, summarize
from analysis.output import write_results
from analysis.results import RunResult, after_warmup, collect
from common.errors import DataError
from common.outdir import check_replaceable
from feeds.events import EVENT_DTYPE
from feeds.instrument import Instrument
from feeds.readers.binance_coinm import contradiction
from feeds.store import is_event_file
from feeds.validate import check_price_span, find_gaps, load_replayable

from runtime import session as backtest
from runtime import window
from strategies.api import MeasuresDecisionLatency
from strategies.base import Strategy
from common.config import ConfigError, resolve
from common.stats import LatencyStats, latency_us
from runtime.config import BacktestConfig, VenueConfig, engine_config, strategy_params
from strategies import registry
from strategies.cmm import quote_stats


class RunSummary(Summary, frozen=True, omit_defaults=True):
    """The engine's summary, plus what the strategy measured of itself (absent when it measures nothing)."""

    decision_latency_us: LatencyStats | None = None
    # The same decisions' time split (a strategy that measures it, CMM): the model call, and the rest.
    decision_model_us: LatencyStats | None = None
    decision_rest_us: LatencyStats | None = None
    # A bundle-based strategy's run says whether it replayed data its models were fitted on (absent for others).
    in_sample: bool | None = None
    in_sample_splits: list[str] | None = None     # which fitted splits (train, val) the window meets
    # Absent for a linear contract whose data names no currency, so such runs keep their bytes.
    contract_kind: str = "linear"          # "inverse": EPnL, fees and notional are in the settlement coin
    settlement: str | None = None          # the currency EPnL, fees and notional are in
    gaps: list[Gap] | None = None          # jumps of local time longer than data.gap_s the run went across
    # A CMM-family strategy's quoting (strategies.cmm.quote_stats): its decisions, those whose normalized
    # features were beyond the training range and their share, and why decisions quoted nothing.
    decisions: int | None = None
    out_of_range_decisions: int | None = None
    out_of_range_share: float | None = None
    no_quote: dict[str, int] | None = None
    # Orders the engine refused before sending (a price outside the book's range, a size under one lot), by
    # reason: the strategy quoted on without them (strategies.api.place). Absent when there were none.
    refused_orders: dict[str, int] | None = None


class Backtest(msgspec.Struct):
    result: RunResult
    summary: RunSummary
    instrument: Instrument
    events: int
    decisions: dict[str, np.ndarray] | None = None     # the strategy's per-decision record, if it keeps one
    dropped: dict[str, dict[str, int]] | None = None   # --transport zmq: messages dropped, by side and reason


def load_events(cfg: BacktestConfig, progress: bool = False) -> tuple[np.ndarray, Instrument]:
    """The config's data as one event array on both timelines, with its instrument."""
    files = cfg.data.files
    fmt = cfg.data.format
    if fmt == "npz" or (fmt == "auto" and all(is_event_file(f) for f in files)):
        loaded = load_replayable(files)
        events, instrument = loaded.events, loaded.instrument
    else:
        conv = feeds.read(files, fmt, feeds.ReadOptions(progress=bar if progress else no_progress))
        events, instrument = conv.events, conv.instrument
    instrument = instrument_for(cfg, instrument)
    check_price_span(events, instrument.tick_size, ", ".join(files))
    return events, instrument


def data_window(cfg: BacktestConfig, events: np.ndarray) -> window.Window:
    """The config's ``[data] start`` / ``end`` over ``events`` (:mod:`runtime.window`)."""
    d = cfg.data
    if d.start is None and d.end is None:
        return window.Window()
    zone = window.zone_for(d.timezone, feeds.resolve_format(d.files, d.format))
    return window.resolve(d.start, d.end, events["exch_ts"], zone)


def training_overlap(params, cfg: BacktestConfig, events: np.ndarray) -> list[str] | None:
    """The fitted splits of the strategy's bundle that the replayed window meets; None for a strategy with no
    bundle. The window is the replayed events' exchange-time span after the warm-up (:mod:`runtime.window`)."""
    bundle = getattr(params, "bundle", None)
    if not isinstance(bundle, str):
        return None
    from bundle.manifest import MANIFEST, Manifest, training_overlap as overlap
    try:
        with open(os.path.join(bundle, MANIFEST), "rb") as f:
            manifest = msgspec.json.decode(f.read(), type=Manifest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None       # the strategy's own loader refuses such a bundle, naming what is wrong
    exch = events["exch_ts"]
    return overlap(manifest, list(cfg.data.files), int(exch.min()), int(exch.max()))


def strategy_fields(fitted: list[str] | None, decisions: dict[str, np.ndarray] | None) -> dict:
    """The summary's fields of a bundle-based strategy: in sample or not (``fitted``: :func:`training_overlap`)
    and its quoting (:func:`strategies.cmm.quote_stats`); none for other strategies."""
    extra = {} if fitted is None else dict(in_sample=bool(fitted), in_sample_splits=fitted or None)
    return {**quote_stats(decisions), **extra}


LATENCY_HEADER = "request_ts,exchange_ts,response_ts"


def _latency_table(path: str | None):
    """A recorded latency file: a header line, then ``request_ts,exchange_ts,response_ts`` rows in ns."""
    if path is None:
        return None
    try:
        with open(path) as f:
            header = f.readline().strip()
            if header != LATENCY_HEADER:
                raise ConfigError(f"expected the header {LATENCY_HEADER!r}, found {header!r}", path=path,
                                  line=1, field="latency.file")
            rows = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except OSError as e:
        raise ConfigError(f"cannot read latency file: {e.strerror}", path=path, field="latency.file") from None
    except ValueError as e:
        raise ConfigError(f"expected three integer ns columns: {e}", path=path, field="latency.file") from None
    if rows.shape[1] != 3:
        raise ConfigError(f"expected 3 columns, found {rows.shape[1]}", path=path, field="latency.file")
    try:
        return latency_table(rows[:, 0], rows[:, 1], rows[:, 2])
    except ValueError as e:
        raise ConfigError(str(e), path=path, field="latency.file") from None


def resolve_paths(params: msgspec.Struct, config_path: str) -> msgspec.Struct:
    """Params with every ``ConfigPath`` field (strategies.params) made relative to the config's directory."""
    hints = typing.get_type_hints(type(params), include_extras=True)
    paths = {name: resolve(config_path, getattr(params, name)) for name in params.__struct_fields__
             if any(getattr(meta, "extra", None) and meta.extra.get("relative_to_config")
                    for meta in getattr(hints[name], "__metadata__", ()))}
    return msgspec.structs.replace(params, **paths)


def own_latency_ns(strategy) -> np.ndarray | None:
    """The wall time of each of the strategy's decisions, if it measures them."""
    return strategy.decision_latency_ns() if isinstance(strategy, MeasuresDecisionLatency) else None


def latency_parts_us(strategy) -> dict[str, LatencyStats | None]:
    """``decision_model_us`` and ``decision_rest_us`` of a strategy that splits its decisions' time, else {}."""
    parts = strategy.decision_latency_parts_ns() if hasattr(strategy, "decision_latency_parts_ns") else None
    if not parts:
        return {}
    return {"decision_model_us": latency_us(parts["model"]), "decision_rest_us": latency_us(parts["rest"])}


def instrument_for(cfg: VenueConfig, instrument: Instrument | None) -> Instrument:
    """The data's instrument with the config's ``[instrument]`` overrides; the config alone if the data has none."""
    over = {k: v for k, v in msgspec.structs.asdict(cfg.instrument).items() if v is not None}
    if instrument is None:
        if "tick_size" not in over:
            raise ConfigError("the data names no instrument: give [instrument] tick_size (and lot_size)",
                              field="instrument.tick_size")
        instrument = Instrument(symbol=over.pop("symbol", "?"), tick_size=over.pop("tick_size"),
                                lot_size=over.pop("lot_size", 1.0))
    instrument = msgspec.structs.replace(instrument, **over)
    # A DataError, not a ConfigError: the data and the config disagree, and paper trading rewords ConfigErrors
    # here as a missing instrument.
    why = instrument.problem() or contradiction(instrument)
    if why:
        raise DataError(why, field="instrument")
    return instrument


def decision_record(strategy) -> dict[str, np.ndarray] | None:
    """The strategy's per-decision record, if it keeps one (CMM: quotes, weights, regimes)."""
    return strategy.decision_record() if hasattr(strategy, "decision_record") else None


def strategy_entry(cfg: VenueConfig, config_path: str):
    """The config's strategy: its registry entry and its checked Params (paths made relative to the config)."""
    entry = registry.entry(cfg.strategy.name, config_path)
    return entry, resolve_paths(strategy_params(cfg, entry.python.Params, config_path), config_path)


def compute_ns_for(cfg: VenueConfig, entry) -> int | None:
    """The decision time a kernel charges: the config's, else the strategy's own default; None means measured."""
    s = cfg.strategy
    return entry.python.compute_ns if s.compute_ns is None else None if s.compute_ns == "measured" else s.compute_ns


def build_strategy(cfg: VenueConfig, config_path: str):
    """The config's Python strategy, ready to run on any venue: checked params, wake policy and decision time.

    The strategy process of ``--transport zmq`` builds its strategy here too, so both sides agree on it.
    """
    entry, params = strategy_entry(cfg, config_path)
    return entry.python(params, wake=cfg.strategy.wake, compute_ns=cfg.strategy.compute_ns)


def sim_config(cfg: VenueConfig, instrument: Instrument):
    """The engine's config and the recorded latency table, if any."""
    return (engine_config(cfg, instrument.tick_size, instrument.lot_size, instrument.contract_multiplier,
                          instrument.inverse),
            _latency_table(cfg.latency.file))


def summary_of(cfg: VenueConfig, result: RunResult, strategy, type_: type = None,
               latency_ns: np.ndarray | None = None, instrument: Instrument | None = None, **extra) -> Summary:
    """The run's summary with the strategy's own decision latency (``latency_ns`` when another process
    measured it) and the currency ``instrument`` settles in; ``type_`` (a RunSummary) adds a venue's fields."""
    # Wall times are never reproducible: reported only when the run charges them, so a declared
    # decision time gives the same bytes every run.
    measured = strategy is not None and strategy.compute_ns is None
    ns = latency_ns if latency_ns is not None else own_latency_ns(strategy) if measured else None
    return (type_ or RunSummary)(
        **msgspec.structs.asdict(summarize(result, int(round(cfg.metrics.episode_s * 1e9)))),
        decision_latency_us=latency_us(ns) if measured else None, refused_orders=result.refused_orders or None,
        **(latency_parts_us(strategy) if measured and latency_ns is None else {}),
        **({} if instrument is None else dict(contract_kind=instrument.kind, settlement=instrument.settlement)),
        **extra)


def run(cfg: BacktestConfig, config_path: str, progress: bool = False, transport: str = "inproc",
        timeout_s: float | None = None, curve: bool = False, *, strategy: Strategy | None = None,
        data: tuple[np.ndarray, Instrument] | None = None) -> Backtest:
    """One backtest; ``transport`` "zmq" runs the strategy in its own process (:mod:`runtime.link.engine_side`),
    waiting at most ``timeout_s`` for each of its answers, over a CURVE-secured link with ``curve``.
    :mod:`runtime.api` may pass a ``strategy`` object (in process, mode "python") and ``data`` (checked events
    and their instrument) in place of the config's."""
    entry, params = strategy_entry(cfg, config_path) if strategy is None else (None, None)
    events, instrument = load_events(cfg, progress) if data is None else data
    if events.dtype != EVENT_DTYPE or len(events) == 0:
        raise DataError("no events to replay", path=cfg.data.files[0], field="data.files")
    try:
        span = data_window(cfg, events)
    except ConfigError as e:
        raise e.located(config_path) from None
    if span.start_ns is not None and transport == "zmq":
        raise ConfigError("a window's warm-up replays in the engine's process: data.start runs with "
                          "--transport inproc", path=config_path, field="data.start")
    events = window.cut(events, span)
    replayed = events if span.start_ns is None else events[events["exch_ts"] >= span.start_ns]
    fitted = training_overlap(params, cfg, replayed) if len(replayed) else None
    try:
        sim = make_sim(events, *sim_config(cfg, instrument))
    except ConfigError as e:
        raise e.located(config_path) from None
    s = cfg.strategy
    decisions = dropped = latency_ns = None
    if s.mode == "python":
        if strategy is None:
            strategy = entry.python(params, wake=s.wake, compute_ns=s.compute_ns)
        try:
            if transport == "zmq":
                from runtime.link.engine_side import StrategyProcess, run_remote, strategy_command
                with StrategyProcess(strategy_command(config_path), timeout_s=timeout_s, curve=curve) as link:
                    remote = run_remote(strategy, sim, instrument, link, progress=progress)
                result, latency_ns, decisions, dropped = remote.result, remote.latency_ns, remote.record, \
                    remote.dropped
            else:
                result = backtest.run(strategy, sim, instrument.tick_size, instrument.lot_size, progress=progress,
                                      warm_until=span.start_ns)
                decisions = decision_record(strategy)
        except ConfigError as e:      # a strategy refusing its settings at start: name the config
            raise e.located(config_path) from None
    elif transport == "zmq":
        raise ConfigError("a kernel runs inside the engine; --transport zmq runs mode = \"python\" strategies",
                          path=config_path, field="strategy.mode")
    else:
        if entry.kernel is None:
            raise ConfigError(f"strategy {s.name!r} has no kernel; use mode = \"python\"", path=config_path,
                              field="strategy.mode")
        if s.wake.every_ns is None or s.wake.every_events is not None or s.wake.on_top_change:
            raise ConfigError("kernels wake on a timer only: set wake.every_ns alone", path=config_path,
                              field="strategy.wake")
        compute_ns = compute_ns_for(cfg, entry)
        if compute_ns is None:
            raise ConfigError("a kernel's decision time cannot be measured; declare compute_ns in ns",
                              path=config_path, field="strategy.compute_ns")
        engine.set_compute_ns(sim, compute_ns)
        warm = 0 if span.start_ns is None else backtest.warm_up(sim, span.start_ns)
        entry.kernel(sim, params, s.wake, instrument.tick_size)
        result = after_warmup(collect(sim), warm)
    # The results keep the tick log and the events; the rest of the engine (books, fill and order logs) can go
    # before the summary's pass over the ticks, whose temporaries then fit in what it held.
    del sim
    return Backtest(result=result, summary=summary_of(cfg, result, strategy, latency_ns=latency_ns,
                                                      instrument=instrument, **strategy_fields(fitted, decisions),
                                                      gaps=gaps_in(events, cfg.data.gap_s)[0] or None),
                    instrument=instrument, events=len(events), decisions=decisions, dropped=dropped)


def gaps_in(events: np.ndarray, gap_s: float, last_local: int | None = None) -> tuple[list[Gap], int | None]:
    """The jumps of local time longer than ``gap_s`` in ``events`` (after ``last_local``, where an earlier
    chunk ended), for the summary; and where this chunk ends."""
    found, last = find_gaps(events, last_local, int(round(gap_s * 1e9)))
    return [Gap(start_ts=a, end_ts=b, seconds=(b - a) / 1e9) for a, b in found], last


def run_config(cfg: BacktestConfig, config_path: str, progress: bool = False, transport: str = "inproc",
               timeout_s: float | None = None, curve: bool = False, chunk_events: int | None = None) -> Backtest:
    """:func:`run`, or with ``chunk_events`` (or the config's ``data.chunk_events``) the data streamed
    through the engine (:mod:`runtime.stream`): the same results in memory that does not grow with the days."""
    chunk_events = chunk_events or cfg.data.chunk_events
    if chunk_events is None:
        return run(cfg, config_path, progress, transport, timeout_s, curve)
    if transport != "inproc":
        raise ConfigError("a streamed backtest runs the strategy in this process (--transport inproc)",
                          path=config_path, field="data.chunk_events")
    from runtime import stream
    return stream.run(cfg, config_path, chunk_events, progress)


def run_and_write(config_path: str, out_dir: str, progress: bool = False, transport: str = "inproc",
                  timeout_s: float | None = None, curve: bool = False, chunk_events: int | None = None) -> Backtest:
    """``cmm backtest``: one run (:func:`run_config`), its results directory written."""
    from runtime.config import load
    cfg = load(config_path)
    check_replaceable(out_dir)          # before the run, not after it: a refusal should cost nothing
    bt = run_config(cfg, config_path, progress, transport, timeout_s, curve, chunk_events)
    with open(config_path, "rb") as f:
        config_text = f.read()
    write_results(out_dir, bt.result, bt.summary, config_text,
                  f"{registry.label(cfg.strategy.name)} on {bt.instrument.symbol}", bt.decisions)
    return bt


def format_summary(bt: Backtest, out_dir: str | None = None) -> str:
    rows = summary_rows(bt)
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if out_dir:
        lines.append(f"results in {os.path.abspath(out_dir)}")
    return "\n".join(lines)


def summary_rows(bt: Backtest) -> list[tuple[str, str]]:
    """The summary a person reads, as (what, value) rows: the command line's and a notebook's."""
    s = bt.summary

    def num(x, spec=",.4f"):
        return "n/a" if x is None else format(x, spec)

    unit = f" {s.settlement}" if s.settlement else ""
    coin = ",.8f" if s.contract_kind == "inverse" else ",.4f"   # a coin's amounts are small: to the satoshi
    rows = [("settlement", f"{s.settlement} ({s.contract_kind} contracts)")] if s.settlement else []
    rows += [
        ("events", f"{bt.events:,}"), ("ticks", f"{s.ticks:,}"),
        ("EPnL", num(s.epnl, coin) + unit), ("MAP", num(s.map)), ("RPT", num(s.rpt, coin)),
        ("PnLMAP", num(s.pnlmap, coin)),
        ("fills", f"{s.n_fills:,}"), ("volume", num(s.volume, ",.6g")), ("fees", num(s.fees, coin) + unit),
        ("final position", num(s.final_position, ",.6g")), ("Sharpe (per episode)", num(s.sharpe)),
        ("max drawdown", num(s.max_drawdown, coin) + unit),
        ("quoted bid / ask", f"{s.quoted_bid_share:.1%} / {s.quoted_ask_share:.1%}"),
        (f"episodes ({s.episodes.length_s:g} s)",
         f"{s.episodes.count}: EPnL {num(s.episodes.epnl.mean, coin)} ± {num(s.episodes.epnl.std, coin)}"),
    ]
    if s.in_sample is not None:
        rows.append(("in sample", f"YES: the window meets the bundle's {' and '.join(s.in_sample_splits)} split"
                     f"{'s' if len(s.in_sample_splits) > 1 else ''}; these numbers are not out of sample"
                     if s.in_sample else "no: the bundle was not fitted on this window"))
    if s.decision_latency_us is not None:
        rows.append(("decision latency p50 / p99",
                     f"{s.decision_latency_us.p50:,.1f} / {s.decision_latency_us.p99:,.1f} us"))
    if s.decision_model_us is not None and s.decision_rest_us is not None:
        rows.append(("  model / the rest p50", f"{s.decision_model_us.p50:,.1f} / {s.decision_rest_us.p50:,.1f} us"))
    if s.gaps:
        rows.append(("gaps in the data", f"{len(s.gaps)}, {sum(g.seconds for g in s.gaps) / 3600:,.1f} h in all: "
                                         "the run went on across them with its book, orders and position"))
    if s.decisions is not None:
        rows.append(("decisions quoted", f"{s.decisions - sum(s.no_quote.values()):,} of {s.decisions:,}"
                     + "".join(f"; {why} {n:,}" for why, n in s.no_quote.items() if n)
                     + f"; out of range {s.out_of_range_share:.1%}"))
    if s.refused_orders:
        rows.append(("orders refused before sending", ", ".join(f"{n:,} {why}" for why, n in s.refused_orders.items())
                     + ": the strategy quoted on without them"))
    for side, reasons in (bt.dropped or {}).items():
        rows.append((f"messages dropped ({side})", ", ".join(f"{n:,} {why}" for why, n in reasons.items())))
    return rows
