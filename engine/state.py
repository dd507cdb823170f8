"""The simulation state: one structref of numpy arrays that every kernel takes.

Keeping state in plain arrays (not a jitclass) lets every Numba function be
``cache=True`` and lets Python read results without copying. Scalars live in
the ``ints`` (int64) and ``floats`` (float64) vectors at the indices named here.
"""
from __future__ import annotations

import operator

import msgspec
import numba as nb
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.core.runtime.nrtdynmod import _meminfo_struct_type
from numba.experimental import structref

from feeds.events import (ADD_ORDER, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, FILL, KIND_MASK,
                          LOCAL, MODIFY_ORDER, TRADE)
from feeds.validate import MAX_BOOK_TICKS

from common.config import MAX_LATENCY_NS, ConfigError
from engine.book import empty_bk
from engine.codes import INVALID_MAX, INVALID_MIN
from engine.models.config import FeeConfig, LatencyConfig, QueueConfig, model_class

# ---- ints: integer scalars ----
I_N = 0            # number of event rows
I_IE = 1           # next row on the exchange timeline
I_IL = 2           # next row on the local timeline
I_CUR = 3          # current local time (strategy clock)
I_LB = 4           # book tick range [LB, UB]
I_UB = 5
I_NEXT_ID = 6      # next order id handed out
I_NFILLS = 7       # rows in the fill log
I_NTICKS = 8       # rows in the tick log
I_RQ_HEAD = 9      # request ring (local -> exchange)
I_RQ_TAIL = 10
I_RS_HEAD = 11     # response ring (exchange -> local)
I_RS_TAIL = 12
I_PARTIAL = 14     # 1: partial fills at the queue front (else hftbacktest's NoPartialFillExchange)
I_COMPUTE = 15     # strategy decision time for orders sent at the current wake-up (ns)
I_LAT = 16         # 6 slots: entry/response ns of new, modify and cancel requests (engine/models/latency/constant.py)
I_RECORD_TICKS = 23
I_NXLIVE = 24      # orders live at the exchange (entries of ``xlive``)
I_NORDLOG = 25
I_RECORD_ORDERS = 26
I_NTRADES = 27     # our fills (exchange side)
I_LNTRADES = 28    # our fills as seen locally
I_STARTED = 29
I_ENDED = 30
I_NLAT = 31        # rows of the recorded latency table (0: constant latency)
I_NUSED = 32       # order slots in use
I_NXBUY = 33       # live buy orders at the exchange
I_NXSELL = 34
I_SLOT_HWM = 35    # every used order slot lies below this index
I_NLOG_DROPPED = 36
I_XMAXBUY = 37     # highest live buy tick at the exchange (INVALID_MIN: none)
I_XMINSELL = 38    # lowest live sell tick at the exchange (INVALID_MAX: none)
I_WAKE_LEFT = 39    # local market events left before a wake-up (0: not counting)
I_WAKE_TOP = 40     # 1: wake when the local top of book changes
I_WOKE = 41         # why the replay stopped early (kernel.WOKE_* bits), 0 if it did not
I_WOKE_TS = 42      # local time of the event that woke the strategy
I_TOP_BID = 43      # the top of book at the last wake-up (ticks), for on_top_change
I_TOP_ASK = 44
I_LIVE = 45         # 1: rows are still arriving (paper trading): running out of them is a wait, not the end
I_WAKE_OPEN = 46    # 1: a wake-up is pending across horizon stops (its event count and timer persist)
I_WAKE_AT = 47      # local time the pending wake-up's timer fires (END - 1: no timer)
I_TICKS_SPILLED = 48  # tick-log rows a live engine moved out of its arrays (engine/live.py): I_NTICKS counts the rest
I_REFUSED_QTY = 49    # orders and modifies refused before sending: a size under one lot ...
I_REFUSED_PRICE = 50  # ... and a price outside the book's tick range (kernel.E_BAD_QTY, E_PRICE_OUT_OF_RANGE)
I_SIZE = 51

