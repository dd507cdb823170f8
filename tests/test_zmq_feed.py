"""The ZeroMQ feed on real loopback sockets: joins, gaps, tail loss, staleness, restarts, bad peers, slow consumers."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import zmq

from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EXCH, LOCAL, SELL, TRADE, empty
from feeds.zmqfeed.messages import WIRE_VERSION, Heartbeat, encode
from feeds.zmqfeed import FeedHandlers, L2Book, Publisher, Subscriber, SubscriberOptions, replay, wait_for_subscribers
from tests.files import save_events


def free_port_pair() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


@pytest.fixture
def addr() -> str:
    return f"tcp://127.0.0.1:{free_port_pair()}"


def depth(k: int, n: int = 50) -> np.ndarray:
    """Batch k: n level updates on both sides, quantities that differ batch to batch."""
    ev = empty(n)
    i = np.arange(n)
    bid = i % 2 == 0
    ev["ev"] = np.where(bid, DEPTH | EXCH | LOCAL | BUY, DEPTH | EXCH | LOCAL | SELL)
    ev["px"] = np.where(bid, 100.0 - (i + k) % 7, 101.0 + (i * 3 + k) % 7)
    ev["qty"] = (i * 7 + k * 13) % 5        # zeros remove levels
    ev["local_ts"] = ev["exch_ts"] = k * 1_000 + i
    return ev


def pump(pub: Publisher | None, sub: Subscriber, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out: {sub.stats}"
        if pub is not None:
            pub.service(0.005)
        sub.poll(0.005)


def same_book(pub: Publisher, sub: Subscriber, topic: str = "X") -> bool:
    return all(np.array_equal(a, b) for a, b in zip(pub.book(topic).levels(), sub.book(topic).levels()))


def publish(pub, sub, ks, drop=()):
    for k in ks:
        pub.publish("X", depth(k), drop=k in drop)
    pump(pub, sub, lambda: sub.synced("X") and sub.streams["X"].seq == pub.seq("X"))


def test_subscriber_from_the_first_batch_needs_no_snapshot(addr):
    with Publisher(addr, heartbeat_s=0.05) as pub, Subscriber(addr, ["X"]) as sub:
        pub.add_topic("X")
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        publish(pub, sub, range(1, 21))
        assert sub.stats.batches == 20 and sub.stats.events == 1000
        assert sub.stats.gaps == 0 and pub.stats.snapshots_served <= 1
        assert same_book(pub, sub)


def test_late_joiner_starts_from_a_snapshot(addr):
    got = []
    with Publisher(addr, heartbeat_s=0.05) as pub:
        for k in range(1, 11):
            pub.publish("X", depth(k))
        handlers = FeedHandlers(on_snapshot=lambda t, s, ev: got.append((s.seq, len(ev))))
        with Subscriber(addr, ["X"], handlers=handlers) as sub:
            pump(pub, sub, lambda: sub.synced("X"))
            assert got[0][0] == 10 and sub.stats.joins == 1
            assert same_book(pub, sub)
            publish(pub, sub, range(11, 16))
            assert sub.stats.batches == 5 and sub.stats.gaps == 0
            assert same_book(pub, sub)


def test_forced_gap_is_counted_and_recovered_from_a_snapshot(addr):
    notices = []
    with Publisher(addr, heartbeat_s=0.05) as pub, \
            Subscriber(addr, ["X"], handlers=FeedHandlers(on_notice=notices.append)) as sub:
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        publish(pub, sub, range(1, 11), drop={4, 5})
        publish(pub, sub, range(11, 14))
        s = sub.stats
        assert (s.gaps, s.lost_batches, s.recoveries) == (1, 7, 1)     # 4, 5 dropped; 6..10 skipped by the snapshot
        assert any("gap after seq 3, 2 batches lost" in n for n in notices)
        assert same_book(pub, sub)


def test_a_lost_last_batch_is_seen_in_the_heartbeat(addr):
    with Publisher(addr, heartbeat_s=0.05) as pub, Subscriber(addr, ["X"]) as sub:
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        publish(pub, sub, range(1, 4), drop={3})
        assert (sub.stats.gaps, sub.stats.recoveries) == (1, 1)
        assert same_book(pub, sub)


def test_stale_feed_is_reported_and_cleared(addr):
    states = []
    with Publisher(addr, heartbeat_s=0.05) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(stale_after=0.3), FeedHandlers(on_stale=states.append)) as sub:
        pub.add_topic("X")
        pump(pub, sub, lambda: sub.synced("X"))
        start = time.monotonic()
        pump(None, sub, lambda: sub.stale)          # the publisher hangs: no heartbeats
        assert time.monotonic() - start >= 0.25
        pump(pub, sub, lambda: not sub.stale)
        assert states == [True, False] and sub.stats.stale_periods == 1


def test_publisher_restart_is_recovered(addr):
    with Subscriber(addr, ["X"], SubscriberOptions(stale_after=5.0)) as sub:
        with Publisher(addr, heartbeat_s=0.05) as pub:
            pump(pub, sub, lambda: pub.stats.subscriptions == 1)
            publish(pub, sub, range(1, 6))
            first = pub.session
        with Publisher(addr, heartbeat_s=0.05) as pub:
            assert pub.session != first
            for k in range(100, 103):
                pub.publish("X", depth(k))
            pump(pub, sub, lambda: sub.stats.restarts == 1 and sub.synced("X") and sub.streams["X"].seq == 3)
            assert sub.streams["X"].session == pub.session and sub.stats.recoveries == 1
            assert same_book(pub, sub)


def test_bad_peer_messages_are_dropped_counted_and_survived(addr):
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.bind(addr)
    try:
        with Subscriber(addr, ["X"], SubscriberOptions(max_message_bytes=4096)) as sub:
            hb = encode(Heartbeat(topic="X", seq=0, session=5, sent_ns=0, feed_ts=0))
            bad = [[b"X"], [b"X", b"\xc1garbage"], [b"X", b"\x00" * 5000], [b"X", hb, b"extra"],
                   [b"X", hb.replace(b"\xa1v" + bytes([WIRE_VERSION]), b"\xa1v\x09")], [b"XY", hb]]
            while "X" not in sub.streams:                       # a good message proves the SUB is connected
                raw.send_multipart([b"X", hb])
                sub.poll(0.05)
            for frames in bad:
                raw.send_multipart(frames)
            pump(None, sub, lambda: sub.dropped == 6)
            d = sub.decoder.dropped
            assert (d["malformed"], d["oversized"], d["wrong_version"], d["topic_mismatch"]) == (3, 1, 1, 1)
            raw.send_multipart([b"X", encode(Heartbeat(topic="X", seq=0, session=6, sent_ns=0, feed_ts=0))])
            pump(None, sub, lambda: sub.stats.snapshot_requests >= 1)   # still listening, acting on news
    finally:
        raw.close(0)
        ctx.term()


def test_slow_consumer_sees_gaps_and_recovers(addr):
    with Publisher(addr, heartbeat_s=0.05, sndhwm=4) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(rcvhwm=4)) as sub:
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        big = 2000
        for k in range(1, 301):                                 # 300 x 128 kB while the subscriber sleeps
            pub.publish("X", depth(k, big))
        pump(pub, sub, lambda: sub.synced("X") and sub.streams["X"].seq == 300, timeout=10)
        assert sub.stats.gaps >= 1 and sub.stats.lost_batches >= 1 and sub.stats.recoveries >= 1
        assert same_book(pub, sub)


def test_full_speed_batches_of_1024_arrive_whole_in_order_and_resend_byte_for_byte(addr):
    """Wire v2 at full speed: 300 batches of 1,024 events sent back to back reach the handler every one, in
    seq order, with the records sent (viewed in the received frame); a subscriber resuming after batch 100
    gets batches 101..300 resent from the publisher's history, the same bytes again."""
    sent = [depth(k, 1024) for k in range(1, 301)]
    for ev in sent:
        ev.flags.writeable = False                   # kept for resends as they are
    got, resent = [], []
    with Publisher(addr, heartbeat_s=0.05) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(keep_book=False),
                       FeedHandlers(on_events=lambda t, ev, b: got.append((b.seq, ev.copy())))) as sub:
        pub.add_topic("X")
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        for ev in sent:
            pub.publish("X", ev)
        pump(pub, sub, lambda: sub.stats.batches == 300, timeout=20)
        assert [seq for seq, _ in got] == list(range(1, 301))
        assert all(np.array_equal(ev, want) for (_, ev), want in zip(got, sent))
        s = sub.stats
        assert (s.events, s.gaps, s.lost_batches, s.duplicates, sub.dropped) == (300 * 1024, 0, 0, 0, 0)
        opts = SubscriberOptions(keep_book=False, resume={"X": (pub.session, 100)}, snapshot_timeout=60.0)
        with Subscriber(addr, ["X"], opts, FeedHandlers(on_events=lambda t, ev, b: resent.append(ev.copy()))) as late:
            pump(pub, late, lambda: late.synced("X"), timeout=20)
            assert (late.stats.resent_batches, late.stats.resumes, late.stats.gaps) == (200, 1, 0)
        assert all(np.array_equal(ev, want) for ev, want in zip(resent, sent[100:])) and len(resent) == 200


