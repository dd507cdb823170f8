"""Constrained number types for strategy parameters and configs: the constraint is part of the schema.

msgspec checks them while decoding a config, so ``qty = -1`` fails with the key's
name instead of reaching the engine.
"""
from typing import Annotated

import msgspec

from common.config import NonNegative, NonNegativeInt, Positive, PositiveInt

Fraction = Annotated[float, msgspec.Meta(gt=0, lt=1)]

# A path written relative to the config file; the runner resolves it before the strategy sees it.
ConfigPath = Annotated[str, msgspec.Meta(min_length=1, extra={"relative_to_config": True})]

__all__ = ["ConfigPath", "Fraction", "NonNegative", "NonNegativeInt", "Positive", "PositiveInt"]
