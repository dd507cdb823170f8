"""The Python API: a backtest from a script or a notebook, with its results in memory.

::

    from runtime.api import run

    result = run("examples/backtest_wide_when_volatile.toml")        # a config file, as cmm backtest runs it
    result                              # in a notebook: the summary, then equity and inventory over time
    result.summary.epnl, result.fills   # the metrics (metrics.json's), the fills as a numpy table
    result.frame("fills")               # the same as a pandas DataFrame (or polars: library="polars")
    result.plot(other)                  # a matplotlib Figure: this run and others, equity above inventory
    result.write("build/mine")          # cmm backtest's results directory, when you want one

:func:`run` is ``cmm backtest`` without the command line: the same config, the
same checks and one-line errors (:class:`~common.config.ConfigError`,
:class:`~common.errors.DataError`), the same engine, and the same bytes: the
fills of ``run(path)`` are those of ``cmm backtest --config path``. It writes
nothing unless given ``out=`` (or asked later, :meth:`Result.write`), which
writes the results directory ``cmm backtest --out`` writes. Its progress bar shows on a terminal and in Jupyter.

This module is the public entry point for code (``runtime/`` is where the
layers let it run a strategy, draw on :mod:`analysis` and load data); the
command line is :mod:`cmm`.
"""
from __future__ import annotations

import base64
import html
import io
import os
from typing import Any, Mapping, Sequence

import msgspec
import numpy as np

from analysis.output import named_columns, write_results
from analysis.plots import figure
from analysis.results import tick_arrays
from common import config as tomlconfig
from common.config import ConfigError
from common.outdir import check_replaceable
from common.progress import interactive
from feeds.events import EVENT_DTYPE
from feeds.instrument import Instrument
from feeds.validate import check_events, check_price_span, check_timelines

from runtime import backtest
from runtime.backtest import Backtest, RunSummary, instrument_for, resolve_paths, strategy_params, summary_rows
from runtime.config import BacktestConfig, checked, load
from strategies import registry
from strategies.base import Strategy

IN_MEMORY = "<config>"      # where an in-memory config's relative paths start (the working directory) and errors point
TABLES = ("ticks", "fills", "orders", "decisions")