def test_a_writeable_batch_is_copied_so_changing_it_later_changes_no_resend(addr):
    """The publisher keeps a read-only array as it is but copies a writeable one: the caller may reuse it."""
    buf = depth(1, 20)
    want = buf.copy()
    resent = []
    with Publisher(addr, heartbeat_s=0.05) as pub:
        pub.publish("X", buf)
        buf["qty"] = 99.0                            # the caller reuses its buffer
        pub.publish("X", depth(2, 20))
        opts = SubscriberOptions(keep_book=False, resume={"X": (pub.session, 0)}, snapshot_timeout=60.0)
        with Subscriber(addr, ["X"], opts, FeedHandlers(on_events=lambda t, ev, b: resent.append(ev.copy()))) as sub:
            pump(pub, sub, lambda: sub.synced("X"))
    assert np.array_equal(resent[0], want)


def test_the_lazy_book_is_the_book_of_every_batch_sent(addr):
    """The publisher's book is brought up to date only when needed: before a snapshot, and before a batch
    leaves a short history. Either way a late joiner's snapshot is the book after every batch."""
    reference = L2Book()
    for k in range(1, 41):
        reference.apply(depth(k))
    with Publisher(addr, heartbeat_s=0.05, history_events=120) as pub:   # 120 events: the last 2 batches
        for k in range(1, 41):
            pub.publish("X", depth(k))
        with Subscriber(addr, ["X"]) as sub:
            pump(pub, sub, lambda: sub.synced("X"))
            assert sub.stats.joins == 1 and sub.streams["X"].seq == 40
            assert all(np.array_equal(a, b) for a, b in zip(sub.book("X").levels(), reference.levels()))
            assert same_book(pub, sub)


