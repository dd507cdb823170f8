"""Issue 12 item 5: event files and feed messages pass the checks convert applies, when they are loaded.

An event file may come from hftbacktest, a hand or an older version, and files
can be listed in the wrong order: ``cmm backtest``, ``cmm feed replay`` and the
feed's decoder refuse infinite prices, steps back in time and prices no book
could hold, with one line, before anything is computed, sent or allocated.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import feeds
from common.errors import DataError
from feeds import events as E
from feeds.validate import MAX_BOOK_TICKS, NO_PRICES, check_price_span, check_timelines, load_replayable
from feeds.zmqfeed import Publisher, Subscriber, SubscriberOptions, wait_for_subscribers
from bench.probes.inputs import CONFIG
from tests.files import save_events
from tests.test_cli import REPO, assert_one_line_error, cmm
from tests.test_zmq_feed import addr, depth, pump  # noqa: F401 (addr is a fixture)

SAMPLE = REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"


@pytest.fixture(scope="module")
def goog():
    conv = feeds.read([SAMPLE])
    return conv.events, conv.instrument


def _save(path, events, instrument):
    save_events(path, events, instrument)
    return path


def _bad_prices(goog, tmp_path, value: float, count: int):
    events, instrument = goog
    events = events.copy()
    priced = np.flatnonzero(events["px"] > 0)
    events["px"][priced[len(priced) // 2:len(priced) // 2 + count]] = value
    return _save(tmp_path / "bad.npz", events, instrument)


def _halves(goog, tmp_path):
    events, instrument = goog
    cut = len(events) // 2
    return _save(tmp_path / "first.npz", events[:cut], instrument), _save(tmp_path / "second.npz", events[cut:], instrument)


def _backtest(tmp_path, *files) -> subprocess.CompletedProcess:
    config = tmp_path / "bt.toml"
    config.write_text(CONFIG.format(files=[str(f) for f in files]))
    return cmm("backtest", "--config", config, "--out", tmp_path / "out", "--no-progress")


def test_backtest_refuses_infinite_prices_in_an_event_file(goog, tmp_path):
    """Today's main replays them: on this sample, EPnL -170.5 over 301 fills instead of -155.4 over 303."""
    line = assert_one_line_error(_backtest(tmp_path, _bad_prices(goog, tmp_path, np.inf, 50)),
                                 "bad.npz", "px", "expected a finite price, got inf")
    assert "event " in line and not (tmp_path / "out").exists()


def test_backtest_refuses_a_price_far_outside_the_book(goog, tmp_path):
    """Today's main tries to allocate 728 TiB for a book from 570 to 1e12 in ticks of 0.01."""
    assert_one_line_error(_backtest(tmp_path, _bad_prices(goog, tmp_path, 1e12, 1)),
                          "bad.npz", "price 1000000000000.0 is implausible", f"at most {MAX_BOOK_TICKS:,}")
    assert not (tmp_path / "out").exists()


def test_backtest_refuses_files_in_reverse_time_order(goog, tmp_path):
    """Today's main replays them: 124 fills instead of the 303 of the files in time order."""
    first, second = _halves(goog, tmp_path)
    assert_one_line_error(_backtest(tmp_path, second, first), "first.npz", "exch_ts",
                          "before the previous file second.npz ends", "give the files in time order")
    assert not (tmp_path / "out").exists()


def test_files_in_time_order_load_as_their_concatenation(goog, tmp_path):
    first, second = _halves(goog, tmp_path)
    loaded = load_replayable([first, second])
    assert np.array_equal(loaded.events, goog[0]) and loaded.instrument == goog[1]


def test_a_step_back_inside_one_file_is_refused(goog, tmp_path):
    events = goog[0].copy()
    both = (events["ev"] & np.uint64(E.EXCH | E.LOCAL)) == np.uint64(E.EXCH | E.LOCAL)
    i = next(i for i in range(100, len(events)) if both[i] and both[i + 1]
             and events["exch_ts"][i] < events["exch_ts"][i + 1])
    events[[i, i + 1]] = events[[i + 1, i]]          # two rows swapped: time goes back at row i + 1
    with pytest.raises(DataError, match=f"event {i + 1}: exch_ts .* goes back") as err:
        load_replayable([_save(tmp_path / "swapped.npz", events, goog[1])])
    assert err.value.path.endswith("swapped.npz")


