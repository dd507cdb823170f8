"""``cmm compare``: the runs, one table, and an HTML report whose every image is a PNG beside it.
Two strategies on an 8-minute slice of the repo's GOOG sample keep it fast."""
from __future__ import annotations

import json
import re

import msgspec
import pytest

import feeds
from common.atomic import atomic_write
from cmm import cli
from runtime.config import load
from analysis.report import in_sample
from runtime.backtest import RunSummary, load_events
from tests.conftest import REPO

MINUTE = 60_000_000_000
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """backtest_cmm.toml and backtest_fixed_spread.toml on the first 8 minutes of the sample, absolute paths."""
    tmp = tmp_path_factory.mktemp("cfg")
    events, instrument = load_events(load(str(REPO / "configs" / "backtest_cmm.toml")))
    events = events[events["local_ts"] <= events["local_ts"][0] + 8 * MINUTE]
    data = tmp / "goog_8min.npz"
    with atomic_write(data) as f_out:
        feeds.write(f_out, events, instrument)
    paths = []
    for name in ("cmm", "fixed_spread"):
        text = (REPO / "configs" / f"backtest_{name}.toml").read_text()
        text = text.replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', json.dumps(str(data)))
        text = text.replace('"../data/bundles/goog_sample"', json.dumps(str(REPO / "data" / "bundles" / "goog_sample")))
        (tmp / f"{name}.toml").write_text(text)
        paths.append(str(tmp / f"{name}.toml"))
    return paths


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compare_prints_one_table_and_writes_the_report(configs, tmp_path, capsys):
    out = tmp_path / "compare"
    assert cli.main(["compare", "--jobs", "1", "--configs", *configs, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table) == 4 and all(c in table[0] for c in ("EPnL", "MAP", "RPT", "PnLMAP", "fills", "p50", "p99"))
    assert table[2].startswith("| cmm ") and table[3].startswith("| fixed_spread ")
    cells = [[c.strip() for c in row.strip(" |").split("|")] for row in table]
    assert cells[0][-1] == "in sample" and cells[2][-1] == "no"         # a slice the bundle never saw
    assert cells[3][-3:] == ["n/a"] * 3       # fixed_spread declares its decision time, and has no bundle
    rows = json.loads((out / "comparison.json").read_text())
    cmm_metrics = json.loads((out / "cmm" / "metrics.json").read_text())
    assert cmm_metrics["in_sample"] is False and rows[0]["in sample"] == "no" and rows[1]["in sample"] is None
    fitted = msgspec.json.decode(json.dumps({**cmm_metrics, "in_sample": True, "in_sample_splits": ["train", "val"]}),
                                 type=RunSummary)
    assert in_sample(fitted) == "yes (train, val)"
    assert rows[0]["EPnL"] == cmm_metrics["epnl"] and rows[0]["fills"] == cmm_metrics["n_fills"]
    assert rows[0]["latency p50 us"] == cmm_metrics["decision_latency_us"]["p50"] > 0
    assert (out / "cmm" / "decisions.npz").is_file() and not (out / "fixed_spread" / "decisions.npz").exists()

    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == ["equity.png", "inventory.png", "quotes.png", "weights.png", "regimes.png"]
    for name in images:
        assert (out / name).read_bytes().startswith(PNG)
    assert "<script" not in page and "http" not in page and "fixed_spread" in page
