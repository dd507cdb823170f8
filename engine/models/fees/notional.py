"""A rate of the notional: fee = rate * multiplier * price * qty."""
from engine.models.fees import FeeModel


class Notional(FeeModel):
    def fee(self, S, rate, qty, amount):
        return rate * amount
