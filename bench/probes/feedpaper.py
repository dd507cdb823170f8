"""Issue 12 items 10, 11, 12 and 17: the feed's resume after an outage, damaged and locked paper journals,
an absurd heartbeat.

The journal cases resume ``cmm paper`` on a journal written with this repo's
paper config and then damaged; the resume must refuse it with one line naming
the byte offset, before any socket opens, and leave the file as it was. The
outage case kills a paper trader with SIGKILL early in a replay of the GOOG
sample (about 3,500 batches of at most 16 events), lets the publisher finish,
and resumes: every missed batch must come back resent, and the fills be those
of an uninterrupted run.
"""
from __future__ import annotations

import fcntl
import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.probes import REPO, SAMPLES, Probe
from tests.test_paper import stop
from tests.test_zmq_feed import free_port_pair

CONFIG = REPO / "configs" / "paper_fixed_spread.toml"
UNINTERRUPTED_FILLS = 303        # an uninterrupted `cmm paper` of this config on the GOOG sample (tests/test_paper.py)
MISSED_AT_LEAST = 3_000          # batches the outage case's resume must get resent
_held: dict[Path, object] = {}   # what a case keeps open or running until its check: a lock, a publisher


def free_feed() -> str:
    """A loopback feed address whose port and port + 1 (the snapshot service) are free now."""
    return f"tcp://127.0.0.1:{free_port_pair()}"


def write_journal(path: Path, steps: int = 4) -> None:
    """A journal as this repo's paper config writes it: a header, then ``steps`` clock steps."""
    from feeds.instrument import Instrument
    from runtime.paper import journal as jr
    header = jr.JournalHeader(version=jr.JOURNAL_VERSION, config_sha256=hashlib.sha256(CONFIG.read_bytes()).hexdigest(),
                              topic="GOOG", instrument=Instrument(symbol="GOOG", tick_size=0.01, lot_size=1.0),
                              started_ns=1)
    journal = jr.Journal(str(path), header)
    for k in range(1, steps + 1):
        journal.append(jr.Step(kind="clock", seq=k, session=1, clock_ns=k * 1_000_000))
    journal.close()


def record_offsets(data: bytes) -> list[int]:
    """Where each journal record starts."""
    found, pos = [], 0
    while pos < len(data):
        found.append(pos)
        pos += 8 + int.from_bytes(data[pos:pos + 4], "little")
    return found


def resume_argv(tmp: Path, feed: str, duration: float = 5.0) -> list[str]:
    return ["paper", "--feed", feed, "--config", str(CONFIG), "--out", str(tmp / "run"), "--resume", "--quiet",
            "--duration", str(duration)]


def _damaged(damage):
    """A case: a journal damaged by ``damage(data) -> data``; the resume must name the offset and keep the file."""
    def setup(tmp: Path) -> list[str]:
        write_journal(tmp / "run.journal")
        path = tmp / "run.journal"
        path.write_bytes(damage(path.read_bytes()))
        (tmp / "damaged").write_bytes(path.read_bytes())
        return resume_argv(tmp, free_feed())
    return setup


def _kept_and_named(tmp: Path, result) -> str | None:
    if (tmp / "run.journal").read_bytes() != (tmp / "damaged").read_bytes():
        return "the journal was changed"
    if (tmp / "run").exists():
        return "a results directory was written"
    if "byte offset" not in result.stderr:
        return "no byte offset named"
    return None


def _flip_mid(data: bytes) -> bytes:
    at = record_offsets(data)[2] + 8 + 3             # a payload byte of the second step
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _lock(tmp: Path) -> list[str]:
    """Another trader holds the journal: this runner, as a second process would, holds its flock."""
    write_journal(tmp / "run.journal")
    f = open(tmp / "run.journal", "rb")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[tmp] = f
    (tmp / "damaged").write_bytes((tmp / "run.journal").read_bytes())
    return resume_argv(tmp, free_feed())