class Result:
    """One backtest's results: per-tick arrays, fills, orders and the strategy's decisions as numpy, the
    metrics, frames and plots; in a notebook it shows its summary and its equity and inventory plot."""

    def __init__(self, bt: Backtest, label: str, config_text: bytes | None = None):
        self.backtest = bt
        self.label = label          # the strategy, as the config names it (or its class)
        self.config_text = config_text      # the config file's bytes (None for a config made in memory)
        self.out: str | None = None         # the results directory last written

    def write(self, out: str | os.PathLike) -> str:
        """Write ``cmm backtest --out``'s results directory (``config.toml`` only for a config file); its path.
        Replaces only a results directory of ours, as the command line does."""
        bt = self.backtest
        write_results(os.fspath(out), bt.result, bt.summary, self.config_text,
                      f"{self.label} on {bt.instrument.symbol}", bt.decisions)
        self.out = os.path.abspath(out)
        return self.out

    # ---- the numbers
    @property
    def summary(self) -> RunSummary:
        """The metrics as a Struct (``summary.epnl``, ``summary.map``, ...): ``metrics.json``'s."""
        return self.backtest.summary

    @property
    def metrics(self) -> dict[str, Any]:
        """The metrics as ``metrics.json`` holds them (NaN as None)."""
        return msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(self.summary)))

    @property
    def ticks(self) -> Mapping[str, np.ndarray]:
        """One row per market event seen locally: ``ts, mid, position, epnl, map, rpt, quoted``, each column
        built when asked for (:class:`analysis.results.Ticks`)."""
        return self.backtest.result.ticks

    @property
    def fills(self) -> np.ndarray:
        """Our fills in execution order (``engine.views.FILL_DTYPE``: codes; :meth:`frame` names them)."""
        return self.backtest.result.fills

    @property
    def orders(self) -> np.ndarray:
        """Our orders (``engine.views.ORDER_DTYPE``): finished ones in completion order, then live ones."""
        return self.backtest.result.orders

    @property
    def decisions(self) -> dict[str, np.ndarray] | None:
        """The strategy's per-decision record, if it keeps one (CMM: quotes, regimes, expert weights)."""
        return self.backtest.decisions

    @property
    def instrument(self) -> Instrument:
        return self.backtest.instrument

    def frame(self, table: str = "ticks", library: str | None = None):
        """``table`` ("ticks", "fills", "orders" or "decisions") as a pandas DataFrame, or a polars one with
        ``library="polars"`` (None: pandas if installed, else polars). Codes are named as in ``fills.csv``;
        timestamps stay integer ns, as the engine keeps them."""
        if table not in TABLES:
            raise ValueError(f"table {table!r}: expected one of {', '.join(TABLES)}")
        columns = {"ticks": lambda: tick_arrays(self.ticks), "fills": lambda: named_columns(self.fills),
                   "orders": lambda: named_columns(self.orders), "decisions": self._decision_columns}[table]()
        if columns is None:
            raise ValueError(f"{self.label} keeps no per-decision record")
        if library in (None, "pandas"):
            try:
                import pandas
                return pandas.DataFrame(columns)
            except ImportError:
                if library == "pandas":
                    raise ImportError("Result.frame needs pandas: pip install pandas") from None
        if library in (None, "polars"):
            try:
                import polars
                return polars.DataFrame({k: v.tolist() if v.dtype == object else v for k, v in columns.items()})
            except ImportError:
                raise ImportError("Result.frame needs pandas or polars: pip install pandas (or polars)") from None
        raise ValueError(f"library {library!r}: expected 'pandas' or 'polars'")

    def _decision_columns(self) -> dict[str, np.ndarray] | None:
        """The decision record flat: each expert's weight its own column (``weight_<name>``)."""
        d = self.decisions
        if d is None:
            return None
        flat = {k: v for k, v in d.items() if k not in ("weights", "expert_names")}
        for i, name in enumerate(d.get("expert_names", [])):
            flat[f"weight_{name}"] = d["weights"][:, i]
        return flat

    # ---- what a person sees
    def plot(self, *others: "Result"):
        """Equity (EPnL) above inventory over time, this run and ``others`` in one matplotlib Figure."""
        if not others:
            return figure([(None, self.ticks)], f"{self.label} on {self.instrument.symbol}")
        return figure([(r.label, r.ticks) for r in (self, *others)], f"EPnL and inventory on {self.instrument.symbol}")

    def summary_rows(self) -> list[tuple[str, str]]:
        """The summary ``cmm backtest`` prints, as (what, value) rows."""
        return summary_rows(self.backtest)

    def __repr__(self) -> str:
        s = self.summary
        return (f"<Result {self.label} on {self.instrument.symbol}: EPnL {s.epnl:,.4f}, MAP {s.map:,.4f}, "
                f"{s.n_fills:,} fills over {s.ticks:,} ticks>")

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:right'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self.summary_rows())
        png = base64.b64encode(self._repr_png_()).decode()
        where = f"<p>results in <code>{html.escape(self.out)}</code></p>" if self.out else ""
        return (f"<div><b>{html.escape(self.label)}</b> on {html.escape(self.instrument.symbol)}"
                f"<table>{rows}</table>{where}<img src='data:image/png;base64,{png}' "
                f"alt='equity and inventory over time'></div>")


