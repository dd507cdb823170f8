"""strategies/journal.py: framed records that survive a torn tail and refuse what they cannot trust."""
from __future__ import annotations

import os
import struct
import time
import zlib

import pytest

from feeds.instrument import Instrument
from runtime.paper import journal as jr

HEADER = jr.JournalHeader(version=jr.JOURNAL_VERSION, config_sha256="ab" * 32, topic="GOOG",
                          instrument=Instrument(symbol="GOOG", tick_size=0.01, lot_size=1.0), started_ns=1)


def step(seq: int) -> jr.Step:
    return jr.Step(kind="batch", seq=seq, session=7, events=b"\x00" * 64, charges_ns=[seq],
                   orders=[jr.JournalOrder(order_id=seq, kind="new", side=1, price=100.01, qty=5.0, arrives_ts=9)],
                   fills=[jr.JournalFill(order_id=seq, side=-1, exch_ts=3, local_ts=4, maker=True, price=100.0,
                                         qty=5.0, fee=-0.1)], position=-5.0 * seq, cash=500.0, fees=-0.1)


def write(path, n: int) -> None:
    j = jr.Journal(str(path), HEADER)
    for k in range(1, n + 1):
        j.append(step(k))
    j.close()


def test_records_read_back_exactly(tmp_path):
    write(tmp_path / "j", 3)
    header, steps, good = jr.read(str(tmp_path / "j"))
    assert header == HEADER and steps == [step(1), step(2), step(3)]
    assert good == os.path.getsize(tmp_path / "j")


@pytest.mark.parametrize("cut", [1, 5, 9, 40])
def test_a_torn_last_record_is_dropped_and_truncated_on_reopen(tmp_path, cut):
    path = tmp_path / "j"
    write(path, 3)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - cut)                  # kill -9 mid-write
    header, steps, good = jr.read(str(path))
    assert steps == [step(1), step(2)]
    j = jr.Journal(str(path))
    j.truncate(good)
    j.append(step(3))
    j.close()
    assert jr.read(str(path))[1] == [step(1), step(2), step(3)]


def offsets(data: bytes) -> list[int]:
    """Where each record starts."""
    found, pos = [], 0
    while pos < len(data):
        found.append(pos)
        pos += 8 + struct.unpack_from("<II", data, pos)[0]
    return found


def refused_at(path, offset: int) -> None:
    with pytest.raises(jr.JournalError, match=f"damaged at byte offset {offset:,}: ") as e:
        jr.read(str(path))
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_flipped_byte_mid_file_is_refused_at_its_offset(tmp_path):
    """Issue 12 item 11: it used to end the trusted part silently, dropping every later step."""
    path = tmp_path / "j"
    write(path, 5)
    data = bytearray(path.read_bytes())
    second = offsets(bytes(data))[2]               # header, step 1, step 2: a byte of step 2's payload
    data[second + 8 + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    refused_at(path, second)


def test_garbage_appended_is_refused_at_its_offset(tmp_path):
    path = tmp_path / "j"
    write(path, 3)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(bytes(range(7, 107)))               # a length of 0x0a090807: past MAX_RECORD
    refused_at(path, size)
    with open(path, "r+b") as f:
        f.truncate(size)
        f.seek(size)
        f.write(struct.pack("<II", 50, 0) + b"not a record at all")   # a plausible length the file ends inside
    refused_at(path, size)


def test_a_zero_filled_tail_is_refused_at_its_offset(tmp_path):
    path = tmp_path / "j"
    write(path, 3)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(bytes(4096))                        # length 0, crc32(b"") == 0: a frame, but no record
    refused_at(path, size)


def test_a_torn_record_is_a_prefix_of_a_record(tmp_path):
    """Cut anywhere inside the last record, what remains is still read as a torn tail (not damage)."""
    path = tmp_path / "j"
    write(path, 2)
    whole = path.read_bytes()
    last = offsets(whole)[-1]
    for cut in range(last + 1, len(whole)):
        path.write_bytes(whole[:cut])
        header, steps, good = jr.read(str(path))
        assert steps == [step(1)] and good == last


def test_a_journal_is_locked_while_open(tmp_path):
    path = tmp_path / "j"
    write(path, 1)
    first = jr.Journal(str(path))
    with pytest.raises(jr.JournalError, match="in use by another cmm paper"):
        jr.Journal(str(path))
    first.close()
    jr.Journal(str(path)).close()                   # released with the file


def test_a_new_journal_never_replaces_an_old_one(tmp_path):
    write(tmp_path / "j", 1)
    with pytest.raises(jr.JournalError, match="--resume"):
        jr.Journal(str(tmp_path / "j"), HEADER)


def test_what_cannot_be_resumed_is_one_clear_error(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(jr.JournalError, match="no journal header"):
        jr.read(str(tmp_path / "empty"))
    with pytest.raises(jr.JournalError, match="cannot read"):
        jr.read(str(tmp_path / "missing"))
    payload = jr._encoder.encode(step(1))
    (tmp_path / "headless").write_bytes(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(jr.JournalError, match="not a journal header"):
        jr.read(str(tmp_path / "headless"))
    old = jr.JournalHeader(version=0, config_sha256="", topic="X", instrument=HEADER.instrument, started_ns=0)
    payload = jr._encoder.encode(old)
    (tmp_path / "old").write_bytes(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(jr.JournalError, match="version 0"):
        jr.read(str(tmp_path / "old"))


def test_a_failed_background_fsync_is_raised_at_the_next_sync():
    """The fsync runs in a thread (the loop never waits on the disk), so its failure must surface later,
    at the next sync or at close, never be dropped: here a real one, fsync on a pipe (EINVAL)."""
    read_end, write_end = os.pipe()
    try:
        syncer = jr._Syncer(write_end, "j")
        syncer.request()
        deadline = time.monotonic() + 10
        while syncer.failed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(jr.JournalError, match="j: cannot make the journal durable: fsync failed"):
            syncer.request()
        syncer.stop()
    finally:
        os.close(read_end)
        os.close(write_end)
