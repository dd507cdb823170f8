"""An example project: a strategy of one's own, outside the engine's package, run by name from a config.

``wide_when_volatile.py`` subclasses :class:`strategies.cmm.CMMStrategy`;
``backtest_wide_when_volatile.toml`` and ``paper_wide_when_volatile.toml`` run it by
``[strategy] name = "examples.wide_when_volatile:WideWhenVolatile"``; ``compare.ipynb``
backtests it against ``cmm`` from Python and plots both. docs/own-strategy.md walks through it.
"""
