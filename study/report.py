"""The study's tables and plots, from its jobs' results: ``study.json``, ``study.md`` and ``study.html``.

Every number is out of sample: the backtests replay only the test window of each training run (the
models never saw it), and the R² is the training report's on the test split. Per dataset and method:

- EPnL, MAP, PnLMAP and RPT, mean ± std over the test episodes (of every seed pooled);
- the whole window's EPnL, mean ± std across seeds (what the seed changes);
- decision latency p50 and p99 (us, mean over seeds; "n/a" where a decision time is declared, not measured);
- paired differences of episode EPnL (seed-averaged) with a bootstrap 95% CI: CMM − teacher,
  CMM − single student, Hájek (cmm) − mean (cmm_mean);
- stress: the same over the episodes in the top volatility quintile (realized volatility of the mid);
- the rebate row: CMM and the teacher again with the maker rebate.
"""
from __future__ import annotations

import html
import os

import msgspec
import numpy as np

from common.atomic import atomic_write
from common.stats import bootstrap_mean_ci
from runtime.jobs import JobResult

PAIRS = (("cmm", "teacher"), ("cmm", "single_student"), ("cmm", "cmm_mean"))
PAIR_NAMES = {("cmm", "teacher"): "CMM − teacher", ("cmm", "single_student"): "CMM − single student",
              ("cmm", "cmm_mean"): "Hájek − mean"}
R2_MODELS = ("teacher", "single_student", "moe", "train_mean", "persistence", "ewma")
LABELS = {"teacher_free": "teacher (no latency)", "cmm+rebate": "cmm, with rebate",
          "teacher+rebate": "teacher, with rebate"}


def _stat(values) -> dict:
    x = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else None, "n": int(len(x))}


def collect(results: list[JobResult], kind: str = "run") -> tuple[dict, dict]:
    """(runs, trains): runs[dataset][label] = [value per seed] of the jobs ``kind/...`` ("run" or "shockrun"),
    trains[dataset] = [value per seed]."""
    runs: dict[str, dict[str, list]] = {}
    trains: dict[str, list] = {}
    for r in results:
        if not r.ok:
            continue
        parts = r.id.split("/")
        if parts[0] == "train":
            trains.setdefault(parts[1], []).append(r.value)
        elif parts[0] == kind:
            runs.setdefault(parts[1], {}).setdefault(parts[-1], []).append(r.value)
    return runs, trains


def _shock(results: list[JobResult], ds: str, calm: dict) -> dict:
    """The flash move's table: each method's window EPnL with the shock, without it (same seed), the
    difference, the EPnL of the episode the shock falls in, and the max drawdown."""
    shocks = {r.id.split("/")[1]: r.value for r in results if r.ok and r.id.startswith("shock/")}
    if ds not in shocks:
        return {}
    shocked, _ = collect(results, "shockrun")
    info, out = shocks[ds], {}
    for method, (v,) in shocked.get(ds, {}).items():
        base = calm.get(method, [None])[0]
        starts = v["episodes"]["start_ts"]
        k = max(0, int(np.searchsorted(starts, info["t"], side="right")) - 1)
        out[method] = {"epnl": v["epnl"], "calm_epnl": None if base is None else base["epnl"],
                       "difference": None if base is None else v["epnl"] - base["epnl"],
                       "shock_episode_epnl": v["episodes"]["epnl"][k] if starts else None,
                       "max_drawdown": v.get("max_drawdown"), "calm_max_drawdown": None if base is None
                       else base.get("max_drawdown")}
    return {"move": info, "methods": out}


