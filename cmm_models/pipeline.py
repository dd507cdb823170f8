"""``cmm train``: teacher -> probe -> distill -> MoE -> export, as resumable stages under one directory.

Each stage writes one subdirectory of the output directory (``teacher/``,
``probe/``, ``students/``, ``moe/``, ``bundles/``, ``bundle/``). ``bundle/`` is
the main model (the Hájek MoE); ``bundles/<variant>/`` holds one more verified
bundle per model a strategy compares it with: ``single_student``, ``mean``,
``gate``, ``no_regime``, ``no_layer`` and ``teacher`` (the transformer itself,
traced). The main bundle comes last, so a run whose ``bundle/`` is current is
complete. It is built in a hidden
temporary directory beside it and renamed into place when complete, so a stage
directory that exists is whole. Its ``stage.json`` holds a key: the sha256 of
the stage's own config, the data files' bytes and the keys of the stages it
reads; it is kept in ``stages/<stage>.json``. A stage whose key matches is skipped (and says so); anything upstream
that changed changes every key below it, and ``force`` redoes everything.

The dataset itself (features on the decision grid, targets, splits,
normalization, regimes) is rebuilt on every run: it takes about a second and is
a pure function of the data and the config, so it is not worth a stage.

Which rows each stage sees (nothing is thinned for training):

- the teacher trains on every train sample; it is scored for early stopping
  on ``teacher.val_samples`` evenly spaced validation samples (the only
  thinning: of the curve's cost, never of training);
- the probe runs on ``probe.samples`` evenly spaced validation rows;
- experts and single student train on every train sample, with the
  teacher's outputs and hidden states there (computed once, in the teacher
  stage);
- the aggregators (φ and τ of the Hájek-MoE, the gate) are fitted on the
  validation split, out of the experts' training sample, with early stopping
  on its last part (:func:`cmm_models.moe.train_moe`);
- the report scores everything on the validation and test splits; the test
  split is one no stage trains, fits or stops on.

Everything is seeded: on the CPU with the same thread count the same config
gives the same bytes in every stage but the measured latencies.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import msgspec
import numpy as np
import torch

import feeds
from common.atomic import atomic_write
from bundle.manifest import MOE_VARIANTS, TrainingWindow, Variant, data_digest
from common.progress import Progress
from common.stats import p50_p99
from feeds.events import LOCAL
from feeds.readers.base import ReadOptions

from cmm_models import dataset as ds_mod
from cmm_models import regimes
from common.config import ConfigError
from cmm_models.config import TrainConfig
from cmm_models.dataset import Dataset, Normalization, target_bases
from cmm_models.distill import (DistillData, Family, ExpertSpec, no_layer_specs, no_regime_specs, odd_specs,
                      single_student_spec, train_family)
from cmm_models.experts import Expert
from cmm_models.export import decision_latency, export_bundle, export_teacher_bundle, feature_rows
from cmm_models.moe import CONFIDENCES, MixtureOfExperts, MoEConfig, train_moe
from cmm_models.probe import ProbeMap, assign_tasks, layer_groups, load_probe, run_probe, save_probe
from cmm_models.teacher import Teacher, train_teacher

STAGES = ("teacher", "probe", "students", "moe", "bundles", "bundle")
# The bundles beside the main one (bundles/<variant>/): the ablations, the distillation baseline, the teacher.
SIDE_BUNDLES = (Variant.SINGLE_STUDENT, *MOE_VARIANTS[1:], Variant.TEACHER)


# -- data ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """The dataset and everything fitted on its train split, plus the rows each stage uses."""

    data: Dataset
    norm: Normalization
    thresholds: regimes.RegimeThresholds
    regime_choice: regimes.Choice  # the volatility window and quantiles chosen, each split's occupancy
    regime: np.ndarray          # int8 per grid decision
    train: np.ndarray           # grid indices
    val: np.ndarray
    probe: np.ndarray
    test: np.ndarray
    data_digest: str            # sha256 over the data files' bytes
    training: TrainingWindow    # what the bundles' manifests record

    def windows(self, idx: np.ndarray) -> np.ndarray:
        raw = ds_mod.windows(self.data.features, idx, self.data.config.window)
        return self.norm.features(raw)

    def features(self, idx: np.ndarray) -> np.ndarray:
        return self.norm.features(self.data.features[idx])

    def residual(self, idx: np.ndarray) -> np.ndarray:
        """The targets of decisions ``idx`` as the teacher learns them (:meth:`Normalization.residual`)."""
        return self.norm.residual(self.data.targets[idx], self.data.features[idx])


def thin(idx: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` evenly spaced entries of ``idx`` (all of them when ``limit`` is 0 or larger)."""
    if limit <= 0 or idx.size <= limit:
        return idx
    return idx[np.unique(np.linspace(0, idx.size - 1, limit).round().astype(np.int64))]