# ---- floats: float scalars ----
F_TICK = 0
F_LOT = 1
F_MULT = 2
F_MAKER = 3
F_TAKER = 4
F_QPOW = 5
F_POS = 6          # position at the exchange (fills count when executed)
F_CASH = 7         # cash at the exchange, net of fees
F_FEE = 8
F_VOLUME = 9
F_VALUE = 10
F_LPOS = 11        # position as the strategy knows it (fills count when the response arrives)
F_LBAL = 12        # balance as the strategy knows it, before fees (hftbacktest's ``balance``)
F_LFEE = 13
F_LVOLUME = 14
F_LVALUE = 15
F_SUM_ABS_Q = 16
F_LAST_MID = 17
F_MID0 = 18
F_TOP_BIDQ = 19    # sizes at the top of book at the last wake-up
F_TOP_ASKQ = 20
F_PER_TICK = 21     # 1 / tick size (book.price_tick_fast)
F_INVERSE = 22      # 1: inverse contracts, valued in the coin (engine/contracts.py); 0: linear
F_SIZE = 24

# ---- order table: orders_i (int64, O_*) and orders_f (float64, OF_*) columns ----
O_ID = 0
O_SIDE = 1
O_TICK = 2         # price at the exchange
O_TIF = 3
O_TYPE = 4
O_XSTATUS = 5      # status at the exchange
O_LSTATUS = 6      # status the strategy sees
O_LREQ = 7         # request in flight, as the strategy sees it
O_INFLIGHT = 8     # messages in flight that reference this slot
O_USED = 9
O_REASON = 10
O_SUBMIT_TS = 11   # local time the strategy decided to send it
O_XTS = 12         # last exchange timestamp
O_LTICK = 13       # price as the strategy sees it
O_LCLEARED = 14    # the strategy dropped it from its view
O_LTS = 15         # local time of the last response
O_NCOLS = 16

OF_FRONT = 0          # queue ahead of us
OF_QUEUE_STATE = 1    # the queue model's own number (L2: traded at our price since the last depth update;
                      # L3: the L3 slot counter when we joined, lower slots are ahead of us)
OF_QTY = 2            # order quantity at the exchange
OF_XLEAVES = 3
OF_XEXEC = 4
OF_LQTY = 5
OF_LLEAVES = 6
OF_LEXEC = 7
OF_NCOLS = 8

# ---- rings ----
RQ_TS, RQ_SLOT, RQ_KIND, RQ_TICK, RQ_ID, RQ_SIDE = range(6)   # RQ_ID, RQ_SIDE: for journals (the slot may be reused)
RS_TS, RS_SLOT, RS_KIND, RS_STATUS, RS_REASON, RS_EXEC_TICK, RS_MAKER, RS_XTS, RS_TICK = range(9)
RSF_EXEC_QTY, RSF_LEAVES, RSF_FEE, RSF_QTY = 0, 1, 2, 3

# Fill log columns.
FL_ID, FL_SIDE, FL_XTS, FL_LTS, FL_MAKER, FL_TICK = range(6)
FLF_QTY, FLF_PRICE, FLF_FEE = range(3)
# Order log columns.
OL_ID, OL_SIDE, OL_TICK, OL_TIF, OL_TYPE, OL_STATUS, OL_REASON, OL_SUBMIT_TS, OL_DONE_TS = range(9)
OLF_QTY, OLF_EXEC = range(2)
# Tick log: ``tk_mid`` and ``tk_epnl`` (float64) and ``tk_nq`` (int32) = our fills so far << TQ_SHIFT
# | quote flags (we had a live order on that side at the exchange). Timestamps, position, MAP and RPT
# follow from these, the events and the fill log (engine/results.collect): 20 bytes a tick, not 49.
TQ_BID, TQ_ASK = 1, 2
TQ_SHIFT = 2
MAX_FILLS = 1 << 29   # fills so far must fit tk_nq

SIM_FIELDS = (
    "events", "ev", "exch_ts", "local_ts", "px", "qty",
    "xbid", "xask", "xbook_ends", "lbid", "lask", "lbook_ends",
    "ints", "floats", "orders_i", "orders_f", "xlive", "nbuy_at", "nsell_at",
    "rq_i", "rq_f", "rs_i", "rs_f",
    "fl_i", "fl_f", "ol_i", "ol_f", "tk_mid", "tk_epnl", "tk_nq",
    "lat_ts", "lat_v",
    "order_id", "l3_i", "l3_q", "l3_h", "l3_lv",
)
# The models the kernels are compiled for (engine/models/unit.py): a queue, a latency and a fee model.
MODEL_FIELDS = ("queue", "latency", "fee")