def summarize(results: list[JobResult], resamples: int, stress_share: float) -> dict:
    runs, trains = collect(results)
    out = {}
    for ds, labels in runs.items():
        table = {}
        for label, values in labels.items():
            eps = {k: [x for v in values for x in v["episodes"][k]] for k in ("epnl", "map", "pnlmap", "rpt")}
            lat = [v["latency_us"] for v in values if v["latency_us"] is not None]
            table[label] = {
                "seeds": len(values),
                **{k: _stat(eps[k]) for k in eps},
                "epnl_seeds": _stat([v["epnl"] for v in values]),
                "fills": _stat([v["n_fills"] for v in values]),
                "latency_us": None if not lat else {"p50": float(np.mean([x[0] for x in lat])),
                                                    "p99": float(np.mean([x[1] for x in lat]))},
                "episodes": len(values[0]["episodes"]["epnl"]),
                "in_sample": any(v.get("in_sample") for v in values),
            }
        pairs = {}
        for a, b in PAIRS:
            if a in labels and b in labels:
                diff = _paired(labels[a], labels[b])
                if len(diff):
                    lo, hi = bootstrap_mean_ci(diff, resamples)
                    pairs[PAIR_NAMES[(a, b)]] = {"mean": float(diff.mean()), "ci95": [lo, hi],
                                                 "episodes": int(len(diff))}
        stress = _stress(labels, stress_share)
        r2 = _r2(trains.get(ds, []))
        out[ds] = {"methods": table, "paired": pairs, "stress": stress, "shock": _shock(results, ds, labels), "r2": r2,
                   "occupancy": [t.get("occupancy") for t in trains.get(ds, [])],
                   "test_window_ns": trains[ds][0]["test"] if trains.get(ds) else None}
    return out


def _paired(a: list, b: list) -> np.ndarray:
    """Per episode, the seed-averaged EPnL difference a − b (the seeds both ran, episodes aligned)."""
    n = min(len(a), len(b))
    rows = [np.array(x["episodes"]["epnl"]) - np.array(y["episodes"]["epnl"]) for x, y in zip(a[:n], b[:n])
            if len(x["episodes"]["epnl"]) == len(y["episodes"]["epnl"])]
    return np.mean(rows, axis=0) if rows else np.array([])


def _stress(labels: dict, share: float) -> dict:
    """Episode EPnL and MAP over the most volatile ``share`` of the test episodes (by the market's mid)."""
    ref = next(iter(labels.values()))[0]["episodes"]["vol"]
    if not ref:
        return {}
    cut = np.quantile(ref, 1 - share)
    top = np.flatnonzero(np.array(ref) >= cut)
    out = {"episodes": int(len(top)), "vol_threshold": float(cut), "methods": {}}
    for label, values in labels.items():
        if all(len(v["episodes"]["epnl"]) == len(ref) for v in values):
            out["methods"][label] = {k: _stat([v["episodes"][k][i] for v in values for i in top])
                                     for k in ("epnl", "map")}
    return out


def _r2(trains: list) -> dict:
    """Test-split R² per model and target, mean ± std across seeds (empty when the report has none)."""
    r2s = [t["r2"]["test"] for t in trains if t.get("r2") and "test" in t["r2"]]
    out = {}
    for model in sorted({m for r in r2s for m in r}):
        targets = sorted({k for r in r2s for k in r.get(model, {})})
        out[model] = {k: _stat([r[model][k] for r in r2s if k in r.get(model, {})]) for k in targets}
    return out


# ---- text
def _pm(s: dict | None, spec: str = ",.2f") -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    return format(s["mean"], spec) + ("" if s.get("std") is None else " ± " + format(s["std"], spec))


