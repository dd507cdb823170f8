"""``cmm paper``: a strategy on a live ZeroMQ feed, journaled, with a status line and a results directory.

The loop owns the sockets and the clock; :class:`~runtime.paper.trader.PaperTrader`
owns the trading. Each feed event the subscriber reports (a batch in order, a
snapshot resync, a stale feed, the end of the stream) becomes a journal
:class:`~runtime.paper.journal.Step`, is handed to the trader, and is appended
to the journal with its outcome; the journal is fsynced once per poll.

It stops at the end of the stream, after ``--duration`` seconds, or on Ctrl-C
(or SIGTERM), and then writes the same results directory a backtest writes,
plus the feed's statistics in ``metrics.json``. ``--resume`` re-runs the
journal's steps (checking every outcome) and continues after the last one,
with the publisher resending what was missed.
"""
from __future__ import annotations

import gc
import hashlib
import os
import signal
import sys
import time

import msgspec

from analysis.output import write_results
from common.errors import DataError
from common.outdir import check_replaceable
from feeds.zmqfeed import FeedHandlers, Subscriber, SubscriberOptions, request_snapshot, snapshot_address

from runtime.paper import journal as jr
from common.config import ConfigError
from engine.views import QUEUE_MODELS
from runtime.config import PaperConfig, load
from runtime.paper.trader import PaperTrader
from strategies import registry
from common.stats import LatencyStats, latency_us
from runtime.backtest import RunSummary, decision_record, instrument_for, summary_of


class FeedStats(msgspec.Struct, frozen=True):
    """What the feed did during the run (``metrics.json`` ``feed``)."""

    events: int
    batches: int
    gaps: int                   # sequence gaps seen (each resynced from a snapshot)
    unexplained_gaps: int       # gaps whose resync had not completed when the run stopped
    lost_batches: int
    snapshots: int
    restarts: int               # publisher restarts seen
    stale_periods: int
    quotes_pulled: int          # orders cancelled because the feed went stale
    dropped_messages: int       # malformed, oversized or foreign messages, dropped unread
    late_rows: int              # rows whose feed latency exceeded [paper] max_feed_latency_ns
    rewound_rows: int           # rows before the engine's clock (a replaying publisher restarted), dropped
    journaled_steps: int
    replayed_steps: int         # steps re-run from the journal by --resume
    resent_batches: int         # batches the publisher resent to this resumed run


class PaperSummary(RunSummary, frozen=True, omit_defaults=True):
    feed: FeedStats | None = None
    # Wall time from a feed batch's arrival to the orders of the wake-up it made due (us), and from the
    # publisher's send of that batch (same-host clocks); over the wake-ups that sent orders.
    tick_to_order_us: LatencyStats | None = None
    send_to_order_us: LatencyStats | None = None
    rehearsals: int = 0         # decisions rehearsed while the feed was quiet ([paper] rehearse_every_us)
    stopped_by: str = ""        # "end of stream", "duration" or "interrupt"


class Paper(msgspec.Struct):
    summary: PaperSummary
    topic: str
    journal: str
    tick_to_order_ns: list[int] = []    # every reaction measured (bench/tick_to_order.py reads them)
    send_to_order_ns: list[int] = []
    stages_ns: dict[str, list[int]] = {}    # each reaction's time by stage (REACTION_STAGES), in the same order


# A reaction's stages, from the batch's arrival to its wake-up's orders: waiting behind the steps received
# before it, the trader's step (PaperTrader.marks: decoding and checking the rows, ordering them for the
# two timelines, appending them to the engine), then the engine up to the wake-up, and the strategy's
# own stages where it marks them (CMM: strategies.cmm.MARKS), else one "decision" stage; "after" is the
# charge of the decision time to the orders.
TRADER_STAGES = ("queue", "check", "ordering", "append")


