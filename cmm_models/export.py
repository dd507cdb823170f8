"""Export a trained MoE as one verified bundle directory that trading loads with :func:`feeds.bundle.load_bundle`.

The TorchScript module runs every expert and the aggregation in one call,
``model(features, regime) -> (predictions, weights)``: features are the
*normalized* feature vector ([F] or [B, F] float32, normalized with
``normalization.json`` in float64 first, since raw prices lose digits in
float32), regime an int (-1: unknown); predictions are normalized targets
([3] or [B, 3]) and weights cover all experts ([E] or [B, E], zero for
experts the routing switched off).

It is built for a decision in microseconds on one thread: the experts'
weights are stacked so the whole expert bank is one matrix product and two
batched ones, and everything linear in the aggregator is folded into them
(see :class:`FusedMoE`). The folded module equals the eager one up
to float rounding, which the tests check.

``torch.jit.save`` is not byte-reproducible: it writes a random
``serialization_id`` and the absolute path of this source file (in the debug
tables). The archive is therefore rewritten canonically: same entries in the
same order, no debug tables, the id derived from the content, fixed
timestamps, data aligned to 64 bytes as torch writes it. The same model then
gives the same ``model.pt`` bytes wherever the code lives.
"""
from __future__ import annotations

import hashlib
import io
import statistics
import struct
import time
import warnings
import zipfile
from pathlib import Path

import msgspec
import numpy as np
import torch
from torch import nn

from feeds.atomic import atomic_write
from feeds.bundle import FILES, Manifest, write_manifest

from .dataset import TARGET_NAMES, Normalization
from .experts import N_OUTPUTS
from .moe import AGGREGATORS, MixtureOfExperts
from .regimes import RegimeThresholds

ALIGN = 64
_PAD_HEADER = b"FB"      # the extra-field id torch uses for its alignment padding


class FusedMoE(nn.Module):
    """A :class:`MixtureOfExperts` with its weights stacked for one fast call (see the module docstring).

    Experts run as batched products over a leading expert axis ([E, B, .]).
    Folded at export: φ's first layer on the prediction into the experts' output
    layer (its output columns 3: are φ's pre-activation), φ's context term and
    the gate into the first product, and 1 / tau into φ's last layer (scaling
    z scales C by the same factor).
    """

    # Plain int attributes, not __constants__: TorchScript emits constants in set order, which
    # changes with Python's hash seed and would make model.pt differ from run to run.

    def __init__(self, moe: MixtureOfExperts):
        super().__init__()
        experts = list(moe.experts)
        n_experts, hidden = len(experts), experts[0].hidden
        self.kind = AGGREGATORS.index(moe.config.aggregator)
        self.n_experts = n_experts
        self.n_regimes = moe.n_regimes
        self.hidden = hidden
        self.expert_columns = n_experts * hidden
        with torch.no_grad():
            first_w = [torch.cat([e.layer1.weight.T for e in experts], dim=1)]
            first_b = [torch.cat([e.layer1.bias for e in experts])]
            out_w = torch.stack([e.out.weight.T for e in experts])                 # [E, H, 3]
            out_b = torch.stack([e.out.bias for e in experts]).unsqueeze(1)       # [E, 1, 3]
            kernel_w, kernel_b = torch.zeros(0, 0, 0), torch.zeros(0, 0, 0)
            if moe.config.aggregator == "hajek":
                k1, k2 = moe.kernel[0], moe.kernel[2]
                on_prediction, on_context = k1.weight[:, :N_OUTPUTS], k1.weight[:, N_OUTPUTS:]
                first_w.append((on_context @ moe.context.weight).T)
                first_b.append(on_context @ moe.context.bias + k1.bias)
                out_w = torch.cat([out_w, out_w @ on_prediction.T], dim=2)          # [E, H, 3 + K]
                out_b = torch.cat([out_b, out_b @ on_prediction.T], dim=2)
                scale = 1.0 / moe.config.tau
                kernel_w = (k2.weight.T * scale).expand(n_experts, -1, -1)          # [E, K, 2]
                kernel_b = (k2.bias * scale).expand(n_experts, 1, -1)               # [E, 1, 2]
            elif moe.config.aggregator == "gate":
                first_w.append(moe.gate.weight.T)
                first_b.append(moe.gate.bias)
            buffers = {
                "first_w": torch.cat(first_w, dim=1), "first_b": torch.cat(first_b),
                "second_w": torch.stack([e.layer2.weight.T for e in experts]),
                "second_b": torch.stack([e.layer2.bias for e in experts]).unsqueeze(1),
                "out_w": out_w, "out_b": out_b, "kernel_w": kernel_w, "kernel_b": kernel_b,
                "mask_mean": moe.mask_mean.reshape(-1, n_experts, 1, 1),            # [R + 1, E, 1, 1]
                "mask_bias": moe.mask_bias.reshape(-1, n_experts, 1),               # [R + 1, E, 1]
            }
        for name, value in buffers.items():
            self.register_buffer(name, value.detach().to(torch.float32).contiguous().clone())

    def forward(self, features: torch.Tensor, regime: int) -> tuple[torch.Tensor, torch.Tensor]:
        single = features.dim() == 1
        x = features.unsqueeze(0) if single else features
        row = regime if 0 <= regime < self.n_regimes else self.n_regimes
        first = torch.addmm(self.first_b, x, self.first_w)
        hidden = torch.relu(first[:, :self.expert_columns]).view(-1, self.n_experts, self.hidden).transpose(0, 1)
        hidden = torch.relu(torch.baddbmm(self.second_b, hidden, self.second_w))
        out = torch.baddbmm(self.out_b, hidden, self.out_w)                      # [E, B, 3 (+ K)]
        predictions = out[:, :, :3]
        if self.kind == 0:
            z = torch.baddbmm(self.kernel_b, torch.tanh(out[:, :, 3:] + first[:, self.expert_columns:]),
                              self.kernel_w)                                       # z / tau [E, B, 2]
            consensus = (self.mask_mean[row] * z).sum(0)                          # V [B, 2]
            direction = consensus / torch.linalg.vector_norm(consensus, dim=-1, keepdim=True).clamp_min(1e-12)
            weights = torch.softmax((z * direction).sum(-1) + self.mask_bias[row], dim=0)   # [E, B]
        elif self.kind == 2:
            weights = torch.softmax(first[:, self.expert_columns:].t() + self.mask_bias[row], dim=0)
        else:
            weights = self.mask_mean[row].view(-1, 1).expand(-1, x.shape[0])
        prediction = (weights.unsqueeze(-1) * predictions).sum(0)
        if single:
            return prediction.squeeze(0), weights.squeeze(1)
        return prediction, weights.t()


