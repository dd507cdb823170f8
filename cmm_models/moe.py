"""The Hájek-MoE: experts weighted by how well they agree with the consensus in a learned kernel space.

A kernel φ (2-layer MLP) maps each active expert's (prediction, context) to a
point ``z_i`` in 2-D, the context being a small linear projection of the
feature vector. With ``V = mean z_i`` over the active experts, expert i's
confidence is, with ``confidence = "projection"``, ``C_i = <z_i, V> / ||V||``
(its reach along the consensus direction), or with ``"cosine"``,
``C_i = <z_i, V> / (||z_i|| ||V||)`` (its alignment with the consensus, in
[-1, 1], whatever its reach); the weights are ``softmax(C / tau)`` and the
prediction is ``sum w_i * prediction_i``. An expert that disagrees with the
others lands away from V and gets little weight; φ learns which
disagreements matter. ``tau`` is learned with φ (``tau`` in the config is its
start).

φ and τ (and the gate of the ``gate`` ablation) are fitted after the experts
are frozen, by MSE of the aggregated prediction to the normalized targets,
on the **validation** split: the experts never trained there, so their
disagreements are the ones they will have out of sample (on their own
training rows every expert looks good). The first ``fit_fraction`` of the
validation samples (in time order) fit them; the rest is scored every
``eval_every`` steps, and fitting stops after ``patience`` scores without a
better one, keeping the best parameters. Routing decides which experts are
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

from common.config import Positive, PositiveInt, Share

from cmm_models.distill import Family
from cmm_models.experts import Expert, N_OUTPUTS, expert_outputs
from cmm_models.regimes import N_REGIMES
from cmm_models.teacher import pick_device

AGGREGATORS = ("hajek", "mean", "gate")
ROUTINGS = ("hard", "soft")
CONFIDENCES = ("projection", "cosine")
NORM_FLOOR = 1e-12


class MoEConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    aggregator: str = "hajek"
    routing: str = "hard"
    context: PositiveInt = 4            # width of the feature projection φ sees
    kernel_hidden: PositiveInt = 16
    confidence: str = "projection"      # "projection" C = <z, V>/|V|, or "cosine" C = <z, V>/(|z| |V|)
    tau: Positive = 1.0                 # the softmax temperature's start; it is fitted with φ
    steps: PositiveInt = 1000           # a ceiling: early stopping on the held-out part of validation
    batch_size: PositiveInt = 256
    lr: Positive = 3e-3
    fit_fraction: Share = 0.7           # validation samples (the first, in time) that fit; the rest stop it
    eval_every: PositiveInt = 25
    patience: PositiveInt = 8
    seed: int = 0

    def __post_init__(self):
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator {self.aggregator!r}: choose one of {AGGREGATORS}")
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing {self.routing!r}: choose one of {ROUTINGS}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence {self.confidence!r}: choose one of {CONFIDENCES}")


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
                self.log_tau = nn.Parameter(torch.tensor(float(np.log(config.tau))))
            elif config.aggregator == "gate":
                self.gate = nn.Linear(n_features, len(experts))

    @classmethod
    def from_family(cls, family: Family, config: MoEConfig = MoEConfig()) -> "MixtureOfExperts":
        return cls(family.experts, [s.regime for s in family.specs], [s.name for s in family.specs], config)

    @property
    def tau(self) -> float:
        """The fitted softmax temperature (the config's for an aggregator without one)."""
        return float(self.log_tau.detach().exp()) if hasattr(self, "log_tau") else self.config.tau

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
        if self.config.confidence == "cosine":
            confidence = confidence / z.norm(dim=-1).clamp_min(NORM_FLOOR)
        return torch.softmax(confidence / self.log_tau.exp() + bias, dim=-1)

    def aggregate(self, x: torch.Tensor, predictions: torch.Tensor, regime: torch.Tensor):
        """From precomputed expert predictions [B, E, 3]: (prediction [B, 3], weights [B, E])."""
        w = self.weights(x, predictions, regime)
        return (w.unsqueeze(1) @ predictions).squeeze(1), w

    def forward(self, x: torch.Tensor, regime: torch.Tensor):
        predictions = torch.stack([expert(x)[0] for expert in self.experts], dim=1)
        return self.aggregate(x, predictions, regime)


class FitResult(msgspec.Struct):
    """An aggregator's fit: the held-out loss curve, the step kept, the rows of each part."""
    steps: int
    best_step: int | None
    best_loss: float | None
    curve: list[tuple[int, float]]     # (step, held-out MSE)
    fit_rows: int
    holdout_rows: int
    tau: float


def train_moe(moe: MixtureOfExperts, features: np.ndarray, targets: np.ndarray, regime: np.ndarray,
              device: str | torch.device | None = None) -> FitResult:
    """Fit the aggregator (φ, the context and τ, or the gate) with the experts frozen, on these rows (the
    validation split's): the first ``fit_fraction`` fit, the rest stop it early; the best parameters are kept.

    Expert predictions are computed once up front: with the experts frozen they
    never change, so each step costs only the aggregator.
    """
    config = moe.config
    n = len(features)
    cut = min(max(1, int(round(n * config.fit_fraction))), n - 1) if n > 1 else n
    if config.aggregator == "mean":
        return FitResult(steps=0, best_step=None, best_loss=None, curve=[], fit_rows=0, holdout_rows=0, tau=moe.tau)
    device = pick_device(device)
    moe.to(device).train()
    x = torch.as_tensor(features, dtype=torch.float32).to(device)
    y = torch.as_tensor(targets, dtype=torch.float32).to(device)
    r = torch.as_tensor(np.asarray(regime), dtype=torch.long).to(device)
    predictions = expert_outputs(list(moe.experts), x)
    trainable = [p for name, p in moe.named_parameters() if not name.startswith("experts.")]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    held = slice(cut, n)

    def held_out_loss() -> float:
        with torch.no_grad():
            prediction, _ = moe.aggregate(x[held], predictions[held], r[held])
            return float(nn.functional.mse_loss(prediction, y[held]))

    curve = [(0, held_out_loss())] if cut < n else []
    best_loss, best_step = (curve[0][1], 0) if curve else (None, None)
    best_state = {k: v.detach().clone() for k, v in moe.state_dict().items()}
    stale, step = 0, 0
    for step in range(1, config.steps + 1):
        batch = torch.randint(cut, (min(config.batch_size, cut),), generator=generator).to(device)
        prediction, _ = moe.aggregate(x[batch], predictions[batch], r[batch])
        loss = nn.functional.mse_loss(prediction, y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if curve and (step % config.eval_every == 0 or step == config.steps):
            held_loss = held_out_loss()
            curve.append((step, held_loss))
            if held_loss < best_loss:
                best_loss, best_step, stale = held_loss, step, 0
                best_state = {k: v.detach().clone() for k, v in moe.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if curve:
        moe.load_state_dict(best_state)
    moe.cpu().eval()
    return FitResult(steps=step, best_step=best_step, best_loss=best_loss, curve=curve, fit_rows=cut,
                     holdout_rows=n - cut, tau=moe.tau)
