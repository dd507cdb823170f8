"""``cmm study``: the paper's experiment end to end (train per dataset and seed, backtest every method on the
held-out test window, aggregate over episodes and seeds, report). It drives both sides, training
(:mod:`cmm_models`) and trading (:mod:`runtime`), so it sits above them; trading code never imports it."""