def script(moe: MixtureOfExperts) -> torch.jit.ScriptModule:
    """The fused module, scripted. torch 2.13 marks torch.jit.script deprecated, but TorchScript is
    still what loads without Python source in a trading process, so the warning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(FusedMoE(moe.cpu().eval()).eval())


def _aligned_info(name: str, offset: int) -> zipfile.ZipInfo:
    """A stored entry whose data starts on a multiple of ALIGN (padding in an extra field, as torch does)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 0
    header = 30 + len(name.encode())
    pad = (-(offset + header + 4)) % ALIGN
    info.extra = _PAD_HEADER + struct.pack("<H", pad) + b"Z" * pad
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
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries:
            if name.endswith("serialization_id"):
                data = serial
            target.writestr(_aligned_info(name, out.tell()), data)
    return out.getvalue()


def _json(obj) -> bytes:
    return msgspec.json.format(msgspec.json.encode(obj, order="sorted"), indent=2) + b"\n"


def export_bundle(moe: MixtureOfExperts, directory: str | Path, normalization: Normalization,
                  thresholds: RegimeThresholds, teacher_latency: dict) -> Manifest:
    """Write the bundle (the files of :data:`feeds.bundle.FILES`) into ``directory`` and return its manifest.

    ``teacher_latency`` is the measured teacher per-decision latency (e.g.
    ``{"p50_us": ..., "p99_us": ..., "threads": 1}``), stored as given.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(script(moe), buffer)
    layout = {
        "aggregator": moe.config.aggregator, "routing": moe.config.routing, "tau": moe.config.tau,
        "n_features": moe.experts[0].n_inputs, "n_regimes": moe.n_regimes, "target_names": list(TARGET_NAMES),
        "experts": [{"name": n, "regime": r} for n, r in zip(moe.names, moe.regimes)],
        "inputs": "normalized features [F] or [B, F] float32, regime int (-1 unknown)",
        "outputs": "normalized predictions [3] or [B, 3], expert weights [E] or [B, E]",
    }
    contents = {
        "model.pt": canonical_archive(buffer.getvalue()),
        "model.json": _json(layout),
        "normalization.json": _json(normalization),
        "regimes.json": _json(thresholds),
        "feature_schema.json": _json(normalization.schema),
        "teacher_latency.json": _json(teacher_latency),
    }
    assert set(contents) == set(FILES), "export and feeds.bundle.FILES disagree on the bundle layout"
    for name, data in contents.items():
        with atomic_write(directory / name) as f:
            f.write(data)
    return write_manifest(directory, created_by="cmm_models.export")


def decision_latency(model, n_features: int, regime: int = 0, repeats: int = 20000,
                     warmup: int = 2000, seed: int = 0) -> dict:
    """Per-decision latency of ``model(features[F], regime)`` at 1 thread: p50/p99 in microseconds.

    Each call is timed on its own (perf_counter_ns around the call) with a fresh
    input row written into one preallocated tensor, as a live strategy would.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = torch.from_numpy(np.random.default_rng(seed).standard_normal((256, n_features), dtype=np.float32))
        x = torch.empty(n_features)
        times = np.empty(repeats, dtype=np.int64)
        with torch.inference_mode():
            for i in range(warmup):
                x.copy_(rows[i % 256])
                model(x, regime)
            for i in range(repeats):
                x.copy_(rows[i % 256])
                start = time.perf_counter_ns()
                model(x, regime)
                times[i] = time.perf_counter_ns() - start
    finally:
        torch.set_num_threads(threads)
    us = times / 1000.0
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(statistics.fmean(us)), "threads": 1, "repeats": repeats}
