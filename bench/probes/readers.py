"""Issue 12, items 1, 3, 4 and 8: what the Binance and CSV readers make of times and steps.

Every case is built from the repo's samples, so it runs wherever the repo does.
"""
from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path
from typing import Callable, Optional

from bench.probes import SAMPLES, Probe

USDM = SAMPLES / "ethusdt_usdm_20240808_head.gz"
SPOT = SAMPLES / "ethusdt_spot_20240808_head.gz"
CSV = SAMPLES / "sample_events.csv"
T = 1_723_075_200_000_000_000          # 2024-08-08 00:00 UTC, ns


def lines_of(path: Path) -> list[bytes]:
    return [line for line in gzip.decompress(path.read_bytes()).split(b"\n") if line.strip()]


def write_capture(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    return str(path)


def in_microseconds(line: bytes) -> bytes:
    stamp, rest = line.split(b" ", 1)
    return stamp[:-3] + b" " + rest


def shifted(line: bytes, ns: int) -> bytes:
    stamp, rest = line.split(b" ", 1)
    return str(int(stamp) + ns).encode() + b" " + rest


def says(*needles: str) -> Callable[[Path, subprocess.CompletedProcess], Optional[str]]:
    """The one line (or stdout, on success) names each needle, and no output file was left."""
    def check(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
        text = result.stderr if result.returncode else result.stdout
        missing = [n for n in needles if n not in text]
        if missing:
            return f"does not say {missing[0]!r}"
        if result.returncode and (tmp / "out.npz").exists():
            return "left out.npz behind"
        return None
    return check


def meta_check(test: Callable[[object], Optional[str]]):
    """Check the converted file's events, instrument and meta."""
    def check(tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
        import feeds
        return test(feeds.load(tmp / "out.npz"))
    return check


# ---------------------------------------------------------------- item 1: µs receive times


def usdm_in_us(tmp: Path) -> list[str]:
    return ["data", "convert", write_capture(tmp / "us.gz", [in_microseconds(x) for x in lines_of(USDM)]),
            "--out", str(tmp / "out.npz")]


def us_read_as_us(ef) -> Optional[str]:
    shift = ef.meta.local_ts_offset_ns
    if not 1.2e9 < shift < 1.4e9:
        return f"clock shift {shift / 1e9:.3g} s, expected the capture's 1.27 s"
    if not any("are in µs" in n for n in ef.meta.notes):
        return "no note that the receive times are in µs"
    return None


def one_line_in_us(tmp: Path) -> list[str]:
    lines = lines_of(USDM)
    lines[9] = in_microseconds(lines[9])
    return ["data", "validate", write_capture(tmp / "mixed.gz", lines)]


def csv_in_us(tmp: Path) -> list[str]:
    text = CSV.read_text().replace("1723075200", "1723075", 1)   # first row's exch_ts: ns -> ~µs
    (tmp / "us.csv").write_text(text)
    return ["data", "convert", str(tmp / "us.csv"), "--out", str(tmp / "out.npz")]


# ---------------------------------------------------------------- item 3: inputs that do not join


def split_with_a_hole(tmp: Path) -> list[str]:
    """The sample cut in two with 200 lines (and their depth diffs) missing between the halves."""
    lines = lines_of(USDM)
    return [write_capture(tmp / "a.gz", lines[:1500]), write_capture(tmp / "b.gz", lines[1700:])]


def days_apart(tmp: Path) -> list[str]:
    """The sample cut in two, the second half received 21 days later (its ids no longer follow; its
    exchange times unchanged, so read alone its clock would be refused as 21 days off)."""
    lines = lines_of(USDM)
    late = [shifted(x, 21 * 86_400 * 10**9) for x in lines[1700:]]
    return [write_capture(tmp / "a.gz", lines[:1500]), write_capture(tmp / "b.gz", late)]


def fresh_books_noted(ef) -> Optional[str]:
    noted = sum("read as a capture of its own" in n for n in ef.meta.notes)
    return None if noted == 2 else f"{noted} inputs noted as captures of their own, expected 2"


# ---------------------------------------------------------------- item 4: one bad receive time


def line_924_early(tmp: Path) -> str:
    lines = lines_of(USDM)
    lines[923] = shifted(lines[923], -10**10)
    return write_capture(tmp / "l924.gz", lines)


def shift_not_moved(ef) -> Optional[str]:
    shift = ef.meta.local_ts_offset_ns
    return None if 1.2e9 < shift < 1.4e9 else f"clock shift {shift / 1e9:.3f} s, expected 1.27 s"


def csv_exch_outlier(tmp: Path) -> list[str]:
    rows = [f"{T + i * 10**6},{T + i * 10**6 + 2 * 10**6},trade,,1,1," for i in range(20)]
    rows[12] = f"{T + 10_012 * 10**6},{T + 14 * 10**6},trade,,1,1,"
    (tmp / "x.csv").write_text("# tick_size=0.5\nexch_ts,local_ts,event,side,price,qty,order_id\n"
                               + "\n".join(rows) + "\n")
    return ["data", "convert", str(tmp / "x.csv"), "--out", str(tmp / "out.npz")]


# ---------------------------------------------------------------- item 8: smaller issues


def depth_at_t(ef) -> Optional[str]:
    import numpy as np
    from feeds.events import DEPTH, KIND_MASK
    data = [json.loads(x.split(b" ", 1)[1]).get("data", {}) for x in lines_of(USDM)]
    t = {d["T"] * 10**6 for d in data if d.get("e") == "depthUpdate"}
    ev = ef.events
    stamped = set(ev["exch_ts"][(ev["ev"] & np.uint64(KIND_MASK)) == DEPTH].tolist())
    return None if stamped <= t else f"{len(stamped - t)} depth exch_ts are not a message's T"


def spot_with_odd_sizes(tmp: Path) -> list[str]:
    lines = lines_of(SPOT)
    at = max(i for i, x in enumerate(lines) if b"@depth" in x)
    lines[at] = lines[at].replace(b'"a":[', b'"a":[["5000.00000000","2292.22972000"],', 1)
    return ["data", "convert", write_capture(tmp / "spot.gz", lines), "--out", str(tmp / "out.npz")]


def lot_kept(ef) -> Optional[str]:
    lot = ef.instrument.lot_size
    return None if lot == 0.0001 else f"lot {lot:g}, expected 0.0001"


def info_of_csv_sample(tmp: Path) -> list[str]:
    import feeds
    conv = feeds.read([str(CSV)])
    with open(tmp / "s.npz", "wb") as f:
        feeds.write(f, conv.events, conv.instrument, conv.meta)
    return ["data", "info", str(tmp / "s.npz")]


CASES = [
    Probe(1, "readers-binance-receive-times-in-us-read", usdm_in_us, refused=False,
          check=meta_check(us_read_as_us)),
    Probe(1, "readers-binance-one-line-in-us-refused", one_line_in_us,
          check=says("mixed.gz:10: local_ts:", "is not in ns like the file's first line")),
    Probe(1, "readers-csv-timestamp-in-us-refused", csv_in_us, check=says("a time in µs?")),
    Probe(3, "readers-binance-ids-do-not-join", lambda tmp: ["data", "validate", *split_with_a_hole(tmp)],
          check=says("b.gz:1: stream: does not continue the previous input", "does not follow")),
    Probe(3, "readers-binance-21-days-apart", lambda tmp: ["data", "convert", *days_apart(tmp), "--out",
                                                           str(tmp / "out.npz")],
          check=says("b.gz:1: stream: does not continue", "1,814,40", "s after the previous input ends")),
    Probe(3, "readers-binance-fresh-book-per-input", refused=False,
          setup=lambda tmp: ["data", "convert", *split_with_a_hole(tmp), "--fresh-book-per-input", "--out",
                             str(tmp / "out.npz")],
          check=meta_check(fresh_books_noted)),
    Probe(4, "readers-binance-line-924-10s-early", lambda tmp: ["data", "validate", line_924_early(tmp)],
          check=says("l924.gz:924: local_ts: receive time 9.999 s earlier")),
    Probe(4, "readers-binance-line-924-skipped-no-shift", refused=False,
          setup=lambda tmp: ["data", "convert", line_924_early(tmp), "--on-error", "skip", "--out",
                             str(tmp / "out.npz")],
          check=meta_check(shift_not_moved)),
    Probe(4, "readers-csv-exch-ts-10s-late", csv_exch_outlier,
          check=says("x.csv:15: local_ts: receive time")),
    Probe(8, "readers-usdm-depth-at-transaction-time", refused=False,
          setup=lambda tmp: ["data", "convert", str(USDM), "--out", str(tmp / "out.npz")],
          check=meta_check(depth_at_t)),
    Probe(8, "readers-spot-odd-sizes-keep-the-lot", spot_with_odd_sizes, refused=False,
          check=meta_check(lot_kept)),
    Probe(8, "readers-info-prices-at-tick-decimals", info_of_csv_sample, refused=False,
          check=says("best ask 60000.2,", "prices      59999.5 .. 60000.6")),
]
