"""``cmm backtest --transport zmq``, the engine's side: the kernel as a simulated exchange for a strategy process.

The engine binds a ROUTER socket on loopback (an ephemeral port), starts the
strategy process (:mod:`runtime.link.strategy_process`) with the config, the address and
a one-time token, and runs the same :class:`~runtime.session.Session` as
the in-process backtest, with :class:`RemoteDecisions` in place of the local
callbacks: at each step it sends one :class:`~runtime.link.protocol.WakeUp` (the local
rows since the previous step, our fills that reached us, every order slot as
the strategy sees it, position, metrics), waits for the
:class:`~runtime.link.protocol.Decision`, and applies its order calls to the kernel at
that step's time, in order, checking each answer (:mod:`runtime.link.mirror`).

Every message is decoded by :class:`feeds.zmqfeed.messages.Decoder`: anything malformed,
of an unexpected type, from another peer or for another step is dropped and
counted (``link.decoder.dropped``), never acted on. A strategy process that
exits, fails or does not answer within ``timeout_s`` ends the run with one
:class:`TransportError` line; the process is always reaped.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import msgspec
import numpy as np
import zmq

from engine import kernel
from analysis.results import RunResult
from engine.state import I_NEXT_ID, Sim
from common.errors import DataError
from feeds.instrument import Instrument
from feeds.zmqfeed.security import CurveServer, ServerKeys
from feeds.zmqfeed.messages import Decoder, encode, pack
from runtime.link.protocol import Decision, Failed, Finished, Ready, ToEngine, WakeUp, to_array

from runtime import session as backtest
from runtime.session import EngineContext, local_rows
from strategies.base import Strategy
from runtime.link.mirror import CURVE_ENV, LINK_MAX_BYTES, apply_commands, fill_views, metrics_view, order_views, venue

LOOPBACK = "tcp://127.0.0.1:*"
TIMEOUT_S = 60.0                  # the longest the engine waits for any one answer (on_start loads models)
POLL_MS = 100                     # how often a wait looks at the strategy process


class TransportError(DataError):
    """The strategy process died, failed or stopped answering."""

    def __init__(self, reason: str):
        super().__init__(reason, field="transport")


def strategy_command(config_path: str) -> list[str]:
    """The strategy process of a config: :mod:`runtime.link.strategy_process` builds its strategy as the backtest does."""
    return [sys.executable, "-m", "runtime.link.strategy_process", "--config", os.path.abspath(config_path)]


class StrategyProcess:
    """The engine's end of the link: a ROUTER bound on loopback and the one strategy process it started.

    ``command`` starts the process (:func:`strategy_command`, or any program that
    serves a strategy with :func:`runtime.link.strategy_process.run`); ``--connect ADDR --token T``
    are appended. With ``curve`` the link is encrypted and authenticated: the
    engine makes a fresh server and client keypair for this run, admits only
    that client key (:class:`feeds.zmqfeed.CurveServer`), and hands the client
    its keys in the environment (:data:`CURVE_ENV`, readable by the process's
    own user only, unlike its command line).
    """

    def __init__(self, command: list[str], *, timeout_s: float | None = None, curve: bool = False):
        self.timeout_s = TIMEOUT_S if timeout_s is None else float(timeout_s)
        self.decoder = Decoder(max_bytes=LINK_MAX_BYTES, messages=ToEngine)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        env = dict(os.environ)
        self.curve: CurveServer | None = None
        if curve:
            server_public, server_secret = zmq.curve_keypair()
            client_public, client_secret = zmq.curve_keypair()
            self.curve = CurveServer(self.ctx, ServerKeys(public=server_public, secret=server_secret,
                                                          clients=frozenset({client_public})))
            self.curve.secure(self.sock)
            env[CURVE_ENV] = b",".join((client_public, client_secret, server_public)).decode()
        self.sock.bind(LOOPBACK)
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.token = secrets.token_hex(16)
        self.peer: bytes | None = None
        self.seq = 0
        self.done = False
        self.proc = subprocess.Popen([*command, "--connect", self.address, "--token", self.token],
                                     stdin=subprocess.DEVNULL, env=env)

    # ---- lifecycle
    def __enter__(self) -> "StrategyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Reap the strategy process (it exits by itself after a whole run; otherwise it is killed) and the socket."""
        try:
            self.proc.wait(timeout=5 if self.done else 0)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close(0)
        if self.curve is not None:
            self.curve.stop()
        self.ctx.term()

    # ---- messages
    def connect(self) -> None:
        """Wait for the strategy process's Ready with our token (once)."""
        if self.peer is None:
            self._wait(lambda m: isinstance(m, Ready) and m.token == self.token, "to start")

    def ask(self, wake: WakeUp) -> Decision:
        self.sock.send_multipart([self.peer, encode(wake)])
        return self._wait(lambda m: isinstance(m, Decision) and m.seq == wake.seq, f"at step {wake.seq}")

    def finished(self) -> Finished:
        msg = self._wait(lambda m: isinstance(m, Finished), "after the last step")
        self.done = True
        return msg

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _wait(self, wanted, what: str):
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"the strategy process did not answer {what} within {self.timeout_s:g} s")
            if self.sock.poll(min(POLL_MS, int(left * 1000) + 1)):
                msg = self._receive()
                if isinstance(msg, Failed):
                    raise TransportError(f"strategy process: {msg.error}")
                if msg is not None and wanted(msg):
                    if self.peer is None:
                        self.peer = self._from
                    return msg
                if msg is not None:
                    self.decoder.drop("unexpected", f"{type(msg).__name__} while waiting for the strategy {what}")
            elif self.proc.poll() is not None:
                raise TransportError(f"the strategy process exited with code {self.proc.returncode} {what}")

    def _receive(self):
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            self.decoder.drop("malformed", f"{len(frames)} frames, expected 2")
            return None
        self._from, payload = frames
        if self.peer is not None and self._from != self.peer:
            self.decoder.drop("unexpected", "a message from another peer")
            return None
        return self.decoder.decode(payload)


