"""The Binance raw websocket capture reader: sequencing, events, samples and the real captures."""
from __future__ import annotations

import gzip
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import feeds
from feeds.readers import binance
from feeds import events as E
from feeds.book_check import check_book
from common.errors import DataError
from feeds.ordering import order_timelines
from feeds.readers.base import ReadOptions
from tests.conftest import SAMPLES, shared_path

MS = 1_000_000
# Hand-built captures count time from here (2024-08-09 00:00 UTC): a receive time must be a date.
T0_MS = 1_723_161_600_000
T0 = T0_MS * MS
SKIP = ReadOptions(on_error="skip")
USDM_SAMPLE = str(SAMPLES / "ethusdt_usdm_20240808_head.gz")
SPOT_SAMPLE = str(SAMPLES / "ethusdt_spot_20240808_head.gz")


# ---------------------------------------------------------------- hand-built captures


def capture(tmp_path, lines, name="cap.gz") -> str:
    path = tmp_path / name
    data = "".join(line + "\n" for line in lines).encode()
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return str(path)


def levels(pairs):
    return [[p, q] for p, q in pairs]


def depth(ts, e, first, last, b=(), a=(), pu=None, stream="ethusdt@depth@0ms", t=None):
    data = {"e": "depthUpdate", "E": T0_MS + e, "s": "ETHUSDT", "U": first, "u": last,
            "b": levels(b), "a": levels(a)}
    if pu is not None:
        data["pu"] = pu
    if t is not None:
        data["T"] = T0_MS + t
    return f"{T0 + ts} " + json.dumps({"stream": stream, "data": data})


def snapshot(ts, last_id, bids, asks, e=None):
    body = {"lastUpdateId": last_id, "bids": levels(bids), "asks": levels(asks)}
    if e is not None:
        body["E"] = T0_MS + e
    return f"{T0 + ts} " + json.dumps(body)


def trade(ts, t_ms, trade_id, p, q, maker_buyer, x=None):
    data = {"e": "trade", "E": T0_MS + t_ms, "T": T0_MS + t_ms, "s": "ETHUSDT", "t": trade_id, "p": p,
            "q": q, "m": maker_buyer}
    if x is not None:
        data["X"] = x
    return f"{T0 + ts} " + json.dumps({"stream": "ethusdt@trade", "data": data})


def ticker(ts, u, b, bq, a, aq, e=None):
    data = {"u": u, "s": "ETHUSDT", "b": b, "B": bq, "a": a, "A": aq}
    if e is not None:
        data["E"] = T0_MS + e
    return f"{T0 + ts} " + json.dumps({"stream": "ethusdt@bookTicker", "data": data})


def rows(events):
    """Events as tuples, times counted from T0."""
    return [(int(e["ev"]), int(e["exch_ts"]) - T0, int(e["local_ts"]) - T0, float(e["px"]), float(e["qty"]),
             int(e["order_id"]), int(e["ival"])) for e in events]


def test_snapshot_then_diffs_give_exact_events(tmp_path):
    path = capture(tmp_path, [
        snapshot(1000, 100, [("10.00", "1.0"), ("9.99", "2.0")], [("10.01", "3.0")], e=5),
        depth(2000, 6, 99, 101, b=[("10.00", "0")], a=[("10.02", "1.5")], pu=90),
        depth(3000, 7, 102, 103, b=[("9.98", "4")], pu=101),
    ])
    conv = binance.read([path], ReadOptions())
    assert rows(conv.events) == [
        (E.DEPTH_CLEAR | E.BUY, 5 * MS, 1000, 9.99, 0.0, 0, 100),     # deepest bid of the snapshot
        (E.DEPTH_CLEAR | E.SELL, 5 * MS, 1000, 10.01, 0.0, 0, 100),
        (E.DEPTH_SNAPSHOT | E.BUY, 5 * MS, 1000, 10.00, 1.0, 0, 100),
        (E.DEPTH_SNAPSHOT | E.BUY, 5 * MS, 1000, 9.99, 2.0, 0, 100),
        (E.DEPTH_SNAPSHOT | E.SELL, 5 * MS, 1000, 10.01, 3.0, 0, 100),
        (E.DEPTH | E.BUY, 6 * MS, 2000, 10.00, 0.0, 0, 101),          # U <= 100 <= u: first applied
        (E.DEPTH | E.SELL, 6 * MS, 2000, 10.02, 1.5, 0, 101),
        (E.DEPTH | E.BUY, 7 * MS, 3000, 9.98, 4.0, 0, 103),
    ]
    assert conv.instrument == feeds.Instrument("ETHUSDT", tick_size=0.01, lot_size=0.1)
    assert conv.meta.source_rows == 3
    assert conv.meta.source_rows_by_kind == {"snapshot": 1, "depth": 2}
    assert conv.meta.book_partial_until_ts is None


