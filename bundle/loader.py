"""The verifying loader: trading loads a bundle (:mod:`bundle.manifest`) only after checking every byte.

:func:`verify` recomputes the manifest's digest and every file's sha256 and
raises :class:`~common.errors.DataError` with one line naming the file, what
differs, and the expected and found values. It never guesses or repairs.
:func:`load_bundle` then checks, with ``CMM_BUNDLE_KEY_FILE`` set, the
manifest's signature (:mod:`bundle.signature`), and the model against its
contract on probe inputs (:mod:`bundle.contract`).

This module is on the trading side, so it must not import torch at import
time; :func:`load_bundle` imports it when called.

A decision calls :meth:`Bundle.decide`, built for microseconds per call on one
thread: the raw features are checked and normalized by one Numba kernel into
a float32 buffer that the model's input tensor shares, and the verified
module runs frozen under TorchScript's Static Runtime (the same graph, run
with out-variant kernels called directly: no dispatcher or autograd on the
way, so no grad mode is needed, and 2-3 us less than the graph executor on
the shipped bundle). Its outputs are fresh tensors at every call, so a
caller may keep what it gets; the buffer and the runtime are the bundle's
own, so one bundle serves one thread. A caller that computes its features in
a jitted call can normalize them into that buffer there (:func:`normalize_into`)
and call :meth:`Bundle.run`, the model alone: CMM's live decision does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numba
import numpy as np

from bundle import contract, signature
from bundle.features import FEATURE_VERSION, FeatureSchema
from bundle.manifest import (FILES, FORMAT, FORMAT_VERSION, MANIFEST, Kind, Manifest, Variant, canonical, digest_of,
                             files_in, sha256_file)
from common.errors import DataError

_ALIGN_FLOATS = 16          # 64 bytes of float32: the widest SIMD load (AVX-512)


def _read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"no {MANIFEST}: not a model bundle", path=str(directory))
    raw = path.read_bytes()
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as err:
        raise DataError(f"not a valid manifest: {err}", path=str(path)) from None
    if manifest.format != FORMAT:
        raise DataError(f"expected {FORMAT!r}, found {manifest.format!r}", path=str(path), field="format")
    if manifest.format_version != FORMAT_VERSION:
        raise DataError(f"expected {FORMAT_VERSION}, found {manifest.format_version}: this code reads bundle "
                        f"format {FORMAT_VERSION} only", path=str(path), field="format_version")
    found = digest_of(manifest)
    if manifest.digest != found:
        raise DataError(f"expected {manifest.digest}, found {found}: the manifest changed after export",
                        path=str(path), field="digest")
    if raw != canonical(manifest):
        raise DataError("the bytes differ from the canonical form the exporter writes: the manifest was edited",
                        path=str(path))
    if manifest.feature_schema_version != FEATURE_VERSION:
        raise DataError(f"expected {FEATURE_VERSION}, found {manifest.feature_schema_version}: the bundle was "
                        "trained on other features; retrain it", path=str(path), field="feature_schema_version")
    return manifest


def verify(directory: str | Path) -> Manifest:
    """The bundle's manifest, after checking every file against it; DataError on the first difference."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    present = set(files_in(directory))
    for name in sorted(manifest.files):
        if name not in present:
            raise DataError(f"listed in {MANIFEST} but missing", path=str(directory / name))
    for name in sorted(present - set(manifest.files)):
        raise DataError(f"not listed in {MANIFEST}: an extra file in the bundle", path=str(directory / name))
    for name, expected in sorted(manifest.files.items()):
        found = sha256_file(directory / name)
        if found != expected:
            raise DataError(f"expected {expected}, found {found}: the file changed after export",
                            path=str(directory / name), field="sha256")
    missing = sorted(set(FILES) - set(manifest.files))
    if missing:
        raise DataError(f"the bundle lacks {missing}", path=str(directory / MANIFEST), field="files")
    return manifest


class _Normalization(msgspec.Struct):
    feature_mean: list[float]
    feature_std: list[float]
    target_mean: list[float]
    target_std: list[float]
    # Per target, the feature column its prediction is a log ratio to ("": none). Absent (written before
    # targets had bases): every target is a level, as those bundles were trained.
    target_base: list[str] = []


