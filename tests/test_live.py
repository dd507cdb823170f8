"""engine/live.py: rows streamed onto the two timelines exactly as a whole file's ordering puts them."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from common.errors import DataError
from engine.live import LiveOptions, LiveSim, StreamOrdering, append_in_order
from feeds.events import DEPTH, DEPTH_CLEAR, EVENT_DTYPE, EXCH, LOCAL
from feeds.ordering import order_timelines
from feeds.validate import NO_PRICES, check_price_span
from feeds.zmqfeed.messages import pack
from runtime import backtest as runner
from runtime.config import PaperConfig, load
from runtime.paper.journal import Step
from runtime.paper.trader import PaperTrader
from tests.conftest import REPO


def rows(exch_ts, local_ts) -> np.ndarray:
    out = np.zeros(len(exch_ts), dtype=EVENT_DTYPE)
    out["ev"] = DEPTH
    out["exch_ts"], out["local_ts"] = exch_ts, local_ts
    out["px"] = np.arange(len(exch_ts)) + 100.0            # each row's identity
    return out


def timeline(out: np.ndarray, flag: int) -> list[float]:
    return list(out["px"][(out["ev"] & np.uint64(flag)) != 0])


def test_exchange_copies_wait_for_the_watermark_then_leave_in_exch_order():
    o = StreamOrdering(max_feed_latency_ns=5)
    r = rows([18, 15, 19, 17], [20, 21, 22, 23])
    out = [o.push(r[k:k + 1]) for k in range(4)]
    # watermark = last local_ts - 5: 15, 16, 17, 18; copies at or below it are released
    assert [timeline(x, EXCH) for x in out] == [[], [101.0], [], [103.0, 100.0]]
    assert [timeline(x, LOCAL) for x in out] == [[100.0], [101.0], [102.0], [103.0]]
    assert o.horizon == 23 - 5 - 1
    assert timeline(o.flush(), EXCH) == [102.0]
    assert o.late == 0
    for x in out:                                      # every copy carries one timeline's flag only
        assert not np.any((x["ev"] & np.uint64(EXCH)) & ((x["ev"] & np.uint64(LOCAL)) << np.uint64(1)))


def test_a_row_later_than_the_bound_is_moved_up_and_counted():
    o = StreamOrdering(max_feed_latency_ns=2)
    first = o.push(rows([10], [12]))
    late = o.push(rows([5], [13]))                     # exch 5, but exch 10 already left
    assert timeline(first, EXCH) == [100.0] and o.late == 1
    assert list(late["exch_ts"][(late["ev"] & np.uint64(EXCH)) != 0]) == [10]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 7)), min_size=1, max_size=60),
       st.lists(st.integers(1, 9), min_size=1, max_size=20))
def test_any_cut_into_batches_gives_the_whole_file_ordering(steps, cuts):
    """Random receive gaps and feed latencies within the bound, cut anywhere: both timelines equal
    feeds.ordering.order_timelines over the whole stream."""
    local = np.cumsum([gap for gap, _ in steps]) + 1000
    exch = local - np.array([lat for _, lat in steps])
    r = rows(exch, local)
    o = StreamOrdering(max_feed_latency_ns=7)
    out, i, k = [], 0, 0
    while i < len(r):
        n = cuts[k % len(cuts)]
        out.append(o.push(r[i:i + n]))
        i, k = i + n, k + 1
    out.append(o.flush())
    got = np.concatenate(out)
    whole = order_timelines(r)
    for flag in (EXCH, LOCAL):
        assert timeline(got, flag) == timeline(whole, flag)
    assert o.late == 0


def test_growing_and_recentring_the_engine_changes_no_fill():
    """A live engine that starts with room for 16 rows and 30 ticks either side grows and re-centres
    many times over the sample, and fills exactly as the backtest of the whole file."""
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    cfg = load(path, PaperConfig)
    bt_cfg = load(str(REPO / "configs" / "backtest_fixed_spread.toml"))
    events, instrument = runner.load_events(bt_cfg)
    expected = runner.run(bt_cfg, str(REPO / "configs" / "backtest_fixed_spread.toml")).result
    trader = PaperTrader(cfg, path, instrument, live=LiveOptions(initial_rows=16, tick_range=30))
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    for seq, i in enumerate(range(0, len(local), 97), start=1):
        trader.step(Step(kind="batch", seq=seq, session=1, events=pack(local[i:i + 97])))
    trader.step(Step(kind="end", seq=seq, session=1))
    got = trader.close()
    assert trader.live.dropped > 0 and trader.live.dropped + trader.live.n == len(local)   # rows passed, dropped
    assert np.array_equal(got.fills, expected.fills) and len(got.fills) == 303
    for name, column in expected.ticks.items():
        np.testing.assert_array_equal(got.ticks[name], column, err_msg=name)
    assert got.account == expected.account


def test_rows_before_any_price_wait_for_one():
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    cfg = load(path, PaperConfig)
    events, instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))
    trader = PaperTrader(cfg, path, instrument)
    clear = np.zeros(1, dtype=EVENT_DTYPE)
    clear["ev"] = DEPTH_CLEAR | EXCH | LOCAL
    clear["exch_ts"] = clear["local_ts"] = events["local_ts"][0]
    trader.step(Step(kind="batch", seq=1, session=1, events=pack(clear)))    # a DEPTH_CLEAR, no price
    assert trader.live is None and len(trader.held) == 1
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    trader.step(Step(kind="batch", seq=2, session=1, events=pack(local[:50])))
    appended = trader.live.events[:trader.live.n]
    assert trader.live is not None and not trader.held
    assert np.count_nonzero(appended["ev"] & np.uint64(LOCAL)) == 51       # the held clear, then the 50 rows
    assert appended["ev"][0] & np.uint64(0xFF) == DEPTH_CLEAR


def test_the_feeds_clock_wakes_timers_between_rows_and_changes_no_fill():
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    bt_path = str(REPO / "configs" / "backtest_fixed_spread.toml")
    events, instrument = runner.load_events(load(bt_path))
    expected = runner.run(load(bt_path), bt_path).result
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    gaps = np.diff(local["local_ts"][:5000])
    k = int(np.argmax(gaps))                              # the quietest stretch: 100 ms timers fall inside it
    assert gaps[k] > 500_000_000
    trader = PaperTrader(load(path, PaperConfig), path, instrument)
    trader.step(Step(kind="batch", seq=1, session=1, events=pack(local[:k + 1])))
    before = trader.session.wakeups
    trader.step(Step(kind="clock", seq=1, session=1, clock_ns=int(local["local_ts"][k + 1]) - 1))
    assert trader.session.wakeups - before >= gaps[k] // 100_000_000 - 1     # the timers fired without a row
    trader.step(Step(kind="batch", seq=2, session=1, events=pack(local[k + 1:])))
    trader.step(Step(kind="end", seq=2, session=1))
    got = trader.close()
    assert np.array_equal(got.fills, expected.fills)
    for name, column in expected.ticks.items():
        np.testing.assert_array_equal(got.ticks[name], column, err_msg=name)


def test_a_restarted_replay_goes_back_in_time_its_snapshot_at_our_clock_its_rows_dropped():
    """A replaying publisher that starts its file again: its snapshot is the book now, its old rows are not."""
    from feeds.zmqfeed import L2Book
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    events, instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    trader = PaperTrader(load(path, PaperConfig), path, instrument)
    trader.step(Step(kind="batch", seq=1, session=1, events=pack(local[:2000])))
    clock = trader.ordering.last_local
    book = L2Book()
    book.apply(local[:100])
    snapshot = book.snapshot_events(int(local["local_ts"][99]))          # stamped long before our clock
    n = trader.live.n
    trader.step(Step(kind="snapshot", seq=100, session=2, events=pack(snapshot)))
    applied = trader.live.events[n:trader.live.n]
    assert len(applied) == len(snapshot) and applied["local_ts"].min() == clock
    assert trader.rewound == 0
    trader.step(Step(kind="batch", seq=101, session=2, events=pack(local[100:300])))     # the replay again
    assert trader.rewound == 200 and trader.live.n == n + len(snapshot)


class _ReadsEventsNowAndThen:
    """FixedSpread that also reads ``new_events`` at every 7th timer: what it gets must not depend on
    which rows the live engine dropped in between."""

    def __init__(self, strategy):
        self.inner, self.seen, self.timers = strategy, [], 0
        inner_timer = strategy.on_timer

        def on_timer(ctx):
            self.timers += 1
            if self.timers % 7 == 0:
                rows = ctx.new_events()
                self.seen.append((len(rows), rows.tobytes()))
            inner_timer(ctx)
        strategy.on_timer = on_timer


def _long_session(initial_rows: int, days: int, per_day: int):
    """The sample's first ``per_day`` local rows replayed ``days`` times end to end, in batches of 256."""
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    events, instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0][:per_day]
    span = int(local["local_ts"][-1] - local["local_ts"][0]) + 1_000_000_000
    trader = PaperTrader(load(path, PaperConfig), path, instrument, live=LiveOptions(initial_rows=initial_rows))
    reader = _ReadsEventsNowAndThen(trader.strategy)
    outcomes, metrics, capacity, seq = [], [], 0, 0
    for day in range(days):
        rows = local.copy()
        rows["local_ts"] += day * span
        rows["exch_ts"] += day * span
        for i in range(0, len(rows), 256):
            seq += 1
            outcomes.append(trader.step(Step(kind="batch", seq=seq, session=1, events=pack(rows[i:i + 256]))))
            metrics.append(trader.session.ctx.metrics())
            capacity = max(capacity, len(trader.live.events), len(trader.live.arrays["tk_mid"]))
    outcomes.append(trader.step(Step(kind="end", seq=seq + 1, session=1)))
    remaining = trader.session.ctx.new_events()
    reader.seen.append((len(remaining), remaining.tobytes()))
    return trader, trader.close(), outcomes, metrics, reader.seen, capacity


