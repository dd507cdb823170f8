"""The book sanity replay on hand-built books."""

from feeds import events as E
from feeds.book_check import check_book


def _book(rows):
    ev = E.empty(len(rows))
    for i, (kind, side, ts, px, qty) in enumerate(rows):
        ev[i] = (kind | side | E.EXCH | E.LOCAL, ts, ts, px, qty, 0, 0, 0.0)
    return ev


def test_tracks_best_prices_through_removals():
    ev = _book([
        (E.DEPTH, E.BUY, 1, 99.0, 5), (E.DEPTH, E.BUY, 1, 98.0, 5),
        (E.DEPTH, E.SELL, 1, 101.0, 5), (E.DEPTH, E.SELL, 1, 102.0, 5),
        (E.DEPTH, E.BUY, 2, 99.0, 0),        # best bid leaves: 98 becomes best
        (E.DEPTH, E.SELL, 3, 100.5, 2),      # a better ask
    ])
    b = check_book(ev, tick_size=0.5)
    assert (b.final_best_bid, b.final_best_ask) == (98.0, 100.5)
    assert (b.bid_levels, b.ask_levels) == (1, 3)
    assert b.groups == 3 and b.crossed == 0


def test_counts_crossed_states_once_per_timestamp():
    ev = _book([
        (E.DEPTH, E.BUY, 1, 100.0, 1), (E.DEPTH, E.SELL, 1, 101.0, 1),
        (E.DEPTH, E.BUY, 2, 101.0, 1),       # crossed at ts 2
        (E.DEPTH, E.SELL, 3, 101.0, 0), (E.DEPTH, E.SELL, 3, 102.0, 1),  # repaired within ts 3
    ])
    b = check_book(ev, tick_size=1.0)
    assert (b.groups, b.crossed, b.first_crossed_ts) == (3, 1, 2)


def test_clear_then_snapshot_replaces_a_side():
    ev = _book([
        (E.DEPTH, E.BUY, 1, 10.0, 1), (E.DEPTH, E.BUY, 1, 9.0, 1), (E.DEPTH, E.SELL, 1, 12.0, 1),
        (E.DEPTH_CLEAR, E.BUY, 2, 9.0, 0),
        (E.DEPTH_SNAPSHOT, E.BUY, 2, 8.0, 3),
    ])
    b = check_book(ev, tick_size=1.0)
    assert (b.final_best_bid, b.bid_levels) == (8.0, 1)


def test_empty_file():
    assert check_book(E.empty(0), 0.01).groups == 0
