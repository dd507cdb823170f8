"""The study's jobs: train each dataset per seed, then backtest every method on the held-out test window.

Every job is a :class:`runtime.jobs.Job`, so the study runs ``--jobs`` at a time, resumes (a finished
training run or backtest is skipped), and reports a failed job without stopping the others. The layout
under ``OUT``::

    train/<dataset>/seed<k>/            a ``cmm train`` run directory (bundle/, bundles/, report.json)
    runs/<dataset>/seed<k>/<method>/    a backtest results directory (the CMM family and the teacher)
    runs/<dataset>/<method>/            a backtest of a method that trains nothing (AS, fixed spread)
    configs/<job id>.toml               the exact config each backtest ran

A backtest job reads its test window from its training run's bundle manifest (the split boundaries
``cmm train`` records), so it waits on that run.
"""
from __future__ import annotations

import json
import os
import tomllib

import msgspec
import numpy as np

from common.atomic import atomic_write
from runtime.jobs import Job
from study.config import Dataset, StudyConfig

# method -> (strategy name, the bundle inside a training run, decision time; None: the template's (measured))
TRAINED = {
    "teacher": ("teacher", "bundles/teacher", None),
    "teacher_free": ("teacher", "bundles/teacher", 0),
    "cmm": ("cmm", "bundle", None),
    "single_student": ("single_student", "bundles/single_student", None),
    "cmm_mean": ("cmm_mean", "bundles/mean", None),
    "cmm_gating": ("cmm_gating", "bundles/gate", None),
    "cmm_no_regime": ("cmm_no_regime", "bundles/no_regime", None),
    "cmm_no_layer": ("cmm_no_layer", "bundles/no_layer", None),
}
CLASSIC = ("avellaneda_stoikov", "fixed_spread")
REBATE = ("cmm", "teacher")           # the methods of the rebate row


def train_dir(out: str, ds: str, seed: int) -> str:
    return os.path.join(out, "train", ds, f"seed{seed}")


def seeded(train_config: str, seed: int):
    """The training config with every stage's seed set to ``seed``."""
    from cmm_models import config as train_cfg

    cfg = train_cfg.load(train_config)
    r = msgspec.structs.replace
    return r(cfg, teacher=r(cfg.teacher, seed=seed), probe=r(cfg.probe, seed=seed),
             distill=r(cfg.distill, seed=seed), moe=r(cfg.moe, seed=seed))


def test_span(run: str, cfg) -> list[int]:
    """The test split's first and last timestamp (ns): from the bundle manifest's training record, else
    (a bundle exported before it kept one) from the dataset itself."""
    with open(os.path.join(run, "bundle", "manifest.json"), "rb") as f:
        manifest = json.loads(f.read())
    training = manifest.get("training")
    if training and "test" in training.get("splits", {}):
        return [int(t) for t in training["splits"]["test"]]
    from cmm_models.pipeline import prepare

    prep = prepare(cfg)
    ts = prep.data.decision_ts[prep.data.test]
    return [int(ts[0]), int(ts[-1])]


def train_job(out: str, train_config: str, seed: int) -> dict:
    """One training run (resumable stage by stage); its test window and the report's test-split R²."""
    import torch

    from cmm_models import pipeline

    cfg = seeded(train_config, seed)
    torch.set_num_threads(1)           # results repeat byte for byte at one thread, whatever else runs
    pipeline.train(cfg, out, config_path=train_config, log=lambda line: None)
    report = {}
    path = os.path.join(out, "report.json")
    if os.path.exists(path):
        with open(path, "rb") as f:
            report = json.loads(f.read())
    return {"test": test_span(out, cfg), "r2": report.get("r2"), "occupancy": report.get("occupancy")}


def backtest_config(ds: Dataset, method: str, window: list[int], bundle: str | None, maker: float,
                    episode_s: float, files: list[str]) -> dict:
    """The backtest config (as TOML's dict) of ``method`` on ``ds``'s test window."""
    with open(ds.backtest.cmm, "rb") as f:
        cfg = tomllib.load(f)
    if method in CLASSIC:
        template = getattr(ds.backtest, method)
        with open(template, "rb") as f:
            cfg["strategy"] = tomllib.load(f)["strategy"]
    else:
        name, _, compute_ns = TRAINED[method]
        cfg["strategy"]["name"] = name
        cfg["strategy"]["params"]["bundle"] = bundle
        with open(ds.train, "rb") as f:       # the bundle's features are the training config's
            features = tomllib.load(f).get("features")
        if features is not None:
            cfg["strategy"]["params"]["features"] = features
        if compute_ns is not None:
            cfg["strategy"]["compute_ns"] = compute_ns
        if name != "cmm":            # batched inference is CMM's; its variants and the teacher decide per tick
            cfg["strategy"]["params"].pop("inference", None)
            cfg["strategy"]["params"].pop("batch", None)
    cfg["data"] = {"files": files, "start": int(window[0]), "end": int(window[1]), "timezone": ds.timezone}
    cfg.setdefault("fees", {})["maker"] = maker
    cfg["metrics"] = {"episode_s": episode_s}
    return cfg


