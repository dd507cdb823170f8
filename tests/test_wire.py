"""The feed wire protocol: round trips, and every kind of bad message dropped and counted, never raised."""
from __future__ import annotations

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from feeds.events import BUY, DEPTH, EXCH, LOCAL, TRADE, empty
from feeds.instrument import Instrument
from feeds.zmqfeed.messages import (WIRE_VERSION, Decoder, EventBatch, Heartbeat, Snapshot, SnapshotRequest, batch_frames,
                                    encode, pack, unpack)


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
    d = Decoder()
    header, raw = batch_frames(batch(4))
    assert raw == pack(ev) and b"events\xc4\x00" in header          # the header's records are empty
    got = d.decode_batch(header, memoryview(raw), topic=b"GOOG")        # a received frame, viewed in place
    assert got.seq == 1 and got.n == 4 and np.array_equal(unpack(got.events), ev)
    assert bytes(got.events) == raw and msgspec.structs.replace(got, events=raw) == batch(4)
    msgs = [
        Heartbeat(topic="GOOG", seq=9, session=7, sent_ns=1, feed_ts=2),
        SnapshotRequest(topic="GOOG", req_id=3),
        Snapshot(topic="GOOG", req_id=3, seq=9, session=7, sent_ns=1, feed_ts=2, n=4, events=pack(ev),
                 instrument=Instrument("GOOG", 0.01, 1.0)),
    ]
    for msg in msgs:
        assert d.decode(encode(msg), topic=b"GOOG") == msg
    assert d.total_dropped == 0


def _with(msg, **fields) -> bytes:
    """``msg`` encoded with some fields replaced or added, bypassing the Struct's types."""
    raw = msgspec.msgpack.decode(encode(msg))
    raw.update(fields)
    return msgspec.msgpack.encode(raw)


def _version(msg, v: int) -> bytes:
    return _with(msg, v=v)


def _header(msg, **fields) -> bytes:
    """A batch header with some fields replaced or added, bypassing the Struct's types."""
    raw = msgspec.msgpack.decode(batch_frames(msg)[0])
    raw.update(fields)
    return msgspec.msgpack.encode(raw)


def test_bad_messages_are_dropped_and_counted_by_reason():
    d = Decoder(max_bytes=10_000)
    good = batch()
    ok = pack(records(3))
    cases = {       # (header, records frame): records None is a batch sent as one frame
        "oversized": [(b"\x00" * 10_001, None), batch_frames(batch(200))],
        "wrong_version": [(_header(good, v=WIRE_VERSION + 1), ok), (_header(good, v=0), ok),
                          (_with(good, v=1), None)],                                      # version 1: records inline
        "malformed": [(b"", None), (b"\xc1", None), (b"not msgpack", None), (msgspec.msgpack.encode([1, 2]), ok),
                      (msgspec.msgpack.encode({"type": "batch", "topic": "GOOG"}), ok),   # no version
                      (msgspec.msgpack.encode({"v": WIRE_VERSION, "type": "nope"}), ok),
                      batch_frames(batch(seq=-1)), batch_frames(batch(topic="")), batch_frames(batch(session=0)),
                      (_header(good, n="3"), ok), (_header(good, surprise=1), ok),
                      (encode(good), None),                                               # records inline
                      (encode(good), b""),                                                # ... and a frame
                      (batch_frames(good)[0], None),                                      # no records frame
                      (encode(Heartbeat(topic="GOOG", seq=1, session=7, sent_ns=1, feed_ts=2)), ok)],
        "bad_records": [(batch_frames(good)[0], ok[:-1]),                                # not a multiple of 64
                        (_header(good, n=2), ok),                                         # count disagrees
                        batch_frames(batch(seq=0)),
                        batch_frames(batch(n=0, events=b"")),
                        batch_frames(batch(events=pack(records(3)[::-1])))],              # time goes backwards
    }
    for reason, frames in cases.items():
        for header, raw in frames:
            got = d.decode(header) if raw is None else d.decode_batch(header, raw)
            assert got is None, (reason, header[:40])
        assert d.dropped[reason] == len(frames), reason
    assert d.decode_batch(*batch_frames(good), topic=b"AAPL") is None
    assert d.dropped["topic_mismatch"] == 1
    assert d.decode_batch(*batch_frames(good), topic=b"GOOG") == good
    assert len(d.examples) == d.log_first


def test_a_bad_value_is_named_by_the_full_check():
    """The jitted pass only says yes or no; a refused batch is logged with the event and the rule it broke."""
    d = Decoder()
    ev = records(3)
    ev["qty"][2] = -1.0
    assert d.decode_batch(*batch_frames(batch(events=pack(ev)))) is None
    assert d.dropped["bad_records"] == 1
    assert d.examples == ["bad_records: EventBatch: GOOG: qty: event 2 (depth): expected a size >= 0, got -1.0"]


def test_snapshot_may_be_empty_but_its_records_are_checked():
    d = Decoder()
    empty_snap = Snapshot(topic="X", req_id=1, seq=0, session=1, sent_ns=0, feed_ts=0, n=0, events=b"")
    assert d.decode(encode(empty_snap)) == empty_snap
    bad = Snapshot(topic="X", req_id=1, seq=0, session=1, sent_ns=0, feed_ts=0, n=1, events=b"\x00" * 63)
    assert d.decode(encode(bad)) is None and d.dropped["bad_records"] == 1


def _check(d: Decoder, payload: bytes, records: bytes | None = None) -> None:
    """Decoded or dropped and counted, never raised; a batch only with its records frame, of the size it says."""
    before = d.total_dropped
    msg = d.decode(payload) if records is None else d.decode_batch(payload, records)
    assert (msg is None) == (d.total_dropped == before + 1)
    assert records is not None or not isinstance(msg, EventBatch)
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
    frames = [bytearray(f) for f in (batch_frames(msg) if isinstance(msg, EventBatch) else (encode(msg),))]
    raw = frames[data.draw(st.integers(0, len(frames) - 1))]      # a batch: its header or its records
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _check(Decoder(), *map(bytes, frames))
