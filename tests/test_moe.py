"""Hájek-MoE: consensus weighting in a constructed case, and the exported module equals the eager one."""
from __future__ import annotations

import pytest
import torch

from cmm_models.experts import Expert
from cmm_models.export import script
from cmm_models.moe import MixtureOfExperts, MoEConfig

torch.set_num_threads(1)
N_FEATURES = 5


def constant_expert(output: tuple[float, float, float]) -> Expert:
    """An expert that ignores its input and always predicts ``output``."""
    expert = Expert(N_FEATURES, hidden=4)
    with torch.no_grad():
        expert.out.weight.zero_()
        expert.out.bias.copy_(torch.tensor(output))
    return expert


def identity_kernel(moe: MixtureOfExperts) -> None:
    """φ(prediction, context) = tanh of the first two prediction components: z_i ~ prediction_i[:2]."""
    with torch.no_grad():
        first, last = moe.kernel[0], moe.kernel[2]
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, 0] = first.weight[1, 1] = 1.0
        last.weight.zero_()
        last.bias.zero_()
        last.weight[0, 0] = last.weight[1, 1] = 1.0


def test_hajek_weights_favour_the_consensus():
    experts = [constant_expert((1.0, 1.0, 0.0)), constant_expert((0.9, 1.1, 0.0)), constant_expert((-1.0, 0.2, 5.0))]
    moe = MixtureOfExperts(experts, [None] * 3, ["a", "b", "outlier"],
                           MoEConfig(kernel_hidden=2, context=2, routing="soft"))
    identity_kernel(moe)
    prediction, weights = moe(torch.zeros(1, N_FEATURES), torch.tensor([0]))
    w = weights[0]
    assert w.sum().item() == pytest.approx(1.0)
    assert w[2] < w[0] and w[2] < w[1]
    # By hand: z = tanh(prediction[:2]), V = mean z, C_i = <z_i, V> / |V|, w = softmax(C).
    z = torch.tanh(torch.tensor([[1.0, 1.0], [0.9, 1.1], [-1.0, 0.2]]))
    v = z.mean(0)
    expected = torch.softmax(z @ v / v.norm(), dim=0)
    torch.testing.assert_close(w, expected)
    outputs = torch.tensor([[1.0, 1.0, 0.0], [0.9, 1.1, 0.0], [-1.0, 0.2, 5.0]])
    torch.testing.assert_close(prediction[0], expected @ outputs)


def test_hard_routing_uses_only_the_regimes_experts():
    experts = [constant_expert((float(i), 0.0, 0.0)) for i in range(9)]
    moe = MixtureOfExperts(experts, [i // 3 for i in range(9)], [str(i) for i in range(9)], MoEConfig())
    _, weights = moe(torch.zeros(4, N_FEATURES), torch.tensor([0, 1, 2, -1]))
    for row, regime in enumerate([0, 1, 2]):
        active = torch.zeros(9, dtype=torch.bool)
        active[3 * regime:3 * regime + 3] = True
        assert (weights[row][~active] == 0).all() and weights[row][active].sum().item() == pytest.approx(1.0)
    assert (weights[3] > 0).all()          # unknown regime: every expert


@pytest.mark.parametrize("aggregator", ["hajek", "mean", "gate"])
@pytest.mark.parametrize("routing", ["hard", "soft"])
def test_torchscript_equals_eager(aggregator, routing):
    experts = [Expert(N_FEATURES, hidden=8, seed=i) for i in range(9)]
    moe = MixtureOfExperts(experts, [i // 3 for i in range(9)], [str(i) for i in range(9)],
                           MoEConfig(aggregator=aggregator, routing=routing, tau=0.7, seed=3)).eval()
    scripted = script(moe)
    x = torch.randn(16, N_FEATURES, generator=torch.Generator().manual_seed(1))
    for regime in (0, 1, 2, -1):
        eager_prediction, eager_weights = moe(x, torch.full((16,), regime))
        prediction, weights = scripted(x, regime)
        torch.testing.assert_close(prediction, eager_prediction, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(weights, eager_weights, rtol=1e-5, atol=1e-6)
        one_prediction, one_weights = scripted(x[3], regime)          # a single decision: [F] in, [3], [E] out
        torch.testing.assert_close(one_prediction, eager_prediction[3], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(one_weights, eager_weights[3], rtol=1e-5, atol=1e-6)
