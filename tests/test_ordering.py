"""Two timelines: our ordering equals hftbacktest's, and both timelines come out monotonic."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from common.errors import DataError
from feeds import events as E
from feeds.ordering import correct_local_timestamp, early_outliers, order_timelines, timeline_violations


def _events(exch, local):
    ev = E.empty(len(exch))
    ev["ev"] = E.DEPTH | E.BUY
    ev["exch_ts"] = exch
    ev["local_ts"] = local
    ev["px"] = np.arange(len(exch)) + 100.0
    ev["qty"] = 1.0
    return ev


def test_hand_computed_split():
    # Row 1 happened first at the exchange but arrived second: it is split in two.
    out = order_timelines(_events([10, 5, 20], [15, 16, 25]))
    flags = out["ev"] & np.uint64(E.EXCH | E.LOCAL)
    assert out["px"].tolist() == [101.0, 100.0, 101.0, 102.0]
    assert flags.tolist() == [E.EXCH, E.EXCH | E.LOCAL, E.LOCAL, E.EXCH | E.LOCAL]
    assert timeline_violations(out) == (0, 0)


def test_negative_latency_is_shifted_to_base():
    ev = _events([100, 200, 300], [90, 250, 295])
    offset = correct_local_timestamp(ev, base_latency_ns=3)
    assert offset == 13
    assert ev["local_ts"].tolist() == [103, 263, 308]
    assert correct_local_timestamp(ev) == 0


def test_one_bad_clock_reading_neither_sets_the_shift_nor_hides():
    ms = 1_000_000
    exch = 1_723_161_600 * 10**9 + np.arange(200) * ms
    latency = -1_270 * ms + (np.arange(200) % 7) * ms       # clock 1.27 s behind, 0..6 ms of delay
    latency[100] -= 10_000 * ms                               # one reading 10 s early
    ev = _events(exch, exch + latency)
    assert np.flatnonzero(early_outliers(latency)).tolist() == [100]
    assert correct_local_timestamp(ev) == 1_270 * ms          # not 11.27 s
    assert int(np.median(ev["local_ts"] - ev["exch_ts"])) == 3 * ms


def test_a_skew_beyond_an_hour_is_refused():
    exch = 1_723_161_600 * 10**9 + np.arange(10)
    ev = _events(exch, exch - 3601 * 10**9)
    with pytest.raises(DataError, match=r"local_ts: median feed latency \(local_ts - exch_ts\) is -3,601.0 s"):
        correct_local_timestamp(ev)
    assert (ev["local_ts"] == exch - 3601 * 10**9).all()      # untouched


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 30)), min_size=1, max_size=60, unique=True))
def test_matches_hftbacktest_correct_event_order(pairs):
    from tests.hbt_reference import reference_event_order
    exch = np.array([p[0] for p in pairs], dtype=np.int64)
    local = exch + np.array([p[1] for p in pairs], dtype=np.int64)
    ev = _events(exch, local)
    ours = order_timelines(ev)
    theirs = reference_event_order(ev.copy())
    assert ours.tobytes() == np.asarray(theirs).tobytes()
    assert timeline_violations(ours) == (0, 0)