def backtest_job(out: str, config_path: str, config: dict, train_run: str | None, method: str) -> dict:
    """Write the config, run it into ``out``, and return what the study aggregates."""
    from runtime.backtest import run_and_write

    if train_run is not None:          # the window and the bundle come from the training run
        with open(os.path.join(train_run, ".cmm-job.json"), "rb") as f:
            trained = json.loads(f.read())["value"]
        config = dict(config, data=dict(config["data"], start=trained["test"][0], end=trained["test"][1]))
    with atomic_write(config_path) as f:
        f.write(msgspec.toml.encode(config))
    bt = run_and_write(config_path, out)
    s = bt.summary
    ticks = bt.result.ticks
    items = s.episodes.items
    return {
        "method": method,
        "epnl": s.epnl, "map": s.map, "pnlmap": s.pnlmap, "rpt": s.rpt, "n_fills": s.n_fills, "fees": s.fees,
        "max_drawdown": s.max_drawdown,
        "latency_us": None if s.decision_latency_us is None else [s.decision_latency_us.p50,
                                                                   s.decision_latency_us.p99],
        "episodes": {
            "start_ts": [e.start_ts for e in items], "epnl": [e.epnl for e in items], "map": [e.map for e in items],
            "pnlmap": [e.pnlmap for e in items], "rpt": [e.rpt for e in items], "n_fills": [e.n_fills for e in items],
            "vol": episode_vol(ticks["ts"], ticks["mid"], [e.start_ts for e in items], [e.end_ts for e in items]),
        },
        "weights": regime_weights(bt.decisions),
        "out_of_range_share": getattr(s, "out_of_range_share", None),
        "in_sample": getattr(s, "in_sample", None),
    }


