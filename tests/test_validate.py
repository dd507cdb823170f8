"""The last-line checks every event array passes."""
import numpy as np
import pytest

from feeds import events as E
from common.errors import DataError
from feeds.validate import check_events


def _one(kind, px, qty):
    ev = E.empty(1)
    ev[0] = (kind | E.BUY, 1, 1, px, qty, 0, 0, 0.0)
    return ev


@pytest.mark.parametrize("kind,px,qty,field", [
    (E.DEPTH, np.nan, 1.0, "px"), (E.TRADE, -1.0, 1.0, "px"), (E.DEPTH, 1.0, -2.0, "qty"),
    (E.FILL, 1.0, np.inf, "qty"), (E.ADD_ORDER, 0.0, 1.0, "px"),
])
def test_rejects_bad_values(kind, px, qty, field):
    with pytest.raises(DataError) as err:
        check_events(_one(kind, px, qty), source="x.npz")
    assert err.value.field == field
    assert str(err.value).startswith("x.npz: ")


def test_accepts_removal_and_clear_without_price():
    check_events(_one(E.DEPTH, 10.0, 0.0))
    check_events(_one(E.DEPTH_CLEAR, 0.0, 0.0))
