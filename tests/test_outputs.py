"""What ``--out`` may replace, and output errors as one line (issue 12, items 9 and 13).

Every case runs ``cmm`` in a subprocess on real files, as a user would: a refusal
is one ``cmm: error:`` line with exit 2, the user's file or directory is still
there byte for byte, and no temporary file or directory of ours is left beside it.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import DataError
from common.outdir import MARKER, replacing
from tests.conftest import REPO, SAMPLES

GOOG = SAMPLES / "GOOG_2012-06-21_10_head.zip"
ETH = SAMPLES / "ethusdt_usdm_20240808_head.gz"
KEEP = "the user's own bytes\n"


def cmm(*args, cwd=REPO, fsize: int | None = None) -> subprocess.CompletedProcess:
    """``cmm`` in a subprocess; ``fsize``: the largest file it may write (RLIMIT_FSIZE), a full disk."""
    limit = None if fsize is None else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, preexec_fn=limit)


def assert_one_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmm: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_nothing_left(directory, *expected: str) -> None:
    """``directory`` holds exactly ``expected``: no temp file or directory of ours is left in it."""
    assert sorted(os.listdir(directory)) == sorted(expected)


def config(tmp_path, data=GOOG, name="fs.toml"):
    """The FixedSpread config reading ``data`` by its absolute path."""
    text = (REPO / "configs" / "backtest_fixed_spread.toml").read_text()
    path = tmp_path / name
    path.write_text(text.replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', f'"{data}"'))
    return path


def users_file(path):
    path.write_text(KEEP)
    return path


# ---------------------------------------------------------------- item 9: replace only what is ours


def test_backtest_refuses_out_at_a_file_and_keeps_it(tmp_path):
    notes = users_file(tmp_path / "notes.txt")
    assert_one_line(cmm("backtest", "--config", config(tmp_path), "--out", notes), "notes.txt",
                    "not a results directory")
    assert notes.read_text() == KEEP
    assert_nothing_left(tmp_path, "fs.toml", "notes.txt")


def test_backtest_refuses_a_foreign_directory_and_the_working_directory(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    users_file(mine / "notes.txt")
    cfg = config(tmp_path)
    assert_one_line(cmm("backtest", "--config", cfg, "--out", mine), f"no {MARKER} marker")
    assert_one_line(cmm("backtest", "--config", cfg, "--out", ".", cwd=mine), "working directory")
    assert (mine / "notes.txt").read_text() == KEEP
    assert_nothing_left(mine, "notes.txt")
    assert_nothing_left(tmp_path, "fs.toml", "mine")


def test_backtest_refuses_its_own_input_data(tmp_path):
    data = tmp_path / "goog.zip"
    shutil.copyfile(GOOG, data)
    assert_one_line(cmm("backtest", "--config", config(tmp_path, data), "--out", data), "goog.zip")
    assert data.read_bytes() == GOOG.read_bytes()


def test_paper_refuses_out_at_a_file_before_trading(tmp_path):
    notes = users_file(tmp_path / "notes.txt")
    proc = cmm("paper", "--feed", "tcp://127.0.0.1:9", "--config", REPO / "configs" / "paper_fixed_spread.toml",
               "--duration", "3", "--out", notes)
    assert_one_line(proc, "not a results directory")
    assert notes.read_text() == KEEP
    assert_nothing_left(tmp_path, "notes.txt")


def test_backtest_replaces_its_own_previous_results(tmp_path):
    out = tmp_path / "run"
    cfg = config(tmp_path)
    first = cmm("backtest", "--config", cfg, "--out", out)
    assert first.returncode == 0, first.stderr
    assert (out / MARKER).is_file()
    metrics = (out / "metrics.json").read_bytes()
    (out / "stale.txt").write_text("from an earlier run\n")
    second = cmm("backtest", "--config", cfg, "--out", out)
    assert second.returncode == 0, second.stderr
    assert not (out / "stale.txt").exists()           # the whole directory was replaced
    assert (out / "metrics.json").read_bytes() == metrics
    assert_nothing_left(tmp_path, "fs.toml", "run")


def test_a_failed_write_leaves_the_previous_results_whole(tmp_path):
    out = tmp_path / "run"
    with replacing(out) as tmp:
        (Path(tmp) / "metrics.json").write_text("{}\n")
    with pytest.raises(RuntimeError):
        with replacing(out) as tmp:
            (Path(tmp) / "metrics.json").write_text('{"half": \n')
            raise RuntimeError("the run died half way")
    assert sorted(os.listdir(out)) == [MARKER, "metrics.json"]
    assert (out / "metrics.json").read_text() == "{}\n"
    assert_nothing_left(tmp_path, "run")


def test_an_empty_directory_may_be_used_a_symbolic_link_may_not(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with replacing(empty) as tmp:
        (Path(tmp) / "metrics.json").write_text("{}\n")
    assert (empty / MARKER).is_file()
    link = tmp_path / "link"
    link.symlink_to(empty)
    with pytest.raises(DataError, match="symbolic link"):
        with replacing(link):
            pass
    assert link.is_symlink() and (empty / "metrics.json").is_file()


# ---------------------------------------------------------------- item 13: output errors, one line each


def test_convert_out_at_an_existing_directory(tmp_path):
    target = tmp_path / "events.npz"
    target.mkdir()
    users_file(target / "notes.txt")
    assert_one_line(cmm("data", "convert", ETH, "--out", target), "events.npz", "is a directory")
    assert (target / "notes.txt").read_text() == KEEP
    assert_nothing_left(tmp_path, "events.npz")


def test_out_where_nothing_can_be_written(tmp_path):
    assert_one_line(cmm("data", "convert", ETH, "--out", "/proc/x/y.npz"), "/proc/x/y.npz", "cannot write")
    assert_one_line(cmm("backtest", "--config", config(tmp_path), "--out", "/proc/x/y"), "/proc/x/y",
                    "cannot write")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode 0555 directory anyway")
def test_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line(cmm("data", "convert", ETH, "--out", locked / "eth.npz"), "cannot write")
        assert_one_line(cmm("backtest", "--config", config(tmp_path), "--out", locked / "run"), "cannot write")
        assert_nothing_left(locked)
    finally:
        locked.chmod(0o755)


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    # RLIMIT_FSIZE: a write past 64 KiB fails with EFBIG, as a write to a full disk fails with ENOSPC.
    out = tmp_path / "eth.npz"
    assert_one_line(cmm("data", "convert", ETH, "--out", out, fsize=1 << 16), "eth.npz", "File too large")
    assert_one_line(cmm("backtest", "--config", config(tmp_path), "--out", tmp_path / "run", fsize=1 << 16),
                    "run", "File too large")
    assert_nothing_left(tmp_path, "fs.toml")


def test_compare_out_at_a_file(tmp_path):
    notes = users_file(tmp_path / "notes.txt")
    cfg = config(tmp_path)
    assert_one_line(cmm("compare", "--configs", cfg, cfg, "--out", notes), "notes.txt")
    assert notes.read_text() == KEEP
    assert_nothing_left(tmp_path, "fs.toml", "notes.txt")


def test_train_out_at_a_file(tmp_path):
    notes = users_file(tmp_path / "notes.txt")
    assert_one_line(cmm("train", "--config", REPO / "configs" / "cmm_tiny.toml", "--out", notes), "notes.txt",
                    "not a directory")
    assert notes.read_text() == KEEP
    assert_nothing_left(tmp_path, "notes.txt")


def test_compare_with_a_bad_second_config_writes_nothing(tmp_path):
    good = config(tmp_path, name="good.toml")
    absent = config(tmp_path, tmp_path / "absent.npz", name="absent.toml")     # fails only when it runs
    unknown = tmp_path / "unknown.toml"                                         # fails when it is checked
    unknown.write_text(good.read_text().replace("[strategy.params]", "[strategy.params]\nno_such_param = 1"))
    assert_one_line(cmm("compare", "--jobs", "1", "--configs", good, absent, "--out", tmp_path / "cmp"),
                    "absent.npz")
    assert_nothing_left(tmp_path, "good.toml", "absent.toml", "unknown.toml")
    proc = cmm("compare", "--configs", good, unknown, "--out", tmp_path / "cmp")
    assert_one_line(proc, "unknown.toml", "no_such_param")
    assert "done" not in proc.stdout                  # refused before the first config ran
    assert_nothing_left(tmp_path, "good.toml", "absent.toml", "unknown.toml")
