"""Issue 12, items 7, 9 and 13: what ``--out`` may replace, output errors, files without DEPTH_BBO rows.

Each refusal must leave the user's file or directory exactly as it was and no
temporary file or directory of ours beside it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bench.probes import REPO, SAMPLES, Probe

FIXED_SPREAD = REPO / "configs" / "backtest_fixed_spread.toml"
PAPER = REPO / "configs" / "paper_fixed_spread.toml"
TRAIN = REPO / "configs" / "cmm_tiny.toml"
ETH = SAMPLES / "ethusdt_usdm_20240808_head.gz"
KEEP = "the user's own bytes\n"


def _config(tmp: Path, data: Path = SAMPLES / "GOOG_2012-06-21_10_head.zip", name: str = "fs.toml") -> Path:
    """The FixedSpread config reading ``data`` (an absolute path, so it runs from any directory)."""
    path = tmp / name
    path.write_text(FIXED_SPREAD.read_text().replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', f'"{data}"'))
    return path


def _users_file(tmp: Path, name: str = "notes.txt") -> Path:
    path = tmp / name
    path.write_text(KEEP)
    return path


def _users_dir(tmp: Path, name: str = "mine") -> Path:
    directory = tmp / name
    directory.mkdir()
    _users_file(directory)
    return directory


def _untouched(*paths: str):
    """A check: each path (relative to tmp) holds what it held, and no temp file of ours is left in tmp."""
    def check(tmp: Path, result) -> str | None:
        for rel in paths:
            path = tmp / rel
            target = path / "notes.txt" if path.is_dir() else path
            if not target.is_file() or target.read_text() != KEEP:
                return f"{rel} was changed or removed"
        left = sorted(p.name for p in tmp.iterdir() if p.name.startswith("."))
        return f"left behind: {left}" if left else None
    return check


def _out_file_backtest(tmp):
    _users_file(tmp)
    return ["backtest", "--config", str(_config(tmp)), "--out", "notes.txt"]


def _out_foreign_dir_backtest(tmp):
    _users_dir(tmp)
    return ["backtest", "--config", str(_config(tmp)), "--out", "mine"]


def _out_cwd_backtest(tmp):
    _users_file(tmp)
    return ["backtest", "--config", str(_config(tmp)), "--out", "."]


def _out_input_data_backtest(tmp):
    data = tmp / "goog.zip"
    shutil.copyfile(SAMPLES / "GOOG_2012-06-21_10_head.zip", data)
    return ["backtest", "--config", str(_config(tmp, data)), "--out", "goog.zip"]


def _input_untouched(tmp: Path, result) -> str | None:
    same = (tmp / "goog.zip").read_bytes() == (SAMPLES / "GOOG_2012-06-21_10_head.zip").read_bytes()
    return None if same else "the input data was changed or removed"


def _out_file_paper(tmp):
    _users_file(tmp)
    return ["paper", "--feed", "tcp://127.0.0.1:9", "--config", str(PAPER), "--duration", "3",
            "--out", "notes.txt"]


def _convert_into_dir(tmp):
    _users_dir(tmp, "events.npz")
    return ["data", "convert", str(ETH), "--out", "events.npz"]


def _convert_into_proc(tmp):
    return ["data", "convert", str(ETH), "--out", "/proc/x/y.npz"]


def _out_file_compare(tmp):
    _users_file(tmp)
    config = str(_config(tmp))
    return ["compare", "--configs", config, config, "--out", "notes.txt"]


def _out_file_train(tmp):
    _users_file(tmp)
    return ["train", "--config", str(TRAIN), "--out", "notes.txt"]


def _compare_bad_second(tmp):
    """The second config is valid but its data file is absent: it fails after the first run is written."""
    good = _config(tmp, name="good.toml")
    bad = _config(tmp, tmp / "absent.npz", name="bad.toml")
    return ["compare", "--configs", str(good), str(bad), "--out", "cmp"]


def _nothing_written(tmp: Path, result) -> str | None:
    left = sorted(p.name for p in tmp.iterdir() if p.name not in ("good.toml", "bad.toml"))
    return f"left behind: {left}" if left else None


def _convert_no_bbo(tmp):
    return ["data", "convert", str(ETH), "--out", "eth.npz", "--no-bbo"]


def _no_bbo_rows(tmp: Path, result) -> str | None:
    from feeds.events import DEPTH_BBO, KIND_MASK
    from feeds.store import load
    ef = load(tmp / "eth.npz")
    kinds = ef.events["ev"] & np.uint64(KIND_MASK)
    if (kinds == DEPTH_BBO).any():
        return "DEPTH_BBO rows are still there"
    return None if any("DEPTH_BBO" in note for note in ef.meta.notes) else "no note of the rows left out"


CASES = [
    Probe(7, "convert --no-bbo leaves out DEPTH_BBO rows", _convert_no_bbo, refused=False, check=_no_bbo_rows),
    Probe(9, "backtest --out at a file", _out_file_backtest, check=_untouched("notes.txt")),
    Probe(9, "backtest --out at a foreign directory", _out_foreign_dir_backtest, check=_untouched("mine")),
    Probe(9, "backtest --out . (the working directory)", _out_cwd_backtest, check=_untouched("notes.txt")),
    Probe(9, "backtest --out at its own input data", _out_input_data_backtest, check=_input_untouched),
    Probe(9, "paper --out at a file", _out_file_paper, check=_untouched("notes.txt")),
    Probe(13, "convert --out at an existing directory", _convert_into_dir, check=_untouched("events.npz")),
    Probe(13, "convert --out /proc/x/y.npz", _convert_into_proc, check=_untouched()),
    Probe(13, "compare --out at a file", _out_file_compare, check=_untouched("notes.txt")),
    Probe(13, "train --out at a file", _out_file_train, check=_untouched("notes.txt")),
    Probe(13, "compare, second config's data absent", _compare_bad_second, check=_nothing_written),
]
