"""The training report: every model's R² beside the naive predictors, the MoE's diagnostics, the regimes,
the teacher's validation curve, the probe map, and both latencies.

Every model and every naive predictor is scored per target on the validation
and the test split by ``R² = 1 - MSE / variance``, both over the split being
evaluated (so 0 is what the split's own mean would score, which no model
knows in advance, and a negative R² is worse than that). The test split is one
no stage trains, fits or stops on; validation is where the teacher stopped
and the aggregators were fitted, so its R² flatters them. The rows:

- the naive predictors, which need no model: ``train_mean`` (the train
  split's mean), ``persistence`` (the target's last realized value, the one
  whose horizon ended at the decision: ``y[i - k]``) and ``ewma`` (an
  exponentially weighted mean of the realized values, half-life
  :data:`EWMA_HALFLIFE_HORIZONS` horizons); where the history is too short
  they fall back to the train mean;
- ``teacher``;
- each expert ``expert_<name>``, on the rows of its own regime (the only ones
  hard routing gives it; R² over those rows' variance);
- ``single_student`` (output-only distillation, the usual method);
- ``moe`` (the Hájek-MoE the bundle holds), ``moe_projection`` and
  ``moe_cosine`` (the Hájek-MoE under each confidence; one of them is
  ``moe``), and the ablations ``moe_mean``, ``moe_gate`` (a softmax gating
  network), ``moe_no_regime`` and ``moe_no_layer``.

``moe_diagnostics`` gives, per confidence, on the test split: the mean
entropy of the weights as a share of its maximum (``log`` of the active
experts; 1 is uniform), the mean top weight, how often the top-weighted expert
is the best one (the smallest squared error over the normalized targets among
the active experts), and the fitted τ. ``occupancy`` gives each split's
samples per regime, ``regimes`` the window and quantiles chosen, and
``validation_curve`` the teacher's (also ``validation_curve.png``).

Written as ``report.json`` (everything), ``report.md`` (tables),
``probe_heatmap.png``, ``expert_weights.png`` (the MoE's mean expert weight
per regime on the test rows) and ``validation_curve.png``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import msgspec
import numba
import numpy as np
import torch

from common.atomic import atomic_write

from bundle.manifest import MOE_VARIANTS, TARGET_NAMES, Variant
from cmm_models.regimes import REGIME_NAMES

# A MoE variant's row: "moe" for the main one, "moe_<variant>" for an ablation.
MOE_ROWS = {v: "moe" if v is Variant.HAJEK else f"moe_{v}" for v in MOE_VARIANTS}
NAIVE = ("train_mean", "persistence", "ewma")
SPLITS = ("val", "test")
EWMA_HALFLIFE_HORIZONS = 10


def errors(predictions: np.ndarray, targets: np.ndarray, target_std: np.ndarray) -> dict:
    """MSE per output in target units and normalized by the train variance; both over the same rows."""
    if len(targets) == 0:
        return {"rows": 0, "mse": None, "mse_normalized": None}
    mse = ((np.asarray(predictions, dtype=np.float64) - targets) ** 2).mean(axis=0)
    return {"rows": int(len(targets)), "mse": mse.tolist(), "mse_normalized": (mse / target_std ** 2).tolist()}


def r2(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float | None]:
    """Per target, ``1 - MSE / variance`` over these rows; None without rows or where the target is constant."""
    y = np.asarray(targets, dtype=np.float64)
    if len(y) == 0:
        return {name: None for name in TARGET_NAMES}
    mse = ((np.asarray(predictions, dtype=np.float64) - y) ** 2).mean(axis=0)
    var = y.var(axis=0)
    return {name: (float(1.0 - m / v) if v > 0 else None) for name, m, v in zip(TARGET_NAMES, mse, var)}


@numba.njit(cache=True)
def _ewma_lagged(y: np.ndarray, lag: int, alpha: float, fallback: np.ndarray) -> np.ndarray:
    """At each row i, the EWMA of the finite y[j] with j <= i - lag (``fallback`` before the first)."""
    n, m = y.shape
    out = np.empty((n, m))
    state = fallback.copy()
    seen = np.zeros(m, dtype=np.bool_)
    for i in range(n):
        j = i - lag
        if j >= 0:
            for c in range(m):
                if np.isfinite(y[j, c]):
                    state[c] = y[j, c] if not seen[c] else state[c] + alpha * (y[j, c] - state[c])
                    seen[c] = True
        out[i] = state
    return out


def naive_predictions(targets: np.ndarray, train_mean: np.ndarray, horizon_steps: int) -> dict[str, np.ndarray]:
    """The naive predictors on the whole grid [n, 3], causal: each uses only targets realized by the decision."""
    n = len(targets)
    mean = np.broadcast_to(np.asarray(train_mean, dtype=np.float64), targets.shape)
    last = np.full(targets.shape, np.nan)
    last[horizon_steps:] = targets[: n - horizon_steps]
    persistence = np.where(np.isfinite(last), last, mean)
    alpha = 1.0 - 0.5 ** (1.0 / (EWMA_HALFLIFE_HORIZONS * horizon_steps))
    ewma = _ewma_lagged(np.ascontiguousarray(targets, dtype=np.float64), horizon_steps, alpha,
                        np.asarray(train_mean, dtype=np.float64))
    return {"train_mean": np.array(mean), "persistence": persistence, "ewma": ewma}


def _model_predictions(model, x: np.ndarray, regime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        prediction, weights = model(torch.as_tensor(x), torch.as_tensor(regime, dtype=torch.long))
    return prediction.double().numpy(), weights.numpy()


def weight_diagnostics(weights: np.ndarray, expert_predictions: np.ndarray, targets: np.ndarray,
                       active: np.ndarray, tau: float) -> dict:
    """Entropy share, mean top weight and top-is-best share of a MoE's weights [N, E] (module docstring);
    ``expert_predictions`` [N, E, 3] and ``targets`` [N, 3] normalized, ``active`` [N, E] bool."""
    if len(weights) == 0:
        return {"rows": 0}
    w = np.where(active, weights, 0.0)
    logs = np.log(np.where(w > 0, w, 1.0))
    entropy = -(w * logs).sum(axis=1)
    max_entropy = np.log(np.maximum(active.sum(axis=1), 1))
    share = np.divide(entropy, max_entropy, out=np.ones_like(entropy), where=max_entropy > 0)
    error = ((expert_predictions - targets[:, None, :]) ** 2).sum(axis=2)
    best = np.argmin(np.where(active, error, np.inf), axis=1)
    top = np.argmax(w, axis=1)
    return {"rows": int(len(w)), "entropy_share": float(share.mean()), "mean_top_weight": float(w.max(axis=1).mean()),
            "top_is_best": float((top == best).mean()), "chance_top_is_best": float((1.0 / active.sum(axis=1)).mean()),
            "tau": float(tau)}


def evaluate_all(out: Path, cfg, prep) -> dict:
    """Predictions in target units of every model on each split, R², the MoE diagnostics and the main MoE's
    test weights: {"r2", "errors" (test), "moe_diagnostics", "weights", "names"}."""
    from cmm_models.pipeline import fitted_moes, load_family, load_moe, load_teacher_outputs

    norm = prep.norm
    target_std = prep.data.targets[prep.train].std(axis=0)   # the targets' own, as errors() documents
    outputs = load_teacher_outputs(out)
    n_features = prep.data.schema.n_features
    train_mean = prep.data.targets[prep.train].mean(axis=0)      # of the targets themselves, not of the residuals
    naive = naive_predictions(prep.data.targets, train_mean, prep.data.config.horizon_steps)
    experts, specs = load_family(out, "experts", n_features, cfg.distill.hidden)
    (student,), _ = load_family(out, "single_student", n_features, cfg.distill.hidden)
    moes = {name: load_moe(out, cfg, name, n_features) for name in fitted_moes(cfg)}
    result = {"r2": {}, "errors": {}, "moe_diagnostics": {}, "weights": None, "names": []}
    for split in SPLITS:
        rows = outputs[f"{split}_rows"]
        y = prep.data.targets[rows]
        x, raw = prep.features(rows), prep.data.features[rows]
        regime = prep.regime[rows].astype(np.int64)
        predictions = {name: naive[name][rows] for name in NAIVE}
        predictions["teacher"] = outputs[f"{split}_predictions"]
        with torch.no_grad():
            predictions["single_student"] = norm.targets_raw(student(torch.as_tensor(x))[0].double().numpy(), raw)
        for name, moe in moes.items():
            prediction, weights = _model_predictions(moe, x, regime)
            prediction = norm.targets_raw(prediction, raw)
            if name in MOE_ROWS:
                predictions[MOE_ROWS[name]] = prediction
            if moe.config.aggregator == "hajek" and name in (Variant.HAJEK, f"hajek_{moe.config.confidence}"):
                predictions[f"moe_{moe.config.confidence}"] = prediction
                if split == "test":
                    active = (moe.mask[moe.route_rows(torch.as_tensor(regime))] > 0).numpy()
                    with torch.no_grad():
                        each = torch.stack([e(torch.as_tensor(x))[0] for e in moe.experts], dim=1).double().numpy()
                    result["moe_diagnostics"][moe.config.confidence] = weight_diagnostics(
                        weights, each, norm.targets(y, raw).astype(np.float64), active, moe.tau)
                    if name is Variant.HAJEK:
                        result["weights"], result["names"] = weights, list(moe.names)
        table = {name: r2(p, y) for name, p in predictions.items()}
        errs = {name: errors(p, y, target_std) for name, p in predictions.items()}
        for expert, spec in zip(experts, specs):
            own = regime == spec.regime
            with torch.no_grad():
                prediction = norm.targets_raw(expert(torch.as_tensor(x[own]))[0].double().numpy(), raw[own])
            table[f"expert_{spec.name}"] = r2(prediction, y[own])
            errs[f"expert_{spec.name}"] = errors(prediction, y[own], target_std)
        result["r2"][split] = table
        if split == "test":
            result["errors"] = errs
    return result


def plot_weights(weights: np.ndarray, regime: np.ndarray, names: list[str], path: Path) -> None:
    """Mean expert weight per regime (rows) and expert (columns), values printed in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(REGIME_NAMES)
    mean = np.stack([weights[regime == r].mean(axis=0) if (regime == r).any() else np.zeros(len(names))
                     for r in range(len(labels))])
    fig = Figure(figsize=(2.0 + 0.7 * len(names), 2.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(mean, cmap="viridis", vmin=0.0, vmax=max(float(mean.max()), 1e-12), aspect="auto")
    for (r, e), value in np.ndenumerate(mean):
        ax.text(e, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="black" if value > 0.6 * mean.max() else "white")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), [f"{name} (n={int((regime == r).sum())})" for r, name in enumerate(labels)])
    fig.colorbar(image, ax=ax, label="mean weight")
    ax.set_title("Hájek-MoE: mean expert weight on the test split, by regime", fontsize=9)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def plot_curve(curve: list[dict], best_step: int | None, path: Path) -> None:
    """The teacher's validation loss (and the train loss beside it) against the step, the kept step marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["train_loss"] for p in curve], label="train (minibatch mean)", color="0.6")
    ax.plot(steps, [p["val_loss"] for p in curve], label="validation", color="C0", marker=".")
    for k, name in enumerate(TARGET_NAMES):
        ax.plot(steps, [p["val_mse"][k] for p in curve], lw=0.8, ls="--", label=f"val {name}")
    if best_step is not None:
        ax.axvline(best_step, color="C3", lw=1.0, label=f"kept: step {best_step}")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (normalized targets)")
    ax.set_title("teacher: validation curve", fontsize=9)
    ax.legend(fontsize=7)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _markdown(report: dict) -> str:
    names = report["targets"]
    lines = ["# CMM training report", "",
             f"Data: {', '.join(report['data'])}; {report['rows']['train']} train, {report['rows']['val']} "
             f"validation, {report['rows']['test']} test rows. Teacher: {report['teacher']}.", ""]
    for split, title in (("test", "Held-out R² (test split)"), ("val", "R² on the validation split (where the "
                                                                       "teacher stopped and the MoE was fitted)")):
        lines += [f"## {title}", "",
                  "R² = 1 - MSE / variance of this split. Experts on their own regime's rows (n/a: none).", "",
                  "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for model, row in report["r2"][split].items():
            lines.append(f"| {model} | " + " | ".join(_fmt(row[n]) for n in names) + " |")
        lines.append("")
    lines += ["## Who beats the naive predictors (test)", ""]
    for line in report["verdicts"]:
        lines.append(f"- {line}")
    lines += ["", "## Hájek-MoE weights (test)", "",
              "| confidence | entropy / max | mean top weight | top is best | chance | tau |",
              "|---|---:|---:|---:|---:|---:|"]
    for conf, d in report["moe_diagnostics"].items():
        if d.get("rows"):
            lines.append(f"| {conf} | {d['entropy_share']:.3f} | {d['mean_top_weight']:.3f} | {d['top_is_best']:.3f} "
                         f"| {d['chance_top_is_best']:.3f} | {d['tau']:.3f} |")
    reg = report["regimes"]
    lines += ["", f"## Regimes: {reg['feature']}, thresholds at train quantiles {reg['quantiles'][0]:.2f} / "
              f"{reg['quantiles'][1]:.2f} (at least {reg['min_rows']} rows each)", "",
              "| split | " + " | ".join(REGIME_NAMES) + " |", "|---|" + "---:|" * len(REGIME_NAMES)]
    for split, row in report["occupancy"].items():
        lines.append(f"| {split} | " + " | ".join(str(row[r]) for r in REGIME_NAMES) + " |")
    vc = report["validation_curve"]
    lines += ["", f"## Teacher training: {vc['steps']} steps on {vc['train_rows']} rows, kept step {vc['best_step']}"
              f"{' (stopped early)' if vc['stopped_early'] else ''}", "", "![validation curve](validation_curve.png)",
              "", "| step | lr | train loss | val loss | " + " | ".join(f"val {n}" for n in names) + " |",
              "|---:|---:|---:|---:|" + "---:|" * len(names)]
    for p in vc["points"]:
        lines.append(f"| {p['step']} | {p['lr']:.2e} | {p['train_loss']:.4f} | {p['val_loss']:.4f} | "
                     + " | ".join(f"{v:.4f}" for v in p["val_mse"]) + " |")
    probe = report["probe"]
    lines += ["", "## Probe (layer x task attribution, all regimes)", "",
              "| layer | " + " | ".join(probe["tasks"]) + " |", "|---|" + "---:|" * len(probe["tasks"])]
    for layer, row in enumerate(probe["attribution"]):
        lines.append(f"| {layer} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    lines += ["", f"Group -> task (from the map): {probe['assignment']}", "",
              "![probe](probe_heatmap.png)", "", "![expert weights](expert_weights.png)", "",
              "## Per-decision latency (1 thread)", "", "| model | p50 us | p99 us |", "|---|---:|---:|"]
    for name, lat in report["latency"].items():
        if isinstance(lat, dict):
            lines.append(f"| {name} | {lat['p50_us']:.1f} | {lat['p99_us']:.1f} |")
    lines += ["", f"teacher_over_cmm (p50) = {report['latency']['teacher_over_cmm']:.0f}", ""]
    return "\n".join(lines)


def verdicts(table: dict[str, dict[str, float | None]]) -> list[str]:
    """Plain sentences: per target, whether the teacher and the MoE beat each naive predictor, and who wins."""
    lines = []
    for target in TARGET_NAMES:
        def score(model):
            v = table.get(model, {}).get(target)
            return -np.inf if v is None else v
        naive_best = max(NAIVE, key=score)
        for model in ("teacher", "moe"):
            beaten = [n for n in NAIVE if score(model) > score(n)]
            lost = [n for n in NAIVE if n not in beaten]
            lines.append(f"{target}: {model} R² {_fmt(table.get(model, {}).get(target))} "
                         + (f"beats {', '.join(beaten)}" if beaten else "beats no naive predictor")
                         + (f"; does not beat {', '.join(lost)}" if lost and beaten else ""))
        models = [m for m in table if m not in NAIVE and not m.startswith("expert_")]
        winner = max(models, key=score)
        lines.append(f"{target}: best model {winner} ({_fmt(table[winner][target])}), best naive {naive_best} "
                     f"({_fmt(table[naive_best][target])})")
    return lines


def write_report(out: Path, cfg, prep, log: Callable[[str], None] = print) -> dict:
    from cmm_models.pipeline import bundle_latency, load_probe_map, stage_info

    scored = evaluate_all(out, cfg, prep)
    test_rows = np.load(out / "teacher" / "outputs.npz")["test_rows"]
    plot_weights(scored["weights"], prep.regime[test_rows], scored["names"], out / "expert_weights.png")
    shutil.copyfile(out / "probe" / "probe.png", out / "probe_heatmap.png")
    train_info = json.loads((out / "teacher" / "train.json").read_text())
    plot_curve(train_info["curve"], train_info["best_step"], out / "validation_curve.png")
    probe = load_probe_map(out)
    teacher_latency = json.loads((out / "teacher" / "latency.json").read_text())
    cmm_latency = bundle_latency(out / "bundle", cfg.export.latency_repeats)
    choice = prep.regime_choice
    report = {
        "data": cfg.data.files, "teacher": cfg.teacher.model, "targets": list(TARGET_NAMES),
        "rows": {"train": int(prep.train.size), "val": int(prep.val.size), "test": int(test_rows.size),
                 "probe": int(prep.probe.size)},
        "r2": scored["r2"],
        "verdicts": verdicts(scored["r2"]["test"]),
        "errors": scored["errors"],
        "moe_diagnostics": scored["moe_diagnostics"],
        "occupancy": choice.occupancy,
        "regimes": {"feature": prep.thresholds.feature, "low": prep.thresholds.low, "high": prep.thresholds.high,
                    "window_ns": choice.window_ns, "quantiles": list(choice.quantiles),
                    "min_rows": cfg.regimes.min_rows, "candidates_tried": choice.tried},
        "validation_curve": {"points": train_info["curve"], "best_step": train_info["best_step"],
                             "steps": train_info["steps"], "stopped_early": train_info["stopped_early"],
                             "train_rows": train_info["train_rows"], "val_rows": train_info["val_rows"],
                             "device": train_info["device"]},
        "moe_fits": json.loads((out / "moe" / "fits.json").read_text()),
        "training_window": msgspec.to_builtins(prep.training),
        "probe": {"tasks": probe.tasks, "attribution": probe.attribution,
                  "assignment": stage_info(out, "probe")["assignment"],
                  "regimes": {k: v.attribution for k, v in probe.regimes.items()}},
        "latency": {"teacher": teacher_latency, "bundle": cmm_latency,
                    "teacher_over_cmm": teacher_latency["p50_us"] / cmm_latency["p50_us"]},
        "stage_seconds": {s: stage_info(out, s)["seconds"] for s in ("teacher", "probe", "students", "moe", "bundle")},
    }
    with atomic_write(out / "report.json", "w") as f:
        json.dump(report, f, indent=2)
    with atomic_write(out / "report.md", "w") as f:
        f.write(_markdown(report))
    test = report["r2"]["test"]
    log(f"report: {out / 'report.md'}; test R² (" + ", ".join(TARGET_NAMES) + "): "
        + "; ".join(f"{m} " + "/".join(_fmt(test[m][t]) for t in TARGET_NAMES)
                    for m in ("teacher", "moe", "persistence", "train_mean")))
    return report
