"""``cmm backtest --transport zmq``: the strategy in its own process, on real sockets on loopback.

Parity: the same config gives byte-identical results in process and over ZeroMQ.
Failure: a strategy process that dies or stops answering ends the run with one
line and a non-zero exit, in bounded time. Trust: messages from another peer,
for another step or malformed are dropped and counted on both sides.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from engine import views as engine
from engine.views import EngineConfig, LatencyConfig, SimView, make_sim
from feeds.events import EVENT_DTYPE
from feeds.instrument import Instrument
from feeds.zmqfeed.messages import Decoder, encode
from runtime.link.protocol import Command, Decision, Finished, MetricsView, Ready, ToEngine, Venue, WakeUp
from runtime.session import run as run_backtest
from runtime.config import engine_config, load
from strategies.kernels.fixed_spread import quote_ticks
from runtime.backtest import build_strategy, load_events
from runtime.link.engine_side import StrategyProcess, TransportError, run_remote, strategy_command
from tests.conftest import REPO

CONFIGS = REPO / "configs"
RESULTS = ("fills.csv", "orders.csv", "ticks.npz", "metrics.json")


def cmm(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def config_copy(tmp_path, name: str, **replace: str):
    """A repo config with its paths made absolute and some lines replaced (old text -> new text)."""
    text = (CONFIGS / name).read_text().replace('"../', f'"{REPO}/')
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def both(config, tmp_path):
    outs = {}
    for transport in ("inproc", "zmq"):
        out = tmp_path / transport
        proc = cmm("backtest", "--config", config, "--out", out, "--transport", transport, "--no-progress")
        assert proc.returncode == 0, proc.stderr
        assert "messages dropped" not in proc.stdout
        outs[transport] = out
    return outs["inproc"], outs["zmq"]


@pytest.mark.parametrize("name", ["backtest_fixed_spread.toml", "backtest_avellaneda_stoikov.toml"])
def test_zmq_results_are_byte_identical_to_inproc(name, tmp_path):
    inproc, zmq_out = both(CONFIGS / name, tmp_path)
    for f in RESULTS:
        assert (inproc / f).read_bytes() == (zmq_out / f).read_bytes(), f
    metrics = json.loads((zmq_out / "metrics.json").read_text())
    assert metrics["n_fills"] > 100
    assert len((zmq_out / "fills.csv").read_text().splitlines()) == metrics["n_fills"] + 1


def test_cmm_with_a_declared_decision_time_is_identical_over_zmq(tmp_path):
    config = config_copy(tmp_path, "backtest_cmm.toml", **{'compute_ns = "measured"': "compute_ns = 200_000"})
    inproc, zmq_out = both(config, tmp_path)
    for f in ("fills.csv", "orders.csv", "ticks.npz", "decisions.npz", "metrics.json"):
        assert (inproc / f).read_bytes() == (zmq_out / f).read_bytes(), f
    metrics = json.loads((zmq_out / "metrics.json").read_text())
    # A declared decision time charges no wall time, so none is reported: the bytes repeat.
    assert metrics["n_fills"] > 0 and "decision_latency_us" not in metrics
    decisions = np.load(zmq_out / "decisions.npz")
    assert len(decisions["ts"]) > 2000 and decisions["weights"].shape[0] == len(decisions["ts"])


def test_a_measured_decision_time_runs_over_zmq(tmp_path):
    """The strategy process times its callbacks and the engine charges that (results differ by design)."""
    config = config_copy(tmp_path, "backtest_fixed_spread.toml", **{"compute_ns = 0 ": 'compute_ns = "measured" '})
    out = tmp_path / "zmq"
    proc = cmm("backtest", "--config", config, "--out", out, "--transport", "zmq", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "metrics.json").read_text())["n_fills"] > 100


# ---- a strategy process that dies or hangs
def _child_of(pid: int, deadline_s: float = 60) -> int:
    """The strategy process the engine started (its one child), once it has started."""
    path = f"/proc/{pid}/task/{pid}/children"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with open(path) as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("the engine started no strategy process")


def _start_slow_run(tmp_path, *extra):
    # 10 ms wake-ups: ten times the steps of the repo config, so the run is still going when we act.
    config = config_copy(tmp_path, "backtest_fixed_spread.toml", **{"every_ns = 100_000_000": "every_ns = 10_000_000"})
    return subprocess.Popen([sys.executable, "-m", "cmm", "backtest", "--config", str(config), "--out",
                             str(tmp_path / "out"), "--transport", "zmq", "--no-progress", *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fault_mid_run(tmp_path, sig: int, *extra: str) -> tuple[str, int]:
    """Send ``sig`` to the strategy process mid-run; the engine's one error line and the child's pid."""
    engine = _start_slow_run(tmp_path, *extra)
    child = _child_of(engine.pid)
    time.sleep(6)
    os.kill(child, sig)
    t0 = time.monotonic()
    out, err = engine.communicate(timeout=60)
    assert time.monotonic() - t0 < 10
    assert engine.returncode == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    return err, child


def test_a_strategy_process_that_dies_mid_run_is_one_line_and_no_hang(tmp_path):
    err, _ = _fault_mid_run(tmp_path, signal.SIGKILL)
    assert err.startswith("cmm: error: transport: the strategy process exited with code -9"), err


def test_a_strategy_process_that_stops_answering_times_out_and_is_reaped(tmp_path):
    err, child = _fault_mid_run(tmp_path, signal.SIGSTOP, "--timeout-s", "2")
    assert "did not answer" in err and "within 2 s" in err, err
    assert not os.path.exists(f"/proc/{child}")       # killed and reaped, not left stopped


def test_timeout_must_be_positive(tmp_path):
    proc = cmm("backtest", "--config", CONFIGS / "backtest_fixed_spread.toml", "--out", tmp_path / "o",
               "--transport", "zmq", "--timeout-s", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--timeout-s must be positive" in proc.stderr


def test_kernel_mode_over_zmq_is_refused_in_one_line(tmp_path):
    config = config_copy(tmp_path, "backtest_fixed_spread.toml", **{'mode = "python"': 'mode = "kernel"'})
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "o", "--transport", "zmq")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "strategy.mode" in proc.stderr


def test_a_strategy_that_fails_to_start_reports_its_one_line(tmp_path):
    config = config_copy(tmp_path, "backtest_cmm.toml", **{"depth_levels = 5": "depth_levels = 10"})
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "o", "--transport", "zmq")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "strategy process:" in proc.stderr and "feature schemas differ" in proc.stderr


# ---- messages that are not trusted
def test_the_engine_drops_garbage_and_other_peers(tmp_path):
    config = str(CONFIGS / "backtest_fixed_spread.toml")
    cfg = load(config)
    strategy = build_strategy(cfg, config)
    events, inst = load_events(cfg)
    sim = make_sim(events, engine_config(cfg, inst.tick_size, inst.lot_size, inst.contract_multiplier))
    ctx = zmq.Context()
    rogue = ctx.socket(zmq.DEALER)
    rogue.setsockopt(zmq.LINGER, 0)
    with StrategyProcess(strategy_command(config), timeout_s=60) as link:
        rogue.connect(link.address)
        rogue.send(b"\xc1 not msgpack")
        rogue.send(encode(Ready(token="0" * 32)))                       # the wrong token
        rogue.send_multipart([b"two", b"frames"])                       # the engine's ROUTER sees three
        link.connect()
        assert link.decoder.dropped["malformed"] == 2 and link.decoder.dropped["unexpected"] == 1
        # A decision for the first step from another peer, with an order in it, arrives first and is dropped.
        lb, _ = SimView(sim).tick_range
        rogue.send(encode(Decision(seq=1, commands=[Command("new", id=1, side=1, tick=lb + 10,
                                                            qty=100.0, tif=1)], compute_ns=0)))
        time.sleep(0.2)
        remote = run_remote(strategy, sim, inst, link)
        assert link.decoder.dropped["unexpected"] == 2
        assert remote.dropped == {"engine": {"malformed": 2, "unexpected": 2}}
    rogue.close()
    ctx.term()
    reference = run_backtest(build_strategy(cfg, config), make_sim(events, engine_config(
        cfg, inst.tick_size, inst.lot_size, inst.contract_multiplier)), inst.tick_size, inst.lot_size)
    assert np.array_equal(remote.result.fills, reference.fills) and len(reference.fills) > 100


def test_the_strategy_process_drops_what_it_cannot_trust():
    """Our real strategy process against an engine written here: garbage and a step out of turn are counted."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    token = "ab" * 16
    proc = subprocess.Popen([sys.executable, "-m", "runtime.link.strategy_process", "--config",
                             str(CONFIGS / "backtest_fixed_spread.toml"), "--connect",
                             router.getsockopt_string(zmq.LAST_ENDPOINT), "--token", token], cwd=REPO)
    decoder = Decoder(messages=ToEngine)
    try:
        assert router.poll(60_000)
        peer, payload = router.recv_multipart()
        assert decoder.decode(payload) == Ready(token=token)

        def step(seq, phase, **kw):
            return WakeUp(seq=seq, phase=phase, now=1_000, reason=0, n=0, rows=b"", fills=[], orders=[],
                          slot_hwm=0, next_id=1, position=0.0, metrics=MetricsView(0.0, 0.0, 0.0, 0, 0.0, 0.0), **kw)

        venue = Venue(tick_size=0.01, lot_size=1.0, lb=50_000, ub=60_000, max_orders=16, ring_size=64)
        router.send_multipart([peer, b"\x92garbage"])
        router.send_multipart([peer, encode(step(7, "wake"))])                      # out of turn
        bad_rows = step(1, "wake")
        bad_rows.n = 1                                                             # n says 1, no bytes
        router.send_multipart([peer, encode(bad_rows)])
        router.send_multipart([peer, encode(step(1, "start", venue=venue))])
        rows = np.zeros(2, dtype=EVENT_DTYPE)
        rows["ev"] = [1 | (1 << 30) | (1 << 29), 1 | (1 << 30) | (1 << 28)]          # a bid and an ask, LOCAL
        rows["px"], rows["qty"], rows["local_ts"] = [550.00, 550.10], [100, 100], [2_000, 2_000]
        answers = [_answer(router, decoder)]
        wake = step(2, "wake")
        wake.reason, wake.n, wake.rows, wake.now = engine.WOKE_TIMER, 2, rows.tobytes(), 2_000
        router.send_multipart([peer, encode(wake)])
        answers.append(_answer(router, decoder))
        router.send_multipart([peer, encode(step(3, "stop"))])
        answers.append(_answer(router, decoder))
        done = _answer(router, decoder)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        router.close()
        ctx.term()
    assert [a.seq for a in answers] == [1, 2, 3]
    # FixedSpread at its timer quotes 2 ticks off the mirror's book: the mirror holds the rows it was sent.
    new = [c for c in answers[1].commands if c.action == "new"]
    bid, ask = quote_ticks(55_000, 55_010, 2)
    assert [(c.id, c.slot, c.side, c.tick, c.qty) for c in new] == [(1, 0, 1, bid, 100.0), (2, 1, -1, ask, 100.0)]
    assert isinstance(done, Finished)
    assert done.dropped == {"malformed": 1, "unexpected": 1, "bad_records": 1}