def reaction_stages(arrived: int, trader_marks: list[int], strategy, ordered: int) -> list[tuple[str, int]]:
    """One reaction's (stage, ns) in order, up to ``ordered``, the clock when its last order request was in
    the engine; ``strategy.stage_marks()`` (name, clock) pairs, when it has them, give its stages (the
    first, its start, ends the engine's; the one the orders went out in ends at ``ordered``, and what the
    strategy does after its orders, such as keeping its records, is no part of the reaction)."""
    stages = list(zip(TRADER_STAGES, (t - s for s, t in zip([arrived, *trader_marks], trader_marks))))
    marks = strategy.stage_marks() if hasattr(strategy, "stage_marks") else []
    last = trader_marks[-1]
    if not marks or marks[0][1] < last:
        return stages + [("engine and decision", ordered - last)]
    stages.append(("engine", marks[0][1] - last))
    for (_, s), (name, t) in zip(marks, marks[1:]):
        stages.append((name, min(t, ordered) - s))
        if t >= ordered:
            break
    return stages


def journal_path(out_dir: str) -> str:
    """Beside the results directory, which is replaced whole when the run ends."""
    return os.path.abspath(out_dir).rstrip(os.sep) + ".journal"


def run_paper(feed: str, config_path: str, out_dir: str, *, duration: float | None = None,
              resume: bool = False, topic: str | None = None, snapshot_addr: str | None = None,
              journal: str | None = None, status=None, curve=None) -> Paper:
    """Paper-trade the config's strategy on ``feed`` into ``out_dir``; ``curve``: the feed's client keys."""
    cfg = load(config_path, PaperConfig)
    if cfg.strategy.mode != "python":
        raise ConfigError("paper trading runs the strategy's Python class: set mode = \"python\"",
                          path=config_path, field="strategy.mode")
    if QUEUE_MODELS[cfg.queue.model].order_level:
        raise ConfigError(f"queue model {cfg.queue.model!r} follows order-level rows and needs the whole file's "
                          "orders up front: use an L2 model live",
                          path=config_path, field="queue.model")
    with open(config_path, "rb") as f:
        config_text = f.read()
    digest = hashlib.sha256(config_text).hexdigest()
    check_replaceable(out_dir)          # before trading, not after it: a refusal should cost nothing
    journal = journal or journal_path(out_dir)
    try:
        snapshot_addr = snapshot_addr or snapshot_address(feed)
    except ValueError as e:
        raise DataError(str(e), field="--feed") from None
    loop = _Loop(cfg, config_path, topic or cfg.paper.topic, status, curve)
    if resume:
        loop.resume(journal, digest)
    elif os.path.exists(journal):
        raise ConfigError("a journal of an earlier run is there: resume it with --resume, or remove it",
                          path=journal)
    stopped_by = "end of stream"
    gc.freeze()         # what exists now lives for the whole run: no full collection walks it mid-decision
    try:
        if not (loop.trader is not None and loop.trader.ended):
            stopped_by = loop.run(feed, snapshot_addr, journal, digest, duration)
    finally:
        gc.unfreeze()
    result = loop.trader.close()
    strategy = loop.trader.strategy
    summary = summary_of(cfg, result, strategy, PaperSummary, instrument=loop.trader.instrument,
                         feed=loop.feed_stats(), stopped_by=stopped_by,
                         tick_to_order_us=latency_us(loop.reactions[0]),
                         send_to_order_us=latency_us(loop.reactions[1]), rehearsals=loop.rehearsals)
    title = f"paper: {registry.label(cfg.strategy.name)} on {loop.trader.instrument.symbol}"
    write_results(out_dir, result, summary, config_text, title, decision_record(strategy))
    if loop.journal is not None:
        loop.journal.close()
    return Paper(summary=summary, topic=loop.topic, journal=journal, tick_to_order_ns=loop.reactions[0],
                 send_to_order_ns=loop.reactions[1], stages_ns=loop.stages)