def test_diffs_before_the_snapshot_are_held_dropped_or_restamped(tmp_path):
    path = capture(tmp_path, [
        depth(1000, 1, 90, 95, b=[("10.00", "9")], pu=80),       # u < lastUpdateId: dropped
        depth(1100, 2, 96, 100, b=[("10.00", "8")], pu=95),      # straddles 100: applied at 1500
        snapshot(1500, 100, [("10.00", "8")], [("10.01", "1")], e=3),
        depth(2000, 4, 101, 105, a=[("10.01", "2")], pu=100),
    ])
    conv = binance.read([path], ReadOptions())
    depth_rows = [r for r in rows(conv.events) if r[0] & E.KIND_MASK == E.DEPTH]
    assert depth_rows == [
        (E.DEPTH | E.BUY, 2 * MS, 1500, 10.00, 8.0, 0, 100),   # its own exch_ts, the snapshot's local_ts
        (E.DEPTH | E.SELL, 4 * MS, 2000, 10.01, 2.0, 0, 105),
    ]
    assert any("1 depth diffs older than the snapshot dropped; 1 diffs received before" in n
               for n in conv.meta.notes)


def test_spot_alignment_drops_u_equal_to_last_update_id(tmp_path):
    spot = "ethusdt@depth@100ms"
    path = capture(tmp_path, [
        snapshot(1000, 100, [("10.00", "1")], [("10.01", "1")]),
        depth(2000, 6, 95, 100, b=[("9.00", "1")], stream=spot),     # u <= lastUpdateId: dropped
        depth(3000, 7, 101, 103, b=[("9.50", "1")], stream=spot),    # U <= 101 <= u: applied
        depth(4000, 8, 104, 104, a=[("10.01", "0")], stream=spot),   # U = previous u + 1
    ])
    conv = binance.read([path], ReadOptions())
    depth_rows = [r[3] for r in rows(conv.events) if r[0] & E.KIND_MASK == E.DEPTH]
    assert depth_rows == [9.50, 10.01]


def test_usdm_pu_chain_break_is_a_gap_naming_the_line(tmp_path):
    path = capture(tmp_path, [
        depth(1000, 1, 10, 20, b=[("10.00", "1")], a=[("10.01", "1")], pu=5),
        depth(2000, 2, 21, 30, b=[("10.00", "2")], pu=20),
        depth(3000, 3, 31, 40, b=[("10.00", "3")], pu=29),
    ])
    with pytest.raises(DataError) as err:
        binance.read([path], ReadOptions())
    assert err.value.line == 3 and err.value.field == "pu"
    assert "expected pu=30 (previous u), got pu=29" in str(err.value)
    assert str(err.value).startswith(f"{path}:3: pu: sequence gap")


def test_spot_chain_needs_u_plus_one(tmp_path):
    spot = "ethusdt@depth@100ms"
    ok = capture(tmp_path, [depth(1000, 1, 10, 20, b=[("1.0", "1")], stream=spot),
                            depth(2000, 2, 21, 22, a=[("2.0", "1")], stream=spot)], "ok.gz")
    assert len(binance.read([ok], ReadOptions()).events) == 2
    bad = capture(tmp_path, [depth(1000, 1, 10, 20, b=[("1.0", "1")], stream=spot),
                             depth(2000, 2, 22, 23, a=[("2.0", "1")], stream=spot)], "bad.gz")
    expected = r"bad.gz:2: U: sequence gap: expected U=21 \(previous u \+ 1\), got U=22"
    with pytest.raises(DataError, match=expected):
        binance.read([bad], ReadOptions())


