"""Check a LOBSTER orderbook file against the book rebuilt from its message file alone.

The rebuild starts from the book just before the first message and applies
each message's size change to its price level (add +size; partial cancel,
delete and visible execution -size; hidden executions, cross trades and halts
change nothing), then compares the top N levels with the orderbook row.

The message file only reports events inside the requested N levels, so the
rebuild cannot know a level that was never inside the window. Every
difference in the public sample files is explained by one rule (``RULE``): a
level enters the window without a message of its own only at the deep end, when
the window was full, and then its size is adopted from the orderbook file.
Rows that need the rule are counted as resynced; anything else is an
unexplained mismatch, and the rebuild restarts from the file's row so one
defect is counted once.
"""
from __future__ import annotations

import os

import msgspec
import numba as nb
import numpy as np

from common.errors import SkipCounter
from feeds.readers.lobster import EMPTY_ASK, EMPTY_BID, PRICE_SCALE, input_pairs, load_day
from feeds.readers.base import ReadOptions

RULE = ("a level enters the visible window without a message of its own only at the deep end "
        "(worse than every level of a full window before the message); its size is then adopted "
        "from the orderbook file")
KEEP = 5
_EQUAL, _ADOPTED, _MISMATCH = 0, 1, 2
_SIDES = ("ask", "bid")


class Mismatch(msgspec.Struct):
    file: str
    line: int
    side: str
    level: int                            # 1 = best
    expected: tuple[float, int] | None    # (price, size) in the orderbook file; None: no level there
    got: tuple[float, int] | None         # (price, size) rebuilt from the messages


class CheckReport(msgspec.Struct):
    source: str
    rows: int = 0                 # orderbook rows compared
    equal: int = 0                # equal to the rebuild from messages alone
    resynced: int = 0             # equal once entering levels were adopted (the rule)
    unexplained: int = 0          # still different
    outside_window_messages: int = 0   # messages at a price the rebuilt window does not hold
    skipped: int = 0
    first_mismatches: list[Mismatch] = []
    rule: str = RULE

    @property
    def ok(self) -> bool:
        return self.unexplained == 0

    def format_report(self) -> str:
        lines = [f"{self.source}: {self.rows:,} orderbook rows checked against the messages: "
                 f"{self.equal:,} equal, {self.resynced:,} resynced by the rule, "
                 f"{self.unexplained:,} unexplained",
                 f"  rule: {self.rule}"]
        if self.outside_window_messages:
            lines.append(f"  {self.outside_window_messages:,} messages at prices outside the rebuilt window")
        if self.skipped:
            lines.append(f"  {self.skipped:,} bad lines skipped")
        for m in self.first_mismatches:
            lines.append(f"  mismatch {m.file}:{m.line} {m.side} level {m.level}: "
                         f"orderbook {_level_text(m.expected)}, rebuilt {_level_text(m.got)}")
        return "\n".join(lines)

    __str__ = format_report


def _level_text(level: tuple[float, int] | None) -> str:
    return "no level" if level is None else f"{level[0]:g} x {level[1]:,}"


@nb.njit(cache=True)
def _load(row, px, sz, n):
    """Set the rebuilt state to an orderbook row."""
    levels = row.shape[0] // 4
    for s in range(2):
        n[s] = 0
        empty = EMPTY_ASK if s == 0 else EMPTY_BID
        for lv in range(levels):
            if row[4 * lv + 2 * s] == empty:
                break
            px[s, lv] = row[4 * lv + 2 * s]
            sz[s, lv] = row[4 * lv + 2 * s + 1]
            n[s] += 1


@nb.njit(cache=True)
def _apply(px, sz, n, s, price, delta, levels):
    """Add ``delta`` shares at ``price`` on side s; False when the price is outside the window."""
    sign = 1 if s == 0 else -1
    for j in range(n[s]):
        if px[s, j] == price:
            sz[s, j] += delta
            if sz[s, j] == 0:
                for q in range(j, n[s] - 1):
                    px[s, q] = px[s, q + 1]
                    sz[s, q] = sz[s, q + 1]
                n[s] -= 1
            return True
        if sign * px[s, j] > sign * price:
            if delta < 0:
                return False
            for q in range(n[s], j, -1):
                px[s, q] = px[s, q - 1]
                sz[s, q] = sz[s, q - 1]
            px[s, j] = price
            sz[s, j] = delta
            n[s] = min(n[s] + 1, levels)
            return True
    if delta < 0 or n[s] == levels:
        return False
    px[s, n[s]] = price
    sz[s, n[s]] = delta
    n[s] += 1
    return True


