"""Binance COIN-M (coin-margined, inverse) contracts, told apart by their symbol.

COIN-M symbols are ``<COIN>USD_PERP`` (perpetual) or ``<COIN>USD_<YYMMDD>``
(delivery); USD-M and spot symbols (``ETHUSDT``) never have the underscore.
A COIN-M contract is worth a fixed amount of USD (100 for BTC, 10 for every
other coin, as Binance's contract specifications state) and settles in the
coin: quantities are contracts, and PnL, fees and margin are in the coin.
Booked as linear with multiplier 1 a BTCUSD_PERP run's PnL is in nonsense
units thousands of times too large, so a spec that contradicts the symbol is
refused rather than used.
"""
from __future__ import annotations

import re

import msgspec

from feeds.instrument import INVERSE, Instrument

_SYMBOL = re.compile(r"([A-Z0-9]+)USD_(PERP|\d{6})")
CONTRACT_USD = {"BTC": 100.0}
OTHER_CONTRACT_USD = 10.0


def coin_of(symbol: str) -> str | None:
    """The coin a COIN-M symbol settles in (``ETHUSD_PERP`` -> ``ETH``), None for any other symbol."""
    m = _SYMBOL.fullmatch(symbol)
    return m.group(1) if m else None


def contract_usd(coin: str) -> float:
    return CONTRACT_USD.get(coin, OTHER_CONTRACT_USD)


def implied(default: Instrument) -> Instrument:
    """``default`` as Binance specifies it: inverse, in contracts of 100 or 10 USD, settled in the coin,
    when its symbol is a COIN-M one; unchanged otherwise."""
    coin = coin_of(default.symbol)
    if coin is None:
        return default
    return msgspec.structs.replace(default, kind=INVERSE, settlement=coin, contract_multiplier=contract_usd(coin))


def contradiction(instrument: Instrument) -> str | None:
    """What in ``instrument`` contradicts its COIN-M symbol (kind, settlement coin, contract size), or None."""
    coin = coin_of(instrument.symbol)
    if coin is None:
        return None
    if not instrument.inverse:
        return (f"{instrument.symbol} is a Binance COIN-M contract, inverse and settled in {coin}, but is "
                f"booked as linear (a file converted before inverse support?): reconvert it, or set "
                f"kind = \"inverse\", settlement = \"{coin}\" and contract_multiplier = "
                f"{contract_usd(coin):g}")
    if instrument.settlement != coin:
        return (f"{instrument.symbol} settles in {coin}, not {instrument.settlement}: an inverse contract's "
                f"PnL is in its coin")
    if instrument.contract_multiplier != contract_usd(coin):
        return (f"{instrument.symbol} contracts are {contract_usd(coin):g} USD each, not "
                f"{instrument.contract_multiplier:g}: PnL would be off by that factor")
    return None
