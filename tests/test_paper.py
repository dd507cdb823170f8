"""``cmm paper`` on real sockets: the backtest's fills over a live feed, faults survived, SIGKILL resumed."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from feeds.events import LOCAL
from feeds.store import load
from feeds.zmqfeed import Publisher
from runtime.paper import journal as jr
from tests.test_cli import REPO, assert_one_line_error, cmm
from tests.test_zmq_feed import free_port_pair

SAMPLE = REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip"
CONFIG = REPO / "configs" / "paper_fixed_spread.toml"
CMM = [sys.executable, "-m", "cmm"]


@pytest.fixture(scope="module")
def goog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("feed") / "goog.npz"
    assert cmm("data", "convert", SAMPLE, "--out", out).returncode == 0
    return out


@pytest.fixture(scope="module")
def backtest(tmp_path_factory) -> Path:
    """The in-process backtest of the same strategy and models on the same data."""
    out = tmp_path_factory.mktemp("bt") / "fixed_spread"
    assert cmm("backtest", "--config", REPO / "configs" / "backtest_fixed_spread.toml", "--out", out,
               "--no-progress").returncode == 0
    return out


def addr() -> str:
    return f"tcp://127.0.0.1:{free_port_pair()}"


def replay(npz: Path, feed: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*CMM, "feed", "replay", str(npz), "--bind", feed, "--wait-subscribers", "1", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def paper(feed: str, out: Path, *extra, config: Path = CONFIG, wait: bool = True):
    args = [*CMM, "paper", "--feed", feed, "--config", str(config), "--out", str(out), "--quiet", *map(str, extra)]
    if not wait:
        return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=240)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def engine_metrics(out: Path) -> dict:
    m = metrics(out)
    return {k: v for k, v in m.items() if k not in ("feed", "stopped_by", "tick_to_order_us", "send_to_order_us")}


def test_paper_trading_fills_exactly_as_the_backtest(goog, backtest, tmp_path):
    feed = addr()
    pub = replay(goog, feed, "--speed", "max")
    try:
        run = paper(feed, tmp_path / "paper", "--duration", 60)
    finally:
        stop(pub)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "paper"
    for name in ("fills.csv", "orders.csv", "ticks.npz"):
        assert (out / name).read_bytes() == (backtest / name).read_bytes(), name
    assert engine_metrics(out) == engine_metrics(backtest)
    m = metrics(out)
    assert m["n_fills"] == 303 and m["stopped_by"] == "end of stream"
    assert m["feed"]["events"] == 55_130 and m["feed"]["gaps"] == 0 and m["feed"]["unexplained_gaps"] == 0
    assert "0 unexplained" in run.stdout
    steps = jr.read(str(out) + ".journal")[1]
    assert sum(len(s.fills) for s in steps) == 303 and steps[-1].kind == "end"


def journal_steps(path: str) -> list[jr.Step]:
    try:
        return jr.read(path)[1]
    except jr.JournalError:
        return []


def journal_fills(path: str) -> list[jr.JournalFill]:
    return [f for s in journal_steps(path) for f in s.fills]


def test_sigkill_then_resume_loses_and_repeats_no_fill(goog, backtest, tmp_path):
    feed = addr()
    out = tmp_path / "paper"
    journal = str(out) + ".journal"
    pub = replay(goog, feed, "--speed", "300")     # the 42-minute sample in about 8 s
    try:
        trader = paper(feed, out, wait=False)
        deadline = time.monotonic() + 60
        while len(journal_fills(journal)) < 40 and time.monotonic() < deadline and trader.poll() is None:
            time.sleep(0.05)
        assert trader.poll() is None, "the trader finished before it could be killed"
        trader.send_signal(signal.SIGKILL)
        trader.wait()
        assert not (out / "fills.csv").exists()
        before = len(journal_fills(journal))
        assert 40 <= before < 303
        resumed = paper(feed, out, "--resume", "--duration", 60)
    finally:
        stop(pub)
    assert resumed.returncode == 0, resumed.stderr
    fills = journal_fills(journal)
    keys = [(f.order_id, f.exch_ts, f.local_ts, f.price, f.qty) for f in fills]
    assert len(keys) == len(set(keys)) == 303                     # every fill once
    assert (out / "fills.csv").read_bytes() == (backtest / "fills.csv").read_bytes()
    steps = jr.read(journal)[1]
    signed = np.array([f.side * f.qty for f in fills])
    cash = -sum(f.side * f.price * f.qty + f.fee for f in fills)
    assert steps[-1].position == pytest.approx(signed.sum()) == metrics(out)["final_position"]
    assert steps[-1].cash == pytest.approx(cash)
    feed_stats = metrics(out)["feed"]
    assert feed_stats["replayed_steps"] > 0 and feed_stats["resent_batches"] > 0 and feed_stats["gaps"] == 0


def test_a_stale_feed_pulls_every_quote_and_trading_resumes(goog, tmp_path):
    config = tmp_path / "paper.toml"
    config.write_text(CONFIG.read_text().replace("stale_after_s = 2.0", "stale_after_s = 0.5"))
    feed = addr()
    events = load(goog).events
    local = events[(events["ev"] & np.uint64(LOCAL)) != 0]
    out = tmp_path / "paper"
    with Publisher(feed, heartbeat_s=0.1) as pub:
        pub.add_topic("GOOG", load(goog).instrument)
        trader = paper(feed, out, "--duration", 60, config=config, wait=False)
        try:
            deadline = time.monotonic() + 30
            while pub.stats.subscriptions < 1 and time.monotonic() < deadline:
                pub.service(0.01)
            half = len(local) // 2
            for i in range(0, half, 1024):
                pub.publish("GOOG", local[i:min(i + 1024, half)])
                pub.service(0.001)
            journal = str(out) + ".journal"
            while not any(s.orders for s in journal_steps(journal)) and time.monotonic() < deadline:
                pub.service(0.01)              # until the trader is quoting
            time.sleep(2.0)                    # no batch, no heartbeat: stale after 0.5 s
            for i in range(half, len(local), 1024):
                pub.publish("GOOG", local[i:i + 1024])
                pub.service(0.001)
            pub.end("GOOG")
            deadline = time.monotonic() + 60
            while trader.poll() is None and time.monotonic() < deadline:
                pub.service(0.05)
        finally:
            if trader.poll() is None:
                trader.kill()
    assert trader.returncode == 0, trader.stderr.read()
    m = metrics(out)
    assert m["feed"]["stale_periods"] >= 1 and m["feed"]["quotes_pulled"] >= 1
    stale = [s for s in jr.read(str(out) + ".journal")[1] if s.kind == "stale"]
    assert stale and all(o.kind == "cancel" for o in stale[0].orders) and len(stale[0].orders) >= 1
    assert m["n_fills"] > 0 and m["stopped_by"] == "end of stream"


def test_dropped_batches_are_gaps_resynced_from_snapshots(goog, tmp_path):
    feed = addr()
    pub = replay(goog, feed, "--speed", "300", "--drop-every", "10")
    try:
        run = paper(feed, tmp_path / "paper", "--duration", 60)
    finally:
        stop(pub)
    assert run.returncode == 0, run.stderr
    f = metrics(tmp_path / "paper")["feed"]
    assert f["gaps"] >= 3 and f["lost_batches"] >= f["gaps"] and f["unexplained_gaps"] == 0
    assert f["snapshots"] >= f["gaps"]


def test_bad_paper_input_gets_one_line(goog, tmp_path):
    with_data = tmp_path / "with_data.toml"
    with_data.write_text("[data]\nfiles = ['x.npz']\n" + CONFIG.read_text())
    assert_one_line_error(paper("tcp://127.0.0.1:1", tmp_path / "a", config=with_data), "with_data.toml", "data")
    l3 = tmp_path / "l3.toml"
    l3.write_text(CONFIG.read_text().replace('model = "risk_averse"', 'model = "l3"'))
    assert_one_line_error(paper(addr(), tmp_path / "b", "--duration", 1, config=l3), "queue.model", "l3")
    kernel = tmp_path / "kernel.toml"
    kernel.write_text(CONFIG.read_text().replace('mode = "python"', 'mode = "kernel"'))
    assert_one_line_error(paper(addr(), tmp_path / "c", config=kernel), "strategy.mode")
    assert_one_line_error(paper("notanaddr", tmp_path / "d", "--duration", 1), "--feed", "notanaddr")
    assert_one_line_error(paper(addr(), tmp_path / "e", "--resume"), "e.journal")
    (tmp_path / "f.journal").write_bytes(b"")
    assert_one_line_error(paper(addr(), tmp_path / "f", "--duration", 1), "f.journal", "--resume")
    assert_one_line_error(paper(addr(), tmp_path / "g", "--duration", 0.5), "--feed", "nothing")


def test_paper_trading_over_curve_fills_as_in_plaintext(goog, backtest, tmp_path):
    for name, where in (("server", "server"), ("trader", "clients")):
        assert cmm("keys", "generate", tmp_path / where, "--name", name).returncode == 0
    feed = addr()
    pub = replay(goog, feed, "--speed", "max", "--curve-server-key", tmp_path / "server",
                 "--curve-clients", tmp_path / "clients")
    try:
        run = paper(feed, tmp_path / "paper", "--duration", 60, "--curve-key", tmp_path / "clients",
                    "--curve-server", tmp_path / "server" / "server.key")
    finally:
        stop(pub)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "paper" / "fills.csv").read_bytes() == (backtest / "fills.csv").read_bytes()


def test_the_cmm_strategy_paper_trades_as_it_backtests(goog, tmp_path):
    """CMM unchanged on the feed: TorchScript inference at every decision, the backtest's fills (a declared
    decision time, so both runs charge the same)."""
    declared = 'compute_ns = 150000'
    bt_config = tmp_path / "backtest_cmm.toml"
    bt_config.write_text((REPO / "configs" / "backtest_cmm.toml").read_text()
                         .replace('compute_ns = "measured"', declared)
                         .replace('"../data/', f'"{REPO}/data/'))
    paper_config = tmp_path / "paper_cmm.toml"
    paper_config.write_text((REPO / "configs" / "paper_cmm.toml").read_text()
                            .replace('compute_ns = "measured"', declared).replace('"../data/', f'"{REPO}/data/'))
    assert cmm("backtest", "--config", bt_config, "--out", tmp_path / "bt", "--no-progress").returncode == 0
    feed = addr()
    pub = replay(goog, feed, "--speed", "max")
    try:
        run = paper(feed, tmp_path / "paper", "--duration", 120, config=paper_config)
    finally:
        stop(pub)
    assert run.returncode == 0, run.stderr
    for name in ("fills.csv", "orders.csv", "ticks.npz", "decisions.npz"):
        assert (tmp_path / "paper" / name).read_bytes() == (tmp_path / "bt" / name).read_bytes(), name
    assert metrics(tmp_path / "paper")["n_fills"] > 50


def test_rehearsing_between_steps_changes_no_outcome(goog, tmp_path):
    """CMM's rehearsal (Strategy.rehearse: features, model, ladder and order diff into scratch) between
    every two steps of a paper trader, in process: every step's orders, fills, position and cash, and every
    decision, as without it."""
    from feeds.zmqfeed.messages import pack
    from runtime.config import PaperConfig, load as load_config
    from runtime.paper.trader import PaperTrader
    from strategies.cmm import CMMStrategy

    config = tmp_path / "paper_cmm.toml"
    config.write_text((REPO / "configs" / "paper_cmm.toml").read_text()
                      .replace('compute_ns = "measured"', 'compute_ns = 150000').replace('"../data/', f'"{REPO}/data/'))
    cfg = load_config(str(config), PaperConfig)
    data = load(goog)
    steps = [jr.Step(kind="batch", seq=i + 1, session=1, events=pack(data.events[start:start + 1024]))
             for i, start in enumerate(range(0, len(data.events), 1024))] + [jr.Step(kind="end", seq=0, session=1)]
    outcomes, rehearsed = {}, 0
    for rehearse in (False, True):
        trader = PaperTrader(cfg, str(config), data.instrument)
        out = []
        for step in steps:
            out.append(trader.step(step))
            if rehearse:
                rehearsed += trader.rehearse()
        outcomes[rehearse] = out, trader.strategy.decision_record()
        assert isinstance(trader.strategy, CMMStrategy) and trader.strategy._rehearsed_ts is not None
    assert rehearsed > 40
    assert outcomes[True][0] == outcomes[False][0]
    assert sum(len(s.orders) for s in outcomes[True][0]) > 100
    for name, column in outcomes[False][1].items():
        np.testing.assert_array_equal(outcomes[True][1][name], column)


def test_a_publisher_restart_is_survived(goog, tmp_path):
    feed = addr()
    out = tmp_path / "paper"
    first = replay(goog, feed, "--speed", "300")
    trader = paper(feed, out, "--duration", 90, wait=False)
    try:
        deadline = time.monotonic() + 60
        while len(journal_steps(str(out) + ".journal")) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.terminate()
        first.wait()
        second = subprocess.Popen([*CMM, "feed", "replay", str(goog), "--bind", feed, "--speed", "max",
                                   "--wait-subscribers", "1"],
                                  cwd=REPO, stdout=subprocess.DEVNULL)
        try:
            trader.wait(90)
        finally:
            stop(second)
    finally:
        if trader.poll() is None:
            trader.kill()
    assert trader.returncode == 0, trader.stderr.read()
    f = metrics(out)["feed"]
    assert f["restarts"] >= 1 and f["unexplained_gaps"] == 0
    assert f["rewound_rows"] > 0              # the new publisher began again at the file's start
    assert metrics(out)["stopped_by"] == "end of stream"


def test_ctrl_c_stops_cleanly_with_a_summary_and_results(goog, tmp_path):
    feed = addr()
    out = tmp_path / "paper"
    pub = replay(goog, feed, "--speed", "100")
    try:
        trader = paper(feed, out, wait=False)
        deadline = time.monotonic() + 60
        while len(journal_steps(str(out) + ".journal")) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        trader.send_signal(signal.SIGINT)
        stdout, stderr = trader.communicate(timeout=60)
    finally:
        stop(pub)
    assert trader.returncode == 0, stderr
    assert "stopped by interrupt" in stdout and "EPnL" in stdout and "Traceback" not in stderr
    m = metrics(out)
    assert m["stopped_by"] == "interrupt" and 0 < m["feed"]["events"] < 55_130
    steps = jr.read(str(out) + ".journal")[1]
    assert m["n_fills"] == sum(len(s.fills) for s in steps)      # the results are the journal's, no more


class _Marked:
    """A strategy's last decision clock as CMM gives it (strategies.cmm.MARKS)."""

    def stage_marks(self):
        return [("start", 1_300), ("features", 1_310), ("model", 1_340), ("send", 1_360), ("record", 1_380)]


def test_a_reaction_is_split_into_its_stages():
    from runtime.paper.loop import reaction_stages

    # arrival 1,000; the trader's step starts at 1,100, checks by 1,120, orders by 1,150, appends by 1,200;
    # the decision starts at 1,300, its model is done at 1,340 and its orders are in at 1,355, within the
    # stage that ends at 1,360; what follows (the record, to 1,380) is after the reaction.
    trader = [1_100, 1_120, 1_150, 1_200]
    assert reaction_stages(1_000, trader, _Marked(), 1_355) == [
        ("queue", 100), ("check", 20), ("ordering", 30), ("append", 50), ("engine", 100), ("features", 10),
        ("model", 30), ("send", 15)]
    # A strategy without marks (FixedSpread), or marks of an earlier step: one stage for the engine and it.
    assert reaction_stages(1_000, trader, object(), 1_400)[-1] == ("engine and decision", 200)
    assert reaction_stages(1_000, [1_500, 1_520, 1_550, 1_600], _Marked(), 1_700)[-1] == ("engine and decision", 100)
