"""LogProb: f(x) = log(1 + x), p = f(back) / (f(back) + f(front))."""
import numpy as np

from engine.models.queue.prob import ProbQueue


class LogProb(ProbQueue):
    def prob(self, front, back, n):
        fb = np.log1p(back)
        return fb / (fb + np.log1p(front))
