"""The backtest config: a TOML file parsed into typed Structs, so the schema is this code.

Every table forbids unknown keys, so a typo is an error, not a silently ignored
setting. Paths in ``[data]`` and ``[latency]`` are relative to the config file.
``configs/backtest_fixed_spread.toml`` is a complete, commented example.
"""
from __future__ import annotations

from typing import Any, Literal

import msgspec

from engine.state import EngineConfig
from feeds import tomlconfig
from feeds.tomlconfig import ConfigError, DataConfig, Table

from .api import WakePolicy
from .params import NonNegativeInt, Positive



class InstrumentOverrides(Table):
    """Replace what the data file says about the instrument."""

    symbol: str | None = None
    tick_size: Positive | None = None
    lot_size: Positive | None = None
    contract_multiplier: Positive | None = None


class StrategyConfig(Table):
    name: str
    mode: Literal["python", "kernel"] = "python"
    compute_ns: NonNegativeInt | Literal["measured"] | None = None   # None: the strategy's own default
    wake: WakePolicy = WakePolicy()
    params: dict[str, Any] = {}


class QueueConfig(Table):
    model: Literal["risk_averse", "power_prob", "log_prob", "power_prob2", "log_prob2", "power_prob3", "l3"] = \
        "risk_averse"
    power: Positive = 2.0
    partial_fills: bool = False


class LatencyConfig(Table):
    """Order entry (to the exchange) and response (back to us) latency, per command.

    Either constants in ns, or ``file``: a CSV of recorded ``request_ts,exchange_ts,
    response_ts`` rows in ns, interpolated at each request's time.
    """

    place_entry_ns: NonNegativeInt = 0
    place_response_ns: NonNegativeInt = 0
    modify_entry_ns: NonNegativeInt = 0
    modify_response_ns: NonNegativeInt = 0
    cancel_entry_ns: NonNegativeInt = 0
    cancel_response_ns: NonNegativeInt = 0
    file: str | None = None


class FeeConfig(Table):
    """Rates paid on fills; a negative maker rate is a rebate."""

    maker: float = 0.0
    taker: float = 0.0
    mode: Literal["notional", "per_unit"] = "notional"


class MetricsConfig(Table):
    episode_s: Positive = 1800.0


class BacktestConfig(Table):
    data: DataConfig
    strategy: StrategyConfig
    instrument: InstrumentOverrides = InstrumentOverrides()
    queue: QueueConfig = QueueConfig()
    latency: LatencyConfig = LatencyConfig()
    fees: FeeConfig = FeeConfig()
    metrics: MetricsConfig = MetricsConfig()


def load(path: str) -> BacktestConfig:
    """Parse and check a config file; every problem is a ConfigError naming the key."""
    cfg = tomlconfig.load(path, BacktestConfig)
    files = [tomlconfig.resolve(path, f) for f in cfg.data.files]
    latency_file = cfg.latency.file and tomlconfig.resolve(path, cfg.latency.file)
    return msgspec.structs.replace(
        cfg, data=msgspec.structs.replace(cfg.data, files=files),
        latency=msgspec.structs.replace(cfg.latency, file=latency_file))


def strategy_params(cfg: BacktestConfig, params_type: type[msgspec.Struct], path: str) -> msgspec.Struct:
    """The ``[strategy.params]`` table checked against the strategy's own Params Struct."""
    return tomlconfig.convert(cfg.strategy.params, params_type, path, "strategy.params")


def engine_config(cfg: BacktestConfig, tick_size: float, lot_size: float, multiplier: float) -> EngineConfig:
    latencies = {k: v for k, v in msgspec.structs.asdict(cfg.latency).items() if k != "file"}
    return EngineConfig(
        tick_size=tick_size, lot_size=lot_size, contract_multiplier=multiplier,
        queue_model=cfg.queue.model, queue_power=cfg.queue.power, partial_fills=cfg.queue.partial_fills,
        maker_fee=cfg.fees.maker, taker_fee=cfg.fees.taker, fee_mode=cfg.fees.mode, **latencies)
