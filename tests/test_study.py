"""``cmm study --config configs/study_tiny.toml``: the whole experiment on the repo's sample, then resumed."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cmm import cli
from common.stats import bootstrap_mean_ci
from study.config import METHODS

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "study_tiny.toml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "tiny"
    t0 = time.perf_counter()
    code = cli.main(["study", "--config", str(TINY), "--out", str(out), "--jobs", "2", "--no-progress"])
    return out, code, time.perf_counter() - t0


def test_study_tiny_runs_every_method_out_of_sample(study):
    out, code, seconds = study
    assert code == 0
    data = json.loads((out / "study.json").read_text())
    assert data["meta"]["failed"] == [] and data["meta"]["seeds"] == [0, 1, 2]
    goog = data["datasets"]["goog_sample"]
    methods = goog["methods"]
    assert set(methods) == set(METHODS) | {"cmm+rebate", "teacher+rebate"}
    window = goog["test_window_ns"]
    for label, m in methods.items():
        assert m["seeds"] == (1 if label in ("avellaneda_stoikov", "fixed_spread") else 3), label
        assert not m["in_sample"]
        assert m["episodes"] >= 5
    # The window's EPnL across seeds is the mean of the three results directories' metrics.json.
    epnl = [json.loads((out / "runs" / "goog_sample" / f"seed{s}" / "cmm" / "metrics.json").read_text())
            for s in range(3)]
    assert methods["cmm"]["epnl_seeds"]["mean"] == pytest.approx(np.mean([m["epnl"] for m in epnl]), rel=1e-12)
    assert methods["cmm"]["epnl_seeds"]["std"] == pytest.approx(np.std([m["epnl"] for m in epnl], ddof=1),
                                                               rel=1e-12)
    # Every run replayed the test window only: no tick before its start or after its end.
    for m in epnl:
        assert window[0] <= m["start_ts"] and m["end_ts"] <= window[1] + 10**9
        assert m["in_sample"] is False and "out_of_range_share" in m
    # The paired CI, by hand from the episodes: CMM − teacher, averaged over seeds per episode.
    ep = {name: [json.loads((out / "runs" / "goog_sample" / f"seed{s}" / name / "metrics.json").read_text())
                 ["episodes"]["items"] for s in range(3)] for name in ("cmm", "teacher")}
    diff = np.mean([[a["epnl"] - b["epnl"] for a, b in zip(x, y)] for x, y in zip(ep["cmm"], ep["teacher"])], axis=0)
    paired = goog["paired"]["CMM − teacher"]
    assert paired["mean"] == pytest.approx(diff.mean(), rel=1e-9, abs=1e-12)
    assert paired["ci95"] == pytest.approx(list(bootstrap_mean_ci(diff, 2000)))
    # No maker rebate by default; the rebate row has it.
    config = (out / "configs" / "run_goog_sample_seed0_cmm.toml").read_text()
    assert "maker = 0.0" in config
    assert "maker = -0.0002" in (out / "configs" / "run_goog_sample_seed0_cmm+rebate.toml").read_text()
    assert goog["stress"]["episodes"] >= 1
    shock = goog["shock"]
    assert shock["move"]["ticks"] > 0 and set(shock["methods"]) == {"teacher", "cmm", "single_student", "cmm_mean",
                                                                     "avellaneda_stoikov", "fixed_spread"}
    assert shock["methods"]["fixed_spread"]["calm_epnl"] == methods["fixed_spread"]["epnl_seeds"]["mean"]
    assert shock["methods"]["fixed_spread"]["difference"] != 0          # the move reached the quoter
    md = (out / "study.md").read_text()
    assert "| teacher (no latency) |" in md and "Hájek − mean" in md and "Stress:" in md and "Synthetic shock" in md
    page = (out / "study.html").read_text()
    for name in ("equity_goog_sample.png", "weights_goog_sample.png", "latency.png"):
        assert f'src="{name}"' in page and (out / name).read_bytes().startswith(b"\x89PNG")


def test_study_resumes_without_running_a_job_again(study):
    out, code, seconds = study
    before = json.loads((out / "study.json").read_text())
    stamp = os.path.getmtime(out / "runs" / "goog_sample" / "seed0" / "cmm" / "metrics.json")
    t0 = time.perf_counter()
    assert cli.main(["study", "--config", str(TINY), "--out", str(out), "--jobs", "2", "--no-progress"]) == 0
    assert time.perf_counter() - t0 < seconds / 3
    after = json.loads((out / "study.json").read_text())
    assert after["meta"]["skipped"] == after["meta"]["jobs"] == before["meta"]["jobs"]
    assert after["datasets"] == before["datasets"]
    assert os.path.getmtime(out / "runs" / "goog_sample" / "seed0" / "cmm" / "metrics.json") == stamp


def test_study_refuses_a_directory_it_did_not_write(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert cli.main(["study", "--config", str(TINY), "--out", str(tmp_path / "mine")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"cmm: error: {tmp_path / 'mine'}: --out: is a directory cmm study did not write (no .cmm-study marker): "
        "refusing to write into it; choose another --out"]
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    (tmp_path / "a_sweep").mkdir()                  # another tool's directory is not the study's either
    (tmp_path / "a_sweep" / ".cmm-sweep").write_text("")
    assert cli.main(["study", "--config", str(TINY), "--out", str(tmp_path / "a_sweep")]) == 2
    assert "cmm study did not write" in capsys.readouterr().err


def test_the_shock_shifts_every_price_inside_it_and_resets_the_book_at_both_ends():
    import feeds
    from feeds.events import DEPTH_CLEAR, DEPTH_SNAPSHOT, KIND_MASK, TRADING_STATUS
    from feeds.readers.base import no_progress
    from feeds.validate import check_events, check_timelines
    from study.shock import book_at, inject

    conv = feeds.read([str(REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip")], "auto",
                      feeds.ReadOptions(progress=no_progress))
    ev, tick = conv.events, conv.instrument.tick_size
    t, duration = int(ev["exch_ts"][0] + 1_200 * 10**9), 30 * 10**9
    out = inject(ev, t, 58, duration, tick)
    a = int(np.searchsorted(ev["exch_ts"], t))
    b = int(np.searchsorted(ev["exch_ts"], t + duration))
    down, up = book_at(ev, a), book_at(ev, b)
    assert len(down) == 20 and len(up) == 20                  # the sample's 10 levels a side
    assert len(out) == len(ev) + 2 + len(down) + len(up)
    np.testing.assert_array_equal(out[:a], ev[:a])
    np.testing.assert_array_equal(out[b + 2 + len(down) + len(up):], ev[b:])
    reset = out[a:a + 1 + len(down)]
    kinds = reset["ev"] & np.uint64(KIND_MASK)
    assert kinds[0] == DEPTH_CLEAR and (kinds[1:] == DEPTH_SNAPSHOT).all()
    np.testing.assert_allclose(reset["px"][1:], [px - 58 * tick for _, px, _ in down])
    inside, original = out[a + 1 + len(down):b + 1 + len(down)], ev[a:b]
    shifted = (original["ev"] & np.uint64(KIND_MASK)) != TRADING_STATUS
    np.testing.assert_allclose(inside["px"][shifted], original["px"][shifted] - 58 * tick)
    back = out[b + 1 + len(down):b + 2 + len(down) + len(up)]
    np.testing.assert_allclose(back["px"][1:], [px for _, px, _ in up])
    check_events(out, source="shocked")                         # still a replayable file
    check_timelines(out, "shocked")