def _answer(router, decoder):
    assert router.poll(60_000), "the strategy process did not answer"
    _, payload = router.recv_multipart()
    msg = decoder.decode(payload)
    assert msg is not None
    return msg


def test_transport_error_is_a_one_line_data_error():
    e = TransportError("the strategy process exited with code -9 at step 3")
    assert str(e) == "transport: the strategy process exited with code -9 at step 3"


def test_commands_outside_the_engine_codes_are_dropped_not_applied():
    d = Decoder(messages=ToEngine)
    ok = Decision(seq=1, commands=[Command("new", id=1, side=-1, tick=55_000, qty=1.0, tif=3, type=1)], compute_ns=0)
    assert d.decode(encode(ok)) == ok
    for bad in (Command("new", id=1, side=2), Command("new", id=1, side=1, tif=9), Command("bogus"),
                Command("cancel", id=-4)):
        assert d.decode(encode(Decision(seq=1, commands=[bad], compute_ns=0))) is None
    assert d.decode(encode(Decision(seq=1, commands=[], compute_ns=-1))) is None
    assert d.dropped["malformed"] == 5 and d.total_dropped == 5


def test_every_kind_of_order_call_gets_the_same_answers_over_zmq():
    """New (limit, market, rejected post-only), cancel, modify, cancel_all and refusals, from on_fill and
    on_order_update too: the strategy process's answers and views are the in-process ones, call by call."""
    from tests.remote_exerciser import TICK, Exerciser, exerciser_events

    def sim():
        # Cancel answers slower than fills: a cancel that races a fill leaves a finished order whose slot
        # is still held when it leaves the view, so the next order must take another slot on both sides.
        ms = 1_000_000
        return make_sim(exerciser_events(), EngineConfig(tick_size=TICK, lot_size=1.0, latency=LatencyConfig(
            place_entry_ns=ms, place_response_ns=3 * ms, cancel_entry_ns=ms, cancel_response_ns=10 * ms,
            modify_entry_ns=ms, modify_response_ns=ms)))

    here = Exerciser()
    reference = run_backtest(here, sim(), TICK, 1.0)
    with StrategyProcess([sys.executable, "-m", "tests.remote_exerciser"], timeout_s=60) as link:
        remote = run_remote(Exerciser(), sim(), Instrument(symbol="X", tick_size=TICK, lot_size=1.0), link)
    log = here.decision_record()["log"]
    assert np.array_equal(remote.record["log"], log, equal_nan=True)
    assert np.array_equal(remote.result.fills, reference.fills) and np.array_equal(remote.result.orders,
                                                                                   reference.orders)
    what = set(log[:, 1].astype(int))
    assert {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16} <= what, sorted(what)
    assert len(reference.fills) >= 4 and remote.dropped == {}


