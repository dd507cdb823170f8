"""strategies/journal.py: framed records that survive a torn tail and refuse what they cannot trust."""
from __future__ import annotations

import os
import struct
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
    j = jr.Journal(str(path), truncate_at=good)
    j.append(step(3))
    j.close()
    assert jr.read(str(path))[1] == [step(1), step(2), step(3)]


def test_a_flipped_byte_ends_the_trusted_part(tmp_path):
    path = tmp_path / "j"
    write(path, 3)
    data = bytearray(path.read_bytes())
    # the second step's payload starts after the header's and the first step's frames
    offset = 0
    for _ in range(2):
        length, _ = struct.unpack_from("<II", data, offset)
        offset += 8 + length
    data[offset + 8 + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert jr.read(str(path))[1] == [step(1)]


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
