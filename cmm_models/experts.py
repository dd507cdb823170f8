"""Student experts: small MLPs that read the current normalized feature vector.

Every expert, and the single-student baseline, has the same shape
``n_inputs -> hidden -> hidden -> 3`` with ReLU, and predicts all three
normalized targets (:data:`cmm_models.dataset.TARGET_NAMES` order). They are
kept this small on purpose: the point of the method is a decision in
microseconds, and one expert only has to learn one slice of the teacher.

``n_inputs`` is the feature count; a caller that wants lagged vectors
concatenates them and passes the wider width. The last hidden layer is
returned beside the prediction because feature distillation pulls it toward
the teacher's hidden state (through a projection that lives in
:mod:`cmm_models.distill`, not here, so an exported expert carries no
training-only weights).
"""
from __future__ import annotations

import torch
from torch import nn

N_OUTPUTS = 3
DEFAULT_HIDDEN = 32


class Expert(nn.Module):
    """``n_inputs -> hidden -> hidden -> 3``; forward returns (prediction [B,3], last hidden [B,hidden])."""

    def __init__(self, n_inputs: int, hidden: int = DEFAULT_HIDDEN, seed: int = 0):
        super().__init__()
        self.n_inputs = n_inputs
        self.hidden = hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.layer1 = nn.Linear(n_inputs, hidden)
            self.layer2 = nn.Linear(hidden, hidden)
            self.out = nn.Linear(hidden, N_OUTPUTS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.layer2(torch.relu(self.layer1(x))))
        return self.out(h), h


def expert_outputs(experts: list[Expert], x: torch.Tensor) -> torch.Tensor:
    """Every expert's prediction on ``x`` [B, F]: [B, E, 3], without gradients."""
    with torch.no_grad():
        return torch.stack([expert(x)[0] for expert in experts], dim=1)