def split_spans(events: np.ndarray, data: Dataset) -> dict[str, list[int]]:
    """Each split's [first, last] exch_ts: of the LOCAL rows from its first decision to its last target's end."""
    rows = events[(events["ev"] & LOCAL) != 0]
    local_ts, horizon = rows["local_ts"], data.config.horizon_ns
    spans = {}
    for name in ("train", "val", "test"):
        idx = getattr(data, name)
        lo, hi = int(data.decision_ts[idx[0]]), int(data.decision_ts[idx[-1]]) + horizon
        exch = rows["exch_ts"][np.searchsorted(local_ts, lo, "left"):np.searchsorted(local_ts, hi, "right")]
        spans[name] = [int(exch.min()), int(exch.max())] if exch.size else [lo, hi]
    return spans


def prepare(cfg: TrainConfig, config_path: str = "<config>") -> Prepared:
    """Read the data, build the dataset, fit normalization and regime thresholds on the train split."""
    fmt = feeds.resolve_format(cfg.data.files, cfg.data.format)
    conv = feeds.read(cfg.data.files, fmt, ReadOptions())
    schema = cfg.features.schema(conv.instrument.tick_size)
    data = ds_mod.build(conv.events, schema, cfg.dataset)
    try:
        norm = ds_mod.fit_normalization(data)
    except ValueError as err:
        raise ConfigError(str(err), path=config_path, field="dataset") from None
    for name in ("val", "test"):
        if getattr(data, name).size == 0:
            raise ConfigError(f"the {name} split has no samples: the data is too short for the window "
                                   "and horizon", path=config_path, field="dataset")
    windows = [cfg.regimes.window_ns] + [w for w in cfg.features.rv_windows_ns if w != cfg.regimes.window_ns]
    try:
        thresholds, choice = regimes.choose(
            lambda w: regimes.trailing_vol(data.features, schema, w), windows,
            {"train": data.train, "val": data.val, "test": data.test}, cfg.regimes.min_rows)
    except ValueError as err:
        raise ConfigError(str(err), path=config_path, field="regimes") from None
    vol = regimes.trailing_vol(data.features, schema, choice.window_ns)
    digest = data_digest(cfg.data.files)
    training = TrainingWindow(data_sha256=digest, files=[os.path.basename(f) for f in cfg.data.files],
                              splits=split_spans(conv.events, data))
    return Prepared(data=data, norm=norm, thresholds=thresholds, regime_choice=choice,
                    regime=regimes.classify(vol, thresholds), train=data.train, val=data.val,
                    probe=thin(data.val, cfg.probe.samples), test=data.test, data_digest=digest, training=training)


# -- stage bookkeeping -----------------------------------------------------------------------------

def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stage_keys(cfg: TrainConfig, data_digest: str) -> dict[str, str]:
    """Each stage's key: its own config, chained to the keys of the stages it reads (and the targets' bases,
    which set what every model learns)."""
    asdict = msgspec.to_builtins
    teacher = _key("teacher", data_digest, target_bases(cfg.features.schema(1.0)), asdict(cfg.features), asdict(cfg.dataset), asdict(cfg.regimes),
                   asdict(cfg.teacher))
    probe = _key("probe", teacher, asdict(cfg.probe))
    students = _key("students", probe, asdict(cfg.distill))
    moe = _key("moe", students, asdict(cfg.moe))
    bundles = _key("bundles", moe, asdict(cfg.export))
    bundle = _key("bundle", moe, asdict(cfg.export))
    return dict(zip(STAGES, (teacher, probe, students, moe, bundles, bundle)))


