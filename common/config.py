"""Read a TOML config into a typed msgspec Struct, with every problem as one line naming the key.

The backtest and training configs both go through here, so a typo, a wrong
type or an out-of-range value reads the same everywhere::

    configs/x.toml: strategy.params: Object contains unknown field `half_spred_ticks`
"""
from __future__ import annotations

import os
import sys
import typing
from typing import Annotated, Literal, TypeVar

import msgspec

from common.errors import DataError

T = TypeVar("T")

# Constrained numbers: msgspec checks them while decoding, so ``qty = -1`` fails naming its key. TOML reads
# ``nan`` and ``inf``: a bound at the largest float refuses inf, and nan fails every bound, so each float type
# here is finite (``maker = nan`` made every fee, and so EPnL, nan printed as 0).
_MAX_FLOAT = sys.float_info.max
Finite = Annotated[float, msgspec.Meta(ge=-_MAX_FLOAT, le=_MAX_FLOAT)]
Positive = Annotated[float, msgspec.Meta(gt=0, le=_MAX_FLOAT)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=_MAX_FLOAT)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]

# Durations in seconds: at most a year, so one in ns fits int64 beside any timestamp (``episode_s = inf``
# was an OverflowError).
YEAR_S = 366 * 86_400
Seconds = Annotated[float, msgspec.Meta(gt=0, le=YEAR_S)]
# A latency or decision time in ns: at most an hour, which is no latency but a typo; added to an int64
# timestamp, 9e18 ns wrapped round and ran as if it were 1 ms.
MAX_LATENCY_NS = 3_600 * 10**9
LatencyNs = Annotated[int, msgspec.Meta(ge=0, le=MAX_LATENCY_NS)]
# An instrument's tick, lot or contract multiplier: within twelve orders of magnitude of 1, so prices and
# sizes counted in ticks and lots fit the engine's int64 (``tick_size = 1e-300`` was an OverflowError).
Scale = Annotated[float, msgspec.Meta(ge=1e-12, le=1e12)]


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A config table: immutable, and an unknown key is an error rather than a silently ignored setting."""


class DataConfig(Table):
    """``[data]``: the tick files to read, relative to the config file."""

    files: Annotated[list[str], msgspec.Meta(min_length=1)]
    format: Literal["auto", "npz", "lobster", "binance", "hftbacktest", "csv"] = "auto"


class ConfigError(DataError):
    """A config that cannot run: reported as one line naming the file and the key."""


def split_location(err: Exception) -> tuple[str | None, str]:
    """Split msgspec's "message - at `$.a.b`" into ("a.b", "message")."""
    text = str(err)
    if " - at `$" in text:
        message, _, path = text.rpartition(" - at `$")
        return path.rstrip("`").lstrip(".") or None, message
    return None, text


def _explained(message: str, type_, key: str | None) -> str:
    """msgspec's message, saying "finite" where a float's bound refuses nan and inf, and with the allowed
    values when the key holds one of a fixed set (a Literal)."""
    if message.startswith("Expected `float` "):
        for unsaid in (f" >= {-_MAX_FLOAT!r}", f" <= {_MAX_FLOAT!r}"):
            message = message.replace(unsaid, "")
        return message.replace("Expected `float`", "Expected a finite `float`")
    if not message.startswith("Invalid enum value") or key is None:
        return message
    for name in key.split("."):
        try:
            hints = typing.get_type_hints(type_) if isinstance(type_, type) and issubclass(type_, msgspec.Struct) \
                else {}
        except (NameError, TypeError):      # an annotation that does not resolve: say what msgspec said
            return message
        if name not in hints:
            return message
        type_ = hints[name]
    if typing.get_origin(type_) is not Literal:
        return message
    return f"{message}; expected one of {', '.join(repr(v) for v in typing.get_args(type_))}"


def load(path: str, type_: type[T]) -> T:
    """Parse ``path`` as TOML into ``type_``; a ConfigError names the file and the key."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror}", path=path) from None
    try:
        return msgspec.toml.decode(raw, type=type_)
    except msgspec.ValidationError as e:
        key, message = split_location(e)
        raise ConfigError(_explained(message, type_, key), path=path, field=key) from None
    except msgspec.DecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", path=path) from None


def convert(value, type_: type[T], path: str, prefix: str) -> T:
    """Check a table already read (such as ``[strategy.params]``) against its own Struct."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as e:
        key, message = split_location(e)
        raise ConfigError(_explained(message, type_, key), path=path,
                          field=".".join(part for part in (prefix, key) if part) or None) from None


def resolve(config_path: str, path: str) -> str:
    """A path written in a config, relative to the config's own directory."""
    base = os.path.dirname(os.path.abspath(config_path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
