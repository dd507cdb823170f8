"""Replay every bad-input and fault case of issue 12 and check how cmm answers.

Each case (``bench/probes/*.py``) runs ``cmm`` in a subprocess on files built
for it. A case that must be refused must exit non-zero with one line on stderr
and no traceback, and lose nothing; a case that must be read correctly must
exit 0 and pass its check. Prints one row per case and exits 1 if any fails.

Usage: python bench/trust_probes.py [--only NAME_SUBSTRING] [--item N]
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import probes  # noqa: E402
from bench.probes import Probe, run_cmm, verdict  # noqa: E402


def all_cases() -> list[Probe]:
    cases: list[Probe] = []
    for module in sorted(pkgutil.iter_modules(probes.__path__), key=lambda m: m.name):
        cases.extend(importlib.import_module(f"bench.probes.{module.name}").CASES)
    return sorted(cases, key=lambda p: (p.item, p.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--item", type=int, default=None, help="run the cases of one item of issue 12")
    args = parser.parse_args()
    cases = [p for p in all_cases() if args.only in p.name and args.item in (None, p.item)]
    failed = 0
    for probe in cases:
        with tempfile.TemporaryDirectory(prefix="cmm-probe-") as d:
            tmp = Path(d)
            start = time.perf_counter()
            try:
                argv = probe.setup(tmp)
                result = run_cmm(argv, tmp, probe.timeout_s)
                problem = verdict(probe, tmp, result)
                said = (result.stderr.strip().splitlines() or [""])[-1]
            except Exception as e:  # a probe's own setup failing is a failed probe, not a crash of the run
                problem, said = f"probe error: {type(e).__name__}: {e}", ""
            took = time.perf_counter() - start
        failed += problem is not None
        status = "ok  " if problem is None else "FAIL"
        print(f"{status} item {probe.item:>2} {probe.name:<44} {took:6.1f}s  "
              f"{problem or said[:110]}", flush=True)
    print(f"{len(cases) - failed}/{len(cases)} probes hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