def _marker(out: Path, stage: str) -> Path:
    """Where a finished stage's key lives: beside the stage directory, so a bundle holds only bundle files."""
    return out / "stages" / f"{stage}.json"


def stage_done(out: Path, stage: str, key: str) -> bool:
    if not (out / stage).is_dir() or not _marker(out, stage).is_file():
        return False
    try:
        return json.loads(_marker(out, stage).read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def run_stage(out: Path, stage: str, key: str, build: Callable[[Path], dict], force: bool,
              log: Callable[[str], None]) -> bool:
    """Build ``out/stage`` with ``build(tmp_dir) -> summary`` unless it is done; True if it ran.

    The marker goes first and comes back last, so a run cut off between the rename
    and the marker redoes the stage instead of trusting it.
    """
    if not force and stage_done(out, stage, key):
        log(f"{stage}: up to date, skipped")
        return False
    tmp = out / f".{stage}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    summary = build(tmp)
    seconds = time.perf_counter() - start
    _marker(out, stage).unlink(missing_ok=True)
    shutil.rmtree(out / stage, ignore_errors=True)
    os.replace(tmp, out / stage)
    with atomic_write(_marker(out, stage), "w") as f:
        json.dump({"stage": stage, "key": key, "seconds": round(seconds, 3), **summary}, f, indent=2)
    log(f"{stage}: done in {seconds:.1f} s")
    return True


def stage_info(out: Path, stage: str) -> dict:
    return json.loads(_marker(out, stage).read_text())


# -- teacher ---------------------------------------------------------------------------------------

def make_teacher(cfg: TrainConfig, n_features: int) -> Teacher:
    t = cfg.teacher
    if t.model == "tiny":
        return Teacher.tiny(n_features, layers=t.layers, hidden=t.hidden, seed=t.seed,
                            max_window=max(128, cfg.dataset.window))
    return Teacher.from_pretrained(t.model, n_features, seed=t.seed)


def teacher_outputs(teacher: Teacher, windows: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Predictions [N, 3] in the units the teacher learned (:meth:`Normalization.residual`) and each layer group's
    mean hidden state at the last position [N, 3, H]."""
    groups = layer_groups(len(teacher.blocks()))
    predictions, hidden = [], []
    teacher.cpu().eval()
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            p, states = teacher(torch.as_tensor(windows[start:start + batch_size]))
            predictions.append(teacher.denormalize(p).double().numpy())
            last = torch.stack([s[:, -1] for s in states[1:]], dim=1)          # [B, layers, H]
            hidden.append(torch.stack([last[:, g].mean(1) for g in groups.values()], dim=1).numpy())
    return np.concatenate(predictions), np.concatenate(hidden)


def teacher_latency(teacher: Teacher, window: np.ndarray, repeats: int) -> dict:
    """Per-decision latency of the teacher on one window [W, F] at 1 thread, p50/p99 in microseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.as_tensor(window).unsqueeze(0)
        times = np.empty(repeats, dtype=np.int64)
        teacher.cpu().eval()
        with torch.inference_mode():
            for _ in range(min(10, repeats)):
                teacher(x)
            for i in range(repeats):
                start = time.perf_counter_ns()
                teacher(x)
                times[i] = time.perf_counter_ns() - start
    finally:
        torch.set_num_threads(threads)
    us = times / 1000.0
    p50, p99 = p50_p99(us)
    return {"p50_us": p50, "p99_us": p99,
            "mean_us": float(us.mean()), "threads": 1, "repeats": repeats, "window": int(window.shape[0])}


def build_teacher(cfg: TrainConfig, prep: Prepared, progress: bool) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        teacher = make_teacher(cfg, prep.data.schema.n_features)
        t = cfg.teacher
        val = thin(prep.val, t.val_samples)    # the curve's rows: its cost, not the training's
        result = train_teacher(teacher, prep.windows(prep.train), prep.residual(prep.train),
                               prep.windows(val), prep.residual(val),
                               steps=t.steps, lr=t.lr, batch_size=t.batch_size, seed=t.seed,
                               weight_decay=t.weight_decay, warmup_steps=t.warmup_steps,
                               final_lr_fraction=t.final_lr_fraction, eval_every=t.eval_every,
                               patience=t.patience, progress=progress)
        teacher.cpu().eval()
        teacher.save(tmp / "model")
        rows = {"train": prep.train, "val": prep.val, "test": prep.test}
        arrays = {}
        for name, idx in rows.items():
            predictions, hidden = teacher_outputs(teacher, prep.windows(idx))
            predictions = prep.norm.from_residual(predictions, prep.data.features[idx])
            arrays[f"{name}_rows"], arrays[f"{name}_predictions"] = idx, predictions
            if name == "train":
                arrays["train_hidden"] = hidden.astype(np.float32)
        np.savez(tmp / "outputs.npz", **arrays)
        latency = teacher_latency(teacher, prep.windows(prep.test[:1])[0], t.latency_repeats)
        (tmp / "latency.json").write_text(json.dumps(latency, indent=2))
        (tmp / "train.json").write_bytes(msgspec.json.format(msgspec.json.encode(result)))
        return {"device": result.device, "train_seconds": round(result.seconds, 3),
                "backbone": type(teacher.backbone).__name__, "layers": len(teacher.blocks()),
                "steps": result.steps, "best_step": result.best_step, "stopped_early": result.stopped_early}
    return build


def load_teacher_outputs(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "teacher" / "outputs.npz") as f:
        return {k: f[k] for k in f.files}


# -- probe -----------------------------------------------------------------------------------------

def build_probe(cfg: TrainConfig, prep: Prepared, out: Path) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        from cmm_models.plots import plot_probe

        teacher = Teacher.load(out / "teacher" / "model")
        p = cfg.probe
        result = run_probe(teacher, prep.windows(prep.probe), prep.regime[prep.probe], regimes.REGIME_NAMES,
                           eps=p.eps, draws=p.draws, seed=p.seed, device="cpu")
        save_probe(result, tmp / "probe.json")
        plot_probe(result, tmp / "probe.png")
        return {"assignment": assign_tasks(result.attribution)}
    return build


def load_probe_map(out: Path) -> ProbeMap:
    return load_probe(out / "probe" / "probe.json")


# -- students --------------------------------------------------------------------------------------

def family_specs(assignment: dict[str, str], cfg: TrainConfig) -> dict[str, list[ExpertSpec]]:
    return {"experts": odd_specs(assignment, cfg.distill), "single_student": single_student_spec(),
            "no_regime": no_regime_specs(assignment, cfg.distill), "no_layer": no_layer_specs()}


def distill_data(prep: Prepared, outputs: dict[str, np.ndarray]) -> DistillData:
    rows = outputs["train_rows"]
    raw = prep.data.features[rows]
    return DistillData(features=prep.features(rows), targets=prep.norm.targets(prep.data.targets[rows], raw),
                       regime=prep.regime[rows].astype(np.int64),
                       teacher_predictions=prep.norm.targets(outputs["train_predictions"], raw),
                       teacher_hidden=outputs["train_hidden"])


def _save_family(path: Path, family: Family) -> None:
    from safetensors.torch import save_file

    tensors = {f"{i}.{name}": value.contiguous() for i, expert in enumerate(family.experts)
               for name, value in expert.state_dict().items()}
    save_file(tensors, str(path))


def build_students(cfg: TrainConfig, prep: Prepared, out: Path, progress: bool) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        assignment = stage_info(out, "probe")["assignment"]
        data = distill_data(prep, load_teacher_outputs(out))
        meta = {}
        specs = family_specs(assignment, cfg)
        with Progress(sum(len(s) for s in specs.values()), label="students",
                      enabled=None if progress else False) as bar:
            for name, family_spec in specs.items():
                family = train_family(data, family_spec, cfg.distill, device=None)
                bar.update(len(family_spec))
                _save_family(tmp / f"{name}.safetensors", family)
                meta[name] = {"specs": [msgspec.to_builtins(s.__dict__) for s in family.specs],
                              "loss_before": family.loss_before, "loss_after": family.loss_after,
                              "seconds": round(family.seconds, 3)}
        (tmp / "families.json").write_text(json.dumps(meta, indent=2))
        return {"assignment": assignment}
    return build


def load_family(out: Path, name: str, n_features: int, hidden: int) -> tuple[list[Expert], list[ExpertSpec]]:
    from safetensors.torch import load_file

    meta = json.loads((out / "students" / "families.json").read_text())[name]
    specs = [ExpertSpec(s["name"], s["regime"], tuple(s["task_weights"]), s["group"]) for s in meta["specs"]]
    tensors = load_file(str(out / "students" / f"{name}.safetensors"))
    experts = []
    for i in range(len(specs)):
        expert = Expert(n_features, hidden)
        expert.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)})
        experts.append(expert.eval())
    return experts, specs


