"""``cmm sweep``: one backtest config, varied over a grid (or random or optuna draws) of its keys, crossed
with data sets (days or instruments), run as jobs (:mod:`runtime.jobs`), and tabulated.

A sweep file names a base backtest config and what to vary::

    base = "backtest_fixed_spread.toml"          # relative to this file
    metric = "epnl"                              # what "best" means (a metrics.json field)
    [params]                                     # any config key, dotted; a list is the values to try
    "strategy.params.half_spread_ticks" = [1, 2, 3]
    "strategy.wake.every_ns" = [50_000_000, 100_000_000]
    [data]                                       # optional: data sets crossed with the params
    sets = [["day1.npz"], ["day2.npz"]]

Every combination of the lists (``search.method = "grid"``) runs on every data set. ``random`` draws
``search.samples`` parameter sets (a list: one of its values; ``{low, high}``: uniform, ``int = true``
whole numbers, ``log = true`` on a log scale) from ``search.seed``; ``optuna`` (where installed) asks
optuna's seeded TPE sampler for ``search.samples`` sets, ``search.batch`` at a time, each scored by its
mean over the data sets. Each job writes a full results directory, ``OUT/jobs/<id>/``.

The outputs, in ``OUT``: ``results.csv`` (a row per job: its data set, its parameters, its metrics,
in the sweep's own order), ``best.csv`` (the parameter sets by the metric's mean over the data sets,
with its spread: std, min and max across them, so a choice is not one lucky day), ``heatmap.png`` when
two parameters vary on a grid, and ``walk_forward.csv`` with ``walk_forward = true``: the set best on
data set d scored on data set d + 1, out of sample. The same sweep gives the same files whoever runs
the jobs, and a job already complete (its marker in its directory, with the same inputs) is not run
again: delete one job's directory and only that job reruns. ``OUT`` is one the sweep may resume in
(:func:`common.outdir.claim_resumable`): absent, empty, or a sweep's own; anything else is refused.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import os
import random
from typing import Any, Literal

import msgspec

from common import config as tomlconfig
from common.atomic import atomic_write
from common.config import ConfigError, PositiveInt, Table
from common.outdir import claim_resumable
from runtime import config as backtest_config
from runtime.backtest import strategy_entry
from runtime.jobs import Job, JobResult, failures, run_jobs, warm_worker

METRICS = ("epnl", "map", "rpt", "pnlmap", "n_fills", "volume", "fees", "final_position", "sharpe", "max_drawdown",
           "quoted_bid_share", "quoted_ask_share", "ticks")


class Range(Table):
    """A parameter drawn from ``[low, high]`` (random and optuna searches)."""

    low: float
    high: float
    int: bool = False
    log: bool = False


class Search(Table):
    method: Literal["grid", "random", "optuna"] = "grid"
    samples: PositiveInt = 16          # random / optuna: parameter sets drawn
    seed: int = 0
    batch: PositiveInt = 4             # optuna: sets asked for at once (fixed, so results do not depend on --jobs)


class DataSets(Table):
    sets: list[list[str]]              # each a list of files, relative to the sweep file
    names: list[str] | None = None     # default: the first file's stem


class SweepConfig(Table, kw_only=True):
    base: str
    params: dict[str, list[Any] | Range]
    data: DataSets | None = None       # default: the base config's own files, one set
    metric: str = "epnl"
    maximize: bool = True
    walk_forward: bool = False
    top: PositiveInt = 5
    search: Search = Search()


class Sweep(msgspec.Struct):
    path: str
    cfg: SweepConfig
    base_path: str
    base_raw: dict
    sets: list[tuple[str, list[str]]]      # (name, absolute files)


def load(path: str) -> Sweep:
    """Read and check a sweep file and its base config; every problem is a ConfigError naming the key."""
    cfg = tomlconfig.load(path, SweepConfig)
    if cfg.metric not in METRICS:
        raise ConfigError(f"unknown metric {cfg.metric!r}; expected one of {', '.join(METRICS)}", path=path,
                          field="metric")
    if not cfg.params:
        raise ConfigError("nothing to vary: give [params] a key", path=path, field="params")
    for key, values in cfg.params.items():
        if isinstance(values, Range):
            if cfg.search.method == "grid":
                raise ConfigError("a grid needs a list of values, not a range", path=path, field=f"params.{key}")
            if not values.low < values.high or values.log and values.low <= 0:
                raise ConfigError("expected low < high (and low > 0 on a log scale)", path=path, field=f"params.{key}")
        elif not values:
            raise ConfigError("expected at least one value", path=path, field=f"params.{key}")
        if key.split(".")[0] == "data":
            raise ConfigError("data files are varied by [data] sets, not by a parameter", path=path,
                              field=f"params.{key}")
    base_path = tomlconfig.resolve(path, cfg.base)
    base = backtest_config.load(base_path)
    with open(base_path, "rb") as f:
        base_raw = msgspec.toml.decode(f.read())
    if cfg.data is None:
        sets = [("base", list(base.data.files))]
    else:
        names = cfg.data.names or [os.path.splitext(os.path.basename(s[0]))[0] if s else "?" for s in cfg.data.sets]
        if len(names) != len(cfg.data.sets) or len(set(names)) != len(names) or any(not s for s in cfg.data.sets):
            raise ConfigError("expected one distinct name per non-empty data set", path=path, field="data.names")
        sets = [(n, [tomlconfig.resolve(path, f) for f in files]) for n, files in zip(names, cfg.data.sets)]
    if cfg.walk_forward and len(sets) < 2:
        raise ConfigError("walk-forward needs at least two data sets", path=path, field="walk_forward")
    return Sweep(path=path, cfg=cfg, base_path=base_path, base_raw=base_raw, sets=sets)


# ---- the jobs

def _set(raw: dict, key: str, value) -> dict:
    """A copy of the TOML table ``raw`` with the dotted ``key`` set."""
    out = msgspec.toml.decode(msgspec.toml.encode(raw))
    table = out
    *parents, leaf = key.split(".")
    for name in parents:
        table = table.setdefault(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name!r} is not a table", field=key)
    table[leaf] = value
    return out


def config_text(sweep: Sweep, params: dict[str, Any], files: list[str]) -> bytes:
    """The job's config: the base with ``params`` set and the data set's files (absolute paths)."""
    raw = sweep.base_raw
    for key, value in params.items():
        raw = _set(raw, key, value)
    raw = _set(raw, "data.files", files)
    return msgspec.toml.encode(raw)


def parse(text: bytes, base_path: str, where: str = "") -> backtest_config.BacktestConfig:
    """A job's config text as the base config's loader reads it (paths relative to the base config)."""
    return backtest_config.load(base_path, text=text, where=where)


def sweep_job(out: str, text: bytes, base_path: str) -> dict:
    """One backtest of the sweep (a job of :mod:`runtime.jobs`): its results directory and its metrics."""
    from analysis.output import write_results
    from runtime import backtest
    cfg = parse(text, base_path)
    bt = backtest.run_config(cfg, base_path)
    write_results(out, bt.result, bt.summary, text, f"{cfg.strategy.name} on {bt.instrument.symbol}", bt.decisions)
    s = msgspec.structs.asdict(bt.summary)
    return {**{m: s[m] for m in METRICS}, "gaps": len(bt.summary.gaps or [])}


def _id(params: dict[str, Any], set_name: str) -> str:
    """A job's stable name: its data set and a digest of its parameters (the same on every run)."""
    digest = hashlib.sha256(msgspec.json.encode(sorted(params.items()))).hexdigest()[:12]
    return f"{set_name}-{digest}"


