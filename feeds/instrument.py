"""The instrument spec stored with every event file."""
from __future__ import annotations

import msgspec

from common.config import Positive

MAX_PRICE_DECIMALS = 12


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a price and a quantity mean: tick, lot and contract multiplier.

    ``contract_multiplier`` turns price x quantity into cash (1 for spot and
    equities, the contract size for futures).
    """

    symbol: str
    tick_size: Positive
    lot_size: Positive
    contract_multiplier: Positive = 1.0

    def price_text(self, px: float) -> str:
        """``px`` written with the tick's decimals: float noise such as 60000.200000000004 (a tick
        index times the tick) or ``:g``'s six digits (60000.65 -> 60000.6) never reaches a report."""
        return f"{px:.{tick_decimals(self.tick_size)}f}"

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

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
