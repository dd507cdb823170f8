"""Issue 12 items 10 and 17 on real loopback sockets: resends that flow instead of dropping, a resend short of
its end said exactly, every skipped batch counted, subscriptions that count, sane heartbeats, key modes."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest
import zmq

from feeds.zmqfeed import FeedHandlers, Publisher, Subscriber, SubscriberOptions, wait_for_subscribers
from feeds.zmqfeed.messages import Decoder, EventBatch, Heartbeat, ReplayEnd, ReplayRequest, batch_frames, encode, pack
from feeds.zmqfeed.publisher import snapshot_address
from tests.test_zmq_feed import depth, free_port_pair, pump

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def addr() -> str:
    return f"tcp://127.0.0.1:{free_port_pair()}"


def test_a_resend_of_3000_batches_flows_instead_of_dropping(addr):
    """Item 10: the ROUTER used to drop silently past its queue (1,000 messages) and the resume fell back to
    a snapshot. Every batch must come, in order, with no gap, however long the resend."""
    with Publisher(addr, heartbeat_s=0.05) as pub:
        for k in range(1, 3006):
            pub.publish("X", depth(k, 20))
        resume = {"X": (pub.session, 5)}
        # A long snapshot_timeout: a lost resend cannot hide behind the subscriber asking again.
        opts = SubscriberOptions(keep_book=False, resume=resume, snapshot_timeout=60.0)
        with Subscriber(addr, ["X"], opts) as sub:
            pump(pub, sub, lambda: sub.synced("X"), timeout=20)
            s = sub.stats
            assert (s.resent_batches, s.resumes, s.gaps, s.lost_batches, s.snapshots) == (3000, 1, 0, 0, 0)
            assert sub.streams["X"].seq == 3005 and s.events == 3000 * 20
            assert pub.stats.replays_served == 1


def test_a_resend_short_of_its_end_is_a_gap_said_exactly(addr):
    """Item 10: a ReplayEnd naming seq 10 after only batches 3 and 4 came is 6 batches not recovered, said and
    resynced; it used to count as a complete resume."""
    notices = []
    ctx = zmq.Context()
    feed, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    for sock in (feed, router):
        sock.setsockopt(zmq.LINGER, 0)
    feed.bind(addr)
    router.bind(snapshot_address(addr))
    try:
        opts = SubscriberOptions(keep_book=False, resume={"X": (77, 2)}, snapshot_timeout=0.5)
        with Subscriber(addr, ["X"], opts, FeedHandlers(on_notice=notices.append)) as sub:
            heartbeat = encode(Heartbeat(topic="X", seq=10, session=77, sent_ns=0, feed_ts=0))
            deadline = time.monotonic() + 5
            while not router.poll(10):                   # a heartbeat makes the resuming subscriber ask
                feed.send_multipart([b"X", heartbeat])
                sub.poll(0.01)
                assert time.monotonic() < deadline
            identity, payload = router.recv_multipart()
            request = Decoder().decode(payload)
            assert isinstance(request, ReplayRequest) and request.from_seq == 3
            for seq in (3, 4):
                batch = EventBatch(topic="X", seq=seq, session=77, sent_ns=0, n=20, events=pack(depth(seq, 20)))
                router.send_multipart([identity, *batch_frames(batch)])
            router.send_multipart([identity, encode(ReplayEnd(topic="X", req_id=request.req_id, session=77,
                                                              seq=10, ok=True))])
            pump(None, sub, lambda: sub.stats.gaps == 1)
            assert sub.stats.resent_batches == 2 and sub.stats.resumes == 0 and sub.stats.lost_batches == 6
            assert any("resend stopped at seq 4, short of seq 10" in n for n in notices)
            assert any("gap after seq 4, 6 batches lost" in n for n in notices)
            assert not sub.synced("X")                       # resyncing from a snapshot
    finally:
        feed.close(0)
        router.close(0)
        ctx.term()


def test_lost_batches_counts_every_batch_never_handed_on(addr):
    """Item 17: after a slow-consumer gap the snapshot jumps over more batches than the gap showed; every
    batch is either handed on or counted lost (it used to report about half)."""
    with Publisher(addr, heartbeat_s=0.05, sndhwm=4) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(rcvhwm=4, keep_book=False)) as sub:
        pump(pub, sub, lambda: pub.stats.subscriptions == 1)
        for k in range(1, 301):                     # 300 x 128 kB while the subscriber sleeps
            pub.publish("X", depth(k, 2000))
        pump(pub, sub, lambda: sub.synced("X") and sub.streams["X"].seq == 300, timeout=10)
        s = sub.stats
        assert s.gaps >= 1 and s.batches < 300
        assert s.batches + s.lost_batches == 300, s


def test_wait_subscribers_counts_only_subscriptions_to_our_topics(addr):
    """Item 17: a subscription to an unrelated topic used to satisfy --wait-subscribers."""
    with Publisher(addr, heartbeat_s=0.05) as pub:
        pub.add_topic("GOOG")
        with Subscriber(addr, ["MSFT"], SubscriberOptions(keep_book=False)):
            assert not wait_for_subscribers(pub, 1, timeout_s=1.0)
            assert pub.stats.subscriptions == 0
            with Subscriber(addr, ["GOO"], SubscriberOptions(keep_book=False)):   # a prefix of ours: it gets GOOG
                assert wait_for_subscribers(pub, 1, timeout_s=5.0)
            deadline = time.monotonic() + 5
            while pub.stats.subscriptions != 0:      # its unsubscription is counted too
                pub.service(0.01)
                assert time.monotonic() < deadline


def test_a_heartbeat_faster_than_10_ms_is_refused():
    """Item 17: --heartbeat-s 1e-9 flooded 153k heartbeats a second."""
    with pytest.raises(ValueError, match="at least 0.01 s"):
        Publisher("tcp://127.0.0.1:0", heartbeat_s=1e-9)
    run = subprocess.run([sys.executable, "-m", "cmm", "feed", "replay", "x.npz", "--heartbeat-s", "1e-9"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "--heartbeat-s" in lines[0] and "0.01" in lines[0], run.stderr


def test_keys_are_not_writable_by_others_under_umask_000(tmp_path):
    """Item 17: under umask 000 the key directory and the public key were world-writable."""
    run = subprocess.run([sys.executable, "-m", "cmm", "keys", "generate", str(tmp_path / "keys")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0))
    assert run.returncode == 0, run.stderr
    modes = {p: stat.S_IMODE(os.stat(tmp_path / p).st_mode) for p in ("keys", "keys/cmm.key", "keys/cmm.key_secret")}
    assert modes == {"keys": 0o755, "keys/cmm.key": 0o644, "keys/cmm.key_secret": 0o600}, {k: oct(v) for k, v in modes.items()}