def run(config: str | os.PathLike | BacktestConfig | dict, strategy: str | type[Strategy] | Strategy | None = None,
        data: str | os.PathLike | Sequence[str | os.PathLike] | np.ndarray | Any | None = None, *,
        out: str | os.PathLike | None = None, progress: bool | None = None, transport: str = "inproc",
        timeout_s: float | None = None, label: str | None = None) -> Result:
    """Backtest as ``config`` says: a TOML file's path, a :class:`~runtime.config.BacktestConfig`, or the
    same tables as a dict (their relative paths start from the working directory).

    ``strategy`` replaces the config's ``[strategy] name``: a name (``"cmm"``, ``"package.module:Class"``,
    ``"path/file.py:Class"``), a :class:`Strategy` subclass (built with the config's ``[strategy.params]``,
    checked against its ``Params``, and its wake and decision time), or a ready instance (run as it is).
    ``data`` replaces ``[data] files``: one or more files, an ``EVENT_DTYPE`` array on both timelines, or
    what ``feeds.read`` and ``feeds.store.load`` return (``.events`` and ``.instrument``); an array's
    instrument is the config's ``[instrument]``. ``out`` writes ``cmm backtest``'s results directory
    there. ``progress``: None shows the bar on a terminal or in a notebook. ``transport="zmq"`` runs the
    strategy in its own process, which builds it from the config by name (a class or an instance made here
    cannot cross). ``label`` names the run in summaries and plots (default: the strategy's class)."""
    cfg, path, text = _config(config)
    if progress is None:
        progress = interactive()
    if isinstance(strategy, str):
        cfg = msgspec.structs.replace(cfg, strategy=msgspec.structs.replace(cfg.strategy, name=strategy))
        strategy = None
    made = _strategy(cfg, path, strategy, transport)
    label = label or (registry.label(cfg.strategy.name) if made is None else type(made).__name__)
    loaded = None
    if data is not None:
        cfg, loaded = _data(cfg, data)
    if out is not None:
        check_replaceable(out)          # before the run, not after it: a refusal should cost nothing
    bt = backtest.run(cfg, path, progress, transport, timeout_s, strategy=made, data=loaded)
    result = Result(bt, label, text)
    if out is not None:
        result.write(out)
    return result


def _config(config) -> tuple[BacktestConfig, str, bytes | None]:
    """The checked config, the path its relative paths and errors refer to, and its text (a file's only)."""
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        cfg = load(path)
        with open(path, "rb") as f:
            text = f.read()
        return cfg, path, text
    if isinstance(config, dict):
        config = tomlconfig.convert(config, BacktestConfig, IN_MEMORY, "")
    if not isinstance(config, BacktestConfig):
        raise TypeError(f"config: expected a path, a BacktestConfig or a dict, got {type(config).__name__}")
    return checked(config, IN_MEMORY), IN_MEMORY, None


def _strategy(cfg: BacktestConfig, path: str, strategy, transport: str) -> Strategy | None:
    """The strategy object to run, or None to build the config's (by name) as ``cmm backtest`` does."""
    if strategy is None:
        return None
    if cfg.strategy.mode != "python":
        raise ConfigError('a strategy given to run() runs its Python class: set mode = "python"', path=path,
                          field="strategy.mode")
    if transport != "inproc":
        raise ConfigError("--transport zmq builds the strategy from the config in its own process: name the class "
                          "in [strategy] name ('package.module:Class') instead of passing it", path=path,
                          field="strategy.name")
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        params = resolve_paths(strategy_params(cfg, strategy.Params, path), path)
        return strategy(params, wake=cfg.strategy.wake, compute_ns=cfg.strategy.compute_ns)
    raise TypeError(f"strategy: expected a name, a Strategy subclass or instance, got {type(strategy).__name__}")


def _data(cfg: BacktestConfig, data) -> tuple[BacktestConfig, tuple[np.ndarray, Instrument] | None]:
    """The config reading ``data``'s files instead of its own, or ``data``'s checked events and instrument."""
    if isinstance(data, (str, os.PathLike)) or isinstance(data, (list, tuple)) and data and \
            all(isinstance(f, (str, os.PathLike)) for f in data):
        files = [os.path.abspath(f) for f in ([data] if isinstance(data, (str, os.PathLike)) else data)]
        return msgspec.structs.replace(cfg, data=msgspec.structs.replace(cfg.data, files=files)), None
    events, instrument = (data, None) if isinstance(data, np.ndarray) else \
        (getattr(data, "events", None), getattr(data, "instrument", None))
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        raise TypeError("data: expected files, an EVENT_DTYPE array, or an object with .events and .instrument "
                        f"(what feeds.read returns), got {type(data).__name__}")
    check_events(events, "data")
    check_timelines(events, "data")
    try:
        instrument = instrument_for(cfg, instrument)
    except ConfigError as e:
        raise e.located("data") from None
    check_price_span(events, instrument.tick_size, "data")
    return cfg, (events, instrument)
