"""PowerProb3: p = 1 - f(front / (front + back)), f(x) = x**n."""
from engine.models.queue.prob import ProbQueue


class PowerProb3(ProbQueue):
    def prob(self, front, back, n):
        return 1.0 - (front / (front + back)) ** n
