"""``cmm data``: convert tick files, describe them, validate them."""
from __future__ import annotations

import argparse
import os
import sys
import time

import feeds
from common.atomic import atomic_write
from common.errors import DataError
from feeds.formats import FORMATS
from common import progress
from feeds.readers.base import ReadOptions, no_progress


def register(groups) -> None:
    data = groups.add_parser("data", help="convert, inspect and validate tick data")
    commands = data.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="convert tick files into one event file (.npz)")
    convert.add_argument("inputs", nargs="+", metavar="INPUT")
    convert.add_argument("--out", required=True, metavar="FILE.npz")
    convert.add_argument("--no-bbo", action="store_true",
                         help="leave out the DEPTH_BBO rows (a top-of-book feed such as Binance's bookTicker): "
                              "hftbacktest ignores them, our engine applies them (docs/data-formats.md)")
    _add_read_options(convert)
    convert.set_defaults(handler=run_convert)

    info = commands.add_parser("info", help="events by type, time span, prices, book sanity")
    info.add_argument("file", metavar="FILE")
    _add_instrument_options(info)
    info.set_defaults(handler=run_info)

    validate = commands.add_parser("validate", help="check tick files without writing anything")
    validate.add_argument("inputs", nargs="+", metavar="INPUT")
    _add_read_options(validate)
    validate.set_defaults(handler=run_validate)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_instrument_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbol")
    p.add_argument("--tick-size", type=_positive)
    p.add_argument("--lot-size", type=_positive)
    p.add_argument("--contract-multiplier", type=_positive)


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--on-error", default="raise", choices=("raise", "skip"),
                   help="raise: stop at the first bad line; skip: skip bad lines where safe and count them")
    p.add_argument("--base-latency-ns", type=int, default=0,
                   help="smallest feed latency after correcting a local clock that ran behind the exchange; "
                        "for files with no receive time (Binance Vision) the feed latency itself: "
                        "local_ts = exch_ts + this, noted in the file")
    p.add_argument("--fresh-book-per-input", action="store_true",
                   help="read Binance captures that do not join as separate ones, each with a fresh book "
                        "and its own clock-skew shift (default: refuse inputs that do not join)")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    _add_instrument_options(p)


def _options(args) -> ReadOptions:
    return ReadOptions(
        on_error=args.on_error, symbol=args.symbol, tick_size=args.tick_size, lot_size=args.lot_size,
        contract_multiplier=args.contract_multiplier, base_latency_ns=args.base_latency_ns,
        fresh_book_per_input=args.fresh_book_per_input,
        progress=no_progress if args.no_progress or not sys.stderr.isatty() else progress.bar)


def _report_conversion(conv, fmt: str, seconds: float) -> None:
    meta = conv.meta
    print(f"read {meta.source_rows:,} {fmt} rows -> {len(conv.events):,} events in {seconds:.2f} s "
          f"({conv.instrument.symbol}, tick {conv.instrument.tick_size:g}, lot {conv.instrument.lot_size:g})")
    if meta.skipped:
        print(f"skipped {meta.skipped:,} bad line{'s' if meta.skipped != 1 else ''}:")
        for example in meta.skipped_examples:
            print(f"  {example}")
    for note in meta.notes:
        print(f"note: {note}")


def run_convert(args) -> int:
    if not args.out.endswith(".npz"):
        raise DataError(f"output must end in .npz, got {args.out!r}", field="--out")
    for path in args.inputs:
        if os.path.abspath(path) == os.path.abspath(args.out):
            raise DataError("output would overwrite an input", path=args.out, field="--out")
    if os.path.isdir(args.out):
        raise DataError("is a directory: --out names the event file to write", path=args.out, field="--out")
    fmt = feeds.resolve_format(args.inputs, args.format)
    start = time.perf_counter()
    conv = feeds.read(args.inputs, fmt, _options(args))
    with atomic_write(args.out) as f_out:
        written = feeds.write(f_out, conv.events, conv.instrument, conv.meta, bbo=not args.no_bbo)
    _report_conversion(conv, fmt, time.perf_counter() - start)
    if written != len(conv.events):
        print(f"left out {len(conv.events) - written:,} DEPTH_BBO rows (--no-bbo): {written:,} events written")
    print(f"wrote {args.out}")
    return 0


def run_info(args) -> int:
    ef = feeds.load(args.file)
    instrument = ef.instrument
    if args.tick_size is not None:
        instrument = feeds.Instrument(symbol=args.symbol or (instrument.symbol if instrument else "?"),
                                      tick_size=args.tick_size,
                                      lot_size=args.lot_size or (instrument.lot_size if instrument else 1.0))
    summary = feeds.summarize(ef.events, instrument)
    print(feeds.format_summary(args.file, summary, instrument, ef.meta))
    return 0


def run_validate(args) -> int:
    fmt = feeds.resolve_format(args.inputs, args.format)
    start = time.perf_counter()
    conv = feeds.read(args.inputs, fmt, _options(args))
    _report_conversion(conv, fmt, time.perf_counter() - start)
    problems = 0
    book = feeds.check_book(conv.events, conv.instrument.tick_size)
    if book.crossed:
        problems += 1
        print(f"book crossed at {book.crossed:,} of {book.groups:,} checks")
    if fmt == "lobster":
        from feeds.readers.lobster_check import check
        for path in args.inputs:
            report = check(path, _options(args))
            print(report)
            problems += report.unexplained
    print("valid" if problems == 0 else f"INVALID: {problems} problem(s)")
    return 0 if problems == 0 else 1
