"""Position limits counted in whole lots, for the Python strategies and their kernels alike.

Fills add up in floating point: ten fills of 0.01 make 0.09999999999999999,
which is under a limit of 0.1, so a float comparison quotes (and can fill) an
eleventh lot. Counting the position, the quote and the limit in lots, as
integers, makes the comparison exact.
"""
import math

import numba as nb

EPS = 1e-7     # in lots: absorbs float error in a limit that is on the lot grid


@nb.njit(cache=True)
def sides_within_limit(position, qty, max_position, lot):
    """``(quote the bid, quote the ask)``: a side is quoted only if a fill of ``qty`` keeps |position|
    within ``max_position``. Position and quote are rounded to whole lots, the limit down to one."""
    held = round(position / lot)
    size = round(qty / lot)
    cap = math.floor(max_position / lot + EPS)
    return held + size <= cap, held - size >= -cap
