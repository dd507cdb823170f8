"""The strategy process of ``cmm backtest --transport zmq``: the same Strategy class, over a copy of its view.

The engine (:mod:`runtime.link.engine_side`) starts it as::

    python -m runtime.link.strategy_process --config FILE.toml --connect ADDR --token T

It builds the strategy from the config exactly as the in-process backtest does
(a user's ``package.module:Class`` is imported from the working directory it
inherits from the engine, a ``file.py:Class`` relative to the config; another
program can serve any strategy with :func:`run`),
connects a DEALER socket, says :class:`~runtime.link.protocol.Ready`, then answers every
:class:`~runtime.link.protocol.WakeUp` with a :class:`~runtime.link.protocol.Decision`. The callbacks
run through the in-process backtest's own :class:`~runtime.session.LocalDecisions`
and :class:`~runtime.session.Dispatcher`, over a :class:`RemoteContext`:
the backtest's context on a :class:`~runtime.link.mirror.MirrorSim`, which records
each order call as it answers it. A bad config or bundle is sent back as one
:class:`~runtime.link.protocol.Failed` line; a message it cannot trust is dropped and
counted; it exits when the engine goes away.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import zmq

from common.errors import DataError
from feeds.zmqfeed.security import ClientKeys, secure_client, valid_z85_key
from feeds.events import EVENT_DTYPE
from feeds.zmqfeed.messages import Decoder, encode
from runtime.link.protocol import (Command, Decision, Failed, Finished, Ready, ToStrategy, Venue, WakeUp,
                                   array_view)

from runtime.link import mirror
from runtime.link.mirror import CURVE_ENV, LINK_MAX_BYTES
from engine.codes import BUY
from strategies.api import Fill, Metrics, place
from strategies.ladder import CANCEL, MODIFY
from runtime.session import EngineContext, LocalDecisions

POLL_MS = 500                       # how often a wait checks that the engine is still there


class RemoteContext(EngineContext):
    """The backtest's context over the mirror: reads as the engine's view, order calls kept as commands."""

    def __init__(self, venue: Venue):
        self.mirror = mirror.MirrorSim(venue)
        super().__init__(self.mirror.sim, venue.tick_size, venue.lot_size)
        self.commands: list[Command] = []
        self._step_rows = np.zeros(0, dtype=EVENT_DTYPE)
        self._unread_rows: list[np.ndarray] = []
        self._fills: list[Fill] = []
        self._metrics: Metrics | None = None

    # Order calls must each become a command for the engine: no kernel sends on the mirror by itself.
    on_engine = None

    def take(self, wake: WakeUp) -> None:
        """The engine's view at this step."""
        self._step_rows = self.mirror.load(wake)
        if len(self._step_rows):
            self._unread_rows.append(self._step_rows)
        self._fills = mirror.fills(wake.fills)
        self._metrics = mirror.metrics(wake.metrics)
        self.commands = []

    # ---- views the engine sends
    def metrics(self) -> Metrics:
        return self._metrics

    def new_events(self) -> np.ndarray:
        rows, self._unread_rows = self._unread_rows, []
        return np.concatenate(rows) if rows else np.zeros(0, dtype=EVENT_DTYPE)

    def new_event_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = self.new_events()
        return rows["ev"], rows["local_ts"], rows["px"], rows["qty"]

    def _new_fills(self, now: int) -> list[Fill]:
        fills, self._fills = self._fills, []
        return fills

    def _window(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        rows = self._step_rows[start:stop]
        return rows["ev"], rows["local_ts"], rows["px"], rows["qty"]

    # ---- order calls: answered by the mirror, kept for the engine
    def _submit(self, side: int, price: float, qty: float, tif: str, type: str) -> int:
        oid = super()._submit(side, price, qty, tif, type)
        self.commands.append(self.mirror.command_new(oid))
        return oid

    def cancel(self, order_id: int) -> bool:
        ok = super().cancel(order_id)
        if ok:
            self.commands.append(Command("cancel", id=int(order_id)))
        return ok

    def modify(self, order_id: int, price: float, qty: float) -> bool:
        ok = super().modify(order_id, price, qty)
        if ok:
            self.commands.append(Command("modify", id=int(order_id), tick=self._tick(price), qty=float(qty)))
        return ok

    def send_messages(self, messages: np.ndarray, qty: np.ndarray) -> None:
        """One by one, so that each is kept as a command for the engine; a refused new order is skipped, as
        :func:`strategies.api.place` skips it."""
        tick = self.tick_size
        for (kind, who, t), q in zip(messages.tolist(), qty.tolist()):
            if kind == CANCEL:
                self.cancel(who)
            elif kind == MODIFY:
                self.modify(who, t * tick, q)
            else:
                place(self, "buy" if who == BUY else "sell", t * tick, q)

    def cancel_all(self) -> int:
        n = super().cancel_all()
        if n:
            self.commands.append(Command("cancel_all", count=n))
        return n

    def _clear_inactive(self) -> None:
        super()._clear_inactive()
        self.commands.append(Command("clear"))


class EngineLink:
    """The strategy's end: a DEALER connected to the engine; ``keys`` (ClientKeys) makes it a CURVE client."""

    def __init__(self, address: str, keys: ClientKeys | None = None):
        self.decoder = Decoder(max_bytes=LINK_MAX_BYTES, messages=ToStrategy)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 2000)      # the last answer still leaves if we exit right after it
        if keys is not None:
            secure_client(self.sock, keys)
        self.sock.connect(address)
        self.parent = os.getppid()
        self.seq = 0

    def send(self, msg) -> None:
        self.sock.send(encode(msg))

    def next_wake(self) -> WakeUp | None:
        """The engine's next step; None once the engine has gone away."""
        while True:
            if not self.sock.poll(POLL_MS):
                if os.getppid() != self.parent:
                    return None
                continue
            msg = self.decoder.decode(self.sock.recv())
            if msg is None:
                continue
            if msg.seq != self.seq + 1 or (msg.phase == "start") != (self.seq == 0) or \
                    (msg.phase == "start") != (msg.venue is not None):
                self.decoder.drop("unexpected", f"{msg.phase} step {msg.seq} after step {self.seq}")
                continue
            self.seq = msg.seq
            return msg

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def serve(strategy, link: EngineLink) -> bool:
    """Answer the engine's steps until the stop step; False if the engine went away first."""
    ctx = decisions = None
    while True:
        wake = link.next_wake()
        if wake is None:
            return False
        if wake.phase == "start":
            ctx = RemoteContext(wake.venue)
            decisions = LocalDecisions(ctx, strategy)
        ctx.take(wake)
        ns = 0
        if wake.phase == "start":
            ns = decisions.start()
        elif wake.phase == "wake":
            ns = decisions.wake(wake.reason, 0, wake.n)
        else:
            decisions.stop()
        link.send(Decision(seq=wake.seq, commands=ctx.commands, compute_ns=max(int(ns), 0)))
        if wake.phase == "stop":
            link.send(finished(strategy, link.decoder.dropped))
            return True


