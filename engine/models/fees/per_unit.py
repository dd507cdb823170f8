"""A rate per unit traded: fee = rate * qty."""
from engine.models.fees import FeeModel


class PerUnit(FeeModel):
    def fee(self, S, rate, qty, amount):
        return rate * qty
