"""hftbacktest's own timeline ordering, called so its out-of-bounds read cannot crash the tests.

hftbacktest 2.4.4's ``correct_event_order`` reads ``data[sorted_index[n]]`` one
step past the end of each index array before checking ``n < len(data)``
(Numba does no bounds checks), which now and then segfaults on small arrays.
One extra index pointing at row 0 keeps that read inside memory we own; the
value read is never used, so the result is hftbacktest's exactly.
"""
import numpy as np
from hftbacktest.data.validation import correct_event_order


def reference_event_order(data: np.ndarray) -> np.ndarray:
    pad = np.zeros(1, dtype=np.int64)
    by_exch = np.concatenate([np.argsort(data["exch_ts"], kind="mergesort"), pad])
    by_local = np.concatenate([np.argsort(data["local_ts"], kind="mergesort"), pad])
    return correct_event_order(data, by_exch, by_local)