def test_a_curve_secured_link_gives_the_same_bytes(tmp_path):
    config = CONFIGS / "backtest_fixed_spread.toml"
    plain = tmp_path / "plain"
    secured = tmp_path / "curve"
    for out, extra in ((plain, ()), (secured, ("--curve",))):
        proc = cmm("backtest", "--config", config, "--out", out, "--transport", "zmq", "--no-progress", *extra)
        assert proc.returncode == 0, proc.stderr
    for f in RESULTS:
        assert (plain / f).read_bytes() == (secured / f).read_bytes(), f


def test_the_curve_link_admits_only_the_key_made_for_its_process():
    """A peer with any other key is refused at the handshake: its Ready never reaches the engine."""
    with StrategyProcess([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=2, curve=True) as link:
        server_public = link.curve.keys.public
        ctx = zmq.Context()
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.curve_publickey, rogue.curve_secretkey = zmq.curve_keypair()
        rogue.curve_serverkey = server_public
        rogue.connect(link.address)
        rogue.send(encode(Ready(token=link.token)))
        with pytest.raises(TransportError):
            link.connect()                     # waits for a Ready from the admitted key, and gets none
        assert link.curve.rejected >= 1 and link.curve.accepted == 0
        rogue.close(0)
        ctx.term()


def test_curve_without_the_zmq_transport_is_one_line():
    proc = cmm("backtest", "--config", CONFIGS / "backtest_fixed_spread.toml", "--out", "/tmp/x", "--curve")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--transport zmq" in proc.stderr


def test_a_zero_width_array_from_the_strategy_process_is_dropped_not_trusted():
    from runtime.link.protocol import ArrayView
    bad = Finished(latency_ns=ArrayView(dtype="<U0", shape=[5], data=b""), record=None, dropped={})
    decoder = Decoder(messages=ToEngine)
    assert decoder.decode(encode(bad)) is None and decoder.total_dropped == 1


def _strategy_process(connect: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.link.strategy_process", "--config",
                           str(CONFIGS / "backtest_fixed_spread.toml"), "--connect", connect, "--token", "t"],
                          cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)


def test_the_strategy_process_refuses_a_malformed_link_in_one_line():
    for proc, needle in ((_strategy_process("tcp://127.0.0.1:1", CMM_LINK_CURVE="not,keys"), "CMM_LINK_CURVE"),
                         (_strategy_process("nonsense"), "--connect")):
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