@structref.register
class SimType(types.StructRef):
    """Numba's type for :class:`Sim`: one struct of array fields."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Sim(structref.StructRefProxy):
    """Every array of one run, behind one reference.

    Not a namedtuple: Numba passes a tuple of ~35 arrays by value and increfs each
    member at every call that takes it (~0.4 us a call, most of the time of a
    1 ms strategy loop). A structref is one pointer. Python reads the same numpy
    arrays as attributes (``S.fl_i``); jitted code reads the struct's fields.
    """

    # What numba's typeof reads of each Sim a jitted call takes from Python (twice a call). The base
    # class's is a Python property, a frame each time; this reads the same slot from C.
    _numba_type_ = property(operator.attrgetter("_type"))

    def __new__(cls, **fields):
        """``fields``: every array of SIM_FIELDS and every model of MODEL_FIELDS, by name."""
        self = _build_sim(*[fields[name] for name in SIM_FIELDS + MODEL_FIELDS])
        self.__dict__.update(fields)
        return self


structref.define_proxy(Sim, SimType, list(SIM_FIELDS + MODEL_FIELDS))


@intrinsic
def _borrow_fields(typingctx, sim):
    """Make the struct's arrays borrowed: their NRT owner pointers become NULL.

    Every read of an array field from a structref increfs and later decrefs its
    owner with an atomic instruction; the hot loops read ~20 fields per call, and
    those atomics were most of a 1 ms wake-up. The Python ``Sim`` keeps every
    numpy array alive for as long as the struct exists, so no owner is needed,
    and NRT skips a NULL owner for free.
    """
    def codegen(context, builder, signature, args):
        simty = signature.args[0]
        data = structref._Utils(context, builder, simty).get_data_struct(args[0])
        for name, fty in simty.field_dict.items():
            if not isinstance(fty, types.Array):
                continue
            ary = context.make_array(fty)(context, builder, value=getattr(data, name))
            context.nrt.decref(builder, fty, ary._getvalue())
            ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
            setattr(data, name, ary._getvalue())
        return context.get_dummy_value()
    return types.none(sim), codegen


@intrinsic
def field(typingctx, sim, name):
    """``sim.<name>`` read with no NRT call, for kernels compiled with ``_nrt=False``.

    A structref's getattr needs the NRT to find its payload, and in a kernel
    with the NRT on every array read costs an incref and a decref call (no-ops
    on the borrowed arrays, but calls, and the registers they clobber): about a
    third of what :func:`engine.kernel._replay` spent per 1 ms wake-up. Reading
    the payload pointer straight from the MemInfo (what NRT_MemInfo_data_fast
    does) lets the replay loop run without the NRT at all.
    """
    if not isinstance(name, types.StringLiteral) or name.literal_value not in sim.field_dict:
        return None
    fieldname = name.literal_value

    def codegen(context, builder, signature, args):
        simty = signature.args[0]
        meminfo = cgutils.create_struct_proxy(simty)(context, builder, value=args[0]).meminfo
        info = builder.bitcast(meminfo, _meminfo_struct_type.as_pointer())
        payload = builder.load(cgutils.gep(builder, info, 0, 3))
        datatype = simty.get_data_type()
        payload = builder.bitcast(payload, context.data_model_manager[datatype].get_value_type().as_pointer())
        return getattr(cgutils.create_struct_proxy(datatype)(context, builder, ref=payload), fieldname)
    return sim.field_dict[fieldname](sim, name), codegen


@nb.njit(cache=True)
def _build_sim(*arrays):
    sim = Sim(*arrays)
    _borrow_fields(sim)
    return sim


# L3 book columns (engine/l3.py); row 0 of ``l3_i`` holds the next free slot.
L_ID, L_SIDE, L_TICK, L_LIVE = range(4)


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the kernel needs besides the events. Times are nanoseconds."""

    tick_size: float
    lot_size: float
    contract_multiplier: float = 1.0
    inverse: bool = False              # contracts of ``contract_multiplier`` USD settled in the coin
    queue: QueueConfig = QueueConfig()
    latency: LatencyConfig = LatencyConfig()
    fees: FeeConfig = FeeConfig()
    max_orders: int = 1024             # live order slots
    max_fills: int = 1 << 18
    max_order_log: int = 1 << 18
    record_ticks: bool = True
    record_orders: bool = True
    ring_size: int = 1 << 14           # messages in flight each way
    tick_range_pad: int = 1000         # ticks added either side of the data's price range


def queue_model(cfg: EngineConfig) -> type:
    """The queue model class ``cfg`` names (a ConfigError naming ``queue.model`` if none)."""
    from engine.models.queue.registry import QUEUE_MODELS   # here: the models import this module's names
    return model_class(QUEUE_MODELS, "queue.model", cfg.queue.model)


