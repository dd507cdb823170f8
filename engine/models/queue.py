"""L2 queue-position models: how much of the level is ahead of our order.

Each model keeps two numbers per order: ``front`` (quantity ahead of us) and
``cum_trade`` (traded quantity at our price since the last depth update). The
formulas are hftbacktest's, term for term, so the two engines agree fill for fill.

- RiskAverse (hftbacktest ``RiskAdverseQueueModel``): ``front`` starts at the
  level's quantity when the order reaches the exchange; a trade at our price
  subtracts its quantity; a depth update only ever lowers ``front`` to the new
  level quantity (cancellations are assumed to come from behind us).
- Prob models (hftbacktest ``ProbQueueModel``): a depth decrease ``chg`` (net of
  trades already counted) is split between ahead and behind us with probability
  ``p = prob(front, back)`` of coming from behind::

      est_front = front - (1 - p) * chg + min(back - p * chg, 0)
      front     = min(est_front, new_qty)

  PowerProb(n): f(x)=x**n, p = f(back)/(f(back)+f(front)); LogProb: f(x)=log(1+x)
  likewise; the "2" variants use p = f(back)/f(back+front); PowerProb3 uses
  p = 1 - f(front/(front+back)).

We are filled once ``round(front/lot) < 0``: the quantity that traded beyond the
queue ahead, ``floor(-front/lot)*lot``, is what is available to us.
"""
import numba as nb
import numpy as np

from engine.codes import Q_LOG_PROB, Q_LOG_PROB2, Q_POWER_PROB, Q_POWER_PROB2, Q_POWER_PROB3, Q_RISK_AVERSE


@nb.njit(cache=True, inline="always")
def fmin(a, b):
    """Rust's f64::min: a NaN argument yields the other one."""
    if np.isnan(a):
        return b
    if np.isnan(b):
        return a
    return a if a < b else b


@nb.njit(cache=True, error_model="numpy")
def prob(model, n, front, back):
    """Probability that a depth decrease came from behind our order.

    IEEE division, as in hftbacktest's Rust: an empty level gives 0/0 = NaN,
    which ``on_depth`` resolves as Rust's ``f64::min`` does (to the new size).
    """
    if model == Q_POWER_PROB:
        fb = back ** n
        return fb / (fb + front ** n)
    if model == Q_LOG_PROB:
        fb = np.log1p(back)
        return fb / (fb + np.log1p(front))
    if model == Q_POWER_PROB2:
        return back ** n / (back + front) ** n
    if model == Q_LOG_PROB2:
        return np.log1p(back) / np.log1p(back + front)
    if model == Q_POWER_PROB3:
        return 1.0 - (front / (front + back)) ** n
    return 0.0


@nb.njit(cache=True)
def on_trade(q, qty):
    """A trade of ``qty`` printed at our price. ``q`` = [front, cum_trade]."""
    q[0] -= qty
    q[1] += qty


@nb.njit(cache=True)
def on_depth(model, n, q, prev_qty, new_qty):
    """The level at our price changed from ``prev_qty`` to ``new_qty``."""
    if model == Q_RISK_AVERSE:
        q[0] = fmin(q[0], new_qty)
        return
    chg = prev_qty - new_qty - q[1]
    q[1] = 0.0
    if chg < 0.0:
        q[0] = fmin(q[0], new_qty)
        return
    front = q[0]
    back = prev_qty - front
    p = prob(model, n, front, back)
    if np.isinf(p):
        p = 1.0
    est = front - (1.0 - p) * chg + fmin(back - p * chg, 0.0)
    q[0] = fmin(est, new_qty)


@nb.njit(cache=True)
def filled_qty(q, lot):
    """Quantity available to our order once the queue ahead has traded away."""
    if np.round(q[0] / lot) < 0.0:
        return np.floor(-q[0] / lot) * lot
    return 0.0