def test_gap_under_skip_clears_the_book_and_notes_it(tmp_path):
    path = capture(tmp_path, [
        depth(1000, 1, 10, 20, b=[("10.00", "1"), ("9.00", "1")], a=[("10.01", "1")], pu=5),
        depth(2000, 2, 31, 40, b=[("9.50", "3")], pu=29),
        depth(3000, 3, 41, 50, a=[("10.05", "3")], pu=40),
    ])
    conv = binance.read([path], SKIP)
    assert rows(conv.events)[3:] == [
        (E.DEPTH_CLEAR | E.BUY, 2 * MS, 2000, 9.00, 0.0, 0, 0),       # reaches the deepest bid seen
        (E.DEPTH_CLEAR | E.SELL, 2 * MS, 2000, 10.01, 0.0, 0, 0),
        (E.DEPTH | E.BUY, 2 * MS, 2000, 9.50, 3.0, 0, 40),            # rebuilding from diffs
        (E.DEPTH | E.SELL, 3 * MS, 3000, 10.05, 3.0, 0, 50),
    ]
    notes = " | ".join(conv.meta.notes)
    assert "1 sequence gap," in notes and f"{path}:2: pu: sequence gap" in notes
    assert f"book partial from local_ts {T0 + 2000} ({path}:2) until local_ts {T0 + 3000}" in notes
    assert conv.meta.skipped == 0


def test_gap_before_a_later_snapshot_waits_for_it(tmp_path):
    path = capture(tmp_path, [
        snapshot(1000, 20, [("10.00", "1")], [("10.01", "1")], e=1),
        depth(2000, 2, 15, 25, b=[("9.80", "1")], a=[("10.04", "1")], pu=10),
        depth(3000, 3, 31, 40, b=[("9.50", "3")], pu=29),            # gap: held for the next snapshot
        snapshot(4000, 45, [("9.90", "2")], [("10.02", "2")], e=4),    # the held 31..40 is older: dropped
        depth(5000, 5, 41, 50, a=[("10.03", "1")], pu=40),           # straddles 45
        trade(6000, 6, 9, "9.90", "1", True),
    ])
    conv = binance.read([path], SKIP)
    kinds = [r[0] & E.KIND_MASK for r in rows(conv.events)]
    clears, snap = [E.DEPTH_CLEAR] * 2, [E.DEPTH_SNAPSHOT] * 2
    assert kinds == clears + snap + [E.DEPTH] * 2 + clears + clears + snap + [E.DEPTH, E.TRADE]
    assert rows(conv.events)[6][3] == 9.80                              # the gap's clear reaches 9.80
    assert f"book partial from local_ts {T0 + 3000} ({path}:3) until local_ts {T0 + 4000}" in conv.meta.notes
    check = check_book(order_timelines(conv.events), 0.01)
    assert (check.final_best_bid, check.final_best_ask, check.crossed) == (9.90, 10.02, 0)


def test_truncated_json_names_the_line_and_is_skipped_under_skip(tmp_path):
    good = trade(1000, 1, 7, "10.00", "1.0", True)
    path = capture(tmp_path, [good, good[:40], trade(2000, 2, 8, "10.01", "2.0", False)])
    with pytest.raises(DataError, match=r"cap.gz:2: json: truncated or malformed JSON"):
        binance.read([path], ReadOptions())
    conv = binance.read([path], SKIP)
    assert conv.meta.skipped == 1 and conv.meta.skipped_examples[0].startswith(f"{path}:2: json:")
    assert conv.events["order_id"].tolist() == [7, 8]
    assert conv.meta.source_rows == 3


def test_a_line_without_a_timestamp_is_a_data_error(tmp_path):
    path = capture(tmp_path, ['{"stream": "ethusdt@trade"}'], "plain.txt")
    with pytest.raises(DataError, match=r"plain.txt:1: local_ts: expected '<local receive time before 2100"):
        binance.read([path], ReadOptions())


def test_without_a_snapshot_the_book_is_partial_until_both_sides_exist(tmp_path):
    path = capture(tmp_path, [
        depth(1000, 1, 10, 20, b=[("10.00", "1")], pu=5),
        depth(2000, 2, 21, 30, b=[("10.00", "0")], pu=20),
        depth(3000, 3, 31, 40, b=[("9.99", "1")], pu=30),
        depth(4000, 4, 41, 50, a=[("10.01", "1")], pu=40),
    ])
    conv = binance.read([path], ReadOptions())
    assert conv.meta.book_partial_until_ts == T0 + 4000
    assert any("no depth snapshot" in n and f"partial before local_ts {T0 + 4000}" in n for n in conv.meta.notes)
    assert not (conv.events["ev"] & np.uint64(E.KIND_MASK) == E.DEPTH_CLEAR).any()


