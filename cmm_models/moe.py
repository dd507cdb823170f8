"""The Hájek-MoE: experts weighted by how well they agree with the consensus in a learned kernel space.

A kernel φ (2-layer MLP) maps each active expert's (prediction, context) to a
point ``z_i`` in 2-D, the context being a small linear projection of the
feature vector. With ``V = mean z_i`` over the active experts, expert i's
confidence is ``C_i = <z_i, V> / ||V||`` (its reach along the consensus
direction), the weights are ``softmax(C / tau)`` and the prediction is
``sum w_i * prediction_i``. An expert that disagrees with the others lands
away from V and gets little weight; φ learns which disagreements matter.

φ is trained after the experts are frozen, by MSE of the aggregated
prediction to the normalized targets. Routing decides which experts are
active: ``hard`` (default) keeps the classified regime's experts (and any
expert without a regime), ``soft`` keeps all. A decision whose regime is
unknown (-1, volatility not yet finite) uses all experts under either routing.

The ablation aggregators share the routing and the weighted sum: ``mean``
(equal weights) and ``gate`` (a standard softmax gating network, linear in the
features).
"""
from __future__ import annotations

import msgspec
import numpy as np
import torch
from torch import nn

from common.config import Positive, PositiveInt

from cmm_models.distill import Family
from cmm_models.experts import Expert, N_OUTPUTS, expert_outputs
from cmm_models.regimes import N_REGIMES
from cmm_models.teacher import pick_device

AGGREGATORS = ("hajek", "mean", "gate")
ROUTINGS = ("hard", "soft")
NORM_FLOOR = 1e-12


class MoEConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    aggregator: str = "hajek"
    routing: str = "hard"
    context: PositiveInt = 4            # width of the feature projection φ sees
    kernel_hidden: PositiveInt = 16
    tau: Positive = 1.0
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 256
    lr: Positive = 3e-3
    seed: int = 0

    def __post_init__(self):
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator {self.aggregator!r}: choose one of {AGGREGATORS}")
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing {self.routing!r}: choose one of {ROUTINGS}")


def route_mask(regimes: list[int | None], routing: str, n_regimes: int = N_REGIMES) -> torch.Tensor:
    """[n_regimes + 1, E] 0/1: row r lists regime r's active experts; the last row (unknown regime) all."""
    mask = torch.ones(n_regimes + 1, len(regimes))
    if routing == "hard":
        for r in range(n_regimes):
            mask[r] = torch.tensor([float(er is None or er == r) for er in regimes])
    return mask


class MixtureOfExperts(nn.Module):
    """Frozen experts + routing + one aggregator; forward(x [B,F], regime [B]) -> (prediction [B,3], weights [B,E])."""

    def __init__(self, experts: list[Expert], regimes: list[int | None], names: list[str],
                 config: MoEConfig = MoEConfig(), n_regimes: int = N_REGIMES):
        super().__init__()
        self.config = config
        self.names = list(names)
        self.regimes = list(regimes)
        self.n_regimes = n_regimes
        self.experts = nn.ModuleList(experts)
        for p in self.experts.parameters():
            p.requires_grad_(False)
        n_features = experts[0].n_inputs
        mask = route_mask(regimes, config.routing, n_regimes)
        self.register_buffer("mask", mask)
        self.register_buffer("mask_bias", torch.log(mask))          # 0 active, -inf inactive
        self.register_buffer("mask_mean", mask / mask.sum(1, keepdim=True))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.aggregator == "hajek":
                self.context = nn.Linear(n_features, config.context)
                self.kernel = nn.Sequential(nn.Linear(N_OUTPUTS + config.context, config.kernel_hidden), nn.Tanh(),
                                            nn.Linear(config.kernel_hidden, 2))
            elif config.aggregator == "gate":
                self.gate = nn.Linear(n_features, len(experts))

    @classmethod
    def from_family(cls, family: Family, config: MoEConfig = MoEConfig()) -> "MixtureOfExperts":
        return cls(family.experts, [s.regime for s in family.specs], [s.name for s in family.specs], config)

    def route_rows(self, regime: torch.Tensor) -> torch.Tensor:
        """Row of the mask tables for each regime label; anything outside 0..n-1 is the unknown row."""
        regime = regime.long()
        known = (regime >= 0) & (regime < self.n_regimes)
        return torch.where(known, regime, torch.full_like(regime, self.n_regimes))

    def kernel_points(self, x: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        """z_i = φ(prediction_i, context(x)): [B, E, 2]."""
        context = self.context(x).unsqueeze(1).expand(-1, predictions.shape[1], -1)
        return self.kernel(torch.cat([predictions, context], dim=-1))

    def weights(self, x: torch.Tensor, predictions: torch.Tensor, regime: torch.Tensor) -> torch.Tensor:
        rows = self.route_rows(regime)
        bias = self.mask_bias[rows]
        if self.config.aggregator == "mean":
            return self.mask_mean[rows]
        if self.config.aggregator == "gate":
            return torch.softmax(self.gate(x) + bias, dim=-1)
        z = self.kernel_points(x, predictions)
        consensus = (self.mask_mean[rows].unsqueeze(-1) * z).sum(1)                       # V [B, 2]
        confidence = (z @ consensus.unsqueeze(-1)).squeeze(-1) \
            / consensus.norm(dim=-1, keepdim=True).clamp_min(NORM_FLOOR)                  # C [B, E]
        return torch.softmax(confidence / self.config.tau + bias, dim=-1)

    def aggregate(self, x: torch.Tensor, predictions: torch.Tensor, regime: torch.Tensor):
        """From precomputed expert predictions [B, E, 3]: (prediction [B, 3], weights [B, E])."""
        w = self.weights(x, predictions, regime)
        return (w.unsqueeze(1) @ predictions).squeeze(1), w

    def forward(self, x: torch.Tensor, regime: torch.Tensor):
        predictions = torch.stack([expert(x)[0] for expert in self.experts], dim=1)
        return self.aggregate(x, predictions, regime)


def train_moe(moe: MixtureOfExperts, features: np.ndarray, targets: np.ndarray, regime: np.ndarray,
              device: str | torch.device | None = None) -> list[float]:
    """Fit the aggregator (φ and context, or the gate) with the experts frozen; returns the loss per step.

    Expert predictions are computed once up front: with the experts frozen they
    never change, so each step costs only the aggregator.
    """
    config = moe.config
    if config.aggregator == "mean":
        return []
    device = pick_device(device)
    moe.to(device).train()
    x = torch.as_tensor(features, dtype=torch.float32).to(device)
    y = torch.as_tensor(targets, dtype=torch.float32).to(device)
    r = torch.as_tensor(np.asarray(regime), dtype=torch.long).to(device)
    predictions = expert_outputs(list(moe.experts), x)
    trainable = [p for name, p in moe.named_parameters() if not name.startswith("experts.")]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    for _ in range(config.steps):
        batch = torch.randint(len(x), (min(config.batch_size, len(x)),), generator=generator).to(device)
        prediction, _ = moe.aggregate(x[batch], predictions[batch], r[batch])
        loss = nn.functional.mse_loss(prediction, y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    moe.cpu().eval()
    return losses
