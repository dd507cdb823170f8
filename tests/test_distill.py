"""Distillation on a small synthetic problem: every expert's loss falls, and the same seed gives the same experts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cmm_models import distill

torch.set_num_threads(1)
ASSIGNMENT = {"shallow": "mid_change", "middle": "spread", "deep": "volume"}


def synthetic(n: int = 900, n_features: int = 6, width: int = 8, seed: int = 0) -> distill.DistillData:
    """Targets are simple functions of the features; the teacher is noisy truth; its group hidden
    states are linear maps of the features, so a projection of the expert's hidden layer can match them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features)).astype(np.float32)
    y = np.stack([x[:, 0] - x[:, 1], np.abs(x[:, 2]), x[:, 3] * x[:, 4]], axis=1).astype(np.float32)
    teacher = (y + 0.1 * rng.standard_normal(y.shape)).astype(np.float32)
    hidden = np.einsum("nf,gfh->ngh", x, rng.standard_normal((3, n_features, width))).astype(np.float32)
    return distill.DistillData(x, y, rng.integers(0, 3, n), teacher, hidden)


CONFIG = distill.DistillConfig(hidden=16, steps=150, batch_size=128, lr=1e-2)


def test_every_expert_learns():
    family = distill.train_family(synthetic(), distill.odd_specs(ASSIGNMENT, CONFIG), CONFIG, device="cpu")
    assert [s.name for s in family.specs][:3] == ["r0_shallow", "r0_middle", "r0_deep"]
    assert [s.regime for s in family.specs] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for before, after in zip(family.loss_before, family.loss_after):
        assert after < 0.5 * before


def test_specs_lean_toward_their_task():
    specs = distill.odd_specs({"shallow": "volume", "middle": 0, "deep": "spread"}, CONFIG)
    assert specs[0].task_weights == pytest.approx((0.2, 0.2, 0.6))
    assert specs[1].task_weights == pytest.approx((0.6, 0.2, 0.2))
    assert specs[2].task_weights == pytest.approx((0.2, 0.6, 0.2))
    assert distill.single_student_spec()[0].group is None
    assert [s.regime for s in distill.no_regime_specs(ASSIGNMENT, CONFIG)] == [None] * 3
    assert [s.group for s in distill.no_layer_specs()] == [None] * 3


def test_baselines_learn_and_same_seed_same_weights():
    data = synthetic(seed=1)
    specs = distill.single_student_spec() + distill.no_layer_specs()[:1]
    first = distill.train_family(data, specs, CONFIG, device="cpu")
    again = distill.train_family(data, specs, CONFIG, device="cpu")
    for a, b, before, after in zip(first.experts, again.experts, first.loss_before, first.loss_after):
        assert after < 0.5 * before
        for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(pa, pb)