def markdown(summary: dict, meta: dict) -> str:
    lines = ["# CMM study", "",
             f"Seeds {meta['seeds']}; episodes of {meta['episode_s']:g} s over each dataset's test window; maker fee "
             f"{meta['maker_fee']:g} (the rebate rows: {meta['rebate']:g}). Every number is out of sample: the "
             "backtests replay only the test split, which no model was fitted or early-stopped on.", ""]
    for ds, s in summary.items():
        lines += [f"## {ds}", "", "| method | EPnL | MAP | PnLMAP | RPT | EPnL (window, across seeds) | fills | "
                  "latency p50 us | latency p99 us |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for label, m in s["methods"].items():
            lat = m["latency_us"]
            flag = " (in sample!)" if m["in_sample"] else ""
            lines.append(f"| {LABELS.get(label, label)}{flag} | {_pm(m['epnl'])} | {_pm(m['map'])} | "
                         f"{_pm(m['pnlmap'], ',.3f')} | {_pm(m['rpt'], ',.3f')} | {_pm(m['epnl_seeds'])} | "
                         f"{_pm(m['fills'], ',.0f')} | {'n/a' if not lat else format(lat['p50'], ',.1f')} | "
                         f"{'n/a' if not lat else format(lat['p99'], ',.1f')} |")
        lines += ["", "EPnL, MAP, PnLMAP, RPT: mean ± std over the test episodes of every seed pooled; "
                  "the window's EPnL: mean ± std across seeds.", ""]
        if s["paired"]:
            lines += ["| paired difference (episode EPnL) | mean | bootstrap 95% CI | episodes |", "|---|--:|--:|--:|"]
            for name, p in s["paired"].items():
                lines.append(f"| {name} | {p['mean']:,.2f} | [{p['ci95'][0]:,.2f}, {p['ci95'][1]:,.2f}] | "
                             f"{p['episodes']} |")
            lines.append("")
        st = s["stress"]
        if st and st.get("methods"):
            lines += [f"Stress: the {st['episodes']} most volatile test episodes (top quintile of the mid's "
                      "realized volatility):", "", "| method | EPnL | MAP |", "|---|--:|--:|"]
            for label, m in st["methods"].items():
                lines.append(f"| {LABELS.get(label, label)} | {_pm(m['epnl'])} | {_pm(m['map'])} |")
            lines.append("")
        sh = s.get("shock")
        if sh and sh.get("methods"):
            mv = sh["move"]
            lines += [f"Synthetic shock (first seed): every price {mv['ticks']} ticks ({mv['move']:,.4g}, "
                      f"{mv['move'] / mv['price'] * 1e4 if mv['price'] else float('nan'):,.0f} bp) lower for "
                      f"{mv['duration_ns'] / 1e9:g} s in the middle of the test window, then back:", "",
                      "| method | EPnL, shocked | EPnL, calm | difference | the shock's episode | max drawdown, "
                      "shocked / calm |", "|---|--:|--:|--:|--:|--:|"]

            def num(x, spec=",.2f"):
                return "n/a" if x is None else format(x, spec)
            for label, m in sh["methods"].items():
                lines.append(f"| {LABELS.get(label, label)} | {num(m['epnl'])} | {num(m['calm_epnl'])} | "
                             f"{num(m['difference'])} | {num(m['shock_episode_epnl'])} | "
                             f"{num(m['max_drawdown'])} / {num(m['calm_max_drawdown'])} |")
            lines.append("")
        if s["r2"]:
            targets = sorted({k for v in s["r2"].values() for k in v})
            lines += ["Test-split R² (training report), mean ± std across seeds:", "",
                      "| model | " + " | ".join(targets) + " |", "|---|" + "--:|" * len(targets)]
            for model, v in s["r2"].items():
                lines.append(f"| {model} | " + " | ".join(_pm(v.get(t), ".3f") for t in targets) + " |")
            lines.append("")
    failed = meta.get("failed") or []
    if failed:
        lines += ["## Jobs that failed", ""] + [f"- {line}" for line in failed] + [""]
    return "\n".join(lines)


# ---- plots
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)