class _Loop:
    def __init__(self, cfg: PaperConfig, config_path: str, topic: str | None, status, curve):
        self.cfg = cfg
        self.curve = curve
        self.config_path = config_path
        self.topic = topic
        self.status = status                 # a callable taking the status line, or None
        self.trader: PaperTrader | None = None
        self.journal: jr.Journal | None = None
        self.queue: list[tuple[jr.Step, int, int]] = []   # steps to handle, their arrival and send times
        self.sub: Subscriber | None = None
        self.journaled = 0
        self.replayed = 0
        self.reactions: tuple[list[int], list[int]] = ([], [])   # ns: arrival -> orders, publisher send -> orders
        self.stages: dict[str, list[int]] = {}                    # ns: each reaction's stages (reaction_stages)
        self._arrived = self._sent = None                         # the step being handled: its arrival, its send
        self._requests = 0
        self._clock = 0                                           # the feed's clock, as last queued
        self.rehearsals = 0

    # ---- resuming
    def resume(self, path: str, digest: str) -> None:
        self.journal = jr.Journal(path)      # locked before it is read: a second trader on it is refused here
        header, steps, good = jr.read(path)
        if header.config_sha256 != digest:
            raise ConfigError("the journal was written with another config: resume with the same file",
                              path=path)
        if self.topic is not None and self.topic != header.topic:
            raise ConfigError(f"the journal is of topic {header.topic!r}, not {self.topic!r}", path=path)
        self.topic = header.topic
        self.trader = PaperTrader(self.cfg, self.config_path, header.instrument, on_wake=self._reacted)
        for step in steps:
            self.trader.replay(step)
        self.replayed = self.journaled = len(steps)
        self._clock = self.trader.ordering.last_local or 0
        self.journal.truncate(good)

    # ---- the feed
    def run(self, feed: str, snapshot_addr: str, journal: str, digest: str, duration: float | None) -> str:
        resume = None
        if self.trader is not None and self.trader.seq > 0:
            resume = {self.topic: (self.trader.feed_session, self.trader.seq)}
        stop = {"by": ""}

        def interrupt(signum, frame):
            stop["by"] = "interrupt"

        # Ctrl-C and SIGTERM stop the loop between steps, never inside one.
        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        start = last_status = time.monotonic()
        events_at_status = 0
        rehearse_s = self.cfg.paper.rehearse_every_us / 1e6
        # ZeroMQ's poll sleeps in whole milliseconds: a shorter rehearsal period polls without sleeping.
        wait_s = 0.0 if self.cfg.paper.busy_poll or 0 < rehearse_s < 1e-3 else min(0.05, rehearse_s or 0.05)
        next_rehearsal = start + rehearse_s
        try:
            self.sub = Subscriber(
                feed, [self.topic] if self.topic else None,
                SubscriberOptions(snapshot_addr=snapshot_addr, stale_after=self.cfg.paper.stale_after_s,
                                  keep_book=False, curve=self.curve, resume=resume),
                FeedHandlers(on_events=self._on_events, on_snapshot=self._on_snapshot, on_stale=self._on_stale,
                             on_notice=self._notice, on_end=self._on_end, on_clock=self._on_clock))
        except Exception as e:   # zmq.ZMQError, ValueError: a malformed address
            raise DataError(f"{feed}: {e}", field="--feed") from None
        try:
            while not stop["by"]:
                self.sub.poll(wait_s, early=True)
                if self.trader is None and self.topic is not None:
                    self._open(snapshot_addr, journal, digest)
                acted = self._drain()
                now = time.monotonic()
                if rehearse_s and self.trader is not None:
                    if acted:                    # the step just ran warmed the path: the next rehearsal waits
                        next_rehearsal = now + rehearse_s
                    elif now >= next_rehearsal:
                        self.rehearsals += self.trader.rehearse()
                        next_rehearsal = time.monotonic() + rehearse_s
                if self.trader is not None and self.trader.ended:
                    stop["by"] = "end of stream"
                elif duration is not None and now - start >= duration:
                    stop["by"] = "duration"
                if self.status is not None and now - last_status >= self.cfg.paper.status_every_s:
                    rate = (self.sub.stats.events - events_at_status) / (now - last_status)
                    self.status(self.status_line(rate))
                    last_status, events_at_status = now, self.sub.stats.events
            self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sub.close()
        if self.trader is None:          # nothing ever came: the results of an empty run
            self._open(snapshot_addr, journal, digest, required=False)
        return stop["by"]

    def _open(self, snapshot_addr: str, journal: str, digest: str, required: bool = True) -> None:
        """Start the trader once the topic is known: its instrument comes from the snapshot service."""
        if self.topic is None:
            if not required and self.cfg.instrument.tick_size is not None:
                self.topic = self.cfg.instrument.symbol or "?"
            else:
                raise ConfigError("the feed sent nothing to trade: no topic seen", field="--feed")
        snap = request_snapshot(snapshot_addr, self.topic, curve=self.curve)
        try:
            instrument = instrument_for(self.cfg, snap.instrument if snap is not None else None)
        except ConfigError:
            if required and snap is None:
                return                    # the snapshot service has not answered yet: ask again next poll
            raise ConfigError(f"the feed gave no instrument for {self.topic!r}: set [instrument] tick_size",
                              path=self.config_path, field="instrument.tick_size") from None
        self.trader = PaperTrader(self.cfg, self.config_path, instrument, on_wake=self._reacted)
        os.makedirs(os.path.dirname(os.path.abspath(journal)), exist_ok=True)
        header = jr.JournalHeader(version=jr.JOURNAL_VERSION, config_sha256=digest, topic=self.topic,
                                  instrument=instrument, started_ns=time.time_ns())
        self.journal = jr.Journal(journal, header)

    def _drain(self) -> bool:
        """Run the queued steps; whether there were any."""
        if self.trader is None or not self.queue:
            return False
        for step, arrived, sent in self.queue:
            if self.trader.ended:
                break
            self._arrived, self._sent = arrived, sent
            self.journal.append(self.trader.step(step))
            self.journaled += 1
        self._arrived = self._sent = None
        self.queue.clear()
        self.journal.sync()
        return True

    def _reacted(self) -> None:
        """After a wake-up: if it sent orders, how long after its step's batch arrived (and was sent) the
        last of them was in the paper exchange."""
        sent = self.trader.requests_sent
        if sent != self._requests and self._arrived is not None:
            ordered = self.trader.session.ctx.requested_ns      # the last order request, in the engine
            self.reactions[0].append(ordered - self._arrived)
            if self._sent:
                self.reactions[1].append(time.time_ns() - (time.perf_counter_ns() - ordered) - self._sent)
            for stage, ns in reaction_stages(self._arrived, self.trader.marks, self.trader.strategy, ordered):
                self.stages.setdefault(stage, []).append(ns)
        self._requests = sent

    # ---- subscriber callbacks: each becomes a step
    def _mine(self, topic: str) -> bool:
        if self.topic is None:
            self.topic = topic           # the first topic the feed carries
        return topic == self.topic

    def _on_events(self, topic, events, batch) -> None:
        if self._mine(topic):
            self._clock = max(self._clock, int(events["local_ts"][-1]))   # a heartbeat saying no more is no news
            self._queue(jr.Step(kind="batch", seq=batch.seq, session=batch.session, events=batch.events),
                        batch.sent_ns)

    def _on_snapshot(self, topic, snap, events) -> None:
        if self._mine(topic) and not (snap.seq == 0 and snap.req_id == 0):   # not the empty book at a start
            self._queue(jr.Step(kind="snapshot", seq=snap.seq, session=snap.session, events=snap.events))

    def _on_clock(self, topic, heartbeat) -> None:
        """A quiet market: the feed's clock moved on, so due timers and responses need not wait for a row."""
        if self._mine(topic) and heartbeat.feed_ts > self._clock:
            self._clock = heartbeat.feed_ts
            self._queue(jr.Step(kind="clock", seq=heartbeat.seq, session=heartbeat.session,
                                clock_ns=heartbeat.feed_ts))

    def _on_stale(self, stale: bool) -> None:
        if stale and self.topic is not None:
            seq, session = self._position()
            self._queue(jr.Step(kind="stale", seq=seq, session=session))
            self._notice("feed stale: pulling every quote")

    def _on_end(self, topic) -> None:
        if self._mine(topic):
            seq, session = self._position()
            self._queue(jr.Step(kind="end", seq=seq, session=session))

    def _queue(self, step: jr.Step, sent_ns: int = 0) -> None:
        self.queue.append((step, time.perf_counter_ns(), sent_ns))

    def _position(self) -> tuple[int, int]:
        """The feed position after the last step seen: a stale or end step takes it."""
        if self.queue:
            return self.queue[-1][0].seq, self.queue[-1][0].session
        return (self.trader.seq, self.trader.feed_session) if self.trader is not None else (0, 0)

    def _notice(self, text: str) -> None:
        if self.status is not None:
            self.status(f"notice: {text}")

    # ---- reporting
    def status_line(self, rate: float) -> str:
        s = self.sub.stats
        lag = s.last_lag_ns / 1e6
        if self.trader is None or self.trader.session is None:
            return f"paper: waiting for {self.topic or 'a topic'}; {rate:,.0f} msg/s"
        m = self.trader.session.ctx.metrics()
        pos = self.trader.session.ctx.position
        return (f"paper: PnL {m.epnl:,.2f}  pos {pos:,.6g}  MAP {m.map:,.2f}  RPT {m.rpt:,.4f}  fills {m.n_fills:,}"
                f"  | {rate:,.0f} ev/s  lag {lag:,.1f} ms  gaps {s.gaps}  seq {self.trader.seq}")

    def feed_stats(self) -> FeedStats:
        s = self.sub.stats if self.sub is not None else None
        unsynced = 0
        if self.sub is not None and self.topic in self.sub.streams:
            unsynced = int(not self.sub.streams[self.topic].synced and self.sub.streams[self.topic].recovering)
        trader = self.trader
        return FeedStats(
            events=s.events if s else 0, batches=s.batches if s else 0, gaps=s.gaps if s else 0,
            unexplained_gaps=unsynced, lost_batches=s.lost_batches if s else 0, snapshots=s.snapshots if s else 0,
            restarts=s.restarts if s else 0, stale_periods=s.stale_periods if s else 0,
            quotes_pulled=trader.quotes_pulled, dropped_messages=self.sub.dropped if self.sub else 0,
            late_rows=trader.ordering.late, rewound_rows=trader.rewound, journaled_steps=self.journaled,
            replayed_steps=self.replayed, resent_batches=s.resent_batches if s else 0)


