"""Binance Vision files (data.binance.vision): trades, aggTrades, bookTicker; units; refusals."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

import feeds
from common.errors import DataError
from feeds.events import BUY, KIND_MASK, SELL, TRADE
from tests.conftest import SAMPLES

DIR = SAMPLES / "binance_vision"
UM_TRADES, UM_AGG, UM_BOOK = (str(DIR / "um" / f"ETHUSDT-{t}-2024-08-08.zip") for t in ("trades", "aggTrades", "bookTicker"))
SPOT_TRADES = str(DIR / "spot" / "ETHUSDT-trades-2024-08-08.zip")
HEADER = "id,price,qty,quote_qty,time,is_buyer_maker\n"


def _zip(path, member: str, text: str) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)
    return str(path)


@pytest.mark.parametrize("paths", [[UM_TRADES], [UM_AGG], [UM_BOOK], [SPOT_TRADES], [UM_TRADES, UM_BOOK]])
def test_each_sample_converts_to_a_book_that_never_crosses(paths):
    conv = feeds.read(paths, options=feeds.ReadOptions(base_latency_ns=2_000_000))
    assert feeds.resolve_format(paths) == "binance-vision"
    assert feeds.check_book(conv.events, conv.instrument.tick_size).crossed == 0
    assert np.all(conv.events["local_ts"] - conv.events["exch_ts"] == 2_000_000)
    assert "local_ts = exch_ts + 2000000 ns" in conv.meta.notes[0]


def test_trades_and_aggregates_agree():
    """An aggTrade sums one taker order's fills: same volume, same side split by volume, fewer rows."""
    trades, agg = feeds.read([UM_TRADES]).events, feeds.read([UM_AGG]).events
    assert (len(trades), len(agg)) == (247, 88)
    assert trades["qty"].sum() == pytest.approx(agg["qty"].sum()) == pytest.approx(150.012)
    for flag in (BUY, SELL):
        side = lambda e: e["qty"][(e["ev"] & np.uint64(flag)) != 0].sum()  # noqa: E731
        assert side(trades) == pytest.approx(side(agg))
    assert agg["ival"].sum() == 247          # the trades each aggregate sums
    assert np.all((trades["ev"] & np.uint64(KIND_MASK)) == TRADE)


def test_a_row_by_hand(tmp_path):
    path = _zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "BTCUSDT-trades-2024-08-08.csv",
                HEADER + "4308068523,60000.10,0.250,15000.025,1723161256560,true\n"
                         "4308068524,60000.20,0.100,6000.02,1723161256561,false\n")
    ev = feeds.read([path]).events
    assert [(int(e["ev"]) & ~(3 << 30), int(e["exch_ts"]), int(e["local_ts"]), float(e["px"]), float(e["qty"]),
             int(e["order_id"])) for e in ev] == [
        (TRADE | SELL, 1723161256560_000_000, 1723161256560_000_000, 60000.10, 0.25, 4308068523),
        (TRADE | BUY, 1723161256561_000_000, 1723161256561_000_000, 60000.20, 0.10, 4308068524)]


def test_spot_microseconds_are_told_from_milliseconds(tmp_path):
    """Spot files from 2025 are in µs: the same rows in µs give the same events."""
    with zipfile.ZipFile(SPOT_TRADES) as zf:
        lines = zf.read(zf.namelist()[0]).decode().splitlines()
    micro = "\n".join(",".join(c[:4] + [c[4] + "000"] + c[5:]) for c in (line.split(",") for line in lines)) + "\n"
    path = _zip(tmp_path / "ETHUSDT-trades-2025-01-01.zip", "ETHUSDT-trades-2025-01-01.csv", micro)
    conv = feeds.read([path])
    assert np.array_equal(conv.events, feeds.read([SPOT_TRADES]).events)
    assert any("times in µs, no header row" in n for n in conv.meta.notes)
    mixed = _zip(tmp_path / "ETHUSDT-trades-2025-01-02.zip", "ETHUSDT-trades-2025-01-02.csv",
                 micro.split("\n", 1)[0] + "\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match=r"\[ETHUSDT-trades-2025-01-02.csv\]:2: time: expected µs like the file's "
                                        r"first row, got \d+: a time in ms"):
        feeds.read([mixed])


def test_nanoseconds_are_refused_naming_the_unit(tmp_path):
    path = _zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "BTCUSDT-trades-2024-08-08.csv",
                HEADER + "1,60000.1,0.25,15000.025,1723161256560000000,true\n")
    with pytest.raises(DataError, match=r":2: time: expected ms since the epoch \(µs in spot files from 2025\), "
                                        r"got 1723161256560000000: a time in ns"):
        feeds.read([path])


def test_book_depth_is_refused_with_the_reason(tmp_path):
    path = _zip(tmp_path / "ETHUSDT-bookDepth-2024-08-08.zip", "ETHUSDT-bookDepth-2024-08-08.csv",
                "timestamp,percentage,depth,notional\n2024-08-08 00:00:08,-5,1234.5,3300000.1\n")
    with pytest.raises(DataError, match="bookDepth file sums the book within percentage bands around the mid"):
        feeds.read([path])


@pytest.mark.parametrize("text, needle", [
    (HEADER + "1,60000.1,0.25,15000.025,1723161256560,maybe\n", ":2: is_buyer_maker: expected one of false, true"),
    (HEADER + "1,-60000.1,0.25,15000.025,1723161256560,true\n", ":2: price: expected a positive price"),
    (HEADER + "1,60000.1,0.25,1723161256560,true\n", ":2: time: expected an integer"),
    ("id,price,qty,quoteQty,time,isBuyerMaker\n", ":1: header: expected the trades header"),
])
def test_bad_input_gets_one_line(tmp_path, text, needle):
    path = _zip(tmp_path / "BTCUSDT-trades-2024-08-08.zip", "BTCUSDT-trades-2024-08-08.csv", text)
    with pytest.raises(DataError, match=needle.replace("(", r"\(")):
        feeds.read([path])
    with pytest.raises(DataError, match="trades and aggTrades files describe the same trades"):
        feeds.read([UM_TRADES, UM_AGG])


def test_monthly_coin_m_trades_are_inverse_contracts(tmp_path):
    """A monthly COIN-M file: Binance's name tells the symbol, ``base_qty`` stands where ``quote_qty`` is."""
    path = _zip(tmp_path / "ETHUSD_PERP-trades-2024-08.zip", "ETHUSD_PERP-trades-2024-08.csv",
                "id,price,qty,base_qty,time,is_buyer_maker\n"
                "1,2681.62,3,0.01118722,1723161256560,false\n2,2681.63,1,0.00372906,1723161256561,true\n")
    assert feeds.detect(path) == "binance-vision"
    conv = feeds.read([path])
    assert (conv.instrument.symbol, conv.instrument.kind, conv.instrument.settlement,
            conv.instrument.contract_multiplier) == ("ETHUSD_PERP", "inverse", "ETH", 10.0)
    assert conv.events["qty"].tolist() == [3.0, 1.0]
