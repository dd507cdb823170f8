"""The backtest config: a TOML file parsed into typed Structs, so the schema is this code.

Every table forbids unknown keys, so a typo is an error, not a silently ignored
setting. Paths in ``[data]`` and ``[latency]`` are relative to the config file.
``configs/backtest_fixed_spread.toml`` is a complete, commented example.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine.views import FEE_MODELS, QUEUE_MODELS, EngineConfig, FeeConfig, LatencyConfig, QueueConfig, model_class
from common import config as tomlconfig
from common.config import DataConfig, LatencyNs, Scale, Seconds, Table

from strategies.api import WakePolicy


class InstrumentOverrides(Table):
    """Replace what the data file says about the instrument."""

    symbol: str | None = None
    tick_size: Scale | None = None
    lot_size: Scale | None = None
    contract_multiplier: Scale | None = None
    kind: Literal["linear", "inverse"] | None = None   # inverse: contracts of contract_multiplier USD, in the coin
    settlement: str | None = None                      # the currency PnL, fees and margin are in


class StrategyConfig(Table):
    name: str
    mode: Literal["python", "kernel"] = "python"
    compute_ns: LatencyNs | Literal["measured"] | None = None   # None: the strategy's own default
    wake: WakePolicy = WakePolicy()
    params: dict[str, Any] = {}


class MetricsConfig(Table):
    episode_s: Seconds = 1800.0


class VenueConfig(Table, kw_only=True):
    """What a strategy runs with on any venue: itself, the instrument, and the simulated exchange's models."""

    strategy: StrategyConfig
    instrument: InstrumentOverrides = InstrumentOverrides()
    queue: QueueConfig = QueueConfig()
    latency: LatencyConfig = LatencyConfig()
    fees: FeeConfig = FeeConfig()
    metrics: MetricsConfig = MetricsConfig()


class BacktestData(DataConfig, kw_only=True):
    """``[data]`` of a backtest: the files, and the window replayed (:mod:`runtime.window`)."""

    start: str | int | None = None     # "10:30" (the exchange day), "+2h" (after the first event) or ns
    end: str | int | None = None       # the same forms; "-30m": before the last event
    timezone: str = "auto"             # the exchange day's zone; auto: America/New_York for LOBSTER, else UTC
    # Stream the files through the engine this many events at a time (event files only), in memory that
    # does not grow with the number of days; absent: the whole data in one array. Same results either way.
    chunk_events: Annotated[int, msgspec.Meta(ge=1024)] | None = None
    gap_s: Seconds = 600.0      # a jump of local time longer than this is reported as a gap in the results


class BacktestConfig(VenueConfig, kw_only=True):
    """``cmm backtest``: a venue replayed from tick files."""

    data: BacktestData


class PaperFeedConfig(Table):
    """``[paper]``: how paper trading takes its feed (``cmm paper --feed ADDR``)."""

    topic: str | None = None               # the instrument's topic; None: the only one the feed carries
    stale_after_s: Seconds = 2.0          # no message for this long: the feed is stale, quotes are pulled
    max_feed_latency_ns: LatencyNs = 1_000_000_000   # bound on local_ts - exch_ts (engine/live.py)
    status_every_s: Seconds = 1.0         # the live status line's period
    busy_poll: bool = False                # spin on the feed instead of sleeping: a core for lower latency
    # While the feed is quiet, rehearse the strategy's decision (Strategy.rehearse) every this many us, so
    # its code and data are still in the core's caches when a tick comes; 0: never.
    rehearse_every_us: Annotated[int, msgspec.Meta(ge=0)] = 0


class PaperConfig(VenueConfig, kw_only=True):
    """``cmm paper``: the same venue over a live ZeroMQ feed."""

    paper: PaperFeedConfig = PaperFeedConfig()


def load(path: str, type_: type[VenueConfig] = BacktestConfig, text: bytes | None = None,
         where: str | None = None) -> VenueConfig:
    """Parse and check a config file; every problem is a ConfigError naming the key. ``text``: the config's
    TOML given here instead of read from ``path`` (paths in it are still relative to ``path``; a sweep's
    job), with errors naming ``where``."""
    cfg = tomlconfig.load(path, type_) if text is None else tomlconfig.decode(text, type_, where or path)
    return checked(cfg, path)


def checked(cfg: VenueConfig, path: str) -> VenueConfig:
    """A decoded config with its model names checked and its paths made relative to ``path``'s directory."""
    model_class(QUEUE_MODELS, "queue.model", cfg.queue.model, path)
    model_class(FEE_MODELS, "fees.mode", cfg.fees.mode, path)
    latency_file = cfg.latency.file and tomlconfig.resolve(path, cfg.latency.file)
    cfg = msgspec.structs.replace(cfg, latency=msgspec.structs.replace(cfg.latency, file=latency_file))
    if isinstance(cfg, BacktestConfig):
        files = [tomlconfig.resolve(path, f) for f in cfg.data.files]
        cfg = msgspec.structs.replace(cfg, data=msgspec.structs.replace(cfg.data, files=files))
    return cfg


def strategy_params(cfg: VenueConfig, params_type: type[msgspec.Struct], path: str) -> msgspec.Struct:
    """The ``[strategy.params]`` table checked against the strategy's own Params Struct."""
    return tomlconfig.convert(cfg.strategy.params, params_type, path, "strategy.params")


def engine_config(cfg: VenueConfig, tick_size: float, lot_size: float, multiplier: float,
                  inverse: bool = False) -> EngineConfig:
    return EngineConfig(tick_size=tick_size, lot_size=lot_size, contract_multiplier=multiplier, inverse=inverse,
                        queue=cfg.queue, latency=cfg.latency, fees=cfg.fees)
