"""What the paper trader's loop waits for after each poll: the journal's sync, against an fsync in line.

Each round appends one feed step the size of a batch of ``--events`` event rows to a journal in
``--dir`` (by default build/bench, on the disk the results go to) and times, call by call
(perf_counter_ns), :meth:`runtime.paper.journal.Journal.sync` (the records handed to the kernel, the
fsync left to the journal's own thread) and, as the peer, the same flush followed by ``os.fsync`` in
line, which is what the loop waited for before. ``--gap-ms`` of sleep between rounds stands for the
trading between two polls.

    python bench/journal_sync.py [--rounds 300] [--events 16] [--gap-ms 2] [--dir build/bench]

The last line is ``inline_fsync_over_sync=<peer p50 / sync p50>``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from feeds.instrument import Instrument  # noqa: E402
from runtime.paper import journal as jr  # noqa: E402

HEADER = jr.JournalHeader(version=jr.JOURNAL_VERSION, config_sha256="0" * 64, topic="BENCH",
                          instrument=Instrument(symbol="BENCH", tick_size=0.01, lot_size=1.0), started_ns=0)


def rounds(journal: jr.Journal, sync, n: int, events: int, gap_s: float) -> np.ndarray:
    """us each ``sync()`` took, after appending one step of ``events`` rows."""
    out = np.empty(n)
    for i in range(n):
        journal.append(jr.Step(kind="batch", seq=i + 1, session=1, events=b"\x00" * (64 * events)))
        t0 = time.perf_counter_ns()
        sync()
        out[i] = (time.perf_counter_ns() - t0) / 1e3
        time.sleep(gap_s)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--events", type=int, default=16, help="event rows in each journaled step")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="sleep between rounds")
    parser.add_argument("--dir", default=str(REPO / "build" / "bench"))
    args = parser.parse_args()
    if args.rounds < 10 or args.events < 0 or args.gap_ms < 0:
        sys.exit("bench: --rounds must be at least 10, --events and --gap-ms not negative")
    try:
        os.makedirs(args.dir, exist_ok=True)
    except OSError as e:
        sys.exit(f"bench: --dir {args.dir}: {e.strerror}")
    p50 = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for name in ("inline fsync (before)", "Journal.sync"):
            journal = jr.Journal(os.path.join(tmp, name.split()[0]), HEADER)
            sync = journal._durable if name.startswith("inline") else journal.sync
            us = rounds(journal, sync, args.rounds, args.events, args.gap_ms / 1e3)
            journal.close()
            p50[name] = float(np.percentile(us, 50))
            print(f"{name:<22} p50 {p50[name]:9.1f} us  p99 {np.percentile(us, 99):9.1f} us  "
                  f"max {us.max():9.1f} us", flush=True)
    print(f"inline_fsync_over_sync={p50['inline fsync (before)'] / p50['Journal.sync']:.1f}")


if __name__ == "__main__":
    main()