def test_a_long_session_keeps_bounded_arrays_and_trades_as_an_unbounded_one():
    """6 x 8,000 rows through an engine starting at 1,024 rows: it drops the rows passed, so its arrays
    never pass 4,096 rows (an engine that kept every row needs 48,000), and every step's outcome, the
    running metrics, the rows new_events hands over and the results equal those of an engine big enough
    never to drop one (which fills as the backtest: the tests above)."""
    days, per_day = 6, 8000
    small, got, outcomes, metrics, seen, capacity = _long_session(1024, days, per_day)
    big, expected, outcomes_big, metrics_big, seen_big, _ = _long_session(1 << 16, days, per_day)
    assert capacity <= 4096
    assert big.live.dropped == 0 and small.live.dropped > 40_000 and small.live.dropped + small.live.n == days * per_day
    assert small.live.ticks_spilled.rows > 0
    assert outcomes == outcomes_big and metrics == metrics_big
    assert sum(n for n, _ in seen) == days * per_day and seen == seen_big
    assert np.array_equal(got.fills, expected.fills) and len(got.fills) > 100
    assert list(got.ticks) == list(expected.ticks)
    for name, column in expected.ticks.items():
        assert column.dtype == got.ticks[name].dtype
        np.testing.assert_array_equal(got.ticks[name], column, err_msg=name)
    assert got.account == expected.account and np.array_equal(got.orders, expected.orders)