class RemoteDecisions:
    """Each step of the :class:`~runtime.session.Session` asked of the strategy process, answered, applied."""

    def __init__(self, link: StrategyProcess, ctx: EngineContext):
        self.link = link
        self.ctx = ctx
        self.result: Finished | None = None

    def _step(self, phase: str, reason: int = 0, start: int = 0, stop: int = 0, with_venue: bool = False) -> int:
        ctx = self.ctx
        S = ctx.sim
        rows = local_rows(S, start, stop)
        now = ctx.now
        wake = WakeUp(seq=self.link.next_seq(), phase=phase, now=now, reason=reason, n=len(rows), rows=pack(rows),
                      fills=fill_views(ctx._new_fills(now)) if phase == "wake" else [], orders=order_views(S),
                      slot_hwm=int(kernel.n_slots(S)), next_id=int(S.ints[I_NEXT_ID]), position=ctx.position,
                      metrics=metrics_view(ctx.metrics()), venue=venue(S) if with_venue else None)
        decision = self.link.ask(wake)
        apply_commands(S, decision.commands)
        return decision.compute_ns

    def start(self) -> int:
        self.link.connect()
        return self._step("start", with_venue=True)

    def wake(self, reason: int, start: int, stop: int) -> int:
        return self._step("wake", reason, start, stop)

    def stop(self) -> None:
        self._step("stop")
        self.result = self.link.finished()


class RemoteRun(msgspec.Struct):
    result: RunResult
    latency_ns: np.ndarray | None
    record: dict[str, np.ndarray] | None
    dropped: dict[str, dict[str, int]]    # messages each side dropped, by reason (only the sides that did)


def run_remote(strategy: Strategy, sim: Sim, instrument: Instrument, link: StrategyProcess, *,
               progress: bool = False) -> RemoteRun:
    """The backtest with its strategy in ``link``'s process; ``strategy`` gives the wake policy and decision
    time (the process builds its own from the same config)."""
    made: list[RemoteDecisions] = []

    def remote(ctx: EngineContext, _strategy: Strategy) -> RemoteDecisions:
        made.append(RemoteDecisions(link, ctx))
        return made[-1]

    result = backtest.run(strategy, sim, instrument.tick_size, instrument.lot_size, progress=progress,
                          decisions=remote)
    done = made[0].result
    engine = {k: v for k, v in link.decoder.dropped.items() if v}
    dropped = {side: d for side, d in (("engine", engine), ("strategy", done.dropped)) if d}
    latency = to_array(done.latency_ns) if done.latency_ns is not None else None
    record = {k: to_array(v) for k, v in done.record.items()} if done.record is not None else None
    return RemoteRun(result=result, latency_ns=latency, record=record, dropped=dropped)
