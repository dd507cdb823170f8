"""Export a trained MoE as one verified bundle directory that trading loads with :func:`bundle.loader.load_bundle`.

The TorchScript module runs the active experts and the aggregation in one call,
``model(features, regime) -> (predictions, weights)``: features are the
*normalized* feature vector ([F] or [B, F] float32, normalized with
``normalization.json`` in float64 first, since raw prices lose digits in
float32), regime an int (-1: unknown); predictions are normalized targets
([3] or [B, 3]) and weights cover all experts ([E] or [B, E], zero for
experts the routing switched off).

It is built for a decision in microseconds on one thread: each regime's
active experts are pre-laid-out as one wide network of three matrix-vector
products, and everything linear in the aggregator is folded into them (see
:class:`FusedMoE`). The folded module equals the eager one up to float
rounding, which the tests check.

The pipeline exports one bundle per model variant with the same files and
the same normalization, so a strategy swaps models by swapping directories:
the main Hájek MoE, the ablations (``mean``, ``gate``, ``no_regime``,
``no_layer``), the single student (its one expert, mean-aggregated) and the
teacher itself (:func:`export_teacher_bundle`: the transformer traced to
TorchScript, so trading runs it without importing ``transformers``).
``model.json`` names the ``variant`` (:class:`bundle.manifest.Variant`) and
the manifest its ``kind``.

``torch.jit.save`` is not byte-reproducible: it writes a random
``serialization_id`` and the absolute path of this source file (in the debug
tables). The archive is therefore rewritten canonically: same entries in the
same order, no debug tables, the id derived from the content, fixed
timestamps, entries deflated (the fused tables are mostly zeros, and the
shipped bundles must stay small; torch reads deflated entries). The same
model then gives the same ``model.pt`` bytes wherever the code lives.
"""
from __future__ import annotations

import hashlib
import io
import statistics
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Sequence, Tuple

import msgspec
import numpy as np
import torch
from torch import nn

from common.atomic import atomic_write
from common.stats import p50_p99
from bundle.manifest import FILES, Manifest, TrainingWindow, Variant, write_manifest

from cmm_models.dataset import TARGET_NAMES, Normalization
from cmm_models.experts import N_OUTPUTS
from cmm_models.moe import AGGREGATORS, MixtureOfExperts
from cmm_models.regimes import RegimeThresholds


