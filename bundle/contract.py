"""The model's contract, checked on probe inputs when a bundle loads.

The manifest proves the files are the ones it lists, not that ``model.pt``
is a model trading can use: anyone who can write the directory can replace
the module and rewrite the manifest. So before a bundle trades, its module
must take the inputs of its kind (a MoE: features and a regime; the teacher:
a window), and on probe inputs (the training means, in every regime, alone
and as a batch) return float32 predictions and weights of the shapes
``normalization.json`` and ``model.json`` give, all finite. Without this a
module that returned a scalar and integer weights loaded and traded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from common.errors import DataError

if TYPE_CHECKING:
    from bundle.loader import Bundle

# forward's argument types after ``self``, by the manifest's kind; both return (predictions, weights).
INPUTS = {"moe": ["Tensor", "int"], "teacher": ["Tensor"]}
RETURNS = ["Tuple[Tensor, Tensor]"]


def first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def check_signature(model, kind: str, path: str) -> None:
    """``model.forward`` takes the inputs of ``kind`` and returns two tensors, as TorchScript declares them."""
    schema = model.forward.schema
    inputs = [str(a.type) for a in schema.arguments[1:]]
    returns = [str(r.type) for r in schema.returns]
    if inputs != INPUTS[kind] or returns != RETURNS:
        raise DataError(f"forward is ({', '.join(inputs)}) -> {', '.join(returns)}; a {kind} model is "
                        f"({', '.join(INPUTS[kind])}) -> {RETURNS[0]}", path=path, field="forward")


def _check_outputs(probe: str, outputs, shapes: tuple[tuple[int, ...], ...], path: str) -> None:
    for name, array, shape in zip(("predictions", "weights"), outputs, shapes):
        if array.dtype != np.float32 or array.shape != shape:
            raise DataError(f"on {probe}, {name} are {array.dtype} {list(array.shape)}; expected float32 "
                            f"{list(shape)}", path=path, field="outputs")
        if not np.isfinite(array).all():
            raise DataError(f"on {probe}, {name} are not all finite: {array.ravel()[:8]}", path=path,
                            field="outputs")


def _run(probe: str, call, path: str):
    try:
        return call()
    except Exception as e:        # whatever the module's own code raises on a valid input: it broke the contract
        raise DataError(f"on {probe}, the model fails: {first_line(e)}", path=path, field="forward") from None


def check_outputs(bundle: Bundle, path: str) -> None:
    """Run the decisions trading makes on the training means and check what comes back (this is also the
    warm-up: the first real decision pays neither the kernel's compile nor the runtime's memory planning)."""
    n_targets, n_experts = len(bundle.target_mean), len(bundle.layout.get("experts", ()))
    x = np.broadcast_to(bundle.feature_mean, bundle.inputs.shape).copy()
    if bundle.kind == "teacher":
        probes = {"the mean window": lambda: bundle.decide(x)}
    else:
        probes = {f"the mean features in regime {r}": (lambda r=r: bundle.decide(x, r))
                  for r in range(-1, int(bundle.layout.get("n_regimes", 0)))}
    for probe, call in probes.items():
        outputs = _run(probe, call, path)
        if outputs is None:
            raise DataError(f"on {probe}, no decision: the normalization's means are not finite", path=path)
        _check_outputs(probe, outputs, ((n_targets,), (n_experts,)), path)
    if bundle.kind == "moe":
        batch = np.stack([x, x])
        _check_outputs("a batch of 2", _run("a batch of 2", lambda: bundle.decide_batch(batch, 0), path),
                       ((2, n_targets), (2, n_experts)), path)
