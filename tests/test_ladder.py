"""The trapezoidal ladder, the risk cut and the order diff, checked by hand (prices in ticks, sizes in lots)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from strategies.api import Order
from strategies.ladder import Ladder, build, diff, level_lots, limit

BASE = dict(levels=3, spacing=1, slope=0.0, rho=1.0, lot=1.0, skew_ticks=0.0, max_position=100.0)


def ladder(mid, spread, volume, position=0.0, best_bid=None, best_ask=None, **over):
    return build(mid, spread, volume, position, best_bid, best_ask, **(BASE | over))


@pytest.mark.parametrize("total, levels, slope, expected", [
    (9, 3, 0.0, [3, 3, 3]),
    (10, 3, 0.0, [4, 3, 3]),            # 3.33 each: the spare lot goes to the inner level (tie)
    (12, 3, 0.5, [3, 4, 5]),            # weights 1 : 1.5 : 2 -> 2.67, 4, 5.33
    (10, 3, 0.5, [2, 3, 5]),            # 2.22, 3.33, 4.44 -> 2, 3, 4 + the largest remainder (4.44)
    (10, 3, -0.25, [5, 3, 2]),          # 1 : 0.75 : 0.5 -> 4.44, 3.33, 2.22 -> 4, 3, 2 + the largest remainder (4.44)
    (2, 3, 0.0, [1, 1, 0]),
    (0, 3, 1.0, [0, 0, 0]),
])
def test_level_lots_by_hand(total, levels, slope, expected):
    assert level_lots(total, levels, slope) == expected


@given(st.integers(0, 10_000), st.integers(1, 12), st.floats(-0.09, 5.0))
def test_level_lots_add_up(total, levels, slope):
    lots = level_lots(total, levels, slope)
    assert sum(lots) == total and min(lots) >= 0


def test_symmetric_ladder_on_a_half_tick_mid():
    # mid 1000.5, spread 3: inner bid floor(999.0) = 999, inner ask ceil(1002.0) = 1002; 9 lots over 3 levels.
    assert ladder(1000.5, 3.0, 9.0) == Ladder((999, 998, 997), (3, 3, 3), (1002, 1003, 1004), (3, 3, 3))


def test_rounding_outwards_and_spacing():
    # mid 1000.3, spread 2.2: 999.2 -> 999 (down), 1001.4 -> 1002 (up); levels 2 ticks apart; rho 0.5 of 11 = 5.5 -> 6.
    got = ladder(1000.3, 2.2, 11.0, spacing=2, rho=0.5, slope=1.0)
    # weights 1 : 2 : 3 of 6 lots -> 1, 2, 3
    assert got == Ladder((999, 997, 995), (1, 2, 3), (1002, 1004, 1006), (1, 2, 3))


def test_lots_are_whole_lots_of_the_instrument():
    # lot 0.1: rho * V = 0.44 -> 4.4 lots -> 4; over 3 levels: 2, 1, 1.
    assert ladder(50.0, 2.0, 0.44, lot=0.1) == Ladder((49, 48, 47), (2, 1, 1), (51, 52, 53), (2, 1, 1))


def test_too_little_volume_drops_the_outer_levels():
    assert ladder(50.0, 2.0, 1.6) == Ladder((49, 48), (1, 1), (51, 52), (1, 1))
    assert ladder(50.0, 2.0, 0.4) == Ladder()


def test_inventory_skew_moves_both_sides_against_the_position():
    # long 50 of max 100 with skew 4: centre 1000 - 2 = 998 -> bid 997, ask 999.
    assert ladder(1000.0, 2.0, 3.0, position=50.0, skew_ticks=4.0) == \
        Ladder((997, 996, 995), (1, 1, 1), (999, 1000, 1001), (1, 1, 1))
    # short 25: centre 1000 + 1 = 1001 -> bid 1000, ask 1002.
    assert ladder(1000.0, 2.0, 3.0, position=-25.0, skew_ticks=4.0).bid_ticks[0] == 1000


def test_post_only_never_crosses_the_opposite_best():
    # Predicted mid far above the book (best 990 / 995): the inner bid stops at 994, levels follow it down;
    # the ask is unaffected (1001 > 990).
    got = ladder(1000.0, 2.0, 3.0, best_bid=990, best_ask=995)
    assert got.bid_ticks == (994, 993, 992) and got.ask_ticks == (1001, 1002, 1003)
    got = ladder(980.0, 2.0, 3.0, best_bid=990, best_ask=995)
    assert got.ask_ticks == (991, 992, 993) and got.bid_ticks == (979, 978, 977)


def test_limit_keeps_the_position_within_bounds_inner_levels_first():
    full = Ladder((99, 98, 97), (3, 3, 3), (101, 102, 103), (3, 3, 3))
    # long 95 of 100: bids may add 5 lots -> 3, 2; asks may take 195 -> untouched.
    assert limit(full, 95.0, 100.0, 10, 1.0) == Ladder((99, 98), (3, 2), (101, 102, 103), (3, 3, 3))
    # at the limit: no bid at all.
    assert limit(full, 100.0, 100.0, 10, 1.0).bid_ticks == ()
    # short 99.5 with lot 1: asks may add 0.5 -> 0 whole lots.
    assert limit(full, -99.5, 100.0, 10, 1.0).ask_ticks == ()


def test_limit_order_count_keeps_the_innermost_alternating():
    full = Ladder((99, 98, 97), (1, 1, 1), (101, 102, 103), (1, 1, 1))
    assert limit(full, 0.0, 100.0, 3, 1.0) == Ladder((99, 98), (1, 1), (101,), (1,))
    assert limit(full, 0.0, 100.0, 4, 1.0) == Ladder((99, 98), (1, 1), (101, 102), (1, 1))
    # no bids allowed: the asks get the whole count.
    assert limit(full, 100.0, 100.0, 2, 1.0) == Ladder((), (), (101, 102), (1, 1))


TICK = 0.01


def order(oid, side, tick, leaves, executed=0.0, status="new", pending=""):
    return Order(id=oid, side=side, price=tick * TICK, qty=leaves + executed, leaves=leaves, executed=executed,
                 status=status, tif="gtx", type="limit", pending=pending)


WANTED = Ladder((99, 98), (2, 1), (101, 102), (2, 1))


def test_diff_sends_nothing_when_the_orders_are_the_ladder():
    live = [order(1, "buy", 99, 2.0), order(2, "buy", 98, 1.0), order(3, "sell", 101, 2.0),
            order(4, "sell", 102, 1.0, executed=3.0, status="partially_filled")]
    assert len(diff(live, WANTED, TICK, 1.0)) == 0


def test_diff_cancels_modifies_and_places():
    live = [order(1, "buy", 99, 5.0),                          # same price, other size -> modify to 2
            order(2, "buy", 97, 1.0),                          # no longer wanted -> cancel
            order(3, "sell", 101, 1.0, executed=1.0, status="partially_filled"),   # leaves 1 -> 2: qty 1 + 2
            order(4, "sell", 101, 2.0),                        # a second order at 101 -> cancel
            order(5, "sell", 102, 1.0, status="filled")]       # finished: ignored; 102 needs a new order
    got = diff(live, WANTED, TICK, 1.0)
    assert got.cancel == [2, 4]
    assert got.modify == [(1, 99, 2.0), (3, 101, 3.0)]
    assert got.place == [("buy", 98, 1.0), ("sell", 102, 1.0)]


def test_diff_leaves_orders_in_flight_alone():
    live = [order(1, "buy", 99, 1.0, status="none", pending="new"),    # in flight: holds 99, size not touched
            order(2, "buy", 98, 1.0, pending="cancel"),                # going away: 98 needs a new order
            order(3, "sell", 105, 1.0, pending="modify")]              # in flight: not cancelled yet
    got = diff(live, WANTED, TICK, 1.0)
    assert got.cancel == [] and got.modify == []
    assert got.place == [("buy", 98, 1.0), ("sell", 101, 2.0), ("sell", 102, 1.0)]


def test_diff_empty_ladder_cancels_everything_live():
    live = [order(1, "buy", 99, 1.0), order(2, "sell", 101, 1.0), order(3, "sell", 102, 1.0, pending="new")]
    assert diff(live, Ladder(), TICK, 1.0) == ([1, 2], [], [])