def finished(strategy, dropped: dict[str, int]) -> Finished:
    """What the strategy measured and recorded of itself, and what this side dropped."""
    from runtime.backtest import decision_record, own_latency_ns
    latency, record = own_latency_ns(strategy), decision_record(strategy)
    return Finished(latency_ns=None if latency is None else array_view(np.asarray(latency, dtype=np.int64)),
                    record=None if record is None else {k: array_view(v) for k, v in record.items()},
                    dropped={k: v for k, v in dropped.items() if v})


def run(build, address: str, token: str, keys: ClientKeys | None = None) -> int:
    """Connect to the engine, build the strategy (``build()``), say Ready and answer every step; the exit code."""
    try:
        link = EngineLink(address, keys)
    except (ValueError, zmq.ZMQError) as e:       # a malformed address, or keys the socket refuses
        print(f"python -m runtime.link.strategy_process: error: --connect {address}: {e}", file=sys.stderr)
        return 2
    try:
        strategy = build()
        link.send(Ready(token=token))
        return 0 if serve(strategy, link) else 3
    except DataError as e:
        link.send(Failed(error=str(e)[:4096]))
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        link.close()


def link_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments the engine gives every strategy process it starts."""
    p.add_argument("--connect", required=True)
    p.add_argument("--token", required=True)
    return p


def _from_config(path: str):
    from runtime.config import load
    from runtime.backtest import build_strategy
    return build_strategy(load(path), path)


def main(argv: list[str] | None = None) -> int:
    p = link_arguments(argparse.ArgumentParser(prog="python -m runtime.link.strategy_process",
                                               description="the strategy process of cmm backtest --transport zmq"))
    p.add_argument("--config", required=True)
    args = p.parse_args(argv)
    try:
        keys = keys_from_environment()
    except DataError as e:
        print(f"python -m runtime.link.strategy_process: error: {e}", file=sys.stderr)
        return 2
    return run(lambda: _from_config(args.config), args.connect, args.token, keys)


def keys_from_environment() -> ClientKeys | None:
    """The CURVE keys the engine handed this process (``CURVE_ENV``), if it did; DataError if malformed."""
    value = os.environ.pop(CURVE_ENV, None)
    if not value:
        return None
    keys = [part.encode() for part in value.split(",")]   # "," is not a Z85 character
    if len(keys) != 3 or not all(valid_z85_key(k) for k in keys):
        raise DataError("expected three 40-character Z85 keys, comma-separated", field=CURVE_ENV)
    return ClientKeys(public=keys[0], secret=keys[1], server=keys[2])


if __name__ == "__main__":
    sys.exit(main())
