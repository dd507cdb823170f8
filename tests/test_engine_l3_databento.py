"""The engine's L3 book on Databento MBO: replayed with the l3 queue, its orders add up to the DEPTH book.

A C that follows an F of the same order must not take the fill off the engine's book again (the reader
matches them), and an R must leave no order behind; either mistake shows as a level where the orders
the engine holds and the L2 book disagree.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("databento_dbn", reason="the databento extra (databento-dbn) is not installed")
pytest.importorskip("zstandard", reason="the databento extra (zstandard) is not installed")

import feeds
from engine import kernel as K
from engine.models.config import QueueConfig
from engine.state import EngineConfig, I_LB, make_sim
from tests.test_databento import DEFINITION, MBO, RESTING


def test_the_engines_l3_book_agrees_with_the_l2_book_at_every_level():
    conv = feeds.read([MBO, DEFINITION])
    S = make_sim(conv.events, EngineConfig(tick_size=0.25, lot_size=1.0, queue=QueueConfig(model="l3")))
    K.goto(S, int(conv.events["exch_ts"].max()) + 1)
    lb = S.ints[I_LB]
    for l3_side, l2 in ((0, S.xbid), (1, S.xask)):
        l3 = S.l3_lv[l3_side, :len(l2)]
        assert np.array_equal(l3, l2[:len(l3)]), np.flatnonzero(l3 != l2[:len(l3)])[:5] + lb
    assert S.l3_lv.sum() == sum(size for _, size, _ in RESTING.values())
