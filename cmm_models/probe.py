"""The normalized fluorescent probe: which layers drive which output.

For each layer l of the teacher, Gaussian noise of std ``eps * sigma_l`` is added
to that layer's output hidden state, where sigma_l is the layer's own activation
std on the probe sample; scaling by sigma_l makes "the same small nudge" mean
the same thing in a layer whose activations are large as in one whose are small.
The probe records how far each output moves, mean |Δoutput_k| over samples and
noise draws. The teacher predicts normalized targets, so Δoutput_k is already in
units of target k's std (the ``sensitivity``, comparable across tasks). Each
task's column is then divided by its sum over layers (the ``attribution``): the
share of that task's sensitivity each layer holds, comparable across layers.

Layers are grouped into shallow / middle / deep thirds, and :func:`assign_tasks`
ties each group to the task it drives most, read off the map rather than assumed.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import numpy as np
import torch
from torch import nn

from common.atomic import atomic_write

from cmm_models.teacher import TASKS, block_output_std, perturbed, pick_device, predict

GROUPS = ("shallow", "middle", "deep")


class RegimeMap(msgspec.Struct):
    """The probe restricted to one regime's samples ([layer][task] lists)."""
    samples: int
    sensitivity: list[list[float]]
    attribution: list[list[float]]


class ProbeMap(msgspec.Struct):
    """A layer x task attribution map, overall and per regime, with how it was measured."""
    tasks: list[str]
    layers: int
    eps: float
    draws: int
    seed: int
    samples: int
    layer_std: list[float]
    sensitivity: list[list[float]]
    attribution: list[list[float]]
    regimes: dict[str, RegimeMap] = {}


def column_normalize(sensitivity: np.ndarray) -> np.ndarray:
    """Each task's column divided by its sum over layers; an all-zero column stays zero."""
    total = sensitivity.sum(axis=0, keepdims=True)
    return np.divide(sensitivity, total, out=np.zeros_like(sensitivity), where=total > 0)


def run_probe(model: nn.Module, windows: np.ndarray, regimes: np.ndarray | None = None,
              regime_names: tuple[str, ...] | None = None, *, eps: float = 0.1, draws: int = 8,
              seed: int = 0, batch_size: int = 256, device: str | torch.device | None = None) -> ProbeMap:
    """Probe ``model`` (a :class:`~cmm_models.teacher.Teacher`, or anything with ``blocks()`` and the same
    forward) on ``windows`` [N, W, F]; ``regimes`` [N] are integer labels indexing ``regime_names``.

    The same seed gives the same map: noise comes from one generator seeded once,
    and batches run in a fixed order.
    """
    device = pick_device(device)
    blocks = model.blocks()
    x = torch.as_tensor(windows, dtype=torch.float32)
    clean = predict(model, x, batch_size, device)
    layer_std = block_output_std(model, blocks, x, batch_size, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    moved = np.zeros((len(blocks), len(x), len(TASKS)))  # mean |Δoutput| per layer, sample, task
    for layer, block in enumerate(blocks):
        with perturbed(block, eps * float(layer_std[layer]), generator):
            for _ in range(draws):
                moved[layer] += np.abs(predict(model, x, batch_size, device) - clean)
    moved /= draws

    sensitivity = moved.mean(axis=1)
    result = ProbeMap(tasks=list(TASKS), layers=len(blocks), eps=eps, draws=draws, seed=seed, samples=len(x),
                      layer_std=layer_std.tolist(), sensitivity=sensitivity.tolist(),
                      attribution=column_normalize(sensitivity).tolist())
    if regimes is not None:
        regimes = np.asarray(regimes)
        labels = range(len(regime_names)) if regime_names else np.unique(regimes)
        names = regime_names or [str(label) for label in labels]
        for label, name in zip(labels, names):
            mask = regimes == label
            if mask.any():
                s = moved[:, mask].mean(axis=1)
                result.regimes[name] = RegimeMap(samples=int(mask.sum()), sensitivity=s.tolist(),
                                                 attribution=column_normalize(s).tolist())
    return result


def layer_groups(layers: int) -> dict[str, list[int]]:
    """Shallow / middle / deep thirds of the layers; with a remainder the shallower groups get one more."""
    if layers < len(GROUPS):
        raise ValueError(f"need at least {len(GROUPS)} layers to form {len(GROUPS)} groups, got {layers}")
    return {name: part.tolist() for name, part in zip(GROUPS, np.array_split(np.arange(layers), len(GROUPS)))}


def group_scores(attribution: np.ndarray | list, groups: dict[str, list[int]]) -> np.ndarray:
    """[group, task]: the mean attribution per layer of the group, so unequal group sizes do not bias it."""
    a = np.asarray(attribution, dtype=float)
    return np.stack([a[layers].mean(axis=0) for layers in groups.values()])


def assign_tasks(attribution: np.ndarray | list, groups: dict[str, list[int]] | None = None,
                 tasks: tuple[str, ...] = TASKS) -> dict[str, str]:
    """Group -> task, the one-to-one assignment with the largest total group score.

    Each group must own a different task (one expert family per task), so this is
    an assignment problem; with three groups all 3! pairings are tried and the first
    best in ``itertools.permutations`` order wins, which makes ties deterministic.
    """
    a = np.asarray(attribution, dtype=float)
    groups = groups or layer_groups(a.shape[0])
    scores = group_scores(a, groups)
    if scores.shape[0] != scores.shape[1]:
        raise ValueError(f"{scores.shape[0]} groups cannot take {scores.shape[1]} tasks one to one")
    rows = np.arange(len(groups))
    best = max(itertools.permutations(range(len(tasks))), key=lambda p: scores[rows, list(p)].sum())
    return {group: tasks[k] for group, k in zip(groups, best)}


def save_probe(probe: ProbeMap, path: str | Path) -> None:
    with atomic_write(path) as f:
        f.write(msgspec.json.format(msgspec.json.encode(probe)))


def load_probe(path: str | Path) -> ProbeMap:
    return msgspec.json.decode(Path(path).read_bytes(), type=ProbeMap)
