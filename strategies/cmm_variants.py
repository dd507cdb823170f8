"""The CMM ablations and the distillation baseline by name: CMMStrategy on another bundle, nothing else changed.

Each runs the same features, ladder, order diff and measured decision time as
``cmm``; only the model differs, and the strategy refuses a bundle holding
another one (``model.json``'s ``variant``), so a config cannot compare the
wrong models by a wrong path. ``cmm train`` writes these bundles under
``bundles/<variant>/``; the shipped ones are in ``data/bundles/goog_sample/``.
"""
from __future__ import annotations

from bundle.manifest import Variant
from strategies.cmm import CMMStrategy


class SingleStudent(CMMStrategy):
    """``single_student``: one student distilled from the teacher's outputs on all tasks and regimes."""

    variants = (Variant.SINGLE_STUDENT,)


class CMMMean(CMMStrategy):
    """``cmm_mean``: the regime's experts averaged with equal weights instead of the Hájek kernel."""

    variants = (Variant.MEAN,)


class CMMGating(CMMStrategy):
    """``cmm_gating``: the regime's experts weighted by a softmax gate, linear in the features."""

    variants = (Variant.GATE,)


class CMMNoRegime(CMMStrategy):
    """``cmm_no_regime``: one expert per layer group over all regimes, Hájek-weighted."""

    variants = (Variant.NO_REGIME,)


class CMMNoLayer(CMMStrategy):
    """``cmm_no_layer``: one expert per regime without the layer-group split, Hájek-weighted."""

    variants = (Variant.NO_LAYER,)