def format_paper(p: Paper) -> str:
    f = p.summary.feed
    return (f"feed: {f.events:,} events in {f.batches:,} batches on {p.topic}; {f.gaps} gaps "
            f"({f.unexplained_gaps} unexplained, {f.lost_batches} batches lost); {f.snapshots} snapshots; "
            f"{f.restarts} publisher restarts; {f.stale_periods} stale periods ({f.quotes_pulled} quotes pulled); "
            f"{f.dropped_messages} messages dropped; {f.late_rows} late rows; {f.rewound_rows} rewound rows\n"
            f"journal: {p.journal} ({f.journaled_steps:,} steps, {f.replayed_steps:,} replayed, "
            f"{f.resent_batches:,} batches resent)\n{_reaction(p.summary)}stopped by {p.summary.stopped_by}")


def _reaction(s: PaperSummary) -> str:
    if s.tick_to_order_us is None:
        return ""
    a, b = s.tick_to_order_us, s.send_to_order_us
    line = f"tick to order: p50 {a.p50:,.1f} us, p99 {a.p99:,.1f} us"
    if b is not None:
        line += f" (from the publisher's send: p50 {b.p50:,.1f} us, p99 {b.p99:,.1f} us)"
    if s.rehearsals:
        line += f"; {s.rehearsals:,} decisions rehearsed between ticks"
    return line + "\n"


def print_status(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
