"""The instrument spec stored with every event file."""
from __future__ import annotations

from typing import Literal

import msgspec

from common.config import Positive

MAX_PRICE_DECIMALS = 12
LINEAR = "linear"
INVERSE = "inverse"


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a price and a quantity mean: tick, lot, contract multiplier and how a contract settles.

    ``contract_multiplier`` is the contract size: 1 for spot and equities, the
    size of a future. A ``linear`` contract is worth ``qty·mult·price`` in the
    currency prices are quoted in. An ``inverse`` one (Binance COIN-M: 100 USD
    per BTC contract, 10 USD for others) is worth ``qty·mult`` USD, so in the
    coin it settles in it is worth ``qty·mult/price``, and a long's PnL from
    entry to exit is ``qty·mult·(1/entry − 1/exit)`` coin. ``settlement``
    names the currency PnL, fees and margin are in (None: not stated, the
    currency of the prices); an inverse contract must state its coin.
    """

    symbol: str
    tick_size: Positive
    lot_size: Positive
    contract_multiplier: Positive = 1.0
    kind: Literal["linear", "inverse"] = LINEAR
    settlement: str | None = None

    @property
    def inverse(self) -> bool:
        return self.kind == INVERSE

    def problem(self) -> str | None:
        """Why this spec cannot be booked as it stands, or None."""
        if self.inverse and not self.settlement:
            return (f"{self.symbol} is inverse but names no settlement coin: its PnL would be in an "
                    f"unnamed currency")
        return None

    def price_text(self, px: float) -> str:
        """``px`` written with the tick's decimals: float noise such as 60000.200000000004 (a tick
        index times the tick) or ``:g``'s six digits (60000.65 -> 60000.6) never reaches a report."""
        return f"{px:.{tick_decimals(self.tick_size)}f}"

    def to_json(self) -> bytes:
        """The spec as JSON. A linear contract with no settlement stated is written without those two
        fields, so such files keep their bytes and older versions (which refuse unknown fields) read them."""
        fields = msgspec.structs.asdict(self)
        if self.kind == LINEAR:
            del fields["kind"]
        if self.settlement is None:
            del fields["settlement"]
        return msgspec.json.encode(fields)

    @classmethod
    def from_json(cls, raw: bytes) -> "Instrument":
        return msgspec.json.decode(raw, type=cls)


def tick_decimals(tick: float) -> int:
    """The decimals that write every multiple of ``tick`` exactly (0.5 -> 1, 0.25 -> 2, 10 -> 0)."""
    for decimals in range(MAX_PRICE_DECIMALS):
        scaled = tick * 10.0 ** decimals
        if abs(scaled - round(scaled)) <= 1e-9 * scaled:
            return decimals
    return MAX_PRICE_DECIMALS