# -- MoE -------------------------------------------------------------------------------------------

# The Hájek-MoE with the confidence the config does not choose: trained and scored, not exported.
def other_confidence(cfg: TrainConfig) -> str:
    return next(c for c in CONFIDENCES if c != cfg.moe.confidence)


def fitted_moes(cfg: TrainConfig) -> list[str]:
    """Every aggregator the moe stage fits: the variants, then ``hajek_<other confidence>``."""
    return [*MOE_VARIANTS, f"hajek_{other_confidence(cfg)}"]


def variant_setup(cfg: TrainConfig, variant: Variant | str) -> tuple[str, MoEConfig]:
    """(family, MoE config) of a MoE variant (the main one, the config's aggregator and routing, or an
    ablation, which changes one thing of it; or ``hajek_<confidence>``, the main one with that confidence)."""
    main = cfg.moe
    if variant is Variant.HAJEK:
        return "experts", main
    if isinstance(variant, str) and variant.startswith("hajek_"):
        return "experts", msgspec.structs.replace(main, aggregator="hajek", confidence=variant[len("hajek_"):])
    if variant in (Variant.MEAN, Variant.GATE):
        return "experts", msgspec.structs.replace(main, aggregator=str(variant))
    return str(variant), main     # no_regime / no_layer: the main aggregator over the ablated family