def _models(cfg: EngineConfig, recorded_latency: bool) -> dict:
    """One instance of each model ``cfg`` names: what the kernels are compiled for."""
    from engine.models.fees.registry import FEE_MODELS           # here: the models import this module's names
    from engine.models.latency.registry import LATENCY_MODELS
    return dict(queue=queue_model(cfg)(),
                latency=LATENCY_MODELS["recorded" if recorded_latency else "constant"](),
                fee=model_class(FEE_MODELS, "fees.mode", cfg.fees.mode)())


def _check(cfg: EngineConfig) -> None:
    if not (cfg.tick_size > 0 and cfg.lot_size > 0 and cfg.contract_multiplier > 0):
        raise ConfigError("tick_size, lot_size and contract_multiplier must be positive")
    if not all(0 <= ns <= MAX_LATENCY_NS for ns in cfg.latency.constants()):
        raise ConfigError(f"latencies must be within 0 and {MAX_LATENCY_NS:_} ns (an hour)")
    if cfg.max_fills > MAX_FILLS:
        raise ConfigError(f"max_fills must be at most {MAX_FILLS}")
    if cfg.ring_size & (cfg.ring_size - 1):
        raise ConfigError("ring_size must be a power of two")


def count_ticks(events: np.ndarray) -> int:
    """Rows that are market data on the local timeline: one metrics row each."""
    return int(_count_ticks(events["ev"]))


@nb.njit(cache=True, inline="always")
def is_book_kind(kind):
    """A kind that changes the book (DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, DEPTH_BBO)."""
    return kind == DEPTH or kind == DEPTH_CLEAR or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO


@nb.njit(cache=True, inline="always")
def is_tick(e):
    """A market-data row on the local timeline (a book change or a trade): one metrics row each."""
    kind = e & KIND_MASK
    return (e & LOCAL) != 0 and (kind == TRADE or is_book_kind(kind))


@nb.njit(cache=True)
def _count_ticks(ev):
    n = 0
    for e in ev:
        if is_tick(e):
            n += 1
    return n


@nb.njit(cache=True)
def tick_times(ev, local_ts, n):
    """``local_ts`` of the first ``n`` market-data rows on the local timeline: one per tick."""
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(ev.shape[0]):
        if k == n:
            break
        if is_tick(ev[i]):
            out[k] = local_ts[i]
            k += 1
    return out


def tick_range(events: np.ndarray, tick_size: float, pad: int) -> tuple[int, int]:
    """Lowest and highest price tick in the events, ``pad`` ticks wider (one pass, no temporaries).

    The books are arrays over this range, so a range too wide for memory (a tick size or a price off by
    orders of magnitude) is refused here, while it is still a float, before it overflows an int64."""
    lo, hi, any_priced = _tick_extent(events["ev"], events["px"], tick_size)
    if not any_priced:
        return 0, 2 * pad
    if not hi - lo <= MAX_BOOK_TICKS:     # the data's rule (feeds.validate), at the tick size in force
        raise ConfigError(f"the prices span {hi - lo:.4g} ticks of {tick_size:g}, more than the "
                          f"{MAX_BOOK_TICKS:,} a book holds: check the tick size and the prices", field="tick_size")
    return int(lo) - pad, int(hi) + pad


@nb.njit(cache=True)
def _tick_extent(ev, px, tick_size):
    lo = np.inf
    hi = -np.inf
    found = False
    for i in range(ev.shape[0]):
        kind = ev[i] & KIND_MASK
        if (kind == DEPTH or kind == TRADE or kind == DEPTH_SNAPSHOT or kind == DEPTH_BBO or kind == ADD_ORDER
                or kind == MODIFY_ORDER or kind == FILL):
            p = px[i]
            if np.isfinite(p) and p > 0:
                t = np.round(p / tick_size)
                lo = min(lo, t)
                hi = max(hi, t)
                found = True
    return lo, hi, found


def _l3_book(events: np.ndarray, width: int, enabled: bool) -> dict:
    """The L3 book's arrays (engine/l3.py), sized for every order the events can add."""
    n = int(_count_adds(events["ev"])) if enabled else 0
    l3_i = np.zeros((n + 1, 4), dtype=np.int64)
    l3_i[0, 0] = 1
    cap = 1 << max(2, (2 * n + 1).bit_length())   # load factor <= 1/2 even with every order kept
    return dict(l3_i=l3_i, l3_q=np.zeros(n + 1), l3_h=np.zeros(cap, dtype=np.int64),
                l3_lv=np.zeros((2, width if enabled else 1)))


