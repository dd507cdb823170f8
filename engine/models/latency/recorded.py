"""Recorded latency: a table of (request, exchange, response) timestamps, as hftbacktest's ``IntpOrderLatency``.

The entry latency (exchange - request) and response latency (response -
exchange) are interpolated linearly at the request time, clamped at the table's
ends; one table applies to every request kind.
"""
import numba as nb
import numpy as np

from engine.models.latency import LatencyModel


def latency_table(request_ts, exchange_ts, response_ts):
    """Build the (timestamps, [entry, response]) pair ``make_sim`` accepts."""
    req = np.asarray(request_ts, dtype=np.int64)
    exch = np.asarray(exchange_ts, dtype=np.int64)
    resp = np.asarray(response_ts, dtype=np.int64)
    if not (req.shape == exch.shape == resp.shape) or req.ndim != 1 or len(req) == 0:
        raise ValueError("latency table needs three equal-length, non-empty 1-D arrays")
    if np.any(np.diff(req) < 0):
        raise ValueError("latency table request timestamps must be sorted")
    if np.any(exch < req) or np.any(resp < exch):
        raise ValueError("latency table needs request <= exchange <= response on every row")
    return req, np.stack([exch - req, resp - exch], axis=1)


@nb.njit(cache=True)
def _interp(ts_arr, values, col, ts):
    n = ts_arr.shape[0]
    if ts <= ts_arr[0]:
        return values[0, col]
    if ts >= ts_arr[n - 1]:
        return values[n - 1, col]
    i = np.searchsorted(ts_arr, ts, side="right")
    t0 = ts_arr[i - 1]
    t1 = ts_arr[i]
    v0 = values[i - 1, col]
    v1 = values[i, col]
    if t1 == t0:
        return v1
    return np.int64(v0 + (v1 - v0) * ((ts - t0) / (t1 - t0)))


class Recorded(LatencyModel):
    def entry(self, S, kind, ts):
        return _interp(S.lat_ts, S.lat_v, 0, ts)

    def response(self, S, kind, ts):
        return _interp(S.lat_ts, S.lat_v, 1, ts)
