"""PowerProb2: f(x) = x**n, p = f(back) / f(back + front)."""
from engine.models.queue.prob import ProbQueue


class PowerProb2(ProbQueue):
    def prob(self, front, back, n):
        return back ** n / (back + front) ** n