def shock_job(out: str, files: list[str], train_run: str, at: float, move_bp: float, duration_ns: int) -> dict:
    """A copy of the dataset with the flash move inside its test window, as an event file ``out/shocked.npz``."""
    import feeds
    from feeds.readers.base import no_progress
    from feeds.store import write
    from study.shock import inject

    with open(os.path.join(train_run, ".cmm-job.json"), "rb") as f:
        t0, t1 = json.loads(f.read())["value"]["test"]
    conv = feeds.read(files, feeds.resolve_format(files, "auto"), feeds.ReadOptions(progress=no_progress))
    ev, tick = conv.events, conv.instrument.tick_size
    t = int(t0 + at * (t1 - t0))
    duration_ns = min(duration_ns, (t1 - t) // 2)     # a short test window (a capture of minutes) keeps it inside
    i = int(np.searchsorted(ev["exch_ts"], t))
    mids = ev["px"][max(i - 2000, 0):i]
    mid = float(np.median(mids[mids > 0])) if (mids > 0).any() else 0.0
    ticks = max(1, int(round(mid * move_bp / 1e4 / tick)))
    shocked = inject(ev, t, ticks, duration_ns, tick)
    os.makedirs(out, exist_ok=True)
    with atomic_write(os.path.join(out, SHOCKED)) as f:
        write(f, shocked, conv.instrument, conv.meta)
    return {"t": t, "ticks": ticks, "move": ticks * tick, "duration_ns": duration_ns, "price": mid}


SHOCKED = "shocked.npz"


def episode_vol(ts: np.ndarray, mid: np.ndarray, starts: list[int], ends: list[int]) -> list[float]:
    """Each episode's realized volatility: the root sum of squared log mid changes over its ticks."""
    ok = np.isfinite(mid) & (mid > 0)
    ts, logmid = ts[ok], np.log(mid[ok])
    out = []
    for a, b in zip(starts, ends):
        x = logmid[(ts >= a) & (ts < b)]
        out.append(float(np.sqrt(np.sum(np.diff(x) ** 2))) if len(x) > 1 else 0.0)
    return out


def regime_weights(decisions: dict | None) -> dict | None:
    """The MoE's mean weight per expert in each regime over the run's decisions (None without a record)."""
    if not decisions or "weights" not in decisions or "regime" not in decisions:
        return None
    w, regime = decisions["weights"], decisions["regime"]
    names = [str(n) for n in decisions.get("expert_names", [])]
    if w.ndim != 2 or len(names) != w.shape[1]:
        return None
    by = {}
    for r, label in enumerate(("low", "mid", "high")):
        rows = (regime == r) & np.all(np.isfinite(w), axis=1)
        if rows.any():
            by[label] = {"n": int(rows.sum()), "mean": [float(v) for v in w[rows].mean(axis=0)]}
    return {"experts": names, "by_regime": by}


def plan(cfg: StudyConfig, out: str) -> list[Job]:
    """Every job of the study, training before the backtests that read it."""
    jobs = []
    for ds in cfg.datasets:
        from cmm_models import config as train_cfg

        files = train_cfg.load(ds.train).data.files
        for seed in cfg.seeds:
            run = train_dir(out, ds.name, seed)
            jobs.append(Job(id=f"train/{ds.name}/seed{seed}", fn=train_job, out=run, args=(ds.train, seed),
                            key=f"{ds.train}:{seed}"))
        trained = [m for m in cfg.methods if m in TRAINED]
        rows = [(m, cfg.maker_fee, m) for m in trained]
        rows += [(f"{m}+rebate", cfg.rebate, m) for m in REBATE if m in trained]
        for seed in cfg.seeds:
            run = train_dir(out, ds.name, seed)
            for label, maker, method in rows:
                job_id = f"run/{ds.name}/seed{seed}/{label}"
                config = backtest_config(ds, method, [0, 0], os.path.join(run, TRAINED[method][1]), maker,
                                         ds.episode_s or cfg.episode_s, files)
                jobs.append(Job(id=job_id, fn=backtest_job, out=os.path.join(out, "runs", ds.name, f"seed{seed}", label),
                                args=(os.path.join(out, "configs", job_id.replace("/", "_") + ".toml"), config, run,
                                      label),
                                after=(f"train/{ds.name}/seed{seed}",), key=_key(config)))
        if cfg.shock.enabled:
            jobs += shock_jobs(cfg, ds, out, files)
        for method in (m for m in cfg.methods if m in CLASSIC):
            if getattr(ds.backtest, method) is None:
                continue
            seed = cfg.seeds[0]              # the window is the data's, the same for every seed
            run = train_dir(out, ds.name, seed)
            config = backtest_config(ds, method, [0, 0], None, cfg.maker_fee, ds.episode_s or cfg.episode_s, files)
            job_id = f"run/{ds.name}/{method}"
            jobs.append(Job(id=job_id, fn=backtest_job, out=os.path.join(out, "runs", ds.name, method),
                            args=(os.path.join(out, "configs", job_id.replace("/", "_") + ".toml"), config, run,
                                  method),
                            after=(f"train/{ds.name}/seed{seed}",), key=_key(config)))
    return jobs


def shock_jobs(cfg: StudyConfig, ds: Dataset, out: str, files: list[str]) -> list[Job]:
    """The shocked copy of ``ds`` and the first seed's backtests of the shock's methods on it."""
    sh, seed = cfg.shock, cfg.seeds[0]
    run = train_dir(out, ds.name, seed)
    where = os.path.join(out, "shock", ds.name)
    jobs = [Job(id=f"shock/{ds.name}", fn=shock_job, out=where,
                args=(files, run, sh.at, sh.move_bp, int(sh.duration_s * 1e9)), after=(f"train/{ds.name}/seed{seed}",),
                key=_key([files, sh.at, sh.move_bp, sh.duration_s]))]
    shocked = [os.path.join(where, SHOCKED)]
    for method in sh.methods:
        if method in CLASSIC and getattr(ds.backtest, method) is None or method not in cfg.methods:
            continue
        bundle = os.path.join(run, TRAINED[method][1]) if method in TRAINED else None
        config = backtest_config(ds, method, [0, 0], bundle, cfg.maker_fee, ds.episode_s or cfg.episode_s, shocked)
        job_id = f"shockrun/{ds.name}/seed{seed}/{method}"
        jobs.append(Job(id=job_id, fn=backtest_job, out=os.path.join(where, method),
                        args=(os.path.join(out, "configs", job_id.replace("/", "_") + ".toml"), config, run, method),
                        after=(f"shock/{ds.name}", f"train/{ds.name}/seed{seed}"), key=_key(config)))
    return jobs


def _key(config) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
