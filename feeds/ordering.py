"""Put events on two monotonic timelines, the exchange's and ours.

A capture records each message when *we* received it, but exchange timestamps
of different streams (depth, trades) interleave out of order. The backtest needs
exchange events sorted by ``exch_ts`` and local events sorted by ``local_ts``.
As hftbacktest does, a row whose position differs on the two timelines is
split into an EXCH-only copy and a LOCAL-only copy; a row that sits in the same
place on both keeps both flags.

Clock skew between the capturing machine and the exchange can make
``local_ts < exch_ts`` (negative feed latency). :func:`correct_local_timestamp`
shifts every local timestamp by one constant so the smallest latency is
``base_latency``, keeping relative latencies intact.

The smallest latency is taken over the typical ones only: a single bad clock
reading 10 s early must not move every other event by 10 s. Feed latency has
a sharp lower edge (the wire's delay) and a long upper tail, so a latency far
below the lower quartile is no delay at all but a wrong timestamp
(:func:`early_outliers`); readers refuse such lines by number, and none of them
sets the shift. A skew beyond an hour is not a clock running behind but times
that are not the same clock's: refused.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from common.errors import DataError
from feeds.events import EVENT_DTYPE, EXCH, LOCAL

TIMELINE_FLAGS = EXCH | LOCAL
# A latency is an outlier below q25 - max(10 IQR, 50 ms): far outside the few ms by which a real
# capture's smallest latency sits below its lower quartile.
OUTLIER_IQRS = 10
OUTLIER_MARGIN_NS = 50_000_000
MAX_CLOCK_SKEW_NS = 3600 * 10**9


def early_outliers(latency: np.ndarray) -> np.ndarray:
    """Mask of the latencies (ns) too far below the rest to be a feed's delay."""
    if len(latency) == 0:
        return np.zeros(0, dtype=np.bool_)
    q25, q75 = np.percentile(latency, [25, 75])
    return latency < q25 - max(OUTLIER_IQRS * (q75 - q25), OUTLIER_MARGIN_NS)


def early_outlier_reason(latency: int, typical: int) -> str:
    """What is wrong with a line whose feed latency (ns) is an outlier below the file's median ``typical``."""
    return (f"receive time {(typical - latency) / 1e9:,.3f} s earlier than its exchange time puts it "
            f"(feed latency {latency / 1e6:,.1f} ms, the file's median {typical / 1e6:,.1f} ms): "
            f"a bad clock reading")


def correct_local_timestamp(events: np.ndarray, base_latency_ns: int = 0) -> int:
    """Shift local_ts in place so no typical feed latency is below ``base_latency_ns``.

    Returns the offset added (0 when latencies were already non-negative). A
    median latency beyond an hour either way is a DataError.
    """
    if len(events) == 0:
        return 0
    latency = events["local_ts"] - events["exch_ts"]
    median = int(np.median(latency))
    if abs(median) > MAX_CLOCK_SKEW_NS:
        raise DataError(f"median feed latency (local_ts - exch_ts) is {median / 1e9:,.1f} s: local and "
                        f"exchange times are not one clock's (a unit or epoch wrong?)", field="local_ts")
    min_latency = int(latency[~early_outliers(latency)].min())
    if min_latency >= 0:
        return 0
    offset = -min_latency + int(base_latency_ns)
    events["local_ts"] += offset
    return offset


@nb.njit(cache=True)
def _merge_timelines(ev, exch_ts, local_ts, by_exch, by_local, out_index, out_flags):
    n = ev.shape[0]
    i = 0  # position in exchange order
    j = 0  # position in local order
    k = 0
    while i < n or j < n:
        if i < n and j < n and by_exch[i] == by_local[j]:
            out_index[k] = by_exch[i]
            out_flags[k] = 3  # both
            i += 1
            j += 1
        elif j >= n or (i < n and (exch_ts[by_exch[i]] < exch_ts[by_local[j]]
                                    or (exch_ts[by_exch[i]] == exch_ts[by_local[j]]
                                        and local_ts[by_exch[i]] < local_ts[by_local[j]]))):
            out_index[k] = by_exch[i]
            out_flags[k] = 1  # exchange only
            i += 1
        else:
            out_index[k] = by_local[j]
            out_flags[k] = 2  # local only
            j += 1
        k += 1
    return k


def order_timelines(events: np.ndarray) -> np.ndarray:
    """Return events ordered for both timelines, with EXCH/LOCAL flags set.

    Ties keep input order (stable sorts), so the result is deterministic.
    A row is emitted once with both flags when it holds the same position in
    both orders, otherwise as two single-flag copies.
    """
    n = len(events)
    if n == 0:
        return events.copy()
    by_exch = np.argsort(events["exch_ts"], kind="stable")
    by_local = np.argsort(events["local_ts"], kind="stable")
    out_index = np.empty(2 * n, dtype=np.int64)
    out_flags = np.empty(2 * n, dtype=np.int64)
    k = _merge_timelines(events["ev"], events["exch_ts"], events["local_ts"], by_exch, by_local,
                         out_index, out_flags)
    out = events[out_index[:k]]
    flags = out_flags[:k]
    ev = out["ev"] & ~np.uint64(TIMELINE_FLAGS)
    ev |= np.where(flags & 1, np.uint64(EXCH), np.uint64(0))
    ev |= np.where(flags & 2, np.uint64(LOCAL), np.uint64(0))
    out["ev"] = ev
    return out


def timeline_violations(events: np.ndarray) -> tuple[int, int]:
    """Count backward steps on the exchange and the local timeline."""
    ev = events["ev"]
    exch = (ev & np.uint64(EXCH)) != 0
    local = (ev & np.uint64(LOCAL)) != 0
    return (int(np.count_nonzero(np.diff(events["exch_ts"][exch]) < 0)),
            int(np.count_nonzero(np.diff(events["local_ts"][local]) < 0)))


def merge_received(trades: list[np.ndarray], book: list[np.ndarray]) -> np.ndarray:
    """Streams of one instrument read from separate files, merged into one by ``local_ts``.

    At equal receive times trades come first, as hftbacktest's converters ask: a trade
    is applied before the depth change it caused, so a queue ahead of our order is not
    reduced twice. Ties within a kind keep file order (a stable sort).
    """
    parts = [*trades, *book]
    if not parts:
        return np.zeros(0, dtype=EVENT_DTYPE)
    events = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if np.all(events["local_ts"][1:] >= events["local_ts"][:-1]):
        return events                   # one stream already in receive order: nothing to move
    return events[np.argsort(events["local_ts"], kind="stable")]
