"""The teacher: shapes, encoder and decoder backbones, training that learns and repeats, files, hooks,
and the pretrained MiniLM loading offline and fine-tuning on the repo's LOBSTER sample."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import feeds
from cmm_models.teacher import Teacher, block_output_std, lr_factor, perturbed, predict, train_teacher
from feeds import events as E

from tests.conftest import SAMPLES

torch.set_num_threads(1)


def learnable(n: int, w: int = 8, f: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose three targets are simple functions of them, on very different scales."""
    x = np.random.default_rng(seed).standard_normal((n, w, f)).astype(np.float32)
    y = np.stack([x[:, -1, 0], 10 + 5 * (x[:, -1, 1] + x[:, -2, 2]), 1000 * x[:, :, 3].mean(1)], axis=1)
    return x, y.astype(np.float32)


def weight_bytes(model: torch.nn.Module) -> bytes:
    return b"".join(v.detach().cpu().numpy().tobytes() for v in model.state_dict().values())


def test_tiny_teacher_shapes_and_blocks():
    teacher = Teacher.tiny(n_features=4, layers=4, hidden=32, seed=0)
    predictions, hidden = teacher(torch.zeros(2, 16, 4))
    assert predictions.shape == (2, 3)
    assert len(hidden) == 5 and hidden[-1].shape == (2, 16, 32)  # embeddings + one per layer
    assert len(teacher.blocks()) == 4


def test_a_decoder_backbone_works_too():
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=8)
    teacher = Teacher.from_config(config, n_features=4, seed=0)
    x = torch.randn(2, 16, 4)
    predictions, _ = teacher(x)
    assert predictions.shape == (2, 3) and len(teacher.blocks()) == 3
    # Causal attention: the readout (last position) sees the whole window, so the oldest row matters.
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(teacher(y)[0], predictions)


def test_training_reduces_the_loss_and_repeats_byte_for_byte():
    x, y = learnable(384)
    vx, vy = learnable(128, seed=1)
    runs = []
    for _ in range(2):
        teacher = Teacher.tiny(n_features=4, layers=2, hidden=32, seed=5)
        result = train_teacher(teacher, x, y, vx, vy, steps=150, lr=3e-3, batch_size=32, seed=11, device="cpu")
        runs.append((teacher, result))
    (first, r1), (second, r2) = runs
    assert r1.device == "cpu" and len(r1.train_loss) == 150
    assert np.mean(r1.train_loss[-10:]) < 0.5 * np.mean(r1.train_loss[:10])
    assert all(after < 0.6 * before for before, after in zip(r1.val_mse_before, r1.val_mse_after))
    assert weight_bytes(first) == weight_bytes(second)
    assert r1.train_loss == r2.train_loss
    # targets were scaled on the training split: the model predicts in units of each target's std
    np.testing.assert_allclose(first.target_std.numpy(), y.std(0, ddof=1), rtol=1e-4)
    other = Teacher.tiny(n_features=4, layers=2, hidden=32, seed=5)
    train_teacher(other, x, y, steps=150, lr=3e-3, batch_size=32, seed=12, device="cpu")
    assert weight_bytes(other) != weight_bytes(first)


def test_learning_rate_warms_up_then_follows_a_cosine():
    # warm-up 10 of 110 steps to 1, then a cosine from 1 down to 0.1
    assert lr_factor(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, 0.1) == pytest.approx(0.55)
    assert lr_factor(110, 10, 110, 0.1) == pytest.approx(0.1)


def test_early_stopping_keeps_the_best_validation_weights():
    """A learning rate far too high makes the validation loss climb: training stops after `patience` worse
    scores and the model left is the one of the best score on the curve."""
    x, y = learnable(256)
    vx, vy = learnable(96, seed=1)
    teacher = Teacher.tiny(n_features=4, layers=2, hidden=16, seed=3)
    result = train_teacher(teacher, x, y, vx, vy, steps=400, lr=0.2, batch_size=32, seed=2, device="cpu",
                           eval_every=10, patience=3, warmup_steps=0, final_lr_fraction=1.0)
    losses = [p.val_loss for p in result.curve]
    best = int(np.argmin(losses))
    assert result.stopped_early and result.steps == result.curve[-1].step < 400
    assert len(losses) - 1 - best == 3 and result.best_step == result.curve[best].step
    assert result.val_mse_after == pytest.approx(result.curve[best].val_mse, rel=1e-5)
    assert all(p.lr == pytest.approx(0.2) for p in result.curve)


def test_save_and_load_give_the_same_predictions(tmp_path):
    x, y = learnable(64)
    teacher = Teacher.tiny(n_features=4, layers=2, hidden=16, seed=1)
    train_teacher(teacher, x, y, steps=5, batch_size=16, device="cpu")
    teacher.save(tmp_path / "teacher")
    loaded = Teacher.load(tmp_path / "teacher")
    np.testing.assert_array_equal(predict(loaded, x), predict(teacher, x))
    np.testing.assert_array_equal(loaded.target_mean.numpy(), teacher.target_mean.numpy())


