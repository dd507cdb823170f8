"""The two message rings between us and the exchange (requests out, responses back).

Each ring is a power-of-two array of rows whose column 0 is the arrival time.
Messages on one link arrive in the order they were sent, as on hftbacktest's
order bus: a message never overtakes the one before it, so its arrival time is
raised to that one's when latency would put it earlier.
"""
import numba as nb


@nb.njit(cache=True, inline="always")
def reserve(ring, head, tail, ts):
    """The row for a message appended at ``tail`` and its arrival time; row -1 when the ring is full."""
    cap = ring.shape[0]
    if tail - head >= cap:
        return -1, ts
    if tail > head:
        last = ring[(tail - 1) & (cap - 1), 0]
        if last > ts:
            ts = last
    return tail & (cap - 1), ts