class Regimes(msgspec.Struct, frozen=True):
    feature: str
    low: float
    high: float

    def classify(self, vol: float) -> int:
        """0 low, 1 mid, 2 high, -1 not finite: the rule of cmm_models.regimes.classify, for one value
        (:func:`regime_of`)."""
        return regime_of(vol, self.low, self.high)

    def classify_all(self, vol: np.ndarray) -> np.ndarray:
        """:meth:`classify` for each value, as int64: searchsorted with side="left", as in training."""
        vol = np.asarray(vol, dtype=np.float64)
        regime = np.searchsorted(np.array([self.low, self.high]), vol, side="left").astype(np.int64)
        regime[~np.isfinite(vol)] = -1
        return regime


@numba.njit(cache=True)
def regime_of(vol: float, low: float, high: float) -> int:
    """The regime of volatility ``vol`` between the thresholds ``low`` and ``high``: 0 low, 1 mid, 2 high,
    -1 not finite (:meth:`Regimes.classify`; jitted, so that a decision's features, regime and model
    input can be one call)."""
    if not math.isfinite(vol):
        return -1
    return 0 if vol <= low else 1 if vol <= high else 2


@numba.njit(cache=True)
def normalize_into(features: np.ndarray, mean: np.ndarray, std: np.ndarray, used: np.ndarray,
                    out: np.ndarray) -> float:
    """``out = float32((features - mean) / std)`` on the model's input columns (``used``), 0 on the others,
    in float64 first (prices keep their digits). Returns the largest |out| (the decision's distance from
    the training data, in training standard deviations), or -1.0, and ``out`` untouched, if a feature is
    not finite. ``features`` [..., F] must have ``out``'s size."""
    x, y = features.reshape(features.size), out.reshape(out.size)
    if x.size != y.size:
        raise ValueError("the features do not have the shape of the model's input")
    for i in range(x.size):
        if not np.isfinite(x[i]):
            return -1.0
    n = mean.size
    largest = 0.0
    for i in range(x.size):
        if used[i % n]:
            y[i] = (x[i] - mean[i % n]) / std[i % n]
            largest = max(largest, abs(np.float64(y[i])))
        else:
            y[i] = 0.0
    return largest


@numba.njit(cache=True)
def _row_max_abs(rows: np.ndarray) -> np.ndarray:
    """The largest |value| of each row of a normalized batch [B, F]: what :func:`normalize_into` returns."""
    out = np.zeros(rows.shape[0])
    for b in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            out[b] = max(out[b], abs(np.float64(rows[b, i])))
    return out


