"""Databento MBO (DBN) in: the repo sample, hand-computed fill/cancel cases, bad input, an L3 backtest."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("databento_dbn", reason="the databento extra (databento-dbn) is not installed")
zstandard = pytest.importorskip("zstandard", reason="the databento extra (zstandard) is not installed")

import feeds
from common.errors import DataError
from feeds.events import (ADD_ORDER, BUY, CANCEL_ORDER, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, FILL, KIND_MASK,
                          MODIFY_ORDER, SELL, TRADE)
from feeds.readers.base import ReadOptions
from tests.conftest import REPO, SAMPLES
from tests.test_fuzz_readers import FUZZ, OPTIONS, _parses_or_data_error, damaged, write_flipped

_spec = importlib.util.spec_from_file_location("make_databento_sample", SAMPLES / "make_databento_sample.py")
sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sample)

MBO = SAMPLES / f"{sample.STEM}.mbo.dbn.zst"
DEFINITION = SAMPLES / f"{sample.STEM}.definition.dbn"
T0 = sample.SNAPSHOT_NS
PX = 5400 * 10**9
TICK = sample.TICK
RESTING: dict[int, list] = {}             # the generator's resting orders at the end of the sample
sample.session(orders=RESTING)


@pytest.fixture(scope="module")
def converted():
    return feeds.read([MBO, DEFINITION])


def _write(tmp_path, records, name="x.mbo.dbn", **kw):
    path = tmp_path / name
    path.write_bytes(sample.encode(records, **kw))
    return path


def _rows(events):
    """(kind, side flag, px, qty, order_id) of each event, exchange-timeline order."""
    kind = events["ev"] & np.uint64(KIND_MASK)
    side = events["ev"] & np.uint64(BUY | SELL)
    return [(int(k), int(s), float(p), float(q), int(o))
            for k, s, p, q, o in zip(kind, side, events["px"], events["qty"], events["order_id"])]


def test_sample_is_a_real_dbn_file_detected_by_auto():
    assert feeds.detect(str(MBO)) == "databento" and feeds.detect(str(DEFINITION)) == "databento"
    import databento_dbn as dbn
    import zstandard
    decoder = dbn.DBNDecoder()
    decoder.write(zstandard.ZstdDecompressor().stream_reader(MBO.read_bytes()).read())
    records = decoder.decode()
    assert records[0].schema == dbn.Schema.MBO and isinstance(records[1], dbn.MBOMsg)


def test_sample_instrument_comes_from_its_definition(converted):
    ins = converted.instrument
    assert (ins.symbol, ins.tick_size, ins.lot_size, ins.contract_multiplier) == ("ESM4", 0.25, 1.0, 50.0)


def test_sample_book_never_crosses_and_ends_as_the_generator_left_it(converted):
    check = feeds.check_book(converted.events, 0.25)
    assert check.crossed == 0 and check.groups > 1000
    levels: dict[tuple[int, float], float] = {}
    for price, size, side in RESTING.values():
        key = (BUY if side == "B" else SELL, price * 1e-9)
        levels[key] = levels.get(key, 0) + size
    book: dict[tuple[int, float], float] = {}
    for kind, side, px, qty, _ in _rows(converted.events):
        if kind in (DEPTH, DEPTH_SNAPSHOT):
            book[(side, px)] = qty
        elif kind == DEPTH_CLEAR:
            book = {k: v for k, v in book.items() if k[0] != side}
    assert {k: v for k, v in book.items() if v > 0} == levels


def test_a_fill_and_its_cancel_change_the_book_once(tmp_path):
    t = T0 + 10**9
    snap = sample.dbn.F_SNAPSHOT | sample.dbn.F_BAD_TS_RECV
    m = sample.mbo
    records = [
        m(T0 - 5, T0, "R", "N", sample.dbn.UNDEF_PRICE, 0, flags=snap),
        m(T0 - 4, T0, "A", "B", PX, 10, 1, flags=snap),
        m(T0 - 3, T0, "A", "B", PX, 5, 2, flags=snap | sample.dbn.F_LAST),
        # a sell of 12 hits both orders: T, two F, two C; one event
        m(t, t + 20, "T", "A", PX, 12, 0, flags=0),
        m(t, t + 20, "F", "B", PX, 10, 1, flags=0),
        m(t, t + 20, "F", "B", PX, 2, 2, flags=0),
        m(t, t + 20, "C", "B", PX, 10, 1, flags=0),
        m(t, t + 20, "C", "B", PX, 2, 2),
        # then order 2 cancels its last 3 of its own accord
        m(t + 100, t + 120, "C", "B", PX, 3, 2),
    ]
    conv = feeds.read([_write(tmp_path, records)], "databento", ReadOptions(tick_size=0.25))
    px = PX * 1e-9
    assert _rows(conv.events) == [
        (DEPTH_CLEAR, BUY, 0.0, 0.0, 0),
        (DEPTH_CLEAR, SELL, 0.0, 0.0, 0),
        (ADD_ORDER, BUY, px, 10.0, 1),
        (ADD_ORDER, BUY, px, 5.0, 2),
        (DEPTH_SNAPSHOT, BUY, px, 15.0, 0),
        (TRADE, SELL, px, 12.0, 0),
        (FILL, BUY, px, 10.0, 1),
        (FILL, BUY, px, 2.0, 2),      # the two C records add no CANCEL_ORDER: the fills took the size off
        (DEPTH, BUY, px, 3.0, 0),
        (CANCEL_ORDER, BUY, px, 3.0, 2),
        (DEPTH, BUY, px, 0.0, 0),
    ]
    assert conv.events["exch_ts"][4] == T0          # snapshot levels stand at the snapshot's time
    assert conv.events["exch_ts"][5] == t and conv.events["local_ts"][5] == t + 20


def test_modify_and_a_clear_mid_file(tmp_path):
    m = sample.mbo
    t = T0 + 10**9
    records = [
        m(t, t + 1, "A", "A", PX, 4, 7),
        m(t + 10, t + 11, "M", "A", PX + TICK, 4, 7),        # a new price: the old level empties
        m(t + 20, t + 21, "R", "N", sample.dbn.UNDEF_PRICE, 0),
    ]
    conv = feeds.read([_write(tmp_path, records)], "databento", ReadOptions(tick_size=0.25))
    px = PX * 1e-9
    rows = _rows(conv.events)
    assert rows[:4] == [(ADD_ORDER, SELL, px, 4.0, 7), (DEPTH, SELL, px, 4.0, 0),
                        (MODIFY_ORDER, SELL, px + 0.25, 4.0, 7), (DEPTH, SELL, px, 0.0, 0)]
    assert rows[4] == (DEPTH, SELL, px + 0.25, 4.0, 0)
    # the clear removes order 7 from the engine's L3 book and clears both sides up to the deepest level seen
    assert rows[5] == (CANCEL_ORDER, SELL, px + 0.25, 4.0, 7)
    assert rows[6][:2] == (DEPTH_CLEAR, BUY) and rows[7] == (DEPTH_CLEAR, SELL, px + 0.25, 0.0, 0)
    assert conv.meta.book_partial_until_ts == t + 21


def test_backtest_of_the_sample_with_the_l3_queue(tmp_path):
    from runtime.backtest import run_and_write
    text = (REPO / "configs" / "backtest_fixed_spread.toml").read_text()
    text = text.replace('files = ["../data/samples/GOOG_2012-06-21_10_head.zip"]',
                        f'files = ["{MBO}", "{DEFINITION}"]')
    text = text.replace('model = "risk_averse"', 'model = "l3"').replace("qty = 100 ", "qty = 1 ")
    text = text.replace("max_position = 500", "max_position = 5")
    text = text.replace("half_spread_ticks = 2", "half_spread_ticks = 1")
    text = text.replace("episode_s = 60", "episode_s = 30")
    config = tmp_path / "dbn_l3.toml"
    config.write_text(text)
    run_and_write(str(config), str(tmp_path / "out"))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_fills"] > 10
    fills = (tmp_path / "out" / "fills.csv").read_text().splitlines()
    assert len(fills) == metrics["n_fills"] + 1
    signed = sum(float(r.split(",")[_col(fills, "qty")]) * (1 if "buy" in r else -1) for r in fills[1:])
    assert metrics["final_position"] == pytest.approx(signed)


def _col(lines, name):
    return lines[0].split(",").index(name)


def test_symbol_picks_one_instrument_of_several_by_the_files_symbology(tmp_path):
    m = sample.mbo
    t = T0 + 10**9
    records = [m(t, t + 20, "A", "B", PX, 3, 1), m(t + 5, t + 30, "A", "A", PX + TICK, 2, 2, instrument=99),
               m(t + 9, t + 40, "A", "A", PX + TICK, 4, 3)]
    path = _write(tmp_path, records, instruments={"ESM4": sample.INSTRUMENT, "ESU4": 99})
    conv = feeds.read([path], "databento", ReadOptions(tick_size=0.25, symbol="ESU4"))
    assert conv.instrument.symbol == "ESU4"
    ask = (PX + TICK) * 1e-9
    assert _rows(conv.events) == [(ADD_ORDER, SELL, ask, 2.0, 2), (DEPTH, SELL, ask, 2.0, 0)]
    with pytest.raises(DataError, match=r"the MBO records hold 2 instruments \(99 \(ESU4\), 4916 \(ESM4\)\)"):
        feeds.read([path], "databento", ReadOptions(tick_size=0.25))


@pytest.mark.parametrize("case,needle", [
    ("truncated", "truncated or corrupt record header"),
    ("micros", "ts_recv 1718582401000020 is a time in µs, not ns as DBN specifies"),
    ("no_tick", "give the day's definition file beside the MBO file, or --tick-size"),
    ("off_tick", "is not a multiple of the tick 0.25"),
    ("two_instruments", "the MBO records hold 2 instruments"),
    ("bad_action", "record 1: expected an action"),
    ("mbp", "only MBO"),
])
def test_bad_input_is_one_line(tmp_path, case, needle):
    m = sample.mbo
    t = T0 + 10**9
    good = [m(t, t + 20, "A", "B", PX, 3, 1), m(t + 5, t + 30, "A", "A", PX + TICK, 3, 2)]
    opts = ReadOptions(tick_size=0.25)
    if case == "truncated":
        path = _write(tmp_path, good)
        path.write_bytes(path.read_bytes()[:-9])
    elif case == "micros":
        path = _write(tmp_path, [m(t // 1000, t // 1000 + 20, "A", "B", PX, 3, 1)])
    elif case == "no_tick":
        path, opts = _write(tmp_path, good), ReadOptions()
    elif case == "off_tick":
        path = _write(tmp_path, [m(t, t + 20, "A", "B", PX + 1, 3, 1)])
    elif case == "two_instruments":
        path = _write(tmp_path, [*good, m(t + 9, t + 40, "A", "B", PX, 3, 3, instrument=99)])
    elif case == "bad_action":
        raw = bytearray(sample.encode(good))
        raw[raw.index(b"DBN") + 8 + int.from_bytes(raw[4:8], "little") + 38] = ord("Z")   # action byte
        path = tmp_path / "x.dbn"
        path.write_bytes(bytes(raw))
    else:
        path = _write(tmp_path, good, schema=sample.dbn.Schema.MBP_1)
    with pytest.raises(DataError) as e:
        feeds.read([path], "databento", opts)
    assert needle in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_cli_refuses_bad_input_with_one_line(tmp_path):
    path = tmp_path / "cut.mbo.dbn.zst"
    path.write_bytes(MBO.read_bytes()[:5000])
    proc = subprocess.run([sys.executable, "-m", "cmm", "data", "convert", str(path), "--out",
                           str(tmp_path / "x.npz")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "zstd" in proc.stderr and str(path) in proc.stderr


DBN_BASE = sample.encode(sample.session(events=12)[:30])


@FUZZ
@given(data=st.one_of(damaged(DBN_BASE), st.binary(max_size=300)), zstd=st.booleans(), options=OPTIONS)
def test_fuzz(tmp_path_factory, data, zstd, options):
    """Damaged DBN (plain, or damaged and then compressed) parses or gives our one data error."""
    path = tmp_path_factory.getbasetemp() / ("fuzz.mbo.dbn.zst" if zstd else "fuzz.mbo.dbn")
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if zstd else data)
    _parses_or_data_error([path], "databento", options)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(DBN_BASE) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_byte_flips(tmp_path_factory, flips):
    """Flips anywhere: the metadata, record lengths and types, actions, sides, prices, times."""
    path = write_flipped(tmp_path_factory.getbasetemp() / "flipped.mbo.dbn", DBN_BASE, flips)
    _parses_or_data_error([path], "databento", ReadOptions(tick_size=0.25))


# The fields databento-dbn's v1 and v2 definition constructors require and these tests do not use.
_V12_DEFAULTS = {
    **dict.fromkeys(
        ["expiration", "activation", "high_limit_price", "low_limit_price", "max_price_variation",
         "trading_reference_price", "min_price_increment_amount", "price_ratio", "strike_price",
         "inst_attrib_value", "underlying_id", "raw_instrument_id", "market_depth_implied", "market_depth",
         "market_segment_id", "max_trade_vol", "min_lot_size", "min_lot_size_block", "min_lot_size_round_lot",
         "min_trade_vol", "contract_multiplier", "decay_quantity", "original_contract_size",
         "trading_reference_date", "appl_id", "maturity_year", "decay_start_date", "channel_id",
         "md_security_trading_status", "main_fraction", "price_display_format", "settl_price_type",
         "sub_fraction", "underlying_product", "maturity_month", "maturity_day", "maturity_week",
         "contract_multiplier_unit", "flow_schedule_type", "tick_rule"], 0),
    **dict.fromkeys(["currency", "settl_currency", "secsubtype", "group", "exchange", "cfi", "unit_of_measure",
                     "underlying", "strike_price_currency"], ""),
}


@pytest.mark.parametrize("version", [1, 2])
def test_older_dbn_versions_in_one_live_style_stream(tmp_path, version):
    """A mixed-schema stream of DBN v1 or v2: its definition (an older layout) is upgraded and gives the tick."""
    dbn = sample.dbn
    old = getattr(dbn, f"v{version}").InstrumentDefMsg(
        publisher_id=1, instrument_id=sample.INSTRUMENT, ts_event=T0, ts_recv=T0, min_price_increment=TICK,
        display_factor=10**9, raw_symbol="ESM4", asset="ES", security_type="FUT",
        instrument_class=dbn.InstrumentClass.FUTURE, security_update_action=dbn.SecurityUpdateAction.ADD,
        unit_of_measure_qty=50 * 10**9, match_algorithm=dbn.MatchAlgorithm.FIFO,
        user_defined_instrument=dbn.UserDefinedInstrument.NO, **_V12_DEFAULTS)
    records = sample.session(events=50)
    meta = dbn.Metadata(dataset=sample.DATASET, start=T0, end=T0 + 10**12, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=None, symbols=["ESM4"], version=version)
    path = tmp_path / f"live_v{version}.dbn"
    path.write_bytes(meta.encode() + bytes(old) + b"".join(bytes(r) for r in records))
    conv = feeds.read([path])
    assert (conv.instrument.tick_size, conv.instrument.contract_multiplier) == (0.25, 50.0)
    assert conv.meta.source_rows == len(records) + 1
    assert np.array_equal(conv.events, feeds.read([_write(tmp_path, records)], "databento",
                                                  ReadOptions(tick_size=0.25, contract_multiplier=50)).events)