def make_moe(out: Path, cfg: TrainConfig, variant: Variant | str, n_features: int) -> MixtureOfExperts:
    family, config = variant_setup(cfg, variant)
    experts, specs = load_family(out, family, n_features, cfg.distill.hidden)
    return MixtureOfExperts(experts, [s.regime for s in specs], [s.name for s in specs], config)


def build_moe(cfg: TrainConfig, prep: Prepared, out: Path) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        from safetensors.torch import save_file

        rows = prep.val                    # out of the experts' training sample
        x, y = prep.features(rows), prep.norm.targets(prep.data.targets[rows], prep.data.features[rows])
        fits = {}
        for variant in fitted_moes(cfg):
            moe = make_moe(out, cfg, variant, prep.data.schema.n_features)
            fits[str(variant)] = msgspec.to_builtins(train_moe(moe, x, y, prep.regime[rows].astype(np.int64)))
            save_file({k: v.contiguous() for k, v in moe.state_dict().items()}, str(tmp / f"{variant}.safetensors"))
        (tmp / "fits.json").write_text(json.dumps(fits, indent=2))
        return {"fits": {k: {"steps": f["steps"], "best_step": f["best_step"], "tau": f["tau"]}
                         for k, f in fits.items()}}
    return build


def load_moe(out: Path, cfg: TrainConfig, variant: Variant | str, n_features: int) -> MixtureOfExperts:
    from safetensors.torch import load_file

    moe = make_moe(out, cfg, variant, n_features)
    moe.load_state_dict(load_file(str(out / "moe" / f"{variant}.safetensors")))
    return moe.eval()


# -- bundle ----------------------------------------------------------------------------------------

