"""Several backtests side by side (``cmm compare``, ``make demo``): run them, then report them.

Each config runs as ``cmm backtest`` would, into ``OUT/<strategy name>/``
(its full results directory); :func:`analysis.report.write_report` then
writes the table and the HTML report with its plots into ``OUT``.

Every config is loaded before any runs, and everything is written into a
temporary directory that becomes ``OUT`` only when the last report file is
written (:func:`common.outdir.replacing`): a bad config or a failing run leaves
no half-written comparison, and ``OUT`` is replaced only if it is one of ours.
"""
from __future__ import annotations

import os
from pathlib import Path

from analysis.report import Run, write_report
from common.outdir import replacing

from runtime.config import load
from runtime.backtest import run_and_write, strategy_entry
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


def run_all(configs: list[str], out: str, log=print, into: str | None = None) -> list[Run]:
    """Run each config into ``OUT/<label>/``; ``into``: the directory that will become ``out``, written now."""
    runs = []
    for label, config in zip(labels(configs), configs):
        name = label.replace(" ", "_").replace("(", "").replace(")", "")
        directory = os.path.join(into or out, name)
        bt = run_and_write(config, directory)
        log(f"{label}: done ({bt.summary.n_fills} fills) -> {os.path.join(out, name)}")
        runs.append(Run(label=label, config=config, out=directory, summary=bt.summary,
                        latency=bt.summary.decision_latency_us, ticks=bt.result.ticks, decisions=bt.decisions))
    return runs


def compare(configs: list[str], out: str, log=print) -> str:
    """Run every config, write the comparison into ``out``; returns the table."""
    labels(configs)                     # checks every config: a bad one is refused before anything runs
    with replacing(out) as tmp:
        return write_report(tmp, run_all(configs, out, log=log, into=tmp))
