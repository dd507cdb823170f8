"""The latency models by name: adding one is a file and a line here."""
from engine.models.latency.constant import Constant
from engine.models.latency.recorded import Recorded

LATENCY_MODELS = {
    "constant": Constant,
    "recorded": Recorded,
}