def build_bundle(cfg: TrainConfig, prep: Prepared, out: Path) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        moe = load_moe(out, cfg, Variant.HAJEK, prep.data.schema.n_features)
        latency = json.loads((out / "teacher" / "latency.json").read_text())
        manifest = export_bundle(moe, tmp, prep.norm, prep.thresholds, latency, training=prep.training)
        return {"files": manifest.files}
    return build


def single_student_moe(out: Path, cfg: TrainConfig, n_features: int) -> MixtureOfExperts:
    """The single student as a one-expert MoE (mean of one = its own output), so it exports like the others."""
    experts, specs = load_family(out, "single_student", n_features, cfg.distill.hidden)
    config = msgspec.structs.replace(cfg.moe, aggregator="mean")
    return MixtureOfExperts(experts, [s.regime for s in specs], [s.name for s in specs], config).eval()


def build_side_bundles(cfg: TrainConfig, prep: Prepared, out: Path) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        n_features = prep.data.schema.n_features
        latency = json.loads((out / "teacher" / "latency.json").read_text())
        files = {}
        for name in SIDE_BUNDLES:
            if name is Variant.TEACHER:
                manifest = export_teacher_bundle(Teacher.load(out / "teacher" / "model"), tmp / name, prep.norm,
                                                 prep.thresholds, latency, window=cfg.dataset.window,
                                                 dt_ns=cfg.dataset.dt_ns, training=prep.training)
            else:
                moe = single_student_moe(out, cfg, n_features) if name is Variant.SINGLE_STUDENT \
                    else load_moe(out, cfg, name, n_features)
                manifest = export_bundle(moe, tmp / name, prep.norm, prep.thresholds, latency, variant=name,
                                         training=prep.training)
            files[name] = manifest.files["model.pt"]
        return {"model_sha256": files}
    return build


def bundle_latency(bundle_dir: Path, repeats: int) -> dict:
    from bundle.loader import load_bundle

    bundle = load_bundle(bundle_dir)
    rows = feature_rows(bundle)
    regimes = [bundle.regimes.classify(vol) for vol in rows[:, bundle.schema.index(bundle.regimes.feature)]]
    return decision_latency(bundle.decide, rows, regimes, repeats=repeats, warmup=min(2000, repeats))


# -- the whole run ---------------------------------------------------------------------------------

def train(cfg: TrainConfig, out: str | Path, *, force: bool = False, progress: bool = False,
          until: str = "bundle", config_path: str = "<config>", log: Callable[[str], None] = print) -> dict:
    """Run the stages up to and including ``until``; then (after a full run) write the report.

    Returns {stage: ran?}.
    """
    from cmm_models.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    prep = prepare(cfg, config_path)
    log(f"data: {prep.data.decision_ts.size:,} decisions; {prep.train.size:,} train, {prep.val.size:,} val, "
        f"{prep.test.size:,} test rows used ({time.perf_counter() - start:.1f} s)")
    choice = prep.regime_choice
    log(f"regimes: {prep.thresholds.feature}, train quantiles {choice.quantiles[0]:.2f}/{choice.quantiles[1]:.2f}; "
        + "; ".join(f"{split} " + "/".join(str(n) for n in row.values()) for split, row in choice.occupancy.items())
        + " rows low/mid/high")
    keys = stage_keys(cfg, prep.data_digest)
    builders = {
        "teacher": lambda: build_teacher(cfg, prep, progress),
        "probe": lambda: build_probe(cfg, prep, out),
        "students": lambda: build_students(cfg, prep, out, progress),
        "moe": lambda: build_moe(cfg, prep, out),
        "bundles": lambda: build_side_bundles(cfg, prep, out),
        "bundle": lambda: build_bundle(cfg, prep, out),
    }
    ran = {}
    upstream_ran = False
    for stage in STAGES[: STAGES.index(until) + 1]:
        ran[stage] = run_stage(out, stage, keys[stage], builders[stage](), force or upstream_ran, log)
        upstream_ran = upstream_ran or ran[stage]
    if until == "bundle":
        write_report(out, cfg, prep, log=log)
    log(f"total {time.perf_counter() - start:.1f} s")
    return ran

