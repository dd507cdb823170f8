"""``cmm feed`` on bad input: one line, exit 2, no socket left bound."""
from __future__ import annotations

import pytest

from tests.test_cli import assert_one_line_error, cmm


@pytest.mark.parametrize("args,needles", [
    (["feed", "tail", "notanaddr", "--duration", "1"], ["ADDR", "notanaddr"]),
    (["feed", "replay", "README.md", "--exit-at-end"], ["README.md", ".npz"]),
    (["feed", "replay", "missing.npz", "--exit-at-end"], ["missing.npz", "no such file"]),
    (["feed", "replay", "data/bundles/goog_sample/model.json", "--bind", "tcp://nowhere:x"], ["model.json"]),
    (["feed", "replay", "x.npz", "--speed", "fast"], ["--speed", "max"]),
    (["feed", "replay", "x.npz", "--heartbeat-s", "-1"], ["--heartbeat-s", "positive"]),
    (["feed", "tail", "tcp://127.0.0.1:1", "--duration", "nan"], ["--duration", "positive"]),
])
def test_bad_feed_input_gets_one_line(args, needles):
    assert_one_line_error(cmm(*args), *needles)


def test_unusable_bind_address_gets_one_line(tmp_path):
    out = tmp_path / "goog.npz"
    assert cmm("data", "convert", "data/samples/GOOG_2012-06-21_10_head.zip", "--out", out).returncode == 0
    assert_one_line_error(cmm("feed", "replay", out, "--bind", "tcp://300.1.1.1:99999", "--exit-at-end"),
                          "--bind", "300.1.1.1")
