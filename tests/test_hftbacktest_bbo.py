"""Our engine and hftbacktest on a real USD-M capture: DEPTH_BBO rows, and a side with no levels (issue 12, item 7).

hftbacktest skips ``DEPTH_BBO`` rows (Binance's bookTicker); our engine applies
them, so the same file fills differently in the two. ``cmm data convert
--no-bbo`` writes a file without them, on which the two agree fill for fill.
The counts below were measured with ``bench/vs_hftbacktest.py --data`` (docs/benchmarks.md).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import feeds
from feeds.events import BUY, DEPTH_BBO, KIND_MASK, TRADE
from feeds.store import without_bbo
from tests.conftest import REPO, SAMPLES, shared_path

pytest.importorskip("hftbacktest")
from bench.vs_hftbacktest import compare, run_hftbacktest, run_ours  # noqa: E402

ETH_HEAD = SAMPLES / "ethusdt_usdm_20240808_head.gz"
INTERVAL_100MS = 100_000_000


def kinds(events: np.ndarray) -> np.ndarray:
    return events["ev"] & np.uint64(KIND_MASK)


def convert(tmp_path, source, name, *options) -> feeds.EventFile:
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "cmm", "data", "convert", str(source), "--out", str(out),
                           "--no-progress", *options], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return feeds.load(out), proc.stdout


def test_convert_no_bbo_writes_the_same_events_less_the_bbo_rows(tmp_path):
    full, _ = convert(tmp_path, ETH_HEAD, "full.npz")
    plain, said = convert(tmp_path, ETH_HEAD, "plain.npz", "--no-bbo")
    is_bbo = kinds(full.events) == DEPTH_BBO
    assert is_bbo.any()
    assert np.array_equal(plain.events, full.events[~is_bbo])
    n = int(is_bbo.sum())
    assert f"left out {n:,} DEPTH_BBO rows" in said
    assert plain.meta.notes == [*full.meta.notes, f"{n:,} DEPTH_BBO rows left out (--no-bbo): "
                                                  "the book is the depth rows' alone"]
    assert plain.instrument == full.instrument


@pytest.fixture(scope="module")
def usdm_0808():
    path = shared_path("binance", "usdm", "ethusdt_20240808.gz")
    conv = feeds.read([str(path)], "binance")
    return conv.events, conv.instrument


def test_bbo_rows_are_why_the_engines_differ_on_a_real_capture(usdm_0808):
    events, instrument = usdm_0808
    assert int((kinds(events) == DEPTH_BBO).sum()) == 110_684
    ours, theirs = run_ours(events, instrument, INTERVAL_100MS), run_hftbacktest(events, instrument, INTERVAL_100MS)
    assert (len(ours["fills"]), len(theirs["fills"])) == (431, 507)
    plain = without_bbo(events)[0]
    ours, theirs = run_ours(plain, instrument, INTERVAL_100MS), run_hftbacktest(plain, instrument, INTERVAL_100MS)
    assert (len(ours["fills"]), len(theirs["fills"])) == (504, 504)
    assert compare(ours, theirs) == dict(fills=True, position=True, balance=True)


def test_a_side_without_levels_is_not_quoted():
    """A capture without a snapshot (2024-07-19), its bid side's rows of the first 30 s removed: no bid
    level exists then, and hftbacktest's best bid is -2**63. The strategy must wait, not quote at the
    tick of a mid near -2**62 (-4.6e18), where the ask then filled."""
    path = shared_path("binance", "usdm", "ethusdt_20240719.gz")
    conv = feeds.read([str(path)], "binance")
    events = without_bbo(conv.events)[0]
    first_30s = events["local_ts"] < events["local_ts"][0] + 30_000_000_000
    bid_rows = ((events["ev"] & np.uint64(BUY)) != 0) & (kinds(events) != TRADE)
    events = events[~(first_30s & bid_rows)]
    ours = run_ours(events, conv.instrument, INTERVAL_100MS)
    theirs = run_hftbacktest(events, conv.instrument, INTERVAL_100MS)
    assert theirs["fills"][:, 3].min() > 300_000           # ETHUSDT near 3,400 USDT: ticks of 0.01
    assert compare(ours, theirs) == dict(fills=True, position=True, balance=True)
