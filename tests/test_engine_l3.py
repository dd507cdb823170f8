"""The L3 exact-FIFO queue model ("l3"): hand-built order streams and real LOBSTER messages."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest

import feeds
from engine import kernel as K
from engine.codes import BUY, CANCELED, FILLED, GTC, LIMIT, NEW, SELL
from engine.models.config import QueueConfig
from engine.state import (EngineConfig, FL_TICK, FL_XTS, FLF_QTY, I_LB, I_NFILLS, O_XSTATUS, OF_QUEUE_STATE, OF_FRONT,
                          make_sim)
from feeds import events as E
from tests.conftest import SAMPLES
from tests.engine_events import book, sim

# Bid 100 holds orders 1 (4 lots) and 2 (6 lots); we join behind them at t=10.
BASE = book(0, {99: 5, 100: 10}, {101: 7}) + [(0, "add", "b", 100, 4, 1), (0, "add", "b", 100, 6, 2)]


def _run(rows, until, qty=2.0, side=BUY, tick=100, partial=False):
    S = sim(rows, queue=QueueConfig(model="l3", partial_fills=partial))
    K.goto(S, 10)
    K.submit(S, side, tick, qty, GTC, LIMIT)
    K.goto(S, until)
    return S


def test_join_behind_every_resting_order():
    S = _run(BASE, 10)
    assert S.orders_f[0, OF_FRONT] == 10.0      # 4 + 6 ahead
    assert S.orders_i[0, O_XSTATUS] == NEW


def test_cancel_ahead_reduces_front_cancel_behind_does_not():
    rows = BASE + [(20, "add", "b", 100, 3, 3),      # behind us
                   (30, "cancel", "b", 100, 3, 3),   # behind: no change
                   (40, "cancel", "b", 100, 1, 2),   # partial cancel ahead: 10 -> 9
                   (50, "cancel", "b", 100, 4, 1)]   # full cancel ahead: 9 -> 5
    S = _run(rows, 35)
    assert S.orders_f[0, OF_FRONT] == 10.0
    K.goto(S, 45)
    assert S.orders_f[0, OF_FRONT] == 9.0
    K.goto(S, 55)
    assert S.orders_f[0, OF_FRONT] == 5.0
    assert S.ints[I_NFILLS] == 0


def test_fill_ahead_consumes_queue_then_fill_behind_fills_us():
    rows = BASE + [(20, "add", "b", 100, 3, 3),
                   (30, "cancel", "b", 100, 4, 1),  # 10 -> 6
                   (40, "fill", "b", 100, 5, 2),    # 6 -> 1
                   (50, "fill", "b", 100, 1, 2),    # 1 -> 0, order 2 done
                   (60, "fill", "b", 100, 3, 3)]    # order 3 is behind us: FIFO filled us first
    S = _run(rows, 55)
    assert S.orders_f[0, OF_FRONT] == 0.0 and S.ints[I_NFILLS] == 0
    K.goto(S, 60)
    assert S.ints[I_NFILLS] == 1
    assert (S.fl_i[0, FL_XTS], S.fl_i[0, FL_TICK], S.fl_f[0, FLF_QTY]) == (60, 100, 2.0)
    assert S.orders_i[0, O_XSTATUS] == FILLED


def test_trade_larger_than_queue_ahead_fills_us():
    rows = BASE + [(20, "trade", "s", 100, 10), (30, "trade", "s", 100, 11)]
    S = _run(rows, 25)
    assert S.ints[I_NFILLS] == 0          # 10 traded, 10 ahead: not reached
    K.goto(S, 30)
    assert S.ints[I_NFILLS] == 1 and S.fl_f[0, FLF_QTY] == 2.0


def test_partial_fill_by_trade_overrun():
    rows = BASE + [(20, "trade", "s", 100, 11)]
    S = _run(rows, 20, qty=3.0, partial=True)
    assert S.fl_f[0, FLF_QTY] == 1.0    # one lot beyond the 10 ahead


def test_fill_through_our_price_fills_in_full():
    rows = BASE + [(20, "add", "b", 99, 2, 7), (30, "fill", "b", 99, 1, 7)]
    S = _run(rows, 30)
    assert S.ints[I_NFILLS] == 1 and S.fl_f[0, FLF_QTY] == 2.0 and S.fl_i[0, FL_TICK] == 100


def test_other_side_and_other_price_leave_us_alone():
    rows = BASE + [(20, "add", "s", 101, 5, 8), (30, "fill", "s", 101, 5, 8), (40, "fill", "b", 101, 1, 9),
                   (50, "cancel", "b", 99, 1, 10)]
    S = _run(rows, 60)
    assert S.ints[I_NFILLS] == 0 and S.orders_f[0, OF_FRONT] == 10.0


def test_unknown_order_counts_as_ahead():
    """An order that predates the data is in L2 only: it is ahead of us."""
    rows = book(0, {100: 15}, {101: 7}) + [(0, "add", "b", 100, 10, 1), (20, "cancel", "b", 100, 5, 99)]
    S = _run(rows, 10)
    assert S.orders_f[0, OF_FRONT] == 15.0     # L2 level: 10 known + 5 unknown
    K.goto(S, 20)
    assert S.orders_f[0, OF_FRONT] == 10.0


def test_modify_real_order():
    rows = BASE + [(20, "modify", "b", 100, 5, 2),   # size down: keeps place, 10 -> 9
                   (30, "modify", "b", 100, 8, 1),   # size up: to the back, behind us: 9 -> 5
                   (40, "fill", "b", 100, 5, 2),     # 5 -> 0
                   (50, "fill", "b", 100, 1, 1)]     # order 1 is now behind us
    S = _run(rows, 25)
    assert S.orders_f[0, OF_FRONT] == 9.0
    K.goto(S, 35)
    assert S.orders_f[0, OF_FRONT] == 5.0
    K.goto(S, 45)
    assert S.orders_f[0, OF_FRONT] == 0.0 and S.ints[I_NFILLS] == 0
    K.goto(S, 50)
    assert S.ints[I_NFILLS] == 1


def test_our_modify_price_requeues_and_cancel_stops_fills():
    rows = BASE + [(0, "add", "b", 99, 5, 5), (20, "add", "b", 99, 1, 6), (40, "fill", "b", 99, 1, 6),
                   (50, "fill", "b", 99, 5, 5)]
    S = _run(rows, 10)
    K.modify(S, 1, 99, 2.0)          # reaches the exchange at 10: behind 5 at 99
    K.goto(S, 30)
    assert S.orders_f[0, OF_FRONT] == 5.0 and S.orders_f[0, OF_QUEUE_STATE] == 4   # slots 1..3 ahead (orders 1, 2, 5)
    K.goto(S, 40)
    assert S.ints[I_NFILLS] == 1      # order 6 joined after us and was filled
    S = _run(rows, 10)
    K.cancel(S, 1)
    K.goto(S, 60)
    assert S.orders_i[0, O_XSTATUS] == CANCELED and S.ints[I_NFILLS] == 0


def test_l2_depth_does_not_move_the_l3_queue():
    rows = BASE + [(20, "depth", "b", 100, 2)]
    S = _run(rows, 20)
    assert S.orders_f[0, OF_FRONT] == 10.0


# ---------------------------------------------------------------- real LOBSTER messages

ZIP = SAMPLES / "GOOG_2012-06-21_10_head.zip"
MESSAGES = "GOOG_2012-06-21_34200000_57600000_message_10.csv"
BOOKS = "GOOG_2012-06-21_34200000_57600000_orderbook_10.csv"


def _messages():
    with zipfile.ZipFile(ZIP) as z:
        msgs = [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in csv.reader(io.StringIO(z.read(MESSAGES).decode()))]
        books = [list(map(int, r)) for r in csv.reader(io.StringIO(z.read(BOOKS).decode()))]
    return msgs, books


def _fifo_at(msgs, last, side, price):
    """Python FIFO replay of messages 0..last: the known orders resting at ``price``, oldest first."""
    queue, where = {}, {}
    for _, typ, oid, size, px, d in msgs[:last + 1]:
        if typ == 1:
            queue.setdefault((d, px), []).append([oid, size])
            where[oid] = (d, px)
        elif typ in (2, 3, 4) and oid in where:
            level = queue[where[oid]]
            for entry in level:
                if entry[0] == oid:
                    entry[1] -= size
            queue[where[oid]] = [e for e in level if e[1] > 0]
            if all(e[0] != oid for e in queue[where[oid]]):
                del where[oid]
    return queue.get((side, price), [])


def _fifo_fill(msgs, last, side, price, ahead):
    """Replay on from ``last`` with us at the back of ``ahead``: (message we fill at, fronts on the way)."""
    ahead = dict(ahead)
    front = sum(ahead.values())
    fronts = []
    worse = (lambda px: px < price) if side == 1 else (lambda px: px > price)
    for j in range(last + 1, len(msgs)):
        _, typ, oid, size, px, d = msgs[j]
        if d == side and px == price and typ in (2, 3, 4) and oid in ahead:
            ahead[oid] -= size
            front -= size
            fronts.append((j, front))
        elif d == side and typ == 4 and (worse(px) or px == price):
            return j, fronts          # through our price, or an order behind us executed
        elif d == side and typ == 5 and (worse(px) or (px == price and size > front)):
            return j, fronts          # a hidden execution through our price, or beyond the queue ahead
                                      # (displayed orders, us included, go before hidden ones)
        elif typ == 1 and d == -side and (worse(px) or px == price):
            return j, fronts          # an opposite order priced at or through ours (the book crosses us)
    return None, fronts


def _scenarios(msgs, books, want):
    """(last message, side, price, known orders ahead) where the FIFO reaches us via an order behind us."""
    found = []
    for k in range(200, len(msgs), 50):
        last = k
        while last + 1 < len(msgs) and msgs[last + 1][0] == msgs[k][0]:
            last += 1
        for side in (1, -1):
            row = books[last]
            price, l2 = (row[2], row[3]) if side == 1 else (row[0], row[1])
            ahead = _fifo_at(msgs, last, side, price)
            if len(ahead) < 2 or sum(q for _, q in ahead) != l2:
                continue     # only levels whose every order the file shows
            j, _ = _fifo_fill(msgs, last, side, price, ahead)
            if j is not None and msgs[j][1] == 4 and msgs[j][4] == price:
                found.append((last, side, price, ahead))
        if len(found) >= want:
            return found
    return found


@pytest.fixture(scope="module")
def lobster():
    conv = feeds.read([str(ZIP)], fmt="lobster")
    ev = conv.events
    kind = ev["ev"] & np.uint64(E.KIND_MASK)
    per_message = (ev["ival"] != 0) & (kind != E.FILL)     # one row per message (type 4 adds a FILL)
    return conv, ev["exch_ts"][per_message]


def test_lobster_exact_fifo(lobster):
    conv, msg_ts = lobster
    msgs, books = _messages()
    assert len(msg_ts) == len(msgs)
    scenarios = _scenarios(msgs, books, 3)
    assert len(scenarios) == 3
    cfg = EngineConfig(tick_size=0.01, lot_size=1.0, queue=QueueConfig(model="l3"), tick_range_pad=100)
    for last, side, price, ahead in scenarios:
        S = make_sim(conv.events, cfg)
        K.goto(S, msg_ts[last])
        tick = price // 100
        K.submit(S, BUY if side == 1 else SELL, tick, 1.0, GTC, LIMIT)
        K.goto(S, msg_ts[last])
        assert S.orders_f[0, OF_FRONT] == sum(q for _, q in ahead)
        j, fronts = _fifo_fill(msgs, last, side, price, ahead)
        for m, front in fronts:
            if msg_ts[m] < msg_ts[j]:
                K.goto(S, msg_ts[m])
                expect = min(f for n, f in fronts if msg_ts[n] <= msg_ts[m])
                assert S.orders_f[0, OF_FRONT] == max(expect, 0)
        K.goto(S, msg_ts[j] - 1)
        assert S.ints[I_NFILLS] == 0, (last, side, price, j, S.fl_i[0])
        K.goto(S, msg_ts[j])
        assert S.ints[I_NFILLS] == 1
        assert S.fl_i[0, FL_XTS] == msg_ts[j] and S.fl_i[0, FL_TICK] == tick
        assert S.orders_i[0, O_XSTATUS] == FILLED
        assert tick - S.ints[I_LB] >= 0
