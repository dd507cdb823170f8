"""Several backtests side by side (``cmm compare``, ``make demo``): run them, then report them.

Each config runs as ``cmm backtest`` would, into ``OUT/<strategy name>/``
(its full results directory); :func:`analysis.report.write_report` then
writes the table and the HTML report with its plots into ``OUT``.
"""
from __future__ import annotations

import os
from pathlib import Path

from analysis.report import Run, write_report

from runtime.config import load
from runtime.backtest import run_and_write


def labels(configs: list[str]) -> list[str]:
    """Each config's strategy name; the config's file stem is added where two name the same strategy."""
    names = [load(c).strategy.name for c in configs]
    return [f"{n} ({Path(c).stem})" if names.count(n) > 1 else n for n, c in zip(names, configs)]


def run_all(configs: list[str], out: str, log=print) -> list[Run]:
    runs = []
    for label, config in zip(labels(configs), configs):
        directory = os.path.join(out, label.replace(" ", "_").replace("(", "").replace(")", ""))
        bt = run_and_write(config, directory)
        log(f"{label}: done ({bt.summary.n_fills} fills) -> {directory}")
        runs.append(Run(label=label, config=config, out=directory, summary=bt.summary,
                        latency=bt.summary.decision_latency_us, ticks=bt.result.ticks, decisions=bt.decisions))
    return runs


def compare(configs: list[str], out: str, log=print) -> str:
    """Run every config, write the comparison into ``out``; returns the table."""
    os.makedirs(out, exist_ok=True)
    return write_report(out, run_all(configs, out, log=log))
