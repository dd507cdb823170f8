"""The one event record every format is converted into.

It is byte-for-byte hftbacktest's ``event_dtype``: eight 8-byte fields, 64 bytes
aligned, so an array written by either project loads in the other unchanged.
The low byte of ``ev`` is the event kind; the high bits are flags saying which
timeline sees the event (exchange, local) and which side it is on.
"""
import numba as nb
import numpy as np

EVENT_DTYPE = np.dtype(
    [
        ("ev", "u8"),
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("px", "f8"),
        ("qty", "f8"),
        ("order_id", "u8"),
        ("ival", "i8"),
        ("fval", "f8"),
    ],
    align=True,
)
assert EVENT_DTYPE.itemsize == 64

# Event kinds, the low byte of ``ev`` (hftbacktest's numbering).
DEPTH = 1            # a price level's new total quantity (0 removes it)
TRADE = 2            # a trade printed; side flag = the aggressor's side
DEPTH_CLEAR = 3      # clear one side of the book up to px (inclusive)
DEPTH_SNAPSHOT = 4   # a level of a full snapshot (follows a DEPTH_CLEAR)
DEPTH_BBO = 5        # best bid or offer update
ADD_ORDER = 10       # L3: order_id rests at px with qty
CANCEL_ORDER = 11    # L3: order_id removed entirely
MODIFY_ORDER = 12    # L3: order_id now rests at px with qty (its remaining size)
FILL = 13            # L3: qty of resting order_id executed at px

# Our own kinds live in hftbacktest's user-defined range (>= 100), which it ignores.
TRADING_STATUS = 100  # fval: -1 halted, 0 quoting only, 1 trading resumed; ival: the source row's type (LOBSTER 7)

KIND_MASK = 0xFF

# Flags, the high bits of ``ev``.
EXCH = 1 << 31   # processed by the exchange side at exch_ts
LOCAL = 1 << 30  # seen by the local (strategy) side at local_ts
BUY = 1 << 29    # bid side / buyer-initiated trade
SELL = 1 << 28   # ask side / seller-initiated trade

KIND_NAMES = {
    DEPTH: "depth",
    TRADE: "trade",
    DEPTH_CLEAR: "depth_clear",
    DEPTH_SNAPSHOT: "depth_snapshot",
    DEPTH_BBO: "depth_bbo",
    ADD_ORDER: "add_order",
    CANCEL_ORDER: "cancel_order",
    MODIFY_ORDER: "modify_order",
    FILL: "fill",
    TRADING_STATUS: "trading_status",
}
KINDS_BY_NAME = {name: kind for kind, name in KIND_NAMES.items()}

# The kinds that change the L2 (price-level) book.
L2_KINDS = (DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, DEPTH_BBO)


def empty(n: int) -> np.ndarray:
    """A zeroed event array of length n."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def kinds(events: np.ndarray) -> np.ndarray:
    """The kind of each event, as uint8."""
    return (events["ev"] & KIND_MASK).astype(np.uint8)


@nb.njit(cache=True, inline="always")
def put_event(out, k, ev, exch_ts, local_ts, px, qty, order_id, ival, fval):
    """Write row ``k`` of a jitted reader's event array, every field; returns ``k + 1``."""
    r = out[k]
    r.ev = ev
    r.exch_ts = exch_ts
    r.local_ts = local_ts
    r.px = px
    r.qty = qty
    r.order_id = order_id
    r.ival = ival
    r.fval = fval
    return k + 1
