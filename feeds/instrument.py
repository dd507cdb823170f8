"""The instrument spec stored with every event file."""
from __future__ import annotations

import msgspec

from common.config import Positive


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a price and a quantity mean: tick, lot and contract multiplier.

    ``contract_multiplier`` turns price x quantity into cash (1 for spot and
    equities, the contract size for futures).
    """

    symbol: str
    tick_size: Positive
    lot_size: Positive
    contract_multiplier: Positive = 1.0

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> "Instrument":
        return msgspec.json.decode(raw, type=cls)
