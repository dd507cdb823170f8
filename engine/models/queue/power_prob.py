"""PowerProb: f(x) = x**n, p = f(back) / (f(back) + f(front))."""
from engine.models.queue.prob import ProbQueue


class PowerProb(ProbQueue):
    def prob(self, front, back, n):
        fb = back ** n
        return fb / (fb + front ** n)