def test_timelines_and_price_span_are_checked_across_chunks():
    ev = E.empty(4)
    ev["ev"] = E.DEPTH | E.EXCH | E.LOCAL | E.BUY
    ev["exch_ts"] = ev["local_ts"] = [10, 20, 30, 25]
    ev["px"] = [100.0, 100.0, 100.0, 100.0 + MAX_BOOK_TICKS]      # MAX_BOOK_TICKS ticks of 1; twice that of 0.5
    last = check_timelines(ev[:3], "a.npz")
    assert (last.exch_ts, last.local_ts) == (30, 30)
    with pytest.raises(DataError, match="event 3: exch_ts 25 goes back from 30"):
        check_timelines(ev[3:], "a.npz", first=3, last=last)
    seen = check_price_span(ev[:3], 1.0, "a.npz")
    assert seen == (100.0, 100.0) and check_price_span(ev[:0], 1.0, seen=seen) == seen
    assert check_price_span(ev[3:], 1.0, "a.npz", 3, NO_PRICES) == (ev["px"][3],) * 2
    with pytest.raises(DataError, match=r"event 3 \(depth\): price 16777316.0 is implausible"):
        check_price_span(ev[3:], 0.5, "a.npz", 3, seen)


def test_convert_refuses_a_price_far_outside_the_book(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("# tick_size=0.01\nexch_ts,local_ts,event,side,price,qty\n"
                   "1723075200000000000,1723075200000000000,depth,bid,100.00,1\n"
                   "1723075200000000001,1723075200000000001,depth,ask,1e12,1\n"
                   "1723075200000000002,1723075200000000002,depth,ask,100.02,1\n")
    assert_one_line_error(cmm("data", "convert", csv, "--out", tmp_path / "x.npz"), "x.csv", "event 1 (depth)",
                          "implausible")
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("case", ["inf", "1e12", "reversed"])
def test_feed_replay_refuses_a_bad_file_before_it_binds(goog, tmp_path, case):
    files = {"inf": lambda: [_bad_prices(goog, tmp_path, np.inf, 50)],
             "1e12": lambda: [_bad_prices(goog, tmp_path, 1e12, 1)],
             "reversed": lambda: _halves(goog, tmp_path)[::-1]}[case]()
    needle = {"inf": "expected a finite price", "1e12": "implausible", "reversed": "give the files in time order"}
    unbindable = "tcp://300.1.1.1:99999"    # reaching the sockets would be another error
    assert_one_line_error(cmm("feed", "replay", *files, "--bind", unbindable, "--speed", "max", "--exit-at-end"),
                          needle[case])


def test_the_subscriber_drops_a_batch_with_an_infinite_price(addr):  # noqa: F811
    bad = depth(2)
    bad["px"][3] = np.inf
    with Publisher(addr) as pub, Subscriber(addr, ["X"], SubscriberOptions()) as sub:
        pub.publish("X", depth(1))
        pump(pub, sub, lambda: sub.synced("X") and sub.streams["X"].seq == 1)
        pub.publish("X", bad)
        pump(pub, sub, lambda: sub.decoder.dropped["bad_records"] == 1)
        assert "expected a finite price" in sub.decoder.examples[-1]


def test_paper_refuses_a_price_far_outside_the_book(addr, tmp_path):  # noqa: F811
    """Today's main re-centres the paper engine's book on 1e12 and dies allocating for it."""
    good, bad = depth(1), depth(2)
    bad["px"][0] = 1e12
    with Publisher(addr) as pub:
        pub.add_topic("X", feeds.Instrument("X", 0.01, 1.0))
        proc = subprocess.Popen([sys.executable, "-m", "cmm", "paper", "--feed", addr, "--config",
                                 REPO / "configs" / "paper_fixed_spread.toml", "--out", tmp_path / "p", "--quiet"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert wait_for_subscribers(pub, 1, timeout_s=120)
            pub.publish("X", good)
            pub.publish("X", bad)
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                pub.service(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
        out, err = proc.communicate()
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                          "feed batch 2", "price 1000000000000.0 is implausible")