def _key(text: bytes, base_path: str, files: list[str]) -> str:
    """The job's inputs: its config, and each data file's size and modification time."""
    h = hashlib.sha256(text + base_path.encode())
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{f}:missing".encode())
    return h.hexdigest()


def jobs_for(sweep: Sweep, param_sets: list[dict[str, Any]], out: str) -> list[Job]:
    """A job per parameter set per data set, each config checked here, before any runs."""
    jobs = []
    for params in param_sets:
        for name, files in sweep.sets:
            text = config_text(sweep, params, files)
            try:
                strategy_entry(parse(text, sweep.base_path, where=sweep.path), sweep.base_path)
            except ConfigError as e:
                raise ConfigError(f"{e} (with {_describe(params)})", path=sweep.path) from None
            job_id = _id(params, name)
            jobs.append(Job(id=job_id, fn=sweep_job, out=os.path.join(out, "jobs", job_id),
                            args=(text, sweep.base_path), key=_key(text, sweep.base_path, files)))
    return jobs


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in params.items())


# ---- the parameter sets

def grid(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(params)
    return [dict(zip(keys, values)) for values in itertools.product(*(params[k] for k in keys))]


def _draw(rng: random.Random, space) -> Any:
    if isinstance(space, list):
        return space[rng.randrange(len(space))]
    if space.log:
        x = math.exp(rng.uniform(math.log(space.low), math.log(space.high)))
    else:
        x = rng.uniform(space.low, space.high)
    return int(round(x)) if space.int else x


def random_sets(params: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """``samples`` distinct draws (at most as many as a finite space holds), the same for the same seed."""
    rng = random.Random(seed)
    out, seen = [], set()
    for _ in range(samples * 20):
        p = {k: _draw(rng, space) for k, space in params.items()}
        tag = msgspec.json.encode(sorted(p.items()))
        if tag not in seen:
            seen.add(tag)
            out.append(p)
        if len(out) == samples:
            break
    return out


class Outcome(msgspec.Struct):
    params: list[dict[str, Any]]
    rows: list[dict[str, Any]]            # a row per job, in order
    results: list[JobResult]


def _rows(sweep: Sweep, param_sets: list[dict[str, Any]], results: list[JobResult]) -> list[dict[str, Any]]:
    rows, k = [], 0
    for params in param_sets:
        for name, _ in sweep.sets:
            r = results[k]
            k += 1
            row = {"job": r.id, "data": name, **params}
            row.update({m: (r.value or {}).get(m) for m in (*METRICS, "gaps")})
            row["error"] = r.error or ""
            rows.append(row)
    return rows


def run(sweep: Sweep, out: str, jobs: int | None = None, backend=None, progress: bool | None = None,
        log=print) -> Outcome:
    """Run the sweep's jobs (skipping those complete) and return a row per job."""
    s = sweep.cfg.search

    def execute(param_sets):
        def report(r: JobResult):
            if r.status == "failed":
                log(f"{r.id}: failed: {r.error}")
        todo = jobs_for(sweep, param_sets, out)       # every job's config checked before the directory is made
        claim_resumable(out, "sweep")
        return run_jobs(todo, jobs, backend=backend, progress=progress, label="sweep", warm=warm_worker,
                        on_result=report)

    if s.method == "grid":
        param_sets = grid(sweep.cfg.params)
        results = execute(param_sets)
    elif s.method == "random":
        param_sets = random_sets(sweep.cfg.params, s.samples, s.seed)
        results = execute(param_sets)
    else:
        param_sets, results = _optuna(sweep, execute)
    return Outcome(params=param_sets, rows=_rows(sweep, param_sets, results), results=results)


def _optuna(sweep: Sweep, execute) -> tuple[list[dict[str, Any]], list[JobResult]]:
    """optuna's seeded TPE, ``batch`` sets at a time, each scored by its metric's mean over the data sets."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("\"optuna\" needs optuna, an optional extra: pip install 'cmm-engine[optuna]'",
                          path=sweep.path, field="search.method") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s, cfg = sweep.cfg.search, sweep.cfg
    study = optuna.create_study(direction="maximize" if cfg.maximize else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=s.seed))
    param_sets, results, asked = [], [], 0
    n_sets = len(sweep.sets)

    def score(k: int):
        values = [r.value[cfg.metric] for r in results[k * n_sets:(k + 1) * n_sets]
                  if r.ok and r.value.get(cfg.metric) is not None]
        return sum(values) / len(values) if values else None

    # A small space makes the sampler propose a set again: it is told the known score, and not run twice.
    while len(param_sets) < s.samples and asked < 20 * s.samples:
        trials = [study.ask() for _ in range(min(s.batch, s.samples - len(param_sets)))]
        asked += len(trials)
        sets = [{k: _suggest(t, k, space) for k, space in cfg.params.items()} for t in trials]
        where = []
        for p in sets:
            if p not in param_sets:
                param_sets.append(p)
            where.append(param_sets.index(p))
        results = execute(param_sets)          # the sets before are complete: skipped, not rerun
        for t, k in zip(trials, where):
            value = score(k)
            if value is None:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, value)
    return param_sets, results


def _suggest(trial, key: str, space):
    if isinstance(space, list):
        return space[trial.suggest_categorical(key, list(range(len(space))))]
    if space.int:
        return trial.suggest_int(key, int(math.ceil(space.low)), int(math.floor(space.high)), log=space.log)
    return trial.suggest_float(key, space.low, space.high, log=space.log)


# ---- the reports

def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else repr(r[c]) if isinstance(r[c], float) else r[c] for c in columns])
    return out.getvalue()


def best(sweep: Sweep, outcome: Outcome) -> list[dict[str, Any]]:
    """Each parameter set's metric across the data sets (mean, std, min, max), best first."""
    metric, n_sets = sweep.cfg.metric, len(sweep.sets)
    out = []
    for k, params in enumerate(outcome.params):
        rows = outcome.rows[k * n_sets:(k + 1) * n_sets]
        values = [r[metric] for r in rows if r[metric] is not None]
        if not values:
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        out.append({**params, f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_min": min(values),
                    f"{metric}_max": max(values), "sets": len(values)})
    sign = -1 if sweep.cfg.maximize else 1
    return sorted(out, key=lambda r: sign * r[f"{metric}_mean"])   # stable: ties keep the sweep's order


def walk_forward(sweep: Sweep, outcome: Outcome) -> list[dict[str, Any]]:
    """For each data set d but the last: the set best on d, and its metric on d + 1 (out of sample)."""
    metric, names = sweep.cfg.metric, [n for n, _ in sweep.sets]
    sign = -1 if sweep.cfg.maximize else 1
    out = []
    for d in range(len(names) - 1):
        on_d = [(k, r) for k, r in enumerate(outcome.rows) if r["data"] == names[d] and r[metric] is not None]
        if not on_d:
            continue
        k, chosen = min(on_d, key=lambda kr: sign * kr[1][metric])
        params = outcome.params[k // len(names)]
        nxt = outcome.rows[(k // len(names)) * len(names) + d + 1]
        out.append({"chosen_on": names[d], "scored_on": names[d + 1], **params,
                    f"{metric}_in_sample": chosen[metric], f"{metric}_out_of_sample": nxt[metric]})
    return out


def heatmap(sweep: Sweep, outcome: Outcome, path: str) -> bool:
    """The metric's mean over the data sets on the two varied keys of a grid; False when not two-dimensional."""
    varied = [k for k, v in sweep.cfg.params.items() if isinstance(v, list) and len(v) > 1]
    if sweep.cfg.search.method != "grid" or len(varied) != 2:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    (ky, kx), metric = varied, sweep.cfg.metric
    xs, ys = sweep.cfg.params[kx], sweep.cfg.params[ky]
    means = {(tuple(r[k] for k in (ky, kx))): r[f"{metric}_mean"] for r in best(sweep, outcome)}
    z = np.array([[means.get((y, x), np.nan) for x in xs] for y in ys], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(xs), 1.4 + 0.8 * len(ys)))
    im = ax.imshow(z, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(kx)
    ax.set_ylabel(ky)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(z[i, j]):
                ax.text(j, i, f"{z[i, j]:.4g}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label=f"{metric}, mean over {len(sweep.sets)} data set(s)")
    ax.set_title(f"sweep: {metric}")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return True


def write(sweep: Sweep, outcome: Outcome, out: str) -> dict[str, str]:
    """results.csv, best.csv, walk_forward.csv and heatmap.png into ``out``; returns the tables as Markdown."""
    from analysis.report import markdown
    keys = list(sweep.cfg.params)
    os.makedirs(out, exist_ok=True)
    columns = ["job", "data", *keys, *METRICS, "gaps", "error"]
    with atomic_write(os.path.join(out, "results.csv"), "w") as f:
        f.write(_csv(outcome.rows, columns))
    shown = [sweep.cfg.metric] + [m for m in ("epnl", "map", "n_fills", "sharpe") if m != sweep.cfg.metric]
    tables = {"results": markdown(outcome.rows, ["data", *keys, *shown], ",.6g")}
    ranked = best(sweep, outcome)
    if ranked:
        cols = [*keys, *[c for c in ranked[0] if c not in keys]]
        with atomic_write(os.path.join(out, "best.csv"), "w") as f:
            f.write(_csv(ranked, cols))
        tables["best"] = markdown(ranked[:sweep.cfg.top], cols, ",.6g")
    if sweep.cfg.walk_forward:
        wf = walk_forward(sweep, outcome)
        if wf:
            cols = list(wf[0])
            with atomic_write(os.path.join(out, "walk_forward.csv"), "w") as f:
                f.write(_csv(wf, cols))
            tables["walk forward"] = markdown(wf, cols, ",.6g")
    heatmap(sweep, outcome, os.path.join(out, "heatmap.png"))
    return tables


def sweep(path: str, out: str, jobs: int | None = None, ray: str | None = None, progress: bool | None = None,
          log=print) -> tuple[Outcome, dict[str, str]]:
    """``cmm sweep``: load, run, write; a failed job is reported in its row and in a line, the rest go on."""
    s = load(path)
    backend = None
    if ray is not None:
        from runtime.jobs_ray import backend as ray_backend
        backend = ray_backend(ray, jobs)
    outcome = run(s, out, jobs, backend=backend, progress=progress, log=log)
    tables = write(s, outcome, out)
    if any(not r.ok for r in outcome.results):
        log(failures(outcome.results))
    return outcome, tables
