"""The ``cmm`` command line: parse, dispatch, and turn bad input into one line.

Each command group lives in its own module with a ``register(subparsers)``
function. Every expected failure (bad data, bad config, bad arguments) is
printed as a single ``cmm: error: ...`` line with a non-zero exit, and so is an
OSError (a full or read-only disk); a traceback means a bug in cmm itself.
"""
from __future__ import annotations

import argparse
import os
import sys

from common.errors import DataError

from cmm import backtest, compare, data, feed, keys, live, paper, train

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; we print the error alone, on one line."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"cmm: error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cmm", description="CMM engine: tick data, backtests and paper trading.")
    groups = parser.add_subparsers(dest="group", required=True, parser_class=OneLineParser)
    data.register(groups)
    backtest.register(groups)
    train.register(groups)
    feed.register(groups)
    paper.register(groups)
    live.register_record(groups)
    keys.register(groups)
    compare.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DataError as e:
        print(f"cmm: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cmm: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``cmm data info F | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # The machine refused (a full or read-only disk, a missing directory) where no writer named the path
        # itself (common.atomic, common.outdir do): still one line, naming what the OS names.
        where = f"{e.filename}: " if e.filename else ""
        print(f"cmm: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