def test_trade_side_is_the_aggressor_and_non_market_trades_are_dropped(tmp_path):
    path = capture(tmp_path, [
        trade(5_000_000, 3, 11, "10.00", "1.5", True),     # buyer is maker: a seller hit the bid
        trade(6_000_000, 4, 12, "10.01", "0.5", False),
        trade(7_000_000, 5, 13, "10.01", "0.5", False, x="INSURANCE_FUND"),
    ])
    conv = binance.read([path], ReadOptions())
    assert rows(conv.events) == [
        (E.TRADE | E.SELL, 3 * MS, 5_000_000, 10.00, 1.5, 11, 0),
        (E.TRADE | E.BUY, 4 * MS, 6_000_000, 10.01, 0.5, 12, 0),
    ]
    assert any("1 trades with X != MARKET" in n for n in conv.meta.notes)


def test_book_ticker_without_event_time_uses_the_median_latency(tmp_path):
    path = capture(tmp_path, [
        trade(3 * MS + 200, 3, 1, "10.00", "1", True),          # latency 200 ns
        trade(4 * MS + 300, 4, 2, "10.00", "1", True),          # 300
        trade(5 * MS + 900, 5, 3, "10.00", "1", True),          # 900: median 300
        ticker(9 * MS, 77, "10.00", "2.5", "10.01", "3.5"),
    ])
    conv = binance.read([path], ReadOptions())
    assert rows(conv.events)[3:] == [
        (E.DEPTH_BBO | E.BUY, 9 * MS - 300, 9 * MS, 10.00, 2.5, 0, 77),
        (E.DEPTH_BBO | E.SELL, 9 * MS - 300, 9 * MS, 10.01, 3.5, 0, 77),
    ]
    assert any("1 messages carry no exchange time" in n for n in conv.meta.notes)


def test_tick_and_lot_are_the_finest_decimal_step_and_can_be_overridden(tmp_path):
    path = capture(tmp_path, [
        ticker(1000, 1, "2683.80000000", "3.02920000", "2683.81000000", "0.00310000"),
        trade(2000, 1, 1, "2683.50000000", "1.00000000", True),
    ])
    assert binance.read([path], ReadOptions()).instrument == feeds.Instrument("ETHUSDT", 0.01, 0.0001)
    options = ReadOptions(tick_size=0.05, symbol="ETH-SPOT")
    assert binance.read([path], options).instrument == feeds.Instrument("ETH-SPOT", 0.05, 0.0001)
    assert binance.decimal_step(np.array([200.0, 1300.0])) == 1.0


def test_inputs_are_one_stream_checked_across_files(tmp_path):
    spot = "ethusdt@depth@100ms"
    first = capture(tmp_path, [snapshot(1000, 100, [("10.00", "1")], [("10.01", "1")]),
                               depth(2000, 1, 101, 110, b=[("9.99", "1")], stream=spot)], "a.gz")
    good = capture(tmp_path, [depth(3000, 2, 111, 120, a=[("10.02", "1")], stream=spot)], "b.gz")
    bad = capture(tmp_path, [depth(3000, 2, 115, 120, a=[("10.02", "1")], stream=spot)], "c.gz")
    conv = binance.read([first, good], ReadOptions())
    assert conv.meta.source_rows == 3 and conv.meta.sources == [first, good]
    assert conv.events["ival"].tolist()[-1] == 120
    with pytest.raises(DataError, match=r"c.gz:1: stream: does not continue the previous input: its first "
                                        r"depth diff \(line 1: U=115\) does not follow the previous input's "
                                        r"last u=110; convert each separately, or give --fresh-book-per-input"):
        binance.read([first, bad], ReadOptions())
    with pytest.raises(DataError, match="starts before the previous input ends"):
        binance.read([good, first], ReadOptions())


# ---------------------------------------------------------------- timestamps: units and which exchange time


def _sample_lines(path=USDM_SAMPLE) -> list[bytes]:
    return [line for line in gzip.decompress(open(path, "rb").read()).split(b"\n") if line.strip()]


def _in_microseconds(line: bytes) -> bytes:
    stamp, rest = line.split(b" ", 1)
    return stamp[:-3] + b" " + rest


