"""The fluorescent probe finds structure that was planted, and its map, groups and files behave."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cmm_models.plots import plot_probe
from cmm_models.probe import (assign_tasks, column_normalize, group_scores, layer_groups, load_probe,
                              run_probe, save_probe)
from cmm_models.teacher import TASKS, Teacher

torch.set_num_threads(1)

N_FEATURES = 5
# Planted on purpose out of depth order, so a probe that merely ranks layers by depth fails.
PLANTED = {"shallow": "volume", "middle": "mid_change", "deep": "spread"}


class PlantedTeacher(nn.Module):
    """Six layers that each read the newest feature vector in parallel; head k reads its group's two layers
    at full weight and every other layer at 0.1 (a leak, so the map is not trivially block-diagonal).

    Noise on a layer's output reaches the outputs only through the heads, so the true
    layer -> task structure is exactly the head weights' support.
    """

    def __init__(self, hidden: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.Tanh()) for _ in range(6))
        self.heads = nn.ModuleList(nn.Linear(6 * hidden, 1) for _ in TASKS)
        groups = layer_groups(6)
        with torch.no_grad():
            for group, task in PLANTED.items():
                mask = torch.full((6,), 0.1)
                mask[groups[group]] = 1.0
                self.heads[TASKS.index(task)].weight.mul_(mask.repeat_interleave(hidden))

    def blocks(self) -> list[nn.Module]:
        return list(self.layers)

    def forward(self, windows: torch.Tensor):
        hidden = [layer(windows[:, -1]) for layer in self.layers]
        joined = torch.cat(hidden, dim=-1)
        return torch.cat([head(joined) for head in self.heads], dim=-1), tuple(hidden)


def windows(n: int = 96, w: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, w, N_FEATURES)).astype(np.float32)


def test_probe_recovers_planted_layer_to_task_structure():
    probe = run_probe(PlantedTeacher(), windows(), eps=0.2, draws=4, seed=3, device="cpu")
    a = np.asarray(probe.attribution)
    groups = layer_groups(6)
    assert a.shape == (6, 3)
    np.testing.assert_allclose(a.sum(axis=0), 1.0)
    for group, task in PLANTED.items():
        k = TASKS.index(task)
        assert int(np.argmax(a[:, k])) in groups[group]
        assert list(groups)[int(np.argmax(group_scores(a, groups)[:, k]))] == group
    assert assign_tasks(a) == PLANTED


def test_probe_is_deterministic_and_regime_maps_average_to_the_overall_map():
    x = windows()
    regimes = np.arange(len(x)) % 3
    names = ("low", "mid", "high")
    first = run_probe(PlantedTeacher(), x, regimes, names, draws=3, seed=7, device="cpu")
    again = run_probe(PlantedTeacher(), x, regimes, names, draws=3, seed=7, device="cpu")
    other = run_probe(PlantedTeacher(), x, regimes, names, draws=3, seed=8, device="cpu")
    assert first == again
    assert first.sensitivity != other.sensitivity
    assert {name: r.samples for name, r in first.regimes.items()} == {"low": 32, "mid": 32, "high": 32}
    # the overall sensitivity is the sample-weighted mean of the regimes' (equal counts here)
    per_regime = np.mean([r.sensitivity for r in first.regimes.values()], axis=0)
    np.testing.assert_allclose(per_regime, first.sensitivity, rtol=1e-12)
    for r in first.regimes.values():
        np.testing.assert_allclose(np.sum(r.attribution, axis=0), 1.0)


def test_probe_on_a_real_tiny_transformer_sees_every_layer():
    teacher = Teacher.tiny(N_FEATURES, layers=3, hidden=16, seed=0)
    probe = run_probe(teacher, windows(n=24, w=6), draws=2, device="cpu")
    assert probe.layers == 3 and len(probe.layer_std) == 3
    assert np.all(np.asarray(probe.layer_std) > 0)
    assert np.all(np.asarray(probe.sensitivity) > 0)
    np.testing.assert_allclose(np.sum(probe.attribution, axis=0), 1.0)


def test_json_round_trip_and_heatmap_png(tmp_path):
    x = windows(n=30)
    probe = run_probe(PlantedTeacher(), x, np.arange(30) % 2, ("calm", "busy"), draws=2, device="cpu")
    save_probe(probe, tmp_path / "probe.json")
    assert load_probe(tmp_path / "probe.json") == probe
    png = plot_probe(probe, tmp_path / "probe.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_layer_groups_are_thirds():
    assert layer_groups(6) == {"shallow": [0, 1], "middle": [2, 3], "deep": [4, 5]}
    assert layer_groups(4) == {"shallow": [0, 1], "middle": [2], "deep": [3]}
    assert layer_groups(12)["deep"] == [8, 9, 10, 11]
    with pytest.raises(ValueError, match="at least 3 layers"):
        layer_groups(2)


def test_assign_tasks_is_the_best_one_to_one_assignment():
    # Each group's own favourite collides (shallow and middle both prefer mid_change), and taking the
    # largest cell first (deep volume 0.8, then shallow mid_change 0.5, middle spread 0.02) totals 1.32.
    # The best one-to-one pairing is shallow spread + middle mid_change + deep volume = 0.48 + 0.45 + 0.8.
    a = np.array([[0.50, 0.48, 0.10],
                  [0.45, 0.02, 0.10],
                  [0.05, 0.50, 0.80]])
    assert assign_tasks(a) == {"shallow": "spread", "middle": "mid_change", "deep": "volume"}
    # A flat map is a tie everywhere: the first permutation (depth order) wins, every time.
    assert assign_tasks(np.full((6, 3), 1 / 6)) == {"shallow": "mid_change", "middle": "spread", "deep": "volume"}


def test_column_normalize_keeps_a_dead_column_at_zero():
    s = np.array([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(column_normalize(s), [[0.25, 0.0], [0.75, 0.0]])