def _general_path(live, ordering, batch, tick, seen):
    """What a batch goes through when it is not the usual one: checked, ordered, appended."""
    seen = check_price_span(batch, tick, "feed batch", seen=seen)
    live.append(ordering.push(batch))
    return seen


def _usual_and_general(steps, cuts, max_latency: int = 5) -> tuple[int, int]:
    """Feed the same batches to two live engines, one taking append_in_order where it applies, the other
    the general path always; after every batch both must be equal. Returns (batches taken, refused)."""
    instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))[1]
    engine_cfg, latency = runner.sim_config(load(str(REPO / "configs" / "paper_fixed_spread.toml"), PaperConfig),
                                            instrument)
    tick = instrument.tick_size
    one, other = [(LiveSim(engine_cfg, 100.0, LiveOptions(initial_rows=16, tick_range=30), latency),
                   StreamOrdering(max_feed_latency_ns=max_latency)) for _ in range(2)]
    local = np.cumsum([gap for gap, _, _ in steps]) + 1000
    r = rows(local - np.array([lat for _, lat, _ in steps]), local)
    r["px"] = 100.0 + tick * np.cumsum([move - 20 for _, _, move in steps])
    seen_one = seen_other = NO_PRICES
    taken = refused = 0
    i, k = 0, 0
    while i < len(r):
        batch = r[i:i + cuts[k % len(cuts)]]
        i, k = i + len(batch), k + 1
        before = (one[0].events.tobytes(), one[0].n, one[1].last_local, one[1].released_exch)
        got = append_in_order(*one, batch, tick, seen_one)
        if got is None:
            refused += k > 1                            # the first batch has no clock to follow yet
            assert (one[0].events.tobytes(), one[0].n, one[1].last_local, one[1].released_exch) == before
            got = _general_path(*one, batch, tick, seen_one)
        else:
            taken += 1
        seen_one = got
        seen_other = _general_path(*other, batch, tick, seen_other)
        assert seen_one == seen_other
        (a, oa), (b, ob) = one, other
        assert a.n == b.n and a.events[:a.n].tobytes() == b.events[:b.n].tobytes()
        assert np.array_equal(a.arrays["ints"], b.arrays["ints"])
        assert (oa.last_local, oa.released_exch, oa.late, oa.pending.tobytes()) == \
            (ob.last_local, ob.released_exch, ob.late, ob.pending.tobytes())
    return taken, refused


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 6), st.integers(0, 40)), min_size=20, max_size=120),
       st.lists(st.integers(1, 7), min_size=1, max_size=10), st.sampled_from([0, 5]))