def _dict_book(events: np.ndarray) -> tuple[dict, dict]:
    """The book's rules, one event at a time on two dicts: what the hash tables must agree with."""
    bids, asks = {}, {}
    for e, p, q in zip(events["ev"].tolist(), events["px"].tolist(), events["qty"].tolist()):
        kind, is_bid, is_ask = e & 0xFF, bool(e & BUY), bool(e & SELL)
        if kind == DEPTH_CLEAR:
            if is_bid:
                for k in [k for k in bids if not np.isfinite(p) or k >= p]:
                    del bids[k]
            elif is_ask:
                for k in [k for k in asks if not np.isfinite(p) or k <= p]:
                    del asks[k]
            else:
                bids.clear()
                asks.clear()
        elif kind in (DEPTH, DEPTH_SNAPSHOT, DEPTH_BBO) and (is_bid or is_ask) and p == p:
            side = bids if is_bid else asks
            if kind == DEPTH_BBO:
                for k in [k for k in side if (k > p if is_bid else k < p)]:
                    del side[k]
            if q > 0:
                side[p] = q
            else:
                side.pop(p, None)
    return bids, asks


def test_the_book_keeps_the_rules_through_clears_bbos_and_growth():
    book = L2Book()
    ev = empty(4)
    ev["ev"] = [DEPTH | BUY, DEPTH | SELL, DEPTH_BBO | BUY, DEPTH_CLEAR | SELL]
    ev["px"] = [99.0, 101.0, 98.5, 101.0]
    ev["qty"] = [2.0, 3.0, 1.0, 0.0]
    book.apply(ev[:2])
    assert [a.tolist() for a in book.levels()] == [[99.0], [2.0], [101.0], [3.0]]
    book.apply(ev[2:])                                  # the BBO at 98.5 removes the better 99; asks cleared
    assert [a.tolist() for a in book.levels()] == [[98.5], [1.0], [], []]
    rng = np.random.default_rng(5)
    n = 60_000                                          # up to 1,200 prices a side: the tables grow from 512 slots
    ev = empty(n)
    kinds = rng.choice([DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, TRADE], n, p=[.88, .04, .005, .06, .015])
    ev["ev"] = kinds | rng.choice([BUY, SELL, 0, BUY | SELL], n, p=[.48, .48, .02, .02])
    ev["px"] = 100 + rng.integers(-600, 600, n) * 0.01
    ev["px"][rng.random(n) < 0.001] = np.inf
    ev["px"][rng.random(n) < 0.0005] = np.nan
    ev["qty"] = rng.integers(0, 4, n)
    book = L2Book()
    for i in range(0, n, 997):
        book.apply(ev[i:i + 997])
        bids, asks = _dict_book(ev[:i + 997])
        bid_px, bid_qty, ask_px, ask_qty = book.levels()
        assert bid_px.tolist() == sorted(bids, reverse=True) and bid_qty.tolist() == [bids[p] for p in bid_px]
        assert ask_px.tolist() == sorted(asks) and ask_qty.tolist() == [asks[p] for p in ask_px]


