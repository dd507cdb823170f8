"""Orthogonal feature decomposition distillation: one small expert per (layer group, regime).

The probe ties each layer group (shallow / middle / deep) to the task it drives
most (:func:`cmm_models.probe.assign_tasks`). The expert of (group g, regime r)
trains on regime r's samples only and minimizes

    sum_k c_k * [MSE(pred_k, y_k) + a * MSE(pred_k, teacher_k)]  +  b * MSE(P h, T_g)

where ``c`` puts ``task_weight`` on g's task and the rest evenly on the other
two (so each expert still gives all three outputs), ``h`` is the expert's last
hidden layer, ``P`` a learned linear projection to the teacher's width and
``T_g`` the teacher's hidden state for group g (the mean over that group's
layers, standardized per dimension so ``b`` means the same for any backbone).
The single-student baseline is the usual distillation: one expert, all
samples, equal task weights, outputs only (``b = 0``).

Everything runs on precomputed arrays, so the teacher model is not needed
here. The same seed gives the same experts: each expert's init and minibatch
draws come from its own seed, and experts train one after another.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
import numpy as np
import torch
from torch import nn

from common.config import NonNegative, Positive, PositiveInt, Share

from cmm_models.experts import DEFAULT_HIDDEN, Expert
from cmm_models.probe import GROUPS
from cmm_models.regimes import N_REGIMES
from cmm_models.teacher import TASKS, pick_device


class DistillConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hidden: PositiveInt = DEFAULT_HIDDEN
    steps: PositiveInt = 1500
    batch_size: PositiveInt = 256
    lr: Positive = 3e-3
    task_weight: Share = 0.6              # c on the group's task; (1 - c) / 2 on each other task
    output_weight: NonNegative = 1.0      # a: teacher-output distillation
    feature_weight: NonNegative = 0.5     # b: feature distillation to the group's hidden state
    seed: int = 0


@dataclass(frozen=True)
class DistillData:
    """Training rows: everything normalized; ``teacher_hidden`` [n, 3 groups, H] in GROUPS order."""

    features: np.ndarray             # f4[n, F]
    targets: np.ndarray              # f4[n, 3]
    regime: np.ndarray               # int[n], 0..2 (-1 rows are used only by experts without a regime)
    teacher_predictions: np.ndarray  # f4[n, 3]
    teacher_hidden: np.ndarray       # f4[n, 3, H]


@dataclass(frozen=True)
class ExpertSpec:
    """What one expert learns: which rows, which task it leans toward, which hidden state it copies."""

    name: str
    regime: int | None                    # None: every row
    task_weights: tuple[float, float, float]
    group: int | None                     # index into GROUPS; None: no feature distillation


@dataclass
class Family:
    """Trained experts with their specs and each one's full-subset loss before and after training."""

    specs: list[ExpertSpec]
    experts: list[Expert]
    loss_before: list[float]
    loss_after: list[float]
    seconds: float


def task_index(task: str | int) -> int:
    return task if isinstance(task, int) else TASKS.index(task)


def leaning_weights(task: str | int, weight: float) -> tuple[float, float, float]:
    """``weight`` on ``task`` and the rest split evenly over the other two."""
    k = task_index(task)
    other = (1.0 - weight) / (len(TASKS) - 1)
    return tuple(weight if i == k else other for i in range(len(TASKS)))


def odd_specs(assignment: dict[str, str | int], config: DistillConfig) -> list[ExpertSpec]:
    """The 9 experts, regime-major (index = regime * 3 + group), so a regime's experts are contiguous."""
    return [ExpertSpec(f"r{r}_{group}", r, leaning_weights(assignment[group], config.task_weight), g)
            for r in range(N_REGIMES) for g, group in enumerate(GROUPS)]


def single_student_spec() -> list[ExpertSpec]:
    return [ExpertSpec("single_student", None, (1 / 3, 1 / 3, 1 / 3), None)]