class FusedMoE(nn.Module):
    """A :class:`MixtureOfExperts` re-laid-out for one fast call per decision (see the module docstring).

    A TorchScript op costs most of a microsecond whatever its size, so the call
    is built to run as few as possible (17 for a Hájek decision). For each
    routing row (each regime, then the unknown regime) only that row's A active
    experts run, laid out as one wide network: their first layers side by side,
    their second layers as one block-diagonal matrix. The output layer has rows
    for all E experts, ordered (output, expert) so the predictions view as
    [3, E]; a switched-off expert's rows are zero, and its weight is exactly
    zero because its confidence gets the mask bias (-inf) added, as in the
    eager module. A row is picked by indexing Python lists, which costs next
    to nothing.

    Folded in at export: φ's first layer on the prediction into the output
    layer (``phi_*`` gives φ's pre-activation straight from the experts' last
    hidden layer); 1 / tau into φ's last layer (scaling z scales C by the same
    factor), which runs block-diagonally so z comes out as [E, 2]; and the mean
    over the active experts into a second copy of that layer, which gives V
    directly. φ also reads the context projection of the features: it rides
    through the two hidden layers as (relu(c), relu(-c)), whose difference is
    c, so it costs no op of its own. V / ‖V‖ is V's sign as a complex number,
    one op instead of three, and 0 where V is 0 (the eager clamp gives C = 0
    there too).

    A decision is one vector; a batch [B, F] runs decision by decision.
    """

    # Plain int attributes, not __constants__: TorchScript emits constants in set order, which
    # changes with Python's hash seed and would make model.pt differ from run to run.

    def __init__(self, moe: MixtureOfExperts):
        super().__init__()
        self.kind = AGGREGATORS.index(moe.config.aggregator)
        self.n_regimes = moe.n_regimes
        # cosine confidence is blind to z's length, so 1 / tau cannot ride in z: it multiplies C instead
        self.cosine = moe.config.aggregator == "hajek" and moe.config.confidence == "cosine"
        self.inv_tau = 1.0 / moe.tau
        with torch.no_grad():
            rows = [self._row(moe, row) for row in range(len(moe.mask))]
        for name in rows[0]:
            setattr(self, name, [row[name] for row in rows])

    @staticmethod
    def _row(moe: MixtureOfExperts, row: int) -> dict[str, torch.Tensor]:
        """One routing row's tables: its active experts as one network, and their aggregation."""
        active = torch.nonzero(moe.mask[row]).flatten().tolist()
        experts = [moe.experts[i] for i in active]
        n_active, hidden, n_features = len(active), moe.experts[0].hidden, moe.experts[0].n_inputs
        hajek = moe.config.aggregator == "hajek"
        context = moe.context.out_features if hajek else 0
        carried = n_active * hidden                       # where the context rides: [carried, carried + 2C)
        width = carried + 2 * context
        empty = torch.zeros(0, 0), torch.zeros(0)
        n_experts = len(moe.experts)
        t = {"first_w": torch.zeros(width, n_features), "first_b": torch.zeros(width),
             "second_w": torch.zeros(width, width), "second_b": torch.zeros(width),
             "out_w": torch.zeros(N_OUTPUTS * n_experts, width), "out_b": torch.zeros(N_OUTPUTS * n_experts),
             "mask_bias": moe.mask_bias[row], "mask_mean": moe.mask_mean[row]}
        for slot, (index, expert) in enumerate(zip(active, experts)):
            block = slice(slot * hidden, (slot + 1) * hidden)
            t["first_w"][block], t["first_b"][block] = expert.layer1.weight, expert.layer1.bias
            t["second_w"][block, block], t["second_b"][block] = expert.layer2.weight, expert.layer2.bias
            t["out_w"][index::n_experts, block], t["out_b"][index::n_experts] = expert.out.weight, expert.out.bias
        for table in ("phi", "z", "consensus", "gate"):           # filled below for the aggregator that uses them
            t[f"{table}_w"], t[f"{table}_b"] = empty
        if hajek:
            first, last = moe.kernel[0], moe.kernel[2]
            on_prediction, on_context = first.weight[:, :N_OUTPUTS], first.weight[:, N_OUTPUTS:]
            t["first_w"][carried:] = torch.cat([moe.context.weight, -moe.context.weight])
            t["first_b"][carried:] = torch.cat([moe.context.bias, -moe.context.bias])
            t["second_w"][carried:, carried:] = torch.eye(2 * context)
            t["phi_w"] = torch.zeros(first.out_features * n_active, width)
            t["phi_w"][:, carried:] = torch.cat([on_context, -on_context], dim=1).repeat(n_active, 1)
            t["phi_b"] = torch.cat([on_prediction @ expert.out.bias + first.bias for expert in experts])
            for slot, expert in enumerate(experts):
                kernel_rows = slice(slot * first.out_features, (slot + 1) * first.out_features)
                t["phi_w"][kernel_rows, slot * hidden:(slot + 1) * hidden] = on_prediction @ expert.out.weight
            scale = 1.0 if moe.config.confidence == "cosine" else 1.0 / moe.tau
            kernel_w, kernel_b = last.weight * scale, last.bias * scale
            t["z_w"] = torch.zeros(2 * n_experts, first.out_features * n_active)
            t["z_b"] = torch.zeros(2 * n_experts)
            for slot, index in enumerate(active):
                t["z_w"][2 * index:2 * index + 2, slot * first.out_features:(slot + 1) * first.out_features] = kernel_w
                t["z_b"][2 * index:2 * index + 2] = kernel_b
            t["consensus_w"], t["consensus_b"] = kernel_w.repeat(1, n_active) / n_active, kernel_b
        if moe.config.aggregator == "gate":
            t["gate_w"], t["gate_b"] = moe.gate.weight, moe.gate.bias + moe.mask_bias[row]
        return {name: value.detach().to(torch.float32).contiguous().clone() for name, value in t.items()}

    def forward(self, features: torch.Tensor, regime: int) -> Tuple[torch.Tensor, torch.Tensor]:
        row = regime if 0 <= regime < self.n_regimes else self.n_regimes
        if features.dim() == 1:
            return self.decide(features, row)
        decisions = [self.decide(x, row) for x in features.unbind(0)]
        return torch.stack([d[0] for d in decisions]), torch.stack([d[1] for d in decisions])

    def decide(self, x: torch.Tensor, row: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """One decision: features [F] -> (prediction [3], weights [E])."""
        hidden = torch.relu_(torch.addmv(self.first_b[row], self.first_w[row], x))
        hidden = torch.relu_(torch.addmv(self.second_b[row], self.second_w[row], hidden))
        predictions = torch.addmv(self.out_b[row], self.out_w[row], hidden).view(3, -1)      # [3 outputs, E]
        if self.kind == 0:
            phi = torch.tanh_(torch.addmv(self.phi_b[row], self.phi_w[row], hidden))
            z = torch.addmv(self.z_b[row], self.z_w[row], phi).view(-1, 2)                   # z / tau [E, 2]
            consensus = torch.addmv(self.consensus_b[row], self.consensus_w[row], phi)       # V / tau [2]
            direction = torch.view_as_real(torch.sgn(torch.view_as_complex(consensus)))     # V / |V|
            if self.cosine:
                unit = z / torch.linalg.vector_norm(z, 2, [1], True).clamp_min(1e-12)
                weights = torch.softmax(torch.mv(unit, direction) * self.inv_tau + self.mask_bias[row], 0)
            else:
                weights = torch.softmax(torch.addmv(self.mask_bias[row], z, direction), 0)
        elif self.kind == 2:
            weights = torch.softmax(torch.addmv(self.gate_b[row], self.gate_w[row], x), 0)
        else:
            weights = self.mask_mean[row].clone()            # the caller may write into what it gets
        return torch.mv(predictions, weights), weights


def script(moe: MixtureOfExperts) -> torch.jit.ScriptModule:
    """The fused module, scripted. torch 2.13 marks torch.jit.script deprecated, but TorchScript is
    still what loads without Python source in a trading process, so the warning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(FusedMoE(moe.cpu().eval()).eval())


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 0
    return info


def canonical_archive(raw: bytes) -> bytes:
    """``raw`` (a torch.jit.save archive) rewritten byte-reproducibly; see the module docstring."""
    source = zipfile.ZipFile(io.BytesIO(raw))
    entries = [(i.filename, source.read(i.filename)) for i in source.infolist()
               if not i.filename.endswith(".debug_pkl")]
    content = hashlib.sha256()
    for name, data in entries:
        if not name.endswith("serialization_id"):
            content.update(name.encode() + b"\0" + data)
    serial = str(int.from_bytes(content.digest()[:16], "big")).rjust(40, "0")[:40].encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for name, data in entries:
            if name.endswith("serialization_id"):
                data = serial
            target.writestr(_entry(name), data, compresslevel=9)
    return out.getvalue()


def _json(obj) -> bytes:
    return msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2) + b"\n"


def _saved(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, buffer)
    return canonical_archive(buffer.getvalue())


def _write_bundle(directory: str | Path, model: bytes, layout: dict, normalization: Normalization,
                  thresholds: RegimeThresholds, teacher_latency: dict, training: TrainingWindow | None) -> Manifest:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "model.pt": model,
        "model.json": _json(layout),
        "normalization.json": _json(normalization),
        "regimes.json": _json(thresholds),
        "feature_schema.json": _json(normalization.schema),
        "teacher_latency.json": _json(teacher_latency),
    }
    assert set(contents) == set(FILES), "export and bundle.manifest.FILES disagree on the bundle layout"
    for name, data in contents.items():
        with atomic_write(directory / name) as f:
            f.write(data)
    return write_manifest(directory, Variant(layout["variant"]).kind, created_by="cmm_models.export",
                          training=training)


def export_bundle(moe: MixtureOfExperts, directory: str | Path, normalization: Normalization,
                  thresholds: RegimeThresholds, teacher_latency: dict, variant: Variant = Variant.HAJEK,
                  training: TrainingWindow | None = None) -> Manifest:
    """Write the bundle (the files of :data:`bundle.manifest.FILES`) into ``directory`` and return its manifest.

    ``teacher_latency`` is the measured teacher per-decision latency (e.g.
    ``{"p50_us": ..., "p99_us": ..., "threads": 1}``), stored as given;
    ``variant`` is recorded in ``model.json`` so a strategy can refuse the wrong one.
    """
    layout = {
        "variant": variant,
        "aggregator": moe.config.aggregator, "routing": moe.config.routing, "tau": moe.tau,
        "confidence": moe.config.confidence if moe.config.aggregator == "hajek" else None,
        "n_features": moe.experts[0].n_inputs, "n_regimes": moe.n_regimes, "target_names": list(TARGET_NAMES),
        "experts": [{"name": n, "regime": r} for n, r in zip(moe.names, moe.regimes)],
        "inputs": "normalized features [F] or [B, F] float32, regime int (-1 unknown)",
        "outputs": "normalized predictions [3] or [B, 3], expert weights [E] or [B, E]",
    }
    return _write_bundle(directory, _saved(script(moe)), layout, normalization, thresholds, teacher_latency,
                         training)


class TeacherDecision(nn.Module):
    """The teacher as a trading model: one window [W, F] -> (predictions [3], weights [1]).

    Predictions come out normalized with the bundle's ``normalization.json``
    (the teacher's own target scaling is folded into one affine map), so a
    strategy turns them into market units exactly as it does a MoE's; the
    weight is the single model's, 1.
    """

    def __init__(self, teacher: nn.Module, normalization: Normalization):
        super().__init__()
        self.teacher = teacher
        bundle_mean = torch.tensor(normalization.target_mean, dtype=torch.float32)
        bundle_std = torch.tensor(normalization.target_std, dtype=torch.float32)
        self.register_buffer("scale", (teacher.target_std / bundle_std).detach().clone())
        self.register_buffer("shift", ((teacher.target_mean - bundle_mean) / bundle_std).detach().clone())
        self.register_buffer("weight", torch.ones(1))

    def forward(self, window: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        predictions, _ = self.teacher(window.unsqueeze(0))
        return predictions[0] * self.scale + self.shift, self.weight.clone()


def export_teacher_bundle(teacher: nn.Module, directory: str | Path, normalization: Normalization,
                          thresholds: RegimeThresholds, teacher_latency: dict, window: int,
                          dt_ns: int, training: TrainingWindow | None = None) -> Manifest:
    """The teacher as a bundle: :class:`TeacherDecision` traced (no ``transformers`` import to run it).

    ``model.json`` gives the ``window`` (feature vectors per decision) and
    ``dt_ns`` (their spacing, the training grid) that the trading side must
    reproduce.
    """
    module = TeacherDecision(teacher.cpu().eval(), normalization).eval()
    example = torch.zeros(window, teacher.n_features)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # TracerWarnings on the backbone's shape checks, and deprecation
        traced = torch.jit.trace(module, example)
    layout = {
        "variant": Variant.TEACHER, "backbone": type(teacher.backbone).__name__,
        "layers": int(teacher.backbone.config.num_hidden_layers),
        "n_features": teacher.n_features, "window": window, "dt_ns": dt_ns,
        "target_names": list(TARGET_NAMES), "experts": [{"name": "teacher", "regime": None}],
        "inputs": "normalized features [window, F] float32, oldest first, spaced dt_ns, the last at the decision",
        "outputs": "normalized predictions [3], weights [1]",
    }
    return _write_bundle(directory, _saved(traced), layout, normalization, thresholds, teacher_latency, training)


def feature_rows(bundle, n: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` raw feature vectors (float64, as trading computes them) drawn around the bundle's normalization."""
    noise = np.random.default_rng(seed).standard_normal((n, bundle.schema.n_features))
    return bundle.feature_mean + noise * bundle.feature_std


def decision_latency(decide: Callable, rows: np.ndarray, regimes: Sequence[int], repeats: int = 20000,
                     warmup: int = 2000) -> dict:
    """Per-decision latency of ``decide(row, regime)`` at 1 thread: p50/p99 in microseconds.

    ``decide`` is what trading runs per decision (the strategy's ``predict``,
    or :meth:`bundle.loader.Bundle.decide` that it calls), from raw features to
    numpy outputs. Each call is timed on its own (perf_counter_ns around it),
    cycling through ``rows`` and their ``regimes``, after ``warmup`` untimed calls.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n = len(rows)
        times = np.empty(repeats, dtype=np.int64)
        for i in range(warmup):
            decide(rows[i % n], regimes[i % n])
        for i in range(repeats):
            row, regime = rows[i % n], regimes[i % n]
            start = time.perf_counter_ns()
            decide(row, regime)
            times[i] = time.perf_counter_ns() - start
    finally:
        torch.set_num_threads(threads)
    us = times / 1000.0
    p50, p99 = p50_p99(us)
    return {"p50_us": p50, "p99_us": p99,
            "mean_us": float(statistics.fmean(us)), "threads": 1, "repeats": repeats}