def aligned_rows(n: int, width: int) -> np.ndarray:
    """A zeroed float32 [n, width] whose rows each start on a 64-byte boundary (see Bundle.model_input)."""
    step = -(-width // _ALIGN_FLOATS) * _ALIGN_FLOATS           # floats per row, padded
    raw = np.zeros(n * step + _ALIGN_FLOATS, dtype=np.float32)
    start = (-raw.ctypes.data % (4 * _ALIGN_FLOATS)) // 4
    return raw[start:start + n * step].reshape(n, step)[:, :width]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle, ready for trading: the scripted model and what it needs around it."""

    manifest: Manifest
    model: object                 # torch.jit.ScriptModule, as verified
    schema: FeatureSchema
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    target_base: np.ndarray       # i8 per target: the feature column denormalize() multiplies back, -1 for none
    regimes: Regimes
    layout: dict
    teacher_latency: dict
    variant: Variant              # model.json's
    kind: Kind                    # the manifest's; model.json's variant's for a manifest without one
    runtime: object = field(repr=False)       # the model frozen, under Static Runtime: what decide() runs
    inputs: np.ndarray = field(repr=False)    # decide()'s normalized input, float32 [F] (teacher: [window, F])
    tensor: object = field(repr=False)        # torch.from_numpy(inputs), made once
    used: np.ndarray = field(repr=False)      # bool [F]: the model's input columns (the schema's model_inputs)
    last_z: np.ndarray = field(repr=False)    # f8[1]: the largest |z| of the last decide() (-1: not finite)
    last_regime: list = field(repr=False, default_factory=list)   # the last decide()'s regime argument, if any

    def decide(self, features: np.ndarray, *regime: int) -> tuple[np.ndarray, np.ndarray] | None:
        """One decision: raw features (float64, the input's shape) and the regime (a MoE's; the teacher
        takes none) -> (normalized predictions, expert weights); None while a feature is not finite,
        as no training sample had one. :attr:`last_z` then holds the decision's largest |z|."""
        largest = normalize_into(features, self.feature_mean, self.feature_std, self.used, self.inputs)
        self.last_z[0] = largest
        if largest < 0.0:
            return None
        return self.run(*regime)

    def run(self, *regime: int) -> tuple[np.ndarray, np.ndarray]:
        """The model on :attr:`inputs` as they are: :meth:`decide` after its normalization, for a caller that
        normalized a decision's features into :attr:`inputs` itself (:func:`normalize_into`, finite
        features only), in the same jitted call that computed them."""
        self.last_regime[:] = regime
        predictions, weights = self.runtime(self.tensor, *regime)
        return predictions.numpy(), weights.numpy()

    def rehearse(self) -> np.ndarray:
        """The model on the last :meth:`decide`'s input again (there must have been one): its normalized
        predictions, the same bits; the input buffer and the last decision's outputs are left as they were,
        so a trader can keep the model's code and weights in cache between decisions
        (:meth:`strategies.base.Strategy.rehearse`)."""
        predictions, _ = self.runtime(self.tensor, *self.last_regime)
        return predictions.numpy()

    def model_input(self, features: np.ndarray):
        """Raw features, one decision [F] or a batch [B, F], as the model's input tensor: normalized, and each
        decision's row starting on a 64-byte boundary.

        A BLAS matrix-vector kernel splits its work by the vector's address, so
        the same numbers at another alignment can round differently in the last
        bit; a decision must give the same answer alone or in a batch (CMM's
        per-tick and batched inference), and from one run to the next.
        """
        import torch

        rows = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
        aligned = aligned_rows(*rows.shape)
        normalized = np.empty(rows.shape, dtype=np.float32)
        if normalize_into(rows, self.feature_mean, self.feature_std, self.used, normalized) < 0.0:
            raise ValueError("a feature is not finite")
        aligned[:] = normalized
        return torch.from_numpy(aligned if features.ndim == 2 else aligned[0])

    def decide_batch(self, features: np.ndarray, regime: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`decide` for a batch [B, F] of finite feature rows in one regime, with the same bits; the
        third array is each row's largest |z| (what :attr:`last_z` holds after :meth:`decide`)."""
        x = self.model_input(features)
        predictions, weights = self.runtime(x, regime)
        return predictions.numpy(), weights.numpy(), _row_max_abs(x.numpy().reshape(len(features), -1))

    def denormalize(self, predictions: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Normalized predictions [3] back to target units, at the decision whose raw features [F] are
        ``features`` (:func:`denormalized`, target by target)."""
        features = np.asarray(features)
        return np.array([denormalized(predictions, self.target_std, self.target_mean, self.target_base, features, k)
                         for k in range(len(self.target_mean))])


@numba.njit(cache=True)
def denormalized(predictions, target_std, target_mean, target_base, features, k):
    """Target ``k`` of a normalized prediction in its units, at the decision whose raw features are
    ``features``: a target learned as its log ratio to a feature column is that column's value times the
    exponential (``cmm_models.dataset.Normalization``). Jitted, so that the CMM strategy's decision
    (:func:`strategies.cmm_kernel.aggregate`) and :meth:`Bundle.denormalize` are one definition."""
    value = np.float64(predictions[k]) * target_std[k] + target_mean[k]
    if target_base[k] >= 0:
        value = math.exp(value) * features[target_base[k]]
    return value


def _decode(directory: Path, name: str, type_):
    try:
        return msgspec.json.decode((directory / name).read_bytes(), type=type_)
    except (msgspec.DecodeError, ValueError) as err:
        raise DataError(str(err), path=str(directory / name)) from None


def _variant(directory: Path, layout: dict) -> Variant:
    """model.json's ``variant``; the main MoE where it names none, as the first bundles did not."""
    name = layout.get("variant", Variant.HAJEK)
    try:
        return Variant(name)
    except ValueError:
        raise DataError(f"expected one of {', '.join(Variant)}, found {name!r}", path=str(directory / "model.json"),
                        field="variant") from None


def load_bundle(directory: str | Path) -> Bundle:
    """Verify the bundle, then load it; the model runs on the CPU."""
    import warnings

    import torch

    directory = Path(directory)
    model_path = str(directory / "model.pt")
    manifest = verify(directory)
    key = signature.key_from_env()
    if key is not None:
        signature.check(directory, key)
    schema = _decode(directory, "feature_schema.json", FeatureSchema)
    norm = _decode(directory, "normalization.json", _Normalization)
    if len(norm.feature_mean) != schema.n_features:
        raise DataError(f"expected {schema.n_features} feature means, found {len(norm.feature_mean)}",
                        path=str(directory / "normalization.json"), field="feature_mean")
    if norm.target_base and len(norm.target_base) != len(norm.target_mean):
        raise DataError(f"expected {len(norm.target_mean)} target bases, found {len(norm.target_base)}",
                        path=str(directory / "normalization.json"), field="target_base")
    for column in norm.target_base:
        if column and column not in schema.names:
            raise DataError(f"expected a feature column or \"\", found {column!r}",
                            path=str(directory / "normalization.json"), field="target_base")
    target_base = np.array([schema.index(c) if c else -1 for c in norm.target_base or [""] * len(norm.target_mean)],
                           dtype=np.int64)
    layout = _decode(directory, "model.json", dict)
    if layout.get("n_features") != schema.n_features:
        raise DataError(f"expected {schema.n_features} model inputs, found {layout.get('n_features')}",
                        path=str(directory / "model.json"), field="n_features")
    variant = _variant(directory, layout)
    kind = manifest.kind or variant.kind
    if kind != variant.kind:
        raise DataError(f"the manifest says a {kind!r} model, model.json's variant {str(variant)!r} is a "
                        f"{variant.kind!r} one", path=str(directory / MANIFEST), field="kind")
    with warnings.catch_warnings():       # torch 2.13 marks TorchScript deprecated; it is what loads without source
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            model = torch.jit.load(model_path, map_location="cpu")
        except RuntimeError as e:
            raise DataError(f"not a TorchScript module: {contract.first_line(e)}", path=model_path) from None
        contract.check_signature(model, kind, model_path)
        try:
            runtime = torch._C._jit_to_static_module(torch.jit.freeze(model)._c)
        except RuntimeError as e:     # a module saved in training mode, or with ops the runtime cannot run
            raise DataError(f"the module cannot be frozen to trade: {contract.first_line(e)}", path=model_path,
                            field="forward") from None
    teacher = kind == "teacher"           # the teacher reads a window of vectors and no regime
    # The teacher's window is one contiguous matrix; a MoE's vector starts on a 64-byte boundary, as every
    # row of a batch does (model_input), so a decision gets the same bits alone or batched.
    inputs = (np.zeros((layout["window"], schema.n_features), dtype=np.float32) if teacher
              else aligned_rows(1, schema.n_features)[0])
    bundle = Bundle(
        manifest=manifest, model=model, runtime=runtime, inputs=inputs, tensor=torch.from_numpy(inputs),
        schema=schema, feature_mean=np.asarray(norm.feature_mean), feature_std=np.asarray(norm.feature_std),
        target_mean=np.asarray(norm.target_mean), target_std=np.asarray(norm.target_std),
        target_base=target_base,
        regimes=_decode(directory, "regimes.json", Regimes), layout=layout,
        teacher_latency=_decode(directory, "teacher_latency.json", dict), variant=variant, kind=kind,
        used=schema.model_inputs, last_z=np.zeros(1),
    )
    contract.check_outputs(bundle, model_path)
    return bundle
