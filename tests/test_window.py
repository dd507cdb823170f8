"""``[data] start`` / ``end``: a backtest over a window, its features warmed up on the data before it."""
from __future__ import annotations

import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cmm import cli
from common.config import ConfigError
from runtime import backtest, config, window

REPO = Path(__file__).resolve().parents[1]
GOOG = REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"
NY, UTC = ZoneInfo("America/New_York"), ZoneInfo("UTC")
# The GOOG sample's first and last exchange timestamps (09:30:00.44 and 10:11:03 New York time, 2012-06-21).
FIRST = 1_340_285_400_443_655_611


def cmm_config(tmp: Path, name: str, data_lines: str) -> str:
    text = (REPO / "configs" / "backtest_cmm.toml").read_text()
    text = text.replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', json.dumps(str(GOOG)))
    text = text.replace('"../data/bundles/goog_sample"', json.dumps(str(REPO / "data" / "bundles" / "goog_sample")))
    text = text.replace("[data]\n", "[data]\n" + data_lines + "\n", 1)
    path = tmp / name
    path.write_text(text)
    return str(path)


def test_bounds_by_hand():
    last = FIRST + 2_500 * 10**9
    # 10:30 in New York on 2012-06-21 (EDT, UTC-4) is 14:30 UTC: 1340236800 (midnight UTC) + 52200 s.
    assert window.bound_ns("10:30", FIRST, last, NY, "data.start") == 1_340_289_000 * 10**9
    assert window.bound_ns("10:30:15.25", FIRST, last, NY, "data.start") == 1_340_289_015_250_000_000
    assert window.bound_ns("10:30", FIRST, last, UTC, "data.start") == 1_340_274_600 * 10**9
    assert window.bound_ns("+2h", FIRST, last, NY, "data.start") == FIRST + 7_200 * 10**9
    assert window.bound_ns("-30m", FIRST, last, NY, "data.end") == last - 1_800 * 10**9
    assert window.bound_ns("+1500ms", FIRST, last, NY, "data.start") == FIRST + 1_500_000_000
    assert window.bound_ns(FIRST + 5, FIRST, last, NY, "data.start") == FIRST + 5
    with pytest.raises(ConfigError, match="seconds or ms"):
        window.bound_ns(1_340_289_000, FIRST, last, NY, "data.start")
    with pytest.raises(ConfigError, match="not a time of day"):
        window.bound_ns("25:00", FIRST, last, NY, "data.start")
    with pytest.raises(ConfigError, match="cannot read '2h'"):
        window.bound_ns("2h", FIRST, last, NY, "data.end")
    ts = np.array([FIRST, last])
    with pytest.raises(ConfigError, match="data.start: 2012-06-21 09:00:00 EDT is outside the data"):
        window.resolve("09:00", None, ts, NY)
    with pytest.raises(ConfigError, match="is not before end"):
        window.resolve("+20m", "+10m", ts, NY)
    assert window.resolve("+10m", "-1m", ts, NY) == window.Window(FIRST + 600 * 10**9, last - 60 * 10**9)
    assert window.zone_for("auto", "lobster") == NY and window.zone_for("auto", "binance") == UTC


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """CMM over the sample's first 15 minutes, and over its last 5 of them with the first 10 as warm-up."""
    tmp = tmp_path_factory.mktemp("window")
    out = {}
    for name, lines in (("whole", 'end = "+900s"'), ("window", 'start = "+600s"\nend = "+900s"')):
        path = cmm_config(tmp, f"{name}.toml", lines)
        out[name] = backtest.run(config.load(path), path)
    return out


def test_features_warm_up_causally_before_the_window(runs):
    whole, part = runs["whole"], runs["window"]
    start, end = FIRST + 600 * 10**9, FIRST + 900 * 10**9
    # Decisions only inside the window, on the same 1 s grid as the whole run's ...
    ts = part.decisions["ts"]
    assert ts[0] > start and ts[-1] <= end + 10**9 and len(ts) == 299
    same = np.isin(whole.decisions["ts"], ts)
    assert same.sum() == len(ts)
    # ... and every prediction identical: the features saw the same past, warmed up on the 10 minutes before.
    for key in ("mid", "pred_mid", "pred_spread_ticks", "pred_volume", "regime", "weights"):
        np.testing.assert_array_equal(part.decisions[key], whole.decisions[key][same], err_msg=key)
    # No metric counts the warm-up: ticks, fills and episodes start at the window.
    s = part.summary
    assert s.start_ts >= start and s.end_ts <= end
    assert part.result.fills["exch_ts"].min() > start
    assert s.episodes.items[0].start_ts == s.start_ts and s.episodes.count == 5
    position = part.result.ticks["position"]
    assert s.map == pytest.approx(np.abs(position).mean(), rel=1e-12)
    assert s.epnl == pytest.approx(part.result.ticks["epnl"][-1])
    assert 0 < part.summary.n_fills < whole.summary.n_fills


def test_a_window_inside_the_training_data_is_flagged_in_sample(runs, tmp_path):
    # The sample bundle was fitted on the sample's first 85% (train, then val from 09:52): both runs meet train.
    for run in runs.values():
        assert run.summary.in_sample is True and run.summary.in_sample_splits == ["train"]
        assert re.search(r"in sample +YES: the window meets the bundle.s train split", backtest.format_summary(run))


def test_a_bad_window_is_one_line(tmp_path, capsys):
    path = cmm_config(tmp_path, "bad.toml", 'start = "08:00"')
    assert cli.main(["backtest", "--config", path, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cmm: error: {path}: data.start: 2012-06-21 08:00:00 EDT is outside the data: the data spans "
                   "2012-06-21 09:30:00 EDT to 2012-06-21 10:11:03 EDT"]
    assert not (tmp_path / "out").exists()
