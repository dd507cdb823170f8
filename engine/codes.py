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

# Request kinds: a request in the ring, the one the strategy has in flight for an order (REQ_NONE: none)
# and the latency it takes (engine/models/latency/constant.py numbers its slots in this order).
REQ_NONE = 0
REQ_NEW = 1
REQ_MODIFY = 2
REQ_CANCEL = 3
REQUEST_NAMES = {REQ_NEW: "new", REQ_MODIFY: "modify", REQ_CANCEL: "cancel"}

# Response kinds (exchange -> local).
RESP_UPDATE = 0        # status change: accepted, canceled, modified, expired, rejected
RESP_FILL = 1          # an execution
RESP_REQ_REJECTED = 2  # a cancel/modify found no live order

# Sentinels for an empty side of the book (hftbacktest's INVALID_MIN / INVALID_MAX).
INVALID_MIN = -(2**63) + 1
INVALID_MAX = 2**63 - 1
