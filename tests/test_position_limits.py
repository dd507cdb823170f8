"""Position limits hold in whole lots on real data: float sums of fills must not let a side quote past the limit.

Issue 12 item 6: ten fills of 0.01 sum to 0.09999999999999999, so FixedSpread
with ``max_position = 0.1`` quoted an eleventh lot and reached 0.11.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from runtime import backtest, config
from strategies.kernels.limits import sides_within_limit
from tests.conftest import REPO

LOT = 0.01


def test_ten_float_fills_of_a_lot_are_at_the_limit():
    position = sum([LOT] * 10)
    assert position == 0.09999999999999999 and position < 0.1      # why a float comparison quotes an 11th
    assert sides_within_limit(position, LOT, 0.1, LOT) == (False, True)
    assert sides_within_limit(-position, LOT, 0.1, LOT) == (True, False)
    assert sides_within_limit(sum([LOT] * 9), LOT, 0.1, LOT) == (True, True)
    assert sides_within_limit(0.0, 0.03, 0.1, LOT) == (True, True)
    assert sides_within_limit(0.08, 0.03, 0.1, LOT) == (False, True)  # a fill would take it to 0.11


def _config(tmp_path, name: str, mode: str):
    """The repo's demo config for ``name``, trading 0.01-lot quotes under a 0.1 limit on the GOOG sample."""
    text = (REPO / "configs" / f"backtest_{name}.toml").read_text()
    text = text.replace('"../data/samples/', f'"{REPO}/data/samples/').replace('mode = "python"', f'mode = "{mode}"')
    text = re.sub(r"(?m)^qty = 100\b", "qty = 0.01", text)
    text = re.sub(r"(?m)^max_position = 500\b", "max_position = 0.1", text)
    text = text.replace("[queue]", f"[instrument]\nlot_size = {LOT}\n\n[queue]")
    path = tmp_path / f"{name}_{mode}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, mode", [("fixed_spread", "python"), ("fixed_spread", "kernel"),
                                        ("avellaneda_stoikov", "python")])
def test_position_stays_within_the_limit_on_the_goog_sample(tmp_path, name, mode):
    path = _config(tmp_path, name, mode)
    cfg = config.load(str(path))
    assert cfg.strategy.params["qty"] == 0.01 and cfg.strategy.params["max_position"] == 0.1
    fills = backtest.run(cfg, str(path)).result.fills
    assert len(fills) > 50
    lots = np.cumsum(np.round(fills["qty"] / LOT).astype(np.int64) * np.where(fills["side"] > 0, 1, -1))
    assert np.abs(lots).max() == 10          # reaches the limit, never an 11th lot (0.11 before the fix)