@nb.njit(cache=True)
def _count_adds(ev):
    n = 0
    for e in ev:
        kind = e & KIND_MASK
        if kind == ADD_ORDER or kind == MODIFY_ORDER:
            n += 1
    return n


def _touched(a: np.ndarray) -> np.ndarray:
    """Write every page now: the tick log is the one big output, and faulting its
    fresh pages in mid-run costs more than replaying the events that fill it."""
    a.fill(0)
    return a


def make_sim(events: np.ndarray, cfg: EngineConfig, latency_table: np.ndarray | None = None) -> Sim:
    """Allocate the state for one run over ``events`` (ordered on both timelines)."""
    if events.dtype != EVENT_DTYPE:
        raise ConfigError("events must use feeds.events.EVENT_DTYPE")
    events = np.ascontiguousarray(events)    # the replay loop reads whole records at a fixed stride (kernel._replay)
    _check(cfg)
    models = _models(cfg, latency_table is not None)
    lb, ub = tick_range(events, cfg.tick_size, cfg.tick_range_pad)
    width = ub - lb + 1
    ints = np.zeros(I_SIZE, dtype=np.int64)
    ints[I_N] = len(events)
    ints[I_LB], ints[I_UB] = lb, ub
    ints[I_NEXT_ID] = 1
    ints[I_XMAXBUY] = INVALID_MIN
    ints[I_XMINSELL] = INVALID_MAX
    ints[I_PARTIAL] = int(cfg.queue.partial_fills)
    ints[I_LAT:I_LAT + 6] = cfg.latency.constants()
    ints[I_RECORD_TICKS] = int(cfg.record_ticks)
    ints[I_RECORD_ORDERS] = int(cfg.record_orders)
    floats = np.zeros(F_SIZE, dtype=np.float64)
    floats[F_TICK], floats[F_LOT], floats[F_MULT] = cfg.tick_size, cfg.lot_size, cfg.contract_multiplier
    floats[F_MAKER], floats[F_TAKER], floats[F_QPOW] = cfg.fees.maker, cfg.fees.taker, cfg.queue.power
    floats[F_PER_TICK] = 1.0 / cfg.tick_size
    floats[F_INVERSE] = float(cfg.inverse)
    floats[F_LAST_MID] = np.nan
    floats[F_MID0] = np.nan
    n_ticks = count_ticks(events) if cfg.record_ticks else 0
    n_ord = cfg.max_order_log if cfg.record_orders else 0
    if latency_table is None:
        lat_ts = np.zeros(0, dtype=np.int64)
        lat_v = np.zeros((0, 2), dtype=np.int64)
    else:
        lat_ts, lat_v = latency_table
        ints[I_NLAT] = len(lat_ts)
    r = cfg.ring_size
    return Sim(
        events=events, ev=events["ev"], exch_ts=events["exch_ts"], local_ts=events["local_ts"],
        px=events["px"], qty=events["qty"],
        xbid=np.zeros(width), xask=np.zeros(width), xbook_ends=empty_bk(),
        lbid=np.zeros(width), lask=np.zeros(width), lbook_ends=empty_bk(),
        ints=ints, floats=floats,
        orders_i=np.zeros((cfg.max_orders, O_NCOLS), dtype=np.int64),
        orders_f=np.zeros((cfg.max_orders, OF_NCOLS), dtype=np.float64),
        xlive=np.zeros(cfg.max_orders, dtype=np.int64),
        nbuy_at=np.zeros(width, dtype=np.int32), nsell_at=np.zeros(width, dtype=np.int32),
        rq_i=np.zeros((r, 6), dtype=np.int64), rq_f=np.zeros(r, dtype=np.float64),
        rs_i=np.zeros((r, 9), dtype=np.int64), rs_f=np.zeros((r, 4), dtype=np.float64),
        fl_i=np.zeros((cfg.max_fills, 6), dtype=np.int64), fl_f=np.zeros((cfg.max_fills, 3)),
        ol_i=np.zeros((n_ord, 9), dtype=np.int64), ol_f=np.zeros((n_ord, 2)),
        tk_mid=_touched(np.zeros(n_ticks)), tk_epnl=_touched(np.zeros(n_ticks)),
        tk_nq=_touched(np.zeros(n_ticks, dtype=np.int32)),
        lat_ts=lat_ts, lat_v=lat_v,
        order_id=events["order_id"].view(np.int64),
        **_l3_book(events, width, models["queue"].order_level),
        **models,
    )
