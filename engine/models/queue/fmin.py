"""Rust's ``f64::min``, which hftbacktest's queue models use: a NaN argument yields the other one."""
import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def fmin(a, b):
    """Rust's f64::min: a NaN argument yields the other one."""
    if np.isnan(a):
        return b
    if np.isnan(b):
        return a
    return a if a < b else b
