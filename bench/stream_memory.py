"""Peak memory of a multi-day backtest, streamed and whole-array, at 1, 5 and 20 days.

The days are one seeded stream of bench/gen_l2.py (``--events-per-day`` rows a day, its clock spanning
about 0.6 ms a row, around a price of 10,000.00 in ticks of 0.01), cut into day files with ``--night-s`` of silence between them
(:func:`bench.gen_l2.split_days`): the book, our orders and queues carry over each night, as over a real
one, and every night is reported as a gap. FixedSpread (Python, waking every second) runs over the first
1, 5 and 20 files, each run in a fresh child process whose peak resident set (``ru_maxrss``) is read at
its end: streamed (``data.chunk_events``) and, as the peer, the whole-array run. It prints the table, the
20-day / 1-day ratio of each, whether the 20-day streamed results (metrics.json, fills.csv,
orders.csv, ticks.npz) equal the whole-array run's byte for byte, and last ``streamed_over_whole``,
the two peaks' ratio at the most days.

    PYTHONPATH=. python bench/stream_memory.py [--events-per-day 250000] [--days 1 5 20]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIG = """[data]
files = {files!r}
{chunk}
[strategy]
name = "fixed_spread"
compute_ns = 0
[strategy.wake]
every_ns = 1_000_000_000
[strategy.params]
half_spread_ticks = 1
qty = 1
max_position = 5
[metrics]
episode_s = 60
"""

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from runtime.backtest import run_and_write
t = time.perf_counter()
bt = run_and_write({config!r}, {out!r})
print(json.dumps(dict(rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, s=time.perf_counter() - t,
                      fills=bt.summary.n_fills, events=bt.events, gaps=len(bt.summary.gaps or []))))
"""


def make_days(root: str, days: int, per_day: int, night_s: float) -> list[str]:
    """The day files (made once, in a child process so the generator's memory is not in any run's)."""
    files = [os.path.join(root, f"day{d:02d}.npz") for d in range(days)]
    if all(os.path.exists(f) for f in files):
        return files
    code = f"""
import sys; sys.path.insert(0, {REPO!r})
from bench.gen_l2 import generate, instrument, split_days
from common.atomic import atomic_write
from feeds.store import write
for f, day in zip({files!r}, split_days(generate({days * per_day}, seed=7, start_tick=1_000_000), {days}, {int(night_s * 1e9)})):
    with atomic_write(f) as out:
        write(out, day, instrument(), compress=False)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    return files


def run_child(config: str, out: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD.format(repo=REPO, config=config, out=out)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def digest(out: str) -> dict[str, str]:
    return {n: hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest()
            for n in ("metrics.json", "fills.csv", "orders.csv", "ticks.npz")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-per-day", type=int, default=250_000)
    ap.add_argument("--days", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--night-s", type=float, default=3600.0)
    ap.add_argument("--chunk-events", type=int, default=1 << 16)
    ap.add_argument("--root", default=os.path.join(REPO, "build", "bench", "stream_memory"))
    args = ap.parse_args()
    data = os.path.join(args.root, f"days_{args.events_per_day}")
    os.makedirs(data, exist_ok=True)
    files = make_days(data, max(args.days), args.events_per_day, args.night_s)
    rows = []
    print(f"{'days':>4} {'events':>12} {'streamed MB':>12} {'s':>6} {'whole MB':>9} {'s':>6} {'gaps':>5} "
          f"{'fills':>6} {'same bytes':>10}", flush=True)
    for n in args.days:
        outs = {}
        for mode, chunk in (("streamed", f"chunk_events = {args.chunk_events}"), ("whole", "")):
            config = os.path.join(args.root, f"{mode}_{n}.toml")
            with open(config, "w") as f:
                f.write(CONFIG.format(files=files[:n], chunk=chunk))
            out = os.path.join(args.root, f"out_{mode}_{n}")
            outs[mode] = (run_child(config, out), out)
        (s, s_out), (w, w_out) = outs["streamed"], outs["whole"]
        same = digest(s_out) == digest(w_out)
        rows.append((n, s["rss_kb"] / 1024, w["rss_kb"] / 1024))
        print(f"{n:>4} {s['events']:>12,} {s['rss_kb'] / 1024:>12.0f} {s['s']:>6.1f} {w['rss_kb'] / 1024:>9.0f} "
              f"{w['s']:>6.1f} {s['gaps']:>5} {s['fills']:>6,} {str(same):>10}", flush=True)
    first, last = rows[0], rows[-1]
    print(f"{last[0]}-day / {first[0]}-day peak RSS: streamed {last[1] / first[1]:.2f}x, "
          f"whole-array {last[2] / first[2]:.2f}x")
    print(f"streamed_over_whole={last[1] / last[2]:.2f} (peak RSS at {last[0]} days)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
