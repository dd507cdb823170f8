"""Issue 12 items 10, 11, 12 with real processes: a kill -9 then --resume after 3,000+ missed batches, a damaged
journal refused by ``cmm paper --resume``, and two traders on one journal."""
from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import time

from bench.probes.feedpaper import (MISSED_AT_LEAST, free_feed, outage, record_offsets, resume_argv, stop,
                                    write_journal)
from runtime.paper import journal as jr
from tests.test_cli import REPO, assert_one_line_error
from tests.test_paper import backtest  # noqa: F401  (a fixture: the backtest of the same strategy and data)

CMM = [sys.executable, "-m", "cmm"]


def test_a_resume_after_3000_missed_batches_fills_as_an_uninterrupted_run(backtest, tmp_path):  # noqa: F811
    """Item 10: the resend used to stop at the ROUTER's 1,000-message queue; the resumed trader resynced from a
    snapshot and made 140 fills, not 303. An uninterrupted run's fills are the backtest's (test_paper)."""
    publisher, feed, out = outage(tmp_path)
    try:
        resumed = subprocess.run([*CMM, *resume_argv(tmp_path, feed, duration=120)], cwd=REPO,
                                 capture_output=True, text=True, timeout=240)
    finally:
        stop(publisher)
    assert resumed.returncode == 0, resumed.stderr
    feed_stats = json.loads((out / "metrics.json").read_text())["feed"]
    assert feed_stats["resent_batches"] >= MISSED_AT_LEAST, feed_stats
    assert (feed_stats["gaps"], feed_stats["lost_batches"], feed_stats["snapshots"]) == (0, 0, 0), feed_stats
    assert (out / "fills.csv").read_bytes() == (backtest / "fills.csv").read_bytes()
    fills = [f for s in jr.read(f"{out}.journal")[1] for f in s.fills]
    assert len({(f.order_id, f.exch_ts, f.local_ts, f.price, f.qty) for f in fills}) == len(fills) == 303


def test_a_journal_damaged_mid_file_is_refused_with_its_offset(tmp_path):
    """Item 11: a flipped byte used to end the journal there: the resume dropped every later step, exit 0."""
    path = tmp_path / "run.journal"
    write_journal(path)
    data = bytearray(path.read_bytes())
    second = record_offsets(bytes(data))[2]
    data[second + 8 + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    run = subprocess.run([*CMM, *resume_argv(tmp_path, free_feed())], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert_one_line_error(run, str(path), f"byte offset {second:,}")
    assert path.read_bytes() == bytes(data) and not (tmp_path / "run").exists()


def locked(path) -> bool:
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def test_a_second_trader_on_one_journal_is_refused(tmp_path):
    """Item 12: two `cmm paper --resume` on one journal both ran and both exited 0."""
    path = tmp_path / "run.journal"
    write_journal(path)
    original = path.read_bytes()
    feed = free_feed()                                # nobody publishes: the first trader waits on it
    first = subprocess.Popen([*CMM, *resume_argv(tmp_path, feed, duration=60)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not locked(path):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run([*CMM, *resume_argv(tmp_path, feed, duration=2)], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert_one_line_error(second, str(path), "in use by another cmm paper")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 0
    # The first trader's records only: the four written, then its own steps (the dead feed going stale).
    assert path.read_bytes().startswith(original)
    assert {s.kind for s in jr.read(str(path))[1][4:]} <= {"stale"}
    assert not locked(path)                           # released when the trader ended
