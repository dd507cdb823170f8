"""Several backtests side by side (``cmm compare``, ``make demo``): run them, then report them.

Each config runs as ``cmm backtest`` would, into ``OUT/<strategy name>/``
(its full results directory), in parallel processes (:mod:`runtime.jobs`, ``--jobs``); :func:`analysis.report.write_report` then
writes the table and the HTML report with its plots into ``OUT``.

Every config is loaded before any runs, and everything is written into a
temporary directory that becomes ``OUT`` only when the last report file is
written (:func:`common.outdir.replacing`): a bad config or a failing run leaves
no half-written comparison, and ``OUT`` is replaced only if it is one of ours.
"""
from __future__ import annotations

import os
from pathlib import Path

import msgspec
import numpy as np

from analysis.output import DECISIONS
from analysis.report import Run, write_report
from common.errors import DataError
from common.outdir import replacing

from runtime.config import load
from runtime.backtest import RunSummary, run_and_write, strategy_entry
from runtime.jobs import Job, JobResult, run_jobs, warm_worker
from strategies import registry


def labels(configs: list[str]) -> list[str]:
    """Each config's strategy name; the config's file stem is added where two name the same strategy.

    Every config is loaded and its strategy's params checked, so a bad one is refused before any run.
    """
    loaded = [(load(c), c) for c in configs]
    for cfg, path in loaded:
        strategy_entry(cfg, path)
    names = [registry.label(cfg.strategy.name) for cfg, _ in loaded]
    return [f"{n} ({Path(c).stem})" if names.count(n) > 1 else n for n, c in zip(names, configs)]


def backtest_job(out: str, config: str) -> dict:
    """One config run as ``cmm backtest`` would, into ``out`` (a job of :mod:`runtime.jobs`): its fill count."""
    bt = run_and_write(config, out)
    return {"fills": bt.summary.n_fills}


def read_run(label: str, config: str, directory: str) -> Run:
    """A finished run back from its results directory, as the report shows it."""
    with open(os.path.join(directory, "metrics.json"), "rb") as f:
        summary = msgspec.json.decode(f.read(), type=RunSummary)
    with np.load(os.path.join(directory, "ticks.npz")) as z:
        ticks = {k: z[k] for k in z.files}
    decisions = None
    if os.path.exists(os.path.join(directory, DECISIONS)):
        with np.load(os.path.join(directory, DECISIONS)) as z:
            decisions = {k: z[k] for k in z.files}
    return Run(label=label, config=config, out=directory, summary=summary, latency=summary.decision_latency_us,
               ticks=ticks, decisions=decisions)


def run_all(configs: list[str], out: str, log=print, into: str | None = None, jobs: int | None = None,
            progress: bool | None = None, backend=None) -> list[Run]:
    """Run each config into ``OUT/<label>/``, ``jobs`` at a time in their own processes (:mod:`runtime.jobs`);
    ``into``: the directory that will become ``out``, written now. The first failure is raised as one line
    once every run has ended."""
    named = []
    for label, config in zip(labels(configs), configs):
        name = label.replace(" ", "_").replace("(", "").replace(")", "")
        named.append((label, config, name, os.path.join(into or out, name)))

    def report(r: JobResult) -> None:
        label, _, name, _ = named[ids.index(r.id)]
        if r.ok:
            log(f"{label}: done ({r.value['fills']} fills) -> {os.path.join(out, name)}")

    ids = [name for _, _, name, _ in named]
    results = run_jobs([Job(id=name, fn=backtest_job, out=directory, args=(config,))
                        for _, config, name, directory in named], jobs, backend=backend, progress=progress,
                       label="compare", warm=warm_worker,
                       on_result=report)
    for (label, *_), r in zip(named, results):
        if not r.ok:
            raise DataError(f"{label}: {r.error}")
    return [read_run(label, config, directory) for label, config, _, directory in named]


def compare(configs: list[str], out: str, log=print, jobs: int | None = None, backend=None) -> str:
    """Run every config (``jobs`` at a time; default: one per core), write the comparison into ``out``;
    returns the table."""
    labels(configs)                     # checks every config: a bad one is refused before anything runs
    with replacing(out) as tmp:
        return write_report(tmp, run_all(configs, out, log=log, into=tmp, jobs=jobs, backend=backend))
