"""Which unit an epoch timestamp is in, told by the only dates market data can have.

Every capture this project reads is from the years 2000 to 2100. A count since
the epoch that lands in those years in nanoseconds lands before 1973 when read
as microseconds, and the ranges of ns, µs, ms and s do not overlap (each is a
factor 1000 from the next, the span only 4.3x wide). So a raw stamp's unit is
never a guess: it is the one unit whose range holds it, or the stamp is not a
time at all. A bound like "at least 10^15" is not enough: 2024 in µs is 1.7e15.
"""
from __future__ import annotations

YEAR_2000_S = 946_684_800
YEAR_2100_S = 4_102_444_800
YEAR_2000_NS = YEAR_2000_S * 10**9
YEAR_2100_NS = YEAR_2100_S * 10**9

NS_PER_UNIT = {"ns": 1, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def plausible_range(unit: str) -> tuple[int, int]:
    """``[low, high)`` of a stamp from 2000 to 2100 counted in ``unit``."""
    scale = NS_PER_UNIT[unit]
    return YEAR_2000_NS // scale, YEAR_2100_NS // scale


def unit_of(stamp: int) -> str | None:
    """The unit in which ``stamp`` falls between 2000 and 2100, None when there is none."""
    for unit in NS_PER_UNIT:
        low, high = plausible_range(unit)
        if low <= stamp < high:
            return unit
    return None