def plots(out: str, results: list[JobResult], summary: dict) -> list[tuple[str, str]]:
    """The PNGs of study.html: (file, caption)."""
    runs, _ = collect(results)
    made = []
    for ds, labels in runs.items():
        fig = _figure(7, 3.6)
        ax = fig.subplots()
        for label, values in labels.items():
            lengths = {len(v["episodes"]["epnl"]) for v in values}
            if len(lengths) != 1:
                continue
            curve = np.cumsum(np.mean([v["episodes"]["epnl"] for v in values], axis=0))
            ax.plot(np.arange(1, len(curve) + 1), curve, label=LABELS.get(label, label), lw=1.2)
        ax.set_xlabel("test episode")
        ax.set_ylabel("cumulative EPnL (mean over seeds)")
        ax.set_title(f"{ds}: equity over the test episodes", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        name = f"equity_{ds}.png"
        _save(fig, os.path.join(out, name))
        made.append((name, f"{ds}: cumulative EPnL over the test episodes, mean over seeds"))
        weights = next((v["weights"] for v in labels.get("cmm", []) if v.get("weights")), None)
        if weights and weights["by_regime"]:
            regimes = list(weights["by_regime"])
            grid = np.array([weights["by_regime"][r]["mean"] for r in regimes])
            fig = _figure(2.0 + 0.7 * len(weights["experts"]), 2.6)
            ax = fig.subplots()
            image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(float(grid.max()), 1e-12), aspect="auto")
            ax.set_xticks(range(len(weights["experts"])), weights["experts"], rotation=40, ha="right", fontsize=7)
            ax.set_yticks(range(len(regimes)), [f"{r} (n={weights['by_regime'][r]['n']})" for r in regimes])
            fig.colorbar(image, ax=ax, label="mean weight")
            ax.set_title(f"{ds}: Hájek-MoE weights by regime, test decisions (first seed)", fontsize=8)
            name = f"weights_{ds}.png"
            _save(fig, os.path.join(out, name))
            made.append((name, f"{ds}: the MoE's mean expert weight in each volatility regime"))
    r2 = {ds: s["r2"] for ds, s in summary.items() if s["r2"]}
    if r2:
        targets = sorted({t for v in r2.values() for m in v.values() for t in m})
        fig = _figure(3.2 * len(targets), 3.2)
        axes = np.atleast_1d(fig.subplots(1, len(targets)))
        models = [m for m in R2_MODELS if any(m in v for v in r2.values())] or sorted({m for v in r2.values()
                                                                                      for m in v})
        for ax, target in zip(axes, targets):
            for i, ds in enumerate(r2):
                vals = [(r2[ds].get(m, {}).get(target) or {}).get("mean") or 0.0 for m in models]
                ax.bar(np.arange(len(models)) + i * 0.8 / len(r2), vals, width=0.8 / len(r2), label=ds)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_xticks(np.arange(len(models)) + 0.4 - 0.4 / len(r2), models, rotation=40, ha="right", fontsize=7)
            ax.set_title(f"test R²: {target}", fontsize=8)
        axes[0].legend(fontsize=6)
        _save(fig, os.path.join(out, "r2.png"))
        made.append(("r2.png", "held-out R² per model and target (mean over seeds), beside the naive predictors"))
    lat = [(ds, label, m["latency_us"]) for ds, s in summary.items() for label, m in s["methods"].items()
           if m["latency_us"]]
    if lat:
        fig = _figure(7, 0.6 + 0.22 * len(lat))
        ax = fig.subplots()
        y = np.arange(len(lat))
        ax.barh(y, [x[2]["p99"] for x in lat], color="#f3d0d0", label="p99")
        ax.barh(y, [x[2]["p50"] for x in lat], color="#7a9cc6", label="p50")
        ax.set_yticks(y, [f"{ds}: {LABELS.get(label, label)}" for ds, label, _ in lat], fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("decision latency, us (log scale)")
        ax.legend(fontsize=7)
        _save(fig, os.path.join(out, "latency.png"))
        made.append(("latency.png", "measured decision latency per method, p50 and p99"))
    return made


def write(out: str, results: list[JobResult], summary: dict, meta: dict) -> str:
    """study.json, study.md and study.html (with its PNGs) into ``out``; returns the Markdown."""
    text = markdown(summary, meta)
    with atomic_write(os.path.join(out, "study.md"), "w") as f:
        f.write(text + "\n")
    with atomic_write(os.path.join(out, "study.json")) as f:
        f.write(msgspec.json.format(msgspec.json.encode({"meta": meta, "datasets": summary}), indent=2) + b"\n")
    images = plots(out, results, summary)
    body = "\n".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, caption in images)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>CMM study</title><style>"
            "body{font-family:sans-serif;max-width:70em;margin:auto}pre{font-size:12px}</style></head><body>"
            f"<h1>CMM study</h1>{body}<h2>Tables</h2><pre>{html.escape(text)}</pre></body></html>\n")
    with atomic_write(os.path.join(out, "study.html"), "w") as f:
        f.write(page)
    return text
