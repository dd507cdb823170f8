"""The feed wire protocol: round trips, and every kind of bad message dropped and counted, never raised."""
from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from feeds.events import BUY, DEPTH, EXCH, LOCAL, TRADE, empty
from feeds.instrument import Instrument
from feeds.zmqfeed.messages import (WIRE_VERSION, Decoder, EventBatch, Heartbeat, Snapshot, SnapshotRequest, encode, pack,
                                    unpack)


def records(n: int, t0: int = 1_000) -> np.ndarray:
    ev = empty(n)
    ev["ev"] = DEPTH | EXCH | LOCAL | BUY
    ev["px"] = 100.0 - np.arange(n) * 0.01
    ev["qty"] = np.arange(1, n + 1)
    ev["local_ts"] = ev["exch_ts"] = t0 + np.arange(n)
    return ev


def batch(n: int = 3, seq: int = 1, **kw) -> EventBatch:
    fields = dict(topic="GOOG", seq=seq, session=7, sent_ns=123, n=n, events=pack(records(n)))
    fields.update(kw)
    return EventBatch(**fields)


def test_every_message_type_round_trips():
    ev = records(4)
    msgs = [
        batch(4),
        Heartbeat(topic="GOOG", seq=9, session=7, sent_ns=1, feed_ts=2),
        SnapshotRequest(topic="GOOG", req_id=3),
        Snapshot(topic="GOOG", req_id=3, seq=9, session=7, sent_ns=1, feed_ts=2, n=4, events=pack(ev),
                 instrument=Instrument("GOOG", 0.01, 1.0)),
    ]
    d = Decoder()
    for msg in msgs:
        assert d.decode(encode(msg), topic=b"GOOG") == msg
    assert d.total_dropped == 0
    assert np.array_equal(unpack(d.decode(encode(msgs[0])).events), ev)


def _with(msg, **fields) -> bytes:
    """``msg`` encoded with some fields replaced or added, bypassing the Struct's types."""
    raw = msgspec.msgpack.decode(encode(msg))
    raw.update(fields)
    return msgspec.msgpack.encode(raw)


def _version(msg, v: int) -> bytes:
    return _with(msg, v=v)


def test_bad_messages_are_dropped_and_counted_by_reason():
    d = Decoder(max_bytes=10_000)
    good = batch()
    cases = {
        "oversized": [b"\x00" * 10_001, encode(batch(200))],
        "wrong_version": [_version(good, WIRE_VERSION + 1), _version(good, 0)],
        "malformed": [b"", b"\xc1", b"not msgpack", msgspec.msgpack.encode([1, 2]),
                      msgspec.msgpack.encode({"type": "batch", "topic": "GOOG"}),          # no version
                      msgspec.msgpack.encode({"v": WIRE_VERSION, "type": "nope"}),
                      encode(batch(seq=-1)), encode(batch(topic="")), encode(batch(session=0)),
                      _with(good, n="3"), _with(good, surprise=1)],
        "bad_records": [encode(batch(events=pack(records(3))[:-1])),                       # not a multiple of 64
                        _with(good, n=2),                                                  # count disagrees
                        encode(batch(seq=0)),
                        encode(batch(n=0, events=b"")),
                        encode(batch(events=pack(records(3)[::-1])))],                     # time goes backwards
    }
    for reason, payloads in cases.items():
        for payload in payloads:
            assert d.decode(payload) is None, (reason, payload[:40])
        assert d.dropped[reason] == len(payloads), reason
    assert d.decode(encode(good), topic=b"AAPL") is None
    assert d.dropped["topic_mismatch"] == 1
    assert d.decode(encode(good), topic=b"GOOG") == good
    assert len(d.examples) == d.log_first


def test_snapshot_may_be_empty_but_its_records_are_checked():
    d = Decoder()
    empty_snap = Snapshot(topic="X", req_id=1, seq=0, session=1, sent_ns=0, feed_ts=0, n=0, events=b"")
    assert d.decode(encode(empty_snap)) == empty_snap
    bad = Snapshot(topic="X", req_id=1, seq=0, session=1, sent_ns=0, feed_ts=0, n=1, events=b"\x00" * 63)
    assert d.decode(encode(bad)) is None and d.dropped["bad_records"] == 1


def _check(d: Decoder, payload: bytes) -> None:
    before = d.total_dropped
    msg = d.decode(payload)
    assert (msg is None) == (d.total_dropped == before + 1)
    if isinstance(msg, (EventBatch, Snapshot)):
        assert len(unpack(msg.events)) == msg.n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_raise(payload):
    _check(Decoder(), payload)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_messages_never_raise(data):
    ev = records(3)
    ev["ev"][1] = TRADE | LOCAL
    msg = data.draw(st.sampled_from([
        batch(),
        Heartbeat(topic="GOOG", seq=1, session=7, sent_ns=1, feed_ts=2),
        Snapshot(topic="GOOG", req_id=1, seq=1, session=7, sent_ns=1, feed_ts=2, n=3, events=pack(ev)),
    ]))
    raw = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _check(Decoder(), bytes(raw))
