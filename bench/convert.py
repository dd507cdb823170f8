"""Conversion speed and memory, against a peer in the same run.

Each job runs in a fresh subprocess so its peak RSS is its own. A job converts
once to warm numba's cache, then reports the best of ``REPEATS`` timed runs
(the machine's other load only ever adds time).

- LOBSTER GOOG level 10 (147,916 messages): ours (parse, build L3 + L2 events,
  order timelines) vs the peer ``np.loadtxt`` merely parsing the same two CSVs.
- Binance USD-M ETHUSDT 2024-08-08 (74,655 lines): ours (typed decode,
  sequence validation, snapshot alignment) vs hftbacktest 2.4.4's own
  ``binancefutures.convert`` (no sequence checks), when it is installed.
- Databento MBO, the repo's synthetic ES session tiled 100 times (391,600
  records, each copy opening with its own snapshot): ours (L3 + L2 events,
  fill/cancel matching, checks) vs databento-dbn's ``DBNDecoder`` merely
  decoding the same ``.dbn.zst`` into its record objects.
- Bybit, the repo's synthetic ob500 archive and trades CSV tiled 100 times
  (60,100 book lines, 60,500 trades): ours (typed decode, u/seq checks, jitted
  trade rows) vs polars merely reading the same files (``read_ndjson`` of the
  archive's lines, ``read_csv`` of the trades).

- Tardis.dev ``trades`` + ``incremental_book_L2`` (the repo's sample, see
  bench/vendor_samples.py, repeated --tardis-copies times to a longer day: each
  copy shifted by the sample's span): ours vs hftbacktest 2.4.4's own
  ``tardis.convert``, and vs polars merely reading the two CSVs.
- Binance Vision USD-M ``bookTicker`` (the repo's sample zip, repeated likewise):
  ours (parse, unit check, snapshot diff) vs polars merely reading the CSV.

Usage: python bench/convert.py [--data ../shared/data] [--tardis-copies 40]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPEATS = 3


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best_time(fn):
    """(fastest seconds, result) over REPEATS calls of ``fn``; each call's result is dropped
    before the next starts, so peak RSS stays that of one run."""
    best, result = float("inf"), None
    for _ in range(REPEATS):
        result = None
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def job_ours(path: str) -> dict:
    import feeds
    paths = path.split(os.pathsep)          # a format read from several files: joined with os.pathsep
    feeds.read(paths)                       # warm-up: compile or load numba's cache
    seconds, conv = _best_time(lambda: feeds.read(paths))
    return {"events": len(conv.events), "rows": conv.meta.source_rows, "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb()}


def job_loadtxt_lobster(path: str) -> dict:
    import zipfile
    import numpy as np
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        message = next(n for n in names if "_message_" in n)
        book = next(n for n in names if "_orderbook_" in n)
        seconds, (m, b) = _best_time(lambda: (np.loadtxt(zf.open(message), delimiter=","),
                                              np.loadtxt(zf.open(book), delimiter=",")))
    return {"events": len(m), "rows": len(m), "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "note": f"parse only, {b.shape[1]} book columns"}


def job_hftbacktest_binance(path: str) -> dict:
    import contextlib
    import io
    from hftbacktest.data.utils import binancefutures
    with contextlib.redirect_stdout(io.StringIO()):
        binancefutures.convert(path, buffer_size=5_000_000)      # warm-up (numba)
        seconds, data = _best_time(lambda: binancefutures.convert(path, buffer_size=5_000_000))
    return {"events": len(data), "rows": None, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def job_ours_many(paths: str) -> dict:
    return job_ours_list(paths.split(";"))


def job_ours_list(paths: list[str]) -> dict:
    import feeds
    feeds.read(paths)
    seconds, conv = _best_time(lambda: feeds.read(paths))
    return {"events": len(conv.events), "rows": conv.meta.source_rows, "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb()}


def job_hftbacktest_tardis(paths: str) -> dict:
    import contextlib
    import io
    from hftbacktest.data.utils import tardis
    files = paths.split(";")
    with contextlib.redirect_stdout(io.StringIO()):
        tardis.convert(files, buffer_size=20_000_000)      # warm-up (numba)
        seconds, data = _best_time(lambda: tardis.convert(files, buffer_size=20_000_000))
    return {"events": len(data), "rows": None, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def job_polars_csv(paths: str) -> dict:
    import polars as pl
    files = paths.split(";")
    seconds, frames = _best_time(lambda: [pl.read_csv(f) for f in files])
    rows = sum(len(f) for f in frames)
    return {"events": rows, "rows": rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
            "note": "read_csv only, no events"}




def repeated(src: str, dst: str, copies: int, time_cols: tuple[int, ...], span: int, header: bool = True) -> str:
    """``src`` (a gzip, or a zip of one CSV) written as a plain CSV ``copies`` times over, copy k's
    times shifted by k * ``span`` (more than the sample covers), so the longer file is still in order."""
    import gzip
    import zipfile
    if src.endswith(".zip"):
        with zipfile.ZipFile(src) as zf:
            text = zf.read(zf.namelist()[0]).decode()
    else:
        text = gzip.decompress(open(src, "rb").read()).decode()
    lines = text.splitlines()
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    cells = [r.split(",") for r in rows]
    with open(dst, "w") as f:
        f.write("".join(h + "\n" for h in head))
        for k in range(copies):
            for c in cells:
                c = list(c)
                for t in time_cols:
                    c[t] = str(int(c[t]) + k * span)
                f.write(",".join(c) + "\n")
    return dst


def job_dbn_decoder(path: str) -> dict:
    import databento_dbn as dbn
    mbo = path.split(os.pathsep)[0]

    def decode():
        decoder = dbn.DBNDecoder(compression=dbn.Compression.ZSTD)
        with open(mbo, "rb") as f:
            decoder.write(f.read())
        return decoder.decode()
    seconds, records = _best_time(decode)
    return {"events": len(records) - 1, "rows": len(records) - 1, "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb(), "note": "decode to record objects only"}


def job_polars_bybit(path: str) -> dict:
    import io
    import zipfile
    import polars as pl
    book, trades = path.split(os.pathsep)

    def read():
        with zipfile.ZipFile(book) as zf:
            lines = pl.read_ndjson(io.BytesIO(zf.read(zf.namelist()[0])))
        return lines, pl.read_csv(trades)
    seconds, (lines, rows) = _best_time(read)
    return {"events": len(lines) + len(rows), "rows": len(lines) + len(rows), "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb(), "note": "read_ndjson + read_csv only"}


def tiled_samples(out_dir: str, copies: int = 100) -> tuple[str, str]:
    """The repo's synthetic Databento and Bybit samples tiled ``copies`` times, each copy later in time.

    Returns (the DBN inputs, the Bybit inputs), each os.pathsep-joined. Every copy opens with its own
    snapshot, so the tiled files obey the same rules as the samples.
    """
    import gzip
    import importlib.util
    import zipfile
    import numpy as np
    import databento_dbn as dbn
    from feeds.readers.databento import read_file

    def load(name):
        spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "data", "samples", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    db, by = load("make_databento_sample"), load("make_bybit_sample")
    samples = os.path.join(REPO, "data", "samples")
    rec = read_file(os.path.join(samples, f"{db.STEM}.mbo.dbn.zst")).mbo
    span = int(rec["ts_recv"][-1] - rec["ts_recv"][0]) + 10**9
    tiles = []
    for k in range(copies):
        tile = rec.copy()
        for field in ("ts_event", "ts_recv"):
            tile[field] += np.uint64(k * span)
        tile["order_id"] += np.uint64(k * 10**7)
        tiles.append(tile)
    raw = np.concatenate(tiles)
    body = db.metadata(dbn.Schema.MBO, int(raw["ts_recv"][0]), int(raw["ts_recv"][-1]) + 1).encode() + raw.tobytes()
    mbo = os.path.join(out_dir, "tiled.mbo.dbn.zst")
    with open(mbo, "wb") as f:
        out = io.BytesIO()
        transcoder = dbn.Transcoder(out, dbn.Encoding.DBN, dbn.Compression.ZSTD)
        transcoder.write(body)
        transcoder.flush()
        del transcoder
        f.write(out.getvalue())
    definition = os.path.join(samples, f"{db.STEM}.definition.dbn")
    lines, trades, _ = by.build()
    shift_ms = 61_000
    book_lines, trade_rows = [], []
    for k in range(copies):
        for line in lines:
            m = json.loads(line)
            m["ts"] += k * shift_ms
            m["cts"] += k * shift_ms
            book_lines.append(json.dumps(m, separators=(",", ":")))
        for row in trades:
            t, rest = row.split(",", 1)
            trade_rows.append(f"{float(t) + k * shift_ms / 1000:.4f},{rest}")
    book = os.path.join(out_dir, "tiled_ETHUSDT_ob500.data.zip")
    with zipfile.ZipFile(book, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiled_ETHUSDT_ob500.data", "\n".join(book_lines) + "\n")
    trades_path = os.path.join(out_dir, "tiled_ETHUSDT.csv.gz")
    with gzip.open(trades_path, "wt") as f:
        f.write("\n".join([by.TRADES_HEADER, *trade_rows]) + "\n")
    return os.pathsep.join([mbo, definition]), os.pathsep.join([book, trades_path])


JOBS = {"ours": job_ours, "loadtxt_lobster": job_loadtxt_lobster,
        "hftbacktest_binance": job_hftbacktest_binance, "ours_many": job_ours_many,
        "hftbacktest_tardis": job_hftbacktest_tardis, "polars_csv": job_polars_csv,
        "dbn_decoder": job_dbn_decoder, "polars_bybit": job_polars_bybit, "tiles": tiled_samples}


def run_job(name: str, path: str) -> dict | None:
    proc = subprocess.run([sys.executable, __file__, "--job", name, path], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {name}: failed: {last}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(label: str, ours: dict, peer: dict | None, peer_name: str) -> None:
    ev_s = ours["events"] / ours["seconds"]
    print(f"{label}: {ours['rows']:,} rows -> {ours['events']:,} events in {ours['seconds']:.3f} s = "
          f"{ev_s / 1e6:.2f}M events/s, {ours['rows'] / ours['seconds'] / 1e6:.2f}M rows/s, "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB")
    if peer is None:
        print(f"  peer {peer_name}: not available")
        return
    note = f" ({peer['note']})" if "note" in peer else ""
    print(f"  peer {peer_name}{note}: {peer['events']:,} records in {peer['seconds']:.3f} s = "
          f"{peer['events'] / peer['seconds'] / 1e6:.2f}M records/s, peak RSS {peer['peak_rss_mb']:.0f} MB")
    print(f"  ratio_time_vs_{peer_name}={peer['seconds'] / ours['seconds']:.2f}  (peer seconds / our seconds)")
    print(f"  ratio_rss_vs_{peer_name}={ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}  (our peak RSS / peer's)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--tardis-copies", type=int, default=40,
                        help="copies of the vendor samples strung together (each ~9 s of market, placed 10 s apart)")
    parser.add_argument("--job", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--only-new", action="store_true", help="only the Databento and Bybit jobs")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(JOBS[args.job[0]](args.job[1])))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        # Built in a process of its own: Linux keeps a process's peak RSS across exec, so a driver that
        # grew while tiling would hand its peak to every job it starts.
        dbn_inputs, bybit_inputs = run_job("tiles", tmp)
        report("Databento MBO (synthetic ES, tiled)", run_job("ours", dbn_inputs), run_job("dbn_decoder", dbn_inputs),
               "databento_dbn")
        report("Bybit ob500 + trades (synthetic ETHUSDT, tiled)", run_job("ours", bybit_inputs),
               run_job("polars_bybit", bybit_inputs), "polars")
    if args.only_new:
        return 0
    lobster = os.path.join(args.data, "lobster", "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip")
    binance = os.path.join(args.data, "binance", "usdm", "ethusdt_20240808.gz")
    for path in (lobster, binance):
        if not os.path.exists(path):
            print(f"missing {path}: point --data at the public tick data")
            return 1
    report("LOBSTER GOOG level 10", run_job("ours", lobster), run_job("loadtxt_lobster", lobster), "np_loadtxt")
    report("Binance USD-M ETHUSDT", run_job("ours", binance), run_job("hftbacktest_binance", binance),
           "hftbacktest")
    import tempfile
    samples = os.path.join(REPO, "data", "samples")
    with tempfile.TemporaryDirectory() as tmp:
        name = os.path.join(samples, "tardis", "binance-futures_{}_2024-08-08_ETHUSDT.csv.gz")
        pair = ";".join(repeated(name.format(t), os.path.join(tmp, f"{t}.csv"), args.tardis_copies, (2, 3), 10**7)
                        for t in ("trades", "incremental_book_L2"))
        ours = run_job("ours_many", pair)
        report(f"Tardis trades + incremental_book_L2 (sample x{args.tardis_copies})", ours,
               run_job("hftbacktest_tardis", pair), "hftbacktest")
        report("  same files", ours, run_job("polars_csv", pair), "polars")
        book = repeated(os.path.join(samples, "binance_vision", "um", "ETHUSDT-bookTicker-2024-08-08.zip"),
                        os.path.join(tmp, "ETHUSDT-bookTicker-2024-08-08.csv"), args.tardis_copies, (5, 6), 10**4)
        report(f"Binance Vision bookTicker (sample x{args.tardis_copies})", run_job("ours", book),
               run_job("polars_csv", book), "polars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
