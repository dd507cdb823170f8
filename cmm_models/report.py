"""The training report: held-out error of every model, the probe map, and both latencies.

Every model is scored on the test split, which no stage trains or fits on, by
MSE per output in two units: the target's own (ticks, ticks, shares) and
normalized (divided by the train split's target variance, so 1.0 is what
always predicting the train mean would score if test looked like train). The
rows:

- ``teacher``; ``train_mean`` (the constant prediction, for scale);
- each expert, on the test rows of its own regime (the only ones hard routing
  gives it);
- ``single_student`` (output-only distillation, the usual method);
- ``moe`` (the Hájek MoE the bundle holds, with the config's routing) and the
  ablations ``moe_mean``, ``moe_gate`` (a softmax gating network),
  ``moe_no_regime`` and ``moe_no_layer``.

Written as ``report.json`` (everything), ``report.md`` (tables),
``probe_heatmap.png`` and ``expert_weights.png`` (the MoE's mean expert
weight per regime on the test rows).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from common.atomic import atomic_write

from bundle.manifest import MOE_VARIANTS, Variant
from cmm_models.dataset import TARGET_NAMES

# A MoE variant's row: "moe" for the main one, "moe_<variant>" for an ablation.
MOE_ROWS = {v: "moe" if v is Variant.HAJEK else f"moe_{v}" for v in MOE_VARIANTS}


def errors(predictions: np.ndarray, targets: np.ndarray, target_std: np.ndarray) -> dict:
    """MSE per output in target units and normalized by the train variance; both over the same rows."""
    if len(targets) == 0:
        return {"rows": 0, "mse": None, "mse_normalized": None}
    mse = ((np.asarray(predictions, dtype=np.float64) - targets) ** 2).mean(axis=0)
    return {"rows": int(len(targets)), "mse": mse.tolist(), "mse_normalized": (mse / target_std ** 2).tolist()}


def _model_predictions(model, x: np.ndarray, regime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        prediction, weights = model(torch.as_tensor(x), torch.as_tensor(regime, dtype=torch.long))
    return prediction.double().numpy(), weights.numpy()


def evaluate_all(out: Path, cfg, prep) -> tuple[dict, np.ndarray, list[str]]:
    """The error table, the main MoE's test weights [N, E] and its expert names."""
    from cmm_models.pipeline import load_family, load_moe, load_teacher_outputs

    norm = prep.norm
    target_std = np.asarray(norm.target_std)
    outputs = load_teacher_outputs(out)
    rows = outputs["test_rows"]
    y = prep.data.targets[rows]
    x = prep.features(rows)
    regime = prep.regime[rows].astype(np.int64)
    n_features = prep.data.schema.n_features
    table = {"teacher": errors(outputs["test_predictions"], y, target_std),
             "train_mean": errors(np.broadcast_to(norm.target_mean, y.shape), y, target_std)}
    experts, specs = load_family(out, "experts", n_features, cfg.distill.hidden)
    for expert, spec in zip(experts, specs):
        own = regime == spec.regime
        with torch.no_grad():
            prediction = expert(torch.as_tensor(x[own]))[0].double().numpy()
        table[f"expert_{spec.name}"] = errors(norm.targets_raw(prediction), y[own], target_std)
    (student,), _ = load_family(out, "single_student", n_features, cfg.distill.hidden)
    with torch.no_grad():
        prediction = student(torch.as_tensor(x))[0].double().numpy()
    table["single_student"] = errors(norm.targets_raw(prediction), y, target_std)
    main_weights, names = None, []
    for variant, row in MOE_ROWS.items():
        moe = load_moe(out, cfg, variant, n_features)
        prediction, weights = _model_predictions(moe, x, regime)
        table[row] = errors(norm.targets_raw(prediction), y, target_std)
        if variant is Variant.HAJEK:
            main_weights, names = weights, list(moe.names)
    return table, main_weights, names


def plot_weights(weights: np.ndarray, regime: np.ndarray, names: list[str], path: Path) -> None:
    """Mean expert weight per regime (rows) and expert (columns), values printed in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = ["low", "mid", "high"]
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


def _markdown(report: dict) -> str:
    names = report["targets"]
    lines = ["# CMM training report", "",
             f"Data: {', '.join(report['data'])}; {report['rows']['train']} train rows, "
             f"{report['rows']['test']} test rows. Teacher: {report['teacher']}.", "",
             "## Held-out error (test split)", "",
             "MSE per output; `norm` is divided by the train variance of the target. "
             "Experts are scored on their own regime's test rows (n/a: the test split has none).", "",
             "| model | rows | " + " | ".join(f"{n} | {n} norm" for n in names) + " |",
             "|---|---:|" + "---:|---:|" * len(names)]
    for model, e in report["errors"].items():
        if e["mse"] is None:
            lines.append(f"| {model} | 0 |" + " n/a | n/a |" * len(names))
            continue
        cells = " | ".join(f"{m:.4g} | {z:.3f}" for m, z in zip(e["mse"], e["mse_normalized"]))
        lines.append(f"| {model} | {e['rows']} | {cells} |")
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


def write_report(out: Path, cfg, prep, log: Callable[[str], None] = print) -> dict:
    from cmm_models.pipeline import bundle_latency, load_probe_map, stage_info

    table, weights, names = evaluate_all(out, cfg, prep)
    test_rows = np.load(out / "teacher" / "outputs.npz")["test_rows"]
    plot_weights(weights, prep.regime[test_rows], names, out / "expert_weights.png")
    shutil.copyfile(out / "probe" / "probe.png", out / "probe_heatmap.png")
    probe = load_probe_map(out)
    teacher_latency = json.loads((out / "teacher" / "latency.json").read_text())
    cmm_latency = bundle_latency(out / "bundle", cfg.export.latency_repeats)
    report = {
        "data": cfg.data.files, "teacher": cfg.teacher.model, "targets": list(TARGET_NAMES),
        "rows": {"train": int(prep.train.size), "test": int(test_rows.size), "probe": int(prep.probe.size)},
        "errors": table,
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
    log(f"report: {out / 'report.md'} (moe {table['moe']['mse_normalized']}, teacher "
        f"{table['teacher']['mse_normalized']}, bundle p50 {cmm_latency['p50_us']:.1f} us)")
    return report