def test_a_replay_keeps_its_clock_moving_through_a_quiet_stretch(addr, tmp_path):
    """Rows 3 s apart replayed at 60x: 50 ms of wall time with nothing to send, 10 ms heartbeats. Each
    heartbeat carries the replay's clock as it is when sent, so a trader's 1 s timers fire one by one in the
    gap; when the publisher slept through the gap at once, every heartbeat in it said where it began."""
    first, second = depth(1, 2), depth(2, 2)
    second["local_ts"] = second["exch_ts"] = 3_000_000_000 + np.arange(2)
    path = tmp_path / "X.npz"
    save_events(path, np.concatenate([first, second]))
    clocks, ended = [], threading.Event()
    with Publisher(addr, heartbeat_s=0.01) as pub:
        def consume():
            handlers = FeedHandlers(on_clock=lambda topic, hb: clocks.append(hb.feed_ts),
                                    on_end=lambda topic: ended.set())
            with Subscriber(addr, None, SubscriberOptions(), handlers) as sub:
                deadline = time.monotonic() + 10
                while not ended.is_set() and time.monotonic() < deadline:
                    sub.poll(0.002)
        consumer = threading.Thread(target=consume)
        consumer.start()
        assert wait_for_subscribers(pub, 1, timeout_s=5.0)
        replay(pub, [str(path)], speed=60.0)
        consumer.join()
    assert ended.is_set()
    in_gap = sorted({c for c in clocks if 1_001 < c < 3_000_000_000})
    # ~50 ms of gap in 10 ms heartbeats: several distinct clocks, the last within a few heartbeats of its end
    assert len(in_gap) >= 3, clocks
    assert in_gap[-1] > 3_000_000_000 - 4 * 0.01 * 60 * 1e9, clocks