def test_perturbation_hook_moves_the_output_and_goes_away():
    teacher = Teacher.tiny(n_features=4, layers=3, hidden=16, seed=0)
    x = torch.randn(8, 6, 4)
    clean = predict(teacher, x)
    std = block_output_std(teacher, teacher.blocks(), x)
    assert std.shape == (3,) and np.all(std > 0)
    with perturbed(teacher.blocks()[1], 0.5, torch.Generator().manual_seed(0)):
        noisy = predict(teacher, x)
    assert np.abs(noisy - clean).min() > 0
    np.testing.assert_array_equal(predict(teacher, x), clean)


def test_a_missing_teacher_directory_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        Teacher.from_pretrained(tmp_path, n_features=4)


# -- the pretrained default on real data --------------------------------------------------------

def test_minilm_default_loads_offline_and_runs(monkeypatch):
    """With the Hub's offline switch on, any HTTP request the loader tried would raise."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert huggingface_hub.constants.is_offline_mode()
    teacher = Teacher.from_pretrained(None, n_features=5)
    predictions, hidden = teacher(torch.zeros(2, 16, 5))
    assert predictions.shape == (2, 3) and len(hidden) == 7
    assert teacher.backbone.config.hidden_size == 384 and len(teacher.blocks()) == 6


def goog_windows(window: int = 16, horizon: int = 10, step_ns: int = 100_000_000):
    """Simple windows from the LOBSTER sample: per 100 ms step, mid change and spread (ticks), traded
    volume and signed volume; targets are the next ``horizon`` steps' mid change, mean spread and volume.

    Only LOCAL rows are used; the book is rebuilt from DEPTH rows (LOBSTER's L2 side) in row order.
    """
    conv = feeds.read([SAMPLES / "GOOG_2012-06-21_10_head.zip"])
    ev = conv.events[(conv.events["ev"] & E.LOCAL) != 0]
    tick = conv.instrument.tick_size
    kinds = E.kinds(ev)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    book_ts, best_bid, best_ask = [], [], []
    for row, kind in zip(ev, kinds):
        side = bids if row["ev"] & E.BUY else asks
        if kind == E.DEPTH_CLEAR:
            side.clear()
        elif kind in (E.DEPTH, E.DEPTH_SNAPSHOT):
            if row["qty"] > 0:
                side[row["px"]] = row["qty"]
            else:
                side.pop(row["px"], None)
        else:
            continue
        if bids and asks:
            book_ts.append(row["local_ts"])
            best_bid.append(max(bids))
            best_ask.append(min(asks))
    book_ts, best_bid, best_ask = map(np.asarray, (book_ts, best_bid, best_ask))
    grid = np.arange(book_ts[0] + step_ns, book_ts[-1], step_ns)
    at = np.searchsorted(book_ts, grid, side="right") - 1
    mid = (best_bid[at] + best_ask[at]) / 2 / tick
    spread = (best_ask[at] - best_bid[at]) / tick
    trades = ev[kinds == E.TRADE]
    bucket = np.searchsorted(grid, trades["local_ts"], side="left")
    keep = bucket < len(grid)
    sign = np.where(trades["ev"] & E.BUY, 1.0, -1.0)
    volume = np.bincount(bucket[keep], trades["qty"][keep], len(grid))
    signed = np.bincount(bucket[keep], (sign * trades["qty"])[keep], len(grid))
    features = np.stack([np.diff(mid, prepend=mid[0]), spread, np.log1p(volume),
                         np.sign(signed) * np.log1p(np.abs(signed))], axis=1)
    ends = np.arange(window, len(grid) - horizon, 7)  # a window ends at step e - 1; targets look after it
    x = np.stack([features[e - window:e] for e in ends])
    future = lambda a: np.stack([a[e:e + horizon] for e in ends])  # noqa: E731
    y = np.stack([mid[ends - 1 + horizon] - mid[ends - 1], future(spread).mean(1), future(volume).sum(1)], axis=1)
    return x.astype(np.float32), y.astype(np.float32)


def test_minilm_fine_tunes_on_the_lobster_sample():
    x, y = goog_windows()
    assert len(x) > 1000 and np.isfinite(x).all() and np.isfinite(y).all()
    split = int(0.8 * len(x))
    mean, std = x[:split].mean((0, 1)), x[:split].std((0, 1)) + 1e-9
    x = (x - mean) / std
    teacher = Teacher.from_pretrained(None, n_features=x.shape[-1], seed=0)
    before = {name: p.detach().clone() for name, p in teacher.backbone.encoder.layer[0].named_parameters()}
    result = train_teacher(teacher, x[:split:4], y[:split:4], x[split::8], y[split::8],
                           steps=6, lr=1e-4, batch_size=16, seed=0, device="cpu")
    assert len(result.train_loss) == 6 and np.isfinite(result.train_loss).all()
    assert np.isfinite(result.val_mse_after).all()
    moved = [not torch.equal(before[name], p) for name, p in teacher.backbone.encoder.layer[0].named_parameters()]
    assert all(moved), "fine-tuning must update the pretrained layers, not only the new heads"
