"""The fee models by the name ``[fees] mode`` gives them: adding one is a file and a line here."""
from engine.models.fees.notional import Notional
from engine.models.fees.per_unit import PerUnit

FEE_MODELS = {
    "notional": Notional,
    "per_unit": PerUnit,
}
