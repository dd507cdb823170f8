"""LogProb2: f(x) = log(1 + x), p = f(back) / f(back + front)."""
import numpy as np

from engine.models.queue.prob import ProbQueue


class LogProb2(ProbQueue):
    def prob(self, front, back, n):
        return np.log1p(back) / np.log1p(back + front)
