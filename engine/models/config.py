"""The settings of the engine's models, defined once: ``[queue]``, ``[latency]`` and ``[fees]``.

The backtest config reads these tables straight from TOML and the engine's
``EngineConfig`` holds the same Structs, so a setting has one name, one type
and one check. Model names are looked up in the kinds' registries when a run
starts (:func:`model_class`), so a model registered by a plugin is as valid as
a built-in one; a wrong name is one line naming the key and the valid names.
"""
from __future__ import annotations

from common.config import ConfigError, Finite, LatencyNs, Positive, Table


class QueueConfig(Table):
    """Where our resting orders stand in their level's queue (engine/models/queue/registry.py)."""

    model: str = "risk_averse"
    power: Positive = 2.0              # n of the power-probability models
    partial_fills: bool = False        # False: hftbacktest NoPartialFillExchange semantics


class LatencyConfig(Table):
    """Order entry (to the exchange) and response (back to us) latency, per command.

    Either constants in ns, or ``file``: a CSV of recorded ``request_ts,exchange_ts,
    response_ts`` rows in ns, interpolated at each request's time.
    """

    place_entry_ns: LatencyNs = 0
    place_response_ns: LatencyNs = 0
    modify_entry_ns: LatencyNs = 0
    modify_response_ns: LatencyNs = 0
    cancel_entry_ns: LatencyNs = 0
    cancel_response_ns: LatencyNs = 0
    file: str | None = None

    def constants(self) -> tuple[int, int, int, int, int, int]:
        """Entry and response ns of new, modify and cancel requests, in the order ``REQ_*`` numbers them."""
        return (self.place_entry_ns, self.place_response_ns, self.modify_entry_ns, self.modify_response_ns,
                self.cancel_entry_ns, self.cancel_response_ns)


class FeeConfig(Table):
    """Rates paid on fills; a negative maker rate is a rebate (engine/models/fees/registry.py)."""

    maker: Finite = 0.0
    taker: Finite = 0.0
    mode: str = "notional"

    def __post_init__(self):
        """A notional rate is a fraction of each fill's notional: one of 100% or more is a typo for bp or %."""
        if self.mode == "notional":
            for name, rate in (("maker", self.maker), ("taker", self.taker)):
                if not abs(rate) < 1:
                    raise ValueError(f"{name} = {rate} is {rate:.0%} of each fill's notional; a notional rate "
                                     "is a fraction (-0.0002: a 2 bp rebate)")


def model_class(registry: dict[str, type], key: str, name: str, path: str | None = None) -> type:
    """The model ``name`` in ``registry``; a ConfigError naming ``key`` and the valid names otherwise."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError(f"Invalid enum value {name!r}; expected one of {', '.join(map(repr, registry))}",
                          path=path, field=key) from None
