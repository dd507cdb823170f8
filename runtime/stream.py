"""A backtest over any number of days in bounded memory: the event files stream through the engine in chunks.

A whole-array backtest (:func:`runtime.backtest.run`) holds every event of
every file at once, 64 bytes an event, and the per-tick results beside them.
Here the files are read a chunk at a time (:func:`feeds.store.iter_chunks`)
and appended to the engine that paper trading runs (:class:`engine.views.LiveSim`):
it drops the rows both timelines have passed, moves their tick-log rows to a
spill file (:mod:`common.spill`), and keeps the book, our orders, their queue
positions, the latency rings and the running metrics in its state, across
chunk and file boundaries alike. The strategy's :class:`~runtime.session.Session`
runs up to a horizon after each chunk: event files are ordered on both
timelines, so every row still to come lies at or after the last time each
timeline has reached, and a wake-up due later waits for the next chunk
(``WOKE_WAIT``), keeping its timer. The answer is therefore the whole-array
run's, byte for byte, for any chunk size (``tests/test_stream.py`` checks it
with hypothesis). The results (:class:`analysis.results.TickStream`) stay in the
spill file, and the results directory is written from it a chunk at a time
(:func:`analysis.output.write_results`).

What memory still grows with the run: our fills and orders (the engine's logs,
bounded by ``max_fills`` and ``max_order_log``) and the list of gaps. Not
streamed, each refused in one line: order-level (L3) queues, which need the whole
file's orders up front; jitted kernels, which run to the end of the data in one
call; a ``data.start`` / ``data.end`` window; files that are not event files.
The live engine's book range starts around the first price and re-centres as
prices move: an order priced beyond it is refused where a whole-array run (whose
range is the data's) might have accepted it. The strategy sees an :class:`~runtime.session.EngineContext`,
without the replay ahead (CMM's batched inference then runs per wake-up).
"""
from __future__ import annotations

import numpy as np

from analysis.results import collect_streamed
from common.config import ConfigError
from common.errors import DataError
from common.progress import Progress
from engine.views import END, LiveOptions, LiveSim
from feeds.store import is_event_file, iter_chunks, load_header
from feeds.validate import NO_PRICES, Last, check_events, check_price_span, check_timelines
from runtime import backtest
from runtime.config import BacktestConfig
from runtime.session import Session


def _files(cfg: BacktestConfig) -> list[str]:
    for path in cfg.data.files:
        if not is_event_file(path):
            raise ConfigError("a streamed backtest reads event files; convert this one first with cmm data convert",
                              path=path, field="data.files")
    return cfg.data.files


def _instrument(cfg: BacktestConfig, files: list[str]):
    """The files' one instrument (with the config's overrides) and their events in all, from the headers."""
    first, total = None, 0
    for k, path in enumerate(files):
        n, instrument, _ = load_header(path)
        total += n
        if k == 0:
            first = instrument
        elif instrument != first:
            raise DataError("instrument differs from the first file's", path=path, field="instrument")
    return backtest.instrument_for(cfg, first), total


def _first_price(files: list[str]) -> float:
    """The first positive price of the stream: the live engine centres its book's tick range there."""
    for chunk in iter_chunks(files, 1 << 16):
        px = chunk["px"][np.isfinite(chunk["px"]) & (chunk["px"] > 0)]
        if len(px):
            return float(px[0])
    raise DataError("no priced events to replay", path=files[0], field="data.files")


def horizon_after(last: Last) -> int:
    """The last time up to which every row is known, with the stream at ``last``: event files are ordered
    on both timelines, so rows still to come lie no earlier than where each timeline stands."""
    ends = [t for t in (last.exch_ts, last.local_ts) if t is not None]
    return min(ends) - 1 if ends else int(np.iinfo(np.int64).min)


def run(cfg: BacktestConfig, config_path: str, chunk_events: int, progress: bool = False) -> backtest.Backtest:
    """One backtest with the data streamed ``chunk_events`` rows at a time (see the module docstring)."""
    if chunk_events <= 0:
        raise ConfigError(f"expected a positive chunk size, got {chunk_events}", field="data.chunk_events")
    entry, params = backtest.strategy_entry(cfg, config_path)
    if cfg.strategy.mode != "python":
        raise ConfigError("a streamed backtest runs mode = \"python\" strategies: a kernel runs to the end of "
                          "the data in one call", path=config_path, field="strategy.mode")
    if cfg.data.start is not None or cfg.data.end is not None:
        raise ConfigError("a streamed backtest replays its files whole: give the days a window would cut "
                          "as files, or drop data.chunk_events", path=config_path, field="data.start")
    files = _files(cfg)
    instrument, total = _instrument(cfg, files)
    if total == 0:
        raise DataError("no events to replay", path=files[0], field="data.files")
    try:
        live = LiveSim(*_engine(cfg, instrument, files, chunk_events))
    except ConfigError as e:
        raise e.located(config_path) from None
    s = cfg.strategy
    strategy = entry.python(params, wake=s.wake, compute_ns=s.compute_ns)
    session = Session(strategy, live.sim, instrument.tick_size, instrument.lot_size)
    live.reader = session       # the engine drops the rows passed, and the session shifts with it
    last, seen, gaps, last_local, row = Last(), NO_PRICES, [], None, 0
    exch_span = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]      # the replayed exchange times
    with Progress(total, "backtest", enabled=progress) as bar:
        for path in files:
            first = row
            for chunk in iter_chunks([path], chunk_events):
                check_events(chunk, source=path, first=row - first)
                last = check_timelines(chunk, path, first=row - first, last=last)
                seen = check_price_span(chunk, instrument.tick_size, path, first=row - first, seen=seen)
                found, last_local = backtest.gaps_in(chunk, cfg.data.gap_s, last_local)
                gaps += found
                exch_span = [min(exch_span[0], int(chunk["exch_ts"].min())),
                             max(exch_span[1], int(chunk["exch_ts"].max()))]
                live.append(chunk)
                if live.sim is not session.sim:      # grown or re-centred: a new Sim over new arrays
                    session.use(live.sim)
                if row == 0:
                    try:
                        session.start()
                    except ConfigError as e:      # a strategy refusing its settings at start: name the config
                        raise e.located(config_path) from None
                row += len(chunk)
                session.run(horizon_after(last))
                bar.set(row)
        live.finish()
        session.run(int(END) - 1)
        session.stop()
    result = collect_streamed(live.sim, live.ticks_spilled, chunk_events)
    decisions = backtest.decision_record(strategy)
    fitted = backtest.training_overlap(params, cfg, np.array(exch_span, dtype=[("exch_ts", "i8")]))
    summary = backtest.summary_of(cfg, result, strategy, instrument=instrument,
                                  **backtest.strategy_fields(fitted, decisions), gaps=gaps or None)
    return backtest.Backtest(result=result, summary=summary, instrument=instrument, events=total, decisions=decisions)


def _engine(cfg: BacktestConfig, instrument, files: list[str], chunk_events: int):
    """The live engine's arguments: its config, the first price, array sizes for this chunk size, latency."""
    engine_cfg, latency = backtest.sim_config(cfg, instrument)
    return engine_cfg, _first_price(files), LiveOptions(initial_rows=max(4 * chunk_events, 1 << 12)), latency
