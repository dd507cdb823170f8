"""The queue models by the name a config gives them: adding one is a file and a line here."""
from engine.models.queue.l3 import L3
from engine.models.queue.log_prob import LogProb
from engine.models.queue.log_prob2 import LogProb2
from engine.models.queue.power_prob import PowerProb
from engine.models.queue.power_prob2 import PowerProb2
from engine.models.queue.power_prob3 import PowerProb3
from engine.models.queue.risk_averse import RiskAverse

QUEUE_MODELS = {
    "risk_averse": RiskAverse,
    "power_prob": PowerProb,
    "log_prob": LogProb,
    "power_prob2": PowerProb2,
    "log_prob2": LogProb2,
    "power_prob3": PowerProb3,
    "l3": L3,
}