def _unlocked_and_kept(tmp: Path, result) -> str | None:
    _held.pop(tmp).close()
    if "in use" not in result.stderr:
        return "not refused for the lock"
    if (tmp / "run.journal").read_bytes() != (tmp / "damaged").read_bytes():
        return "the journal was changed"
    return None


def journal_batches(path: Path) -> int:
    from runtime.paper import journal as jr
    try:
        return sum(s.kind == "batch" for s in jr.read(str(path))[1])
    except jr.JournalError:
        return 0                                     # not written yet


def outage(tmp: Path, batches_before_kill: int = 20) -> tuple[subprocess.Popen, str, Path]:
    """Replay the GOOG sample, kill -9 the paper trader after a few batches, let the replay finish.

    Returns the publisher (still serving resends; stop it), its address and the killed run's results path.
    """
    cmm = [sys.executable, "-m", "cmm"]
    npz = tmp / "goog.npz"
    subprocess.run([*cmm, "data", "convert", str(SAMPLES / "GOOG_2012-06-21_10_head.zip"), "--out", str(npz)],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    feed, out, log = free_feed(), tmp / "run", tmp / "publisher.log"
    with open(log, "w") as f:
        publisher = subprocess.Popen([*cmm, "feed", "replay", str(npz), "--bind", feed, "--speed", "600",
                                      "--batch-events", "16", "--wait-subscribers", "1"],
                                     cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        trader = subprocess.Popen([*cmm, "paper", "--feed", feed, "--config", str(CONFIG), "--out", str(out),
                                   "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while journal_batches(Path(f"{out}.journal")) < batches_before_kill:
            if trader.poll() is not None or time.monotonic() > deadline:
                trader.kill()
                raise RuntimeError("the paper trader ended or stalled before it could be killed")
            time.sleep(0.01)
        trader.send_signal(signal.SIGKILL)
        trader.wait()
        while "replayed:" not in log.read_text():    # the outage: everything after the kill is missed
            if publisher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the publisher did not finish: {log.read_text()}")
            time.sleep(0.05)
    except BaseException:
        stop(publisher)
        raise
    return publisher, feed, out


def _outage_setup(tmp: Path) -> list[str]:
    publisher, feed, out = outage(tmp)
    _held[tmp] = publisher
    return resume_argv(tmp, feed, duration=120)


def _every_batch_back(tmp: Path, result) -> str | None:
    import json
    stop(_held.pop(tmp))
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    feed = metrics["feed"]
    if feed["resent_batches"] < MISSED_AT_LEAST or feed["gaps"] or feed["snapshots"]:
        return f"resent {feed['resent_batches']}, {feed['gaps']} gaps, {feed['snapshots']} snapshots"
    if metrics["n_fills"] != UNINTERRUPTED_FILLS:
        return f"{metrics['n_fills']} fills, uninterrupted {UNINTERRUPTED_FILLS}"
    return None


CASES = [
    Probe(10, "paper resume after 3,000+ missed batches", _outage_setup, refused=False, check=_every_batch_back),
    Probe(11, "journal with a byte flipped mid-file", _damaged(_flip_mid), check=_kept_and_named),
    Probe(11, "journal with garbage appended", _damaged(lambda d: d + random.Random(12).randbytes(256)), check=_kept_and_named),
    Probe(11, "journal with a zero-filled tail", _damaged(lambda d: d + bytes(4096)), check=_kept_and_named),
    Probe(11, "journal with a record's length field changed",
          _damaged(lambda d: d[:record_offsets(d)[2]] + (1 << 30).to_bytes(4, "little") + d[record_offsets(d)[2] + 4:]),
          check=_kept_and_named),
    Probe(12, "journal locked by another trader", _lock, check=_unlocked_and_kept),
    Probe(17, "feed replay --heartbeat-s 1e-9", lambda tmp: ["feed", "replay", "x.npz", "--heartbeat-s", "1e-9"],
          check=lambda tmp, result: None if "--heartbeat-s" in result.stderr else "not refused for the heartbeat"),
]