def test_the_usual_batch_in_one_call_leaves_the_engine_as_the_general_path(steps, cuts, max_latency):
    """Batches with random feed latencies (some late, some beyond the watermark) and prices that walk
    off a 30-tick book (re-centring) into 16 rows (growing): where append_in_order takes a batch, the
    engine's rows and cursors, the ordering's state and the prices seen equal those of check_price_span,
    StreamOrdering.push and LiveSim.append; where it refuses one it has changed nothing."""
    _usual_and_general(steps, cuts, max_latency)


def test_most_batches_of_a_one_clock_feed_take_the_one_call():
    """A feed with one clock (LOBSTER's: exch_ts = local_ts, a latency bound of 0) whose prices wander a
    few ticks: after the first batch, every batch is the usual one but those that grow the arrays (16 rows,
    doubling) or re-centre the book."""
    gen = np.random.default_rng(7)
    steps = [(int(g), 0, int(m)) for g, m in zip(gen.integers(1, 9, 600), gen.integers(19, 22, 600))]
    taken, refused = _usual_and_general(steps, [5], max_latency=0)
    assert taken > 100 and 0 < refused < 15


def test_an_implausible_price_after_the_usual_batches_is_refused_by_the_general_path():
    """append_in_order never refuses: a price the book's range cannot hold goes to check_price_span, whose
    one-line error names the feed step."""
    path = str(REPO / "configs" / "paper_fixed_spread.toml")
    events, instrument = runner.load_events(load(str(REPO / "configs" / "backtest_fixed_spread.toml")))
    trader = PaperTrader(load(path, PaperConfig), path, instrument)
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    for seq in (1, 2):
        trader.step(Step(kind="batch", seq=seq, session=1, events=pack(local[(seq - 1) * 50:seq * 50])))
    n = trader.live.n
    bad = local[100:150].copy()
    bad["px"][7] = 1e12
    with pytest.raises(DataError, match=r"feed batch 3: px: event 7 \(depth\): price 1000000000000.0 is implausible"):
        trader.step(Step(kind="batch", seq=3, session=1, events=pack(bad)))
    assert trader.live.n == n