def test_receive_times_in_microseconds_are_read_as_microseconds(tmp_path):
    lines = _sample_lines()
    path = capture(tmp_path, [_in_microseconds(line).decode() for line in lines], "us.gz")
    ns = binance.read([USDM_SAMPLE], ReadOptions())
    us = binance.read([path], ReadOptions())
    assert np.array_equal(us.events["local_ts"], ns.events["local_ts"] // 1000 * 1000)
    assert np.array_equal(us.events["exch_ts"], ns.events["exch_ts"])
    assert f"receive times of {path} are in µs: read as µs and put in ns" in us.meta.notes
    # The capture clock is ~1.27 s behind, as in ns; read as ns it was 54 years behind.
    shift = feeds.read([path], "binance", ReadOptions()).meta.local_ts_offset_ns
    assert 1_270_000_000 < shift < 1_272_000_000


def test_a_receive_time_in_another_unit_than_the_files_is_refused_by_line(tmp_path):
    lines = [line.decode() for line in _sample_lines()[:50]]
    lines[9] = _in_microseconds(lines[9].encode()).decode()
    path = capture(tmp_path, lines)
    with pytest.raises(DataError, match=r"cap.gz:10: local_ts: receive time 1723161255\d{6} is not in ns "
                                        r"like the file's first line"):
        binance.read([path], ReadOptions())
    assert binance.read([path], SKIP).meta.skipped == 1
    days = capture(tmp_path, [trade(0, 1, 1, "10", "1", True).replace(str(T0), "19944", 1)], "d.gz")
    with pytest.raises(DataError, match=r"d.gz:1: local_ts: receive time 19944 is not between 2000 "
                                        r"and 2100 in ns, µs, ms or s"):
        binance.read([days], ReadOptions())


def test_usdm_exch_ts_is_the_transaction_time_t_where_the_message_has_it(tmp_path):
    path = capture(tmp_path, [
        depth(5000, 7, 1, 2, b=[("10.00", "1")], pu=0, t=5),        # E 7 ms, T 5 ms
        depth(6000, 8, 3, 4, a=[("10.01", "1")], pu=2),             # no T (spot-like): E
    ])
    assert [r[1] for r in rows(binance.read([path], ReadOptions()).events)] == [5 * MS, 8 * MS]
    # On the real capture every depth event carries its line's T, which differs from E.
    data = [json.loads(line.split(b" ", 1)[1]).get("data", {}) for line in _sample_lines()]
    t_of_depth = {d["T"] * MS for d in data if d.get("e") == "depthUpdate"}
    e_of_depth = {d["E"] * MS for d in data if d.get("e") == "depthUpdate"}
    ev = binance.read([USDM_SAMPLE], ReadOptions()).events
    stamped = set(ev["exch_ts"][(ev["ev"] & np.uint64(E.KIND_MASK)) == E.DEPTH].tolist())
    assert stamped <= t_of_depth and not stamped <= e_of_depth


def test_one_early_receive_time_is_refused_by_line_and_never_shifts_the_rest(tmp_path):
    lines = [line.decode() for line in _sample_lines()]
    stamp, rest = lines[923].split(" ", 1)
    lines[923] = f"{int(stamp) - 10**10} {rest}"              # line 924 received "10 s early"
    path = capture(tmp_path, lines)
    with pytest.raises(DataError, match=r"cap.gz:924: local_ts: receive time 9.999 s earlier than its "
                                        r"exchange time puts it \(feed latency -11,267.6 ms"):
        binance.read([path], ReadOptions())
    skipped = feeds.read([path], "binance", SKIP)
    assert skipped.meta.skipped == 1 and "cap.gz:924" in skipped.meta.skipped_examples[0]
    whole = feeds.read([USDM_SAMPLE], "binance", ReadOptions())
    assert skipped.meta.local_ts_offset_ns == whole.meta.local_ts_offset_ns      # not +11.27 s


def test_inputs_a_minute_apart_are_not_one_capture_even_with_joining_ids(tmp_path):
    spot = "ethusdt@depth@100ms"
    first = capture(tmp_path, [snapshot(1000, 100, [("10.00", "1")], [("10.01", "1")]),
                               depth(2000, 1, 101, 110, b=[("9.99", "1")], stream=spot)], "a.gz")
    late = capture(tmp_path, [depth(2000 + 61 * 10**9, 61_001, 111, 120, a=[("10.02", "1")], stream=spot)],
                   "b.gz")
    with pytest.raises(DataError, match=r"b.gz:1: stream: does not continue the previous input: it starts "
                                        r"61.0 s after the previous input ends; convert each"):
        binance.read([first, late], ReadOptions())


@pytest.mark.shared_data
def test_captures_21_days_apart_are_refused_or_read_each_with_a_fresh_book_and_clock():
    july, august = (str(shared_path("binance", "usdm", f"ethusdt_{day}.gz")) for day in ("20240719", "20240808"))
    with pytest.raises(DataError, match=r"ethusdt_20240808.gz:1: stream: does not continue the previous "
                                        r"input: it starts 1,813,754.3 s after the previous input ends; its "
                                        r"first depth diff \(line 1: U=\d+ pu=\d+\) does not follow"):
        feeds.read([july, august], "binance", ReadOptions())
    both = feeds.read([july, august], "binance", ReadOptions(fresh_book_per_input=True))
    alone = [feeds.read([path], "binance", ReadOptions()) for path in (july, august)]
    kinds = [np.unique(c.events["ev"] & np.uint64(E.KIND_MASK | E.LOCAL), return_counts=True) for c in alone]
    got = dict(zip(*np.unique(both.events["ev"] & np.uint64(E.KIND_MASK | E.LOCAL), return_counts=True)))
    for kind in (E.DEPTH, E.TRADE, E.DEPTH_BBO, E.DEPTH_SNAPSHOT):
        local = kind | E.LOCAL          # every event once: July's 325,155 depth events are kept
        assert got[local] == sum(dict(zip(*k)).get(local, 0) for k in kinds)
    assert got[E.DEPTH_CLEAR | E.LOCAL] == sum(dict(zip(*k)).get(E.DEPTH_CLEAR | E.LOCAL, 0) for k in kinds) + 2
    # Each input keeps its own clock: August's feed lag is what it is alone, not 254 ms.
    august_start = int(alone[1].events["local_ts"].min())
    lag = (both.events["local_ts"] - both.events["exch_ts"])[both.events["local_ts"] >= august_start]
    alone_lag = alone[1].events["local_ts"] - alone[1].events["exch_ts"]
    assert np.median(lag) == np.median(alone_lag)
    assert both.meta.book_partial_until_ts == alone[0].meta.book_partial_until_ts
    assert any(n.startswith(f"{august} read as a capture of its own: a fresh book and clock-skew shift: it "
                            f"starts 1,813,754.3 s") for n in both.meta.notes)
    assert sum("local clock ran behind the exchange in" in n for n in both.meta.notes) == 2


def test_a_few_odd_sizes_far_from_the_mid_do_not_make_the_lot_finer(tmp_path):
    lines = [line.decode() for line in _sample_lines(SPOT_SAMPLE)]
    at = max(i for i, line in enumerate(lines) if "@depth" in line)         # after the snapshot
    lines[at] = lines[at].replace('"a":[', '"a":[["5000.00000000","2292.22972000"],', 1)   # mid ~2683
    conv = binance.read([capture(tmp_path, lines)], ReadOptions())
    assert conv.instrument.lot_size == 0.0001          # not 1e-05
    assert any(n.startswith("1 of ") and "finer than the lot 0.0001 and did not set it: 2292.22972;" in n
               for n in conv.meta.notes)
    # Odd sizes set the step once they are more than 1 in 1000 of the distinct sizes.
    coarse = np.arange(1, 1001) * 0.0001
    assert binance.decimal_step(np.r_[coarse, 0.00005], binance.ODD_SIZES_SHARE) == 0.0001
    assert binance.decimal_step(np.r_[coarse, 0.00005, 0.00015], binance.ODD_SIZES_SHARE) == 0.00001


def test_sniff(tmp_path):
    assert binance.sniff(capture(tmp_path, ["", trade(1, 1, 1, "1", "1", True)], "x.gz"))
    assert binance.sniff(capture(tmp_path, [trade(1, 1, 1, "1", "1", True)], "x.txt"))
    assert not binance.sniff(capture(tmp_path, ["time,price", "1,2"], "x.csv"))
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    assert not binance.sniff(str(tmp_path / "junk.gz"))
    assert not binance.sniff(str(tmp_path / "missing.gz"))


# ---------------------------------------------------------------- the committed samples


@pytest.mark.parametrize("sample", [USDM_SAMPLE, SPOT_SAMPLE])
def test_samples_convert_to_a_book_that_never_crosses(sample):
    assert binance.sniff(sample) and os.path.getsize(sample) <= 400_000
    conv = feeds.read([sample], "binance", ReadOptions())
    assert conv.meta.source_rows == 3000 and conv.meta.source_rows_by_kind["snapshot"] == 1
    assert conv.meta.local_ts_offset_ns > 1_000_000_000       # capture clock ~1.3 s behind
    check = check_book(conv.events, conv.instrument.tick_size)
    assert check.crossed == 0 and check.bid_levels > 500 and check.ask_levels > 500


# ---------------------------------------------------------------- the real captures

CAPTURES = {
    "usdm_0808": (["usdm/ethusdt_20240808.gz"], 74_655, True),
    "usdm_0719": (["usdm/ethusdt_20240719.gz"], 55_910, False),
    "spot_0808": (["spot/ethusdt_20240808.gz"], 33_618, True),
    "spot_0809": (["spot/ethusdt_20240809.gz"], 46_126, False),
    "spot_0808_0809": (["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"], 33_618 + 46_126, True),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", list(CAPTURES))
def test_real_captures_have_no_gaps_and_a_book_that_never_crosses(name):
    files, lines, has_snapshot = CAPTURES[name]
    paths = [str(shared_path("binance", *f.split("/"))) for f in files]
    conv = binance.read(paths, ReadOptions())        # raises on any sequence gap
    assert conv.meta.source_rows == lines and sum(conv.meta.source_rows_by_kind.values()) == lines
    assert conv.meta.skipped == 0
    assert not any("gap" in n for n in conv.meta.notes)
    assert conv.instrument.symbol == "ETHUSDT" and conv.instrument.tick_size == 0.01
    if has_snapshot:
        assert conv.meta.book_partial_until_ts is None
    else:
        assert conv.meta.book_partial_until_ts == int(conv.events["local_ts"][0])
    check = check_book(order_timelines(conv.events), conv.instrument.tick_size)
    assert check.crossed == 0 and check.groups > 3000


@pytest.mark.shared_data
def test_usdm_snapshot_alignment_on_the_real_capture():
    conv = binance.read([str(shared_path("binance", "usdm", "ethusdt_20240808.gz"))], ReadOptions())
    ev = conv.events
    kind = ev["ev"] & np.uint64(E.KIND_MASK)
    snap = np.flatnonzero(kind == E.DEPTH_SNAPSHOT)
    assert len(snap) == 2000 and (ev["ival"][snap] == 5123107856276).all()
    # Lines 39 and 40 arrived before the snapshot (line 41) and are applied after it, at its local_ts.
    first_diffs = np.flatnonzero(kind == E.DEPTH)[:2]
    assert ev["local_ts"][first_diffs].tolist() == [1723161255378345766] * 2
    assert sorted(set(ev["ival"][np.flatnonzero(kind == E.DEPTH)[:60]].tolist()))[:2] == \
        [5123107856276, 5123107858544]
    assert any("5 depth diffs older than the snapshot dropped; 2 diffs" in n for n in conv.meta.notes)


# ---------------------------------------------------------------- bad bytes never escape as anything else

_REAL_LINES = gzip.decompress(open(USDM_SAMPLE, "rb").read()).split(b"\n")[:60]


def _read_bytes_as_capture(data: bytes, on_error: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.txt")
        with open(path, "wb") as f:
            f.write(data)
        try:
            binance.read([path], ReadOptions(on_error=on_error))
        except DataError:
            pass


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["raise", "skip"]))
def test_random_bytes_parse_or_raise_data_error(data, on_error):
    _read_bytes_as_capture(data, on_error)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["truncate", "flip"]), st.integers(0, 10**6),
                          st.integers(0, 255)), min_size=1, max_size=4),
       st.sampled_from(["raise", "skip"]))
def test_corrupted_real_lines_parse_or_raise_data_error(edits, on_error):
    lines = list(_REAL_LINES)
    for index, how, where, byte in edits:
        line = lines[index]
        at = where % max(len(line), 1)
        lines[index] = line[:at] if how == "truncate" else line[:at] + bytes([byte]) + line[at + 1:]
    _read_bytes_as_capture(b"\n".join(lines), on_error)
