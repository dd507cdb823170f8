"""What contracts are worth in the settlement currency: the one place linear and inverse contracts differ.

A linear contract of multiplier ``mult`` at ``price`` is worth ``mult·price``
per unit. An inverse one (``feeds.instrument``: ``mult`` USD, settled in the
coin) is worth ``mult/price`` coin, and a long gains as ``1/price`` falls: in
the coin it is a linear contract at ``−1/price``. So booking an inverse fill
as a cash flow of ``−side·qty·mult·(−1/price)`` and marking the position at
``pos·mult·(−1/mid)`` gives ``q·mult·(1/entry − 1/exit)`` coin, with no other
change to the books. The linear expressions keep the operand order they
always had, so linear runs keep their bytes.
"""
import numba as nb


@nb.njit(cache=True, inline="always")
def trade_value(price, qty, mult, inverse):
    """The cash a buy of ``qty`` at ``price`` pays (negative: receives); its absolute value is the notional."""
    if inverse:
        return -(mult * qty / price)
    return mult * price * qty


@nb.njit(cache=True, inline="always")
def position_value(pos, mid, mult, inverse):
    """A position of ``pos`` marked at ``mid``: equity is cash plus this."""
    if inverse:
        return -(pos * mult / mid)
    return pos * mid * mult