def no_regime_specs(assignment: dict[str, str | int], config: DistillConfig) -> list[ExpertSpec]:
    """Ablation: the 3 group experts, each on every regime."""
    return [ExpertSpec(f"all_{group}", None, leaning_weights(assignment[group], config.task_weight), g)
            for g, group in enumerate(GROUPS)]


def no_layer_specs() -> list[ExpertSpec]:
    """Ablation: one expert per regime, equal task weights, outputs only."""
    return [ExpertSpec(f"r{r}_all_layers", r, (1 / 3, 1 / 3, 1 / 3), None) for r in range(N_REGIMES)]


def _standardize(hidden: np.ndarray) -> np.ndarray:
    mean = hidden.mean(axis=0, keepdims=True)
    std = hidden.std(axis=0, keepdims=True)
    return ((hidden - mean) / np.where(std < 1e-8, 1.0, std)).astype(np.float32)


def _loss(expert: Expert, projection: nn.Module | None, batch: tuple[torch.Tensor, ...],
          weights: torch.Tensor, config: DistillConfig) -> torch.Tensor:
    x, y, teacher, hidden = batch
    prediction, h = expert(x)
    per_task = ((prediction - y) ** 2).mean(0) + config.output_weight * ((prediction - teacher) ** 2).mean(0)
    loss = (weights * per_task).sum()
    if projection is not None:
        loss = loss + config.feature_weight * ((projection(h) - hidden) ** 2).mean()
    return loss


def train_expert(spec: ExpertSpec, data: DistillData, hidden_std: np.ndarray, config: DistillConfig,
                 seed: int, device: torch.device) -> tuple[Expert, float, float]:
    """One expert on its rows with Adam; returns it (on the CPU, eval mode) and its loss before and after."""
    rows = np.flatnonzero(data.regime == spec.regime) if spec.regime is not None else np.arange(len(data.regime))
    if rows.size == 0:
        raise ValueError(f"expert {spec.name}: no training rows in regime {spec.regime}")
    group = spec.group if spec.group is not None else 0
    tensors = tuple(torch.as_tensor(a[rows], dtype=torch.float32).to(device) for a in (
        data.features, data.targets, data.teacher_predictions, hidden_std[:, group]))
    expert = Expert(data.features.shape[1], config.hidden, seed=seed).to(device)
    projection = None
    if spec.group is not None and config.feature_weight > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            projection = nn.Linear(config.hidden, hidden_std.shape[2]).to(device)
    weights = torch.tensor(spec.task_weights, dtype=torch.float32, device=device)
    parameters = list(expert.parameters()) + (list(projection.parameters()) if projection else [])
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    generator = torch.Generator().manual_seed(seed)

    def full_loss() -> float:
        with torch.no_grad():
            return float(_loss(expert, projection, tensors, weights, config))

    before = full_loss()
    for _ in range(config.steps):
        batch = torch.randint(rows.size, (min(config.batch_size, rows.size),), generator=generator).to(device)
        loss = _loss(expert, projection, tuple(t[batch] for t in tensors), weights, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = full_loss()
    return expert.cpu().eval(), before, after


def train_family(data: DistillData, specs: list[ExpertSpec], config: DistillConfig = DistillConfig(),
                 device: str | torch.device | None = None) -> Family:
    """Train every expert of ``specs`` in order; expert i uses seed ``config.seed + 1000 * i``."""
    device = pick_device(device)
    hidden_std = _standardize(np.asarray(data.teacher_hidden, dtype=np.float32))
    start = time.perf_counter()
    trained = [train_expert(spec, data, hidden_std, config, config.seed + 1000 * i, device)
               for i, spec in enumerate(specs)]
    return Family(specs=list(specs), experts=[t[0] for t in trained], loss_before=[t[1] for t in trained],
                  loss_after=[t[2] for t in trained], seconds=time.perf_counter() - start)
