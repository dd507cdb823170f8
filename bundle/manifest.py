"""The bundle format: what training writes and trading reads, named once.

A bundle is a flat directory::

    model.pt               TorchScript: (normalized features, regime) -> (normalized predictions, expert weights)
    model.json             the ``variant`` (a :class:`Variant`), expert layout, aggregator, routing, what the
                           inputs and outputs mean
    normalization.json     feature and target mean/std (fitted on the train split), each target's base column
    regimes.json           the frozen volatility thresholds
    feature_schema.json    the feature definitions the model was trained on
    teacher_latency.json   the teacher's measured per-decision latency
    manifest.json          sha256 of every file above, library versions, schema version, the model's ``kind``
    manifest.sig           optional: an HMAC of manifest.json under the exporter's key (:mod:`bundle.signature`)

The manifest also records what the model was trained on (``training``, a
:class:`TrainingWindow`): the sha256 of the data files' bytes and the first
and last exchange timestamp of the train, validation and test splits, so a
backtest can tell that it replays data the model was fitted on
(:func:`training_overlap`).

The manifest is canonical JSON (sorted keys, fixed indent, no timestamps), so
the same model gives the same bytes, and it carries ``digest``, the sha256 of
its own canonical form without that field: a change to the manifest itself
is caught too. :mod:`bundle.loader` checks all of it before trading loads a
model.
"""
from __future__ import annotations

import enum
import hashlib
import importlib.metadata
import platform
from pathlib import Path
from typing import Literal

import msgspec

from bundle import signature
from bundle.features import FEATURE_VERSION
from common.atomic import atomic_write

FORMAT = "cmm-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = ("model.pt", "model.json", "normalization.json", "regimes.json", "feature_schema.json",
         "teacher_latency.json")
_LIBRARIES = ("torch", "numpy", "cmm-engine")

# What a model predicts over its horizon, in this order: the mid's change in ticks, the mean spread in ticks,
# and ln(1 + traded volume) (a log, so a busy day and a quiet one, or two instruments, share one scale).
TARGET_NAMES = ("mid_change_ticks", "avg_spread_ticks", "log1p_volume")

# What ``model.pt`` is: a mixture of experts, called (features [F], regime), or the teacher, called
# (a window of feature vectors [W, F]) with no regime.
Kind = Literal["moe", "teacher"]


class Variant(enum.StrEnum):
    """The model a bundle holds, as ``model.json``'s ``variant`` spells it: the one set of names the
    pipeline trains, the exporter writes, the training report scores and the strategies accept."""

    HAJEK = "hajek"                    # the main MoE: the regime's experts, Hájek-weighted
    MEAN = "mean"                      # ablation: equal weights
    GATE = "gate"                      # ablation: a softmax gating network
    NO_REGIME = "no_regime"            # ablation: experts per layer group over all regimes
    NO_LAYER = "no_layer"              # ablation: one expert per regime, no layer groups
    SINGLE_STUDENT = "single_student"  # the distillation baseline, as a one-expert MoE
    TEACHER = "teacher"                # the transformer itself

    @property
    def kind(self) -> Kind:
        return "teacher" if self is Variant.TEACHER else "moe"


# The MoE variants, the main one first: the pipeline trains each, the report scores each.
MOE_VARIANTS = (Variant.HAJEK, Variant.MEAN, Variant.GATE, Variant.NO_REGIME, Variant.NO_LAYER)


class TrainingWindow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data a bundle's models were fitted on: the files' digest and each split's span in exch_ts (ns)."""

    data_sha256: str                       # data_digest() of the training files, in their config order
    files: list[str]                       # their base names, for a person reading the manifest
    splits: dict[str, list[int]]           # "train" / "val" / "test" -> [first, last] exch_ts of its rows
    fitted: tuple[str, ...] = ("train", "val")   # the splits some stage fitted on (val: early stopping, the MoE)


def data_digest(files: list[str]) -> str:
    """The sha256 over the bytes of ``files``, one after the other: what ``TrainingWindow.data_sha256`` holds."""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def training_overlap(manifest: "Manifest", files: list[str], t0: int, t1: int,
                     digest: str | None = None) -> list[str]:
    """The fitted splits (train, val) of the bundle whose exch_ts span meets ``[t0, t1]`` (ns) when ``files``
    are the bundle's training data; [] when they are other data, the window misses them, or the manifest
    records no training window. ``digest`` (of ``files``) spares reading them again."""
    training = manifest.training
    if training is None or (digest or data_digest(files)) != training.data_sha256:
        return []
    return [name for name in training.fitted
            if name in training.splits and training.splits[name][0] <= t1 and t0 <= training.splits[name][1]]


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    format: str
    format_version: int
    feature_schema_version: int
    created_by: str
    versions: dict[str, str]
    files: dict[str, str]        # name -> sha256 hex
    digest: str                  # sha256 of this manifest's canonical JSON with digest ""
    # None (and then absent from the JSON): written before the manifest named the kind; model.json's
    # variant gives it. Omitted when None, so those manifests keep their canonical bytes and digest.
    kind: Kind | None = None
    training: TrainingWindow | None = None     # None (absent): exported without a record of its training data


def canonical(manifest: Manifest) -> bytes:
    """The canonical bytes of ``manifest``: what ``manifest.json`` must hold."""
    return msgspec.json.format(msgspec.json.encode(manifest, order="sorted"), indent=2) + b"\n"


def digest_of(manifest: Manifest) -> str:
    """The sha256 of ``manifest``'s canonical form with ``digest`` empty."""
    return hashlib.sha256(canonical(msgspec.structs.replace(manifest, digest=""))).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_in(directory: Path) -> list[str]:
    """Every file under ``directory`` but the manifest and its signature, as sorted relative POSIX paths."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and p.name not in (MANIFEST, signature.SIGNATURE))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def write_manifest(directory: str | Path, kind: Kind, created_by: str = "cmm_models.export",
                   training: TrainingWindow | None = None) -> Manifest:
    """Hash every file in ``directory`` and write ``manifest.json`` (atomically); return the manifest.

    With a key in ``CMM_BUNDLE_KEY_FILE`` the manifest is signed; without one, a signature left from an
    earlier export (now of another manifest) is removed."""
    directory = Path(directory)
    versions = {"python": platform.python_version(), **{name: _version(name) for name in _LIBRARIES}}
    manifest = Manifest(format=FORMAT, format_version=FORMAT_VERSION, feature_schema_version=FEATURE_VERSION,
                        created_by=created_by, versions=versions, digest="", kind=kind, training=training,
                        files={name: sha256_file(directory / name) for name in files_in(directory)})
    manifest = msgspec.structs.replace(manifest, digest=digest_of(manifest))
    key = signature.key_from_env()
    with atomic_write(directory / MANIFEST) as f:
        f.write(canonical(manifest))
    if key is not None:
        signature.sign(directory, key)
    else:
        (directory / signature.SIGNATURE).unlink(missing_ok=True)
    return manifest
