"""A backtest's time window: ``[data] start`` and ``end`` read against the data, as exchange-clock ns.

Each bound is one of

- a time of day, ``"10:30"`` or ``"10:30:15.5"``, in the data's exchange day: the
  date of its first event in ``[data] timezone`` ("auto": New York for LOBSTER
  files, whose clock is NASDAQ's, UTC for everything else);
- an offset, ``"+2h"``, ``"+90s"``, ``"-30m"``, ``"+1500ms"``: after the data's first
  event (``+``) or before its last (``-``);
- an absolute exchange timestamp in ns since the epoch (an integer).

The window must lie inside the data and hold some of it: a bound before the data,
after it, or a start not before the end is refused with one line naming the key,
as is an integer that is plainly not ns (seconds or ms since the epoch). Events
before ``start`` replay through the engine's books and warm the strategy's
features up (:func:`runtime.session.run`); no order and no metric counts them.
Events after ``end`` are not replayed.
"""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import numpy as np

from common.config import ConfigError

_OFFSET = re.compile(r"^([+-])\s*(\d+(?:\.\d*)?)\s*(ns|us|ms|s|m|h)$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d{1,9})?))?$")
_UNIT_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# An epoch timestamp in ns after 2001-09-09: anything smaller is seconds, ms or us since the epoch.
MIN_EPOCH_NS = 10**18
NEW_YORK = "America/New_York"


class Window(msgspec.Struct, frozen=True):
    """The replayed span: decisions and metrics from ``start_ns`` (None: the first event) to ``end_ns``
    (None: the last), in exchange-clock ns."""

    start_ns: int | None = None
    end_ns: int | None = None

    @property
    def whole(self) -> bool:
        return self.start_ns is None and self.end_ns is None


def zone_for(timezone: str, fmt: str) -> ZoneInfo:
    """The exchange day's time zone: the config's, or by the data's format when it says "auto"."""
    name = timezone if timezone != "auto" else NEW_YORK if fmt == "lobster" else "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; expected an IANA name such as 'UTC' or "
                          f"'{NEW_YORK}'", field="data.timezone") from None


def bound_ns(spec: str | int, first_ns: int, last_ns: int, zone: ZoneInfo, field: str) -> int:
    """One bound of the window as exchange ns (not yet checked against the data's span)."""
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise ConfigError(f"expected a time of day like \"10:30\", an offset like \"+2h\" or an integer ns "
                          f"timestamp, got {spec!r}", field=field)
    if isinstance(spec, int):
        if spec < MIN_EPOCH_NS:
            raise ConfigError(f"{spec} is not an epoch timestamp in ns (that would be before 2001): seconds or "
                              f"ms? give ns, a time of day like \"10:30\" or an offset like \"+2h\"", field=field)
        return spec
    text = spec.strip()
    m = _OFFSET.match(text)
    if m:
        sign, amount, unit = m.groups()
        ns = int(round(float(amount) * _UNIT_NS[unit]))
        return first_ns + ns if sign == "+" else last_ns - ns
    m = _CLOCK.match(text)
    if m:
        hours, minutes, seconds = int(m.group(1)), int(m.group(2)), m.group(3) or "0"
        if hours > 23 or minutes > 59 or float(seconds) >= 60:
            raise ConfigError(f"{spec!r} is not a time of day (HH:MM or HH:MM:SS)", field=field)
        day = dt.datetime.fromtimestamp(first_ns // 10**9, tz=zone).date()
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        whole, _, frac = seconds.partition(".")
        local = midnight + dt.timedelta(hours=hours, minutes=minutes, seconds=int(whole))
        return int(local.timestamp()) * 10**9 + int((frac + "0" * 9)[:9])
    raise ConfigError(f"cannot read {spec!r}: expected a time of day like \"10:30\", an offset like \"+2h\" or "
                      f"\"-30m\", or an integer ns timestamp", field=field)


def _clock(ns: int, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def resolve(start: str | int | None, end: str | int | None, exch_ts: np.ndarray, zone: ZoneInfo) -> Window:
    """The window of ``[data] start`` / ``end`` over data whose exchange timestamps are ``exch_ts``."""
    if start is None and end is None:
        return Window()
    first, last = int(exch_ts.min()), int(exch_ts.max())
    span = f"the data spans {_clock(first, zone)} to {_clock(last, zone)}"
    t0 = None if start is None else bound_ns(start, first, last, zone, "data.start")
    t1 = None if end is None else bound_ns(end, first, last, zone, "data.end")
    for name, t in (("data.start", t0), ("data.end", t1)):
        if t is not None and not first <= t <= last:
            raise ConfigError(f"{_clock(t, zone)} is outside the data: {span}", field=name)
    if t0 is not None and t1 is not None and t0 >= t1:
        raise ConfigError(f"start {_clock(t0, zone)} is not before end {_clock(t1, zone)}", field="data.start")
    return Window(start_ns=t0, end_ns=t1)


def cut(events: np.ndarray, window: Window) -> np.ndarray:
    """The events a windowed run replays: all of them up to ``end`` (the ones before ``start`` warm up)."""
    if window.end_ns is None:
        return events
    return events[events["exch_ts"] <= window.end_ns]
