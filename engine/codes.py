"""Integer codes shared by the kernel and its Python callers.

Status codes follow hftbacktest's numbering (NONE..REJECTED) so results read the
same in both engines; every rejection also carries a reason code.
"""

# Sides.
BUY = 1
SELL = -1

# Order status (hftbacktest numbering).
NONE = 0              # created locally, not yet acknowledged by the exchange
NEW = 1               # resting on the book (open)
EXPIRED = 2           # IOC/FOK remainder removed by the exchange
FILLED = 3
CANCELED = 4
PARTIALLY_FILLED = 5
REJECTED = 6

STATUS_NAMES = {NONE: "none", NEW: "new", EXPIRED: "expired", FILLED: "filled",
                CANCELED: "canceled", PARTIALLY_FILLED: "partially_filled", REJECTED: "rejected"}

# Time in force and order type (hftbacktest numbering).
GTC = 0
GTX = 1   # post-only: rejected if it would take liquidity
FOK = 2
IOC = 3
LIMIT = 0
MARKET = 1
SIDE_NAMES = {BUY: "buy", SELL: "sell"}
SIDES_BY_NAME = {name: code for code, name in SIDE_NAMES.items()}
TIF_NAMES = {GTC: "gtc", GTX: "gtx", FOK: "fok", IOC: "ioc"}
TYPE_NAMES = {LIMIT: "limit", MARKET: "market"}
TIFS_BY_NAME = {name: code for code, name in TIF_NAMES.items()}
TYPES_BY_NAME = {name: code for code, name in TYPE_NAMES.items()}

# Why an order or request was rejected or expired.
R_NONE = 0
R_POST_ONLY_WOULD_TAKE = 1   # GTX order priced through the opposite best
R_NO_LIQUIDITY = 2           # IOC/FOK/market with nothing to take (or FOK not fillable in full)
R_UNKNOWN_ORDER = 3          # cancel/modify reached the exchange after the order was done
R_PRICE_OUT_OF_RANGE = 4     # price outside the book's preallocated tick range
R_BAD_QTY = 5                # quantity not positive
REASON_NAMES = {R_NONE: "", R_POST_ONLY_WOULD_TAKE: "post_only_would_take", R_NO_LIQUIDITY: "no_liquidity",
                R_UNKNOWN_ORDER: "unknown_order", R_PRICE_OUT_OF_RANGE: "price_out_of_range",
                R_BAD_QTY: "bad_qty"}

# Local request in flight (hftbacktest's ``req``).
REQ_NONE = 0
REQ_NEW = 1
REQ_CANCEL = 4
REQ_MODIFY = 7

# Queue models.
Q_RISK_AVERSE = 0
Q_POWER_PROB = 1     # f(x) = x**n,  p = f(back) / (f(back) + f(front))
Q_LOG_PROB = 2       # f(x) = log(1+x), p = f(back) / (f(back) + f(front))
Q_POWER_PROB2 = 3    # p = f(back) / f(back + front)
Q_LOG_PROB2 = 4
Q_POWER_PROB3 = 5    # p = 1 - f(front / (front + back))
Q_L3 = 6             # exact FIFO behind the real order ids (engine/l3.py); needs L3 events
QUEUE_MODELS = {"risk_averse": Q_RISK_AVERSE, "power_prob": Q_POWER_PROB, "log_prob": Q_LOG_PROB,
                "power_prob2": Q_POWER_PROB2, "log_prob2": Q_LOG_PROB2, "power_prob3": Q_POWER_PROB3,
                "l3": Q_L3}

# Fee modes.
FEE_NOTIONAL = 0   # fee = rate * price * qty * multiplier
FEE_PER_UNIT = 1   # fee = rate * qty

# Sentinels for an empty side of the book (hftbacktest's INVALID_MIN / INVALID_MAX).
INVALID_MIN = -(2**63) + 1
INVALID_MAX = 2**63 - 1