@nb.njit(cache=True)
def _compare(px, sz, n, s, row, was_full, deepest_before):
    """Compare side s with the row: (status, 0-based level of the first difference)."""
    levels = row.shape[0] // 4
    empty = EMPTY_ASK if s == 0 else EMPTY_BID
    sign = 1 if s == 0 else -1
    m = 0
    while m < levels and row[4 * m + 2 * s] != empty:
        m += 1
    for lv in range(min(n[s], m)):
        if px[s, lv] != row[4 * lv + 2 * s] or sz[s, lv] != row[4 * lv + 2 * s + 1]:
            return _MISMATCH, lv
    if n[s] > m:
        return _MISMATCH, m
    if m > n[s]:
        if was_full and sign * row[4 * n[s] + 2 * s] > sign * deepest_before:
            return _ADOPTED, n[s]
        return _MISMATCH, n[s]
    return _EQUAL, 0


@nb.njit(cache=True)
def _check_day(msg, book, pre, lines, found):
    """Counts (equal, resynced, unexplained, outside, recorded); mismatches go into ``found``."""
    levels = pre.shape[0] // 4
    px = np.zeros((2, levels + 1), dtype=np.int64)
    sz = np.zeros((2, levels + 1), dtype=np.int64)
    n = np.zeros(2, dtype=np.int64)
    _load(pre, px, sz, n)
    equal = 0
    resynced = 0
    unexplained = 0
    outside = 0
    recorded = 0
    for i in range(msg.shape[0]):
        was_full = (n[0] == levels, n[1] == levels)
        deepest = (px[0, max(n[0] - 1, 0)], px[1, max(n[1] - 1, 0)])
        typ = msg[i, 1]
        if 1 <= typ <= 4:
            s = 1 if msg[i, 5] == 1 else 0
            delta = msg[i, 3] if typ == 1 else -msg[i, 3]
            if not _apply(px, sz, n, s, msg[i, 4], delta, levels):
                outside += 1
        worst = _EQUAL
        for s in range(2):
            status, lv = _compare(px, sz, n, s, book[i], was_full[s], deepest[s])
            if status == _MISMATCH and recorded < found.shape[0]:
                empty = EMPTY_ASK if s == 0 else EMPTY_BID
                found[recorded, 0] = lines[i]
                found[recorded, 1] = s
                found[recorded, 2] = lv + 1
                found[recorded, 3] = book[i, 4 * lv + 2 * s] if lv < levels else empty
                found[recorded, 4] = book[i, 4 * lv + 2 * s + 1] if lv < levels else 0
                found[recorded, 5] = px[s, lv] if lv < n[s] else empty
                found[recorded, 6] = sz[s, lv] if lv < n[s] else 0
                recorded += 1
            worst = max(worst, status)
        if worst == _EQUAL:
            equal += 1
        else:
            resynced += worst == _ADOPTED
            unexplained += worst == _MISMATCH
            _load(book[i], px, sz, n)
    return equal, resynced, unexplained, outside, recorded


def _level(price: int, size: int) -> tuple[float, int] | None:
    return None if price in (EMPTY_ASK, EMPTY_BID) else (price / PRICE_SCALE, int(size))


def check(path: str, options: ReadOptions = ReadOptions()) -> CheckReport:
    """Rebuild every day of one LOBSTER input from its messages and compare with its orderbook."""
    path = os.fspath(path)
    counter = SkipCounter(options.on_error)
    report = CheckReport(source=path)
    mismatches: list[Mismatch] = []
    for pair in input_pairs(path):
        with options.progress(3, f"check {os.path.basename(pair.message)}") as bar:
            day = load_day(pair, counter, bar)
            found = np.zeros((KEEP, 7), dtype=np.int64)
            equal, resynced, unexplained, outside, recorded = _check_day(day.msg, day.book, day.pre,
                                                                         day.lines, found)
            bar.update()
        report.rows += len(day.lines)
        report.equal += int(equal)
        report.resynced += int(resynced)
        report.unexplained += int(unexplained)
        report.outside_window_messages += int(outside)
        for line, side, level, e_px, e_sz, g_px, g_sz in found[:recorded].tolist():
            mismatches.append(Mismatch(pair.where(pair.orderbook), line, _SIDES[side], level,
                                       _level(e_px, e_sz), _level(g_px, g_sz)))
    report.first_mismatches = mismatches[:KEEP]
    report.skipped = counter.count
    return report
