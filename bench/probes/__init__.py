"""Bad-input and fault probes: each one runs ``cmm`` as a user would and checks how it fails.

A probe is one case of issue 12's list. ``setup(tmp)`` builds its files in a
fresh temporary directory and returns the ``cmm`` arguments. The runner
(``bench/trust_probes.py``) then checks, for a probe that expects refusal:

- a non-zero exit;
- stderr is exactly one non-empty line, with no traceback;
- ``check(tmp, result)``, when given, returns ``None`` (for example: the user's
  file is still there, nothing half-written is left behind).

A probe that expects success (``refused=False``) must exit 0 and pass
``check``: the cases where the right answer is to read the data correctly.

Each group of probes lives in its own module here, with a ``CASES`` list.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"


@dataclasses.dataclass(frozen=True)
class Probe:
    item: int                                   # the numbered item of issue 12
    name: str
    setup: Callable[[Path], list[str]]          # builds files under tmp, returns cmm's argv
    refused: bool = True                        # True: must fail with one line; False: must succeed
    check: Optional[Callable[[Path, subprocess.CompletedProcess], Optional[str]]] = None
    timeout_s: float = 300.0


def run_cmm(argv: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``cmm`` in a subprocess with this interpreter, as the console script would."""
    return subprocess.run([sys.executable, "-m", "cmm", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout_s)


def verdict(probe: Probe, tmp: Path, result: subprocess.CompletedProcess) -> Optional[str]:
    """``None`` when the probe holds, else what went wrong, in a few words."""
    err_lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Traceback" in result.stderr:
        return "traceback"
    if probe.refused:
        if result.returncode == 0:
            return "exit 0"
        if len(err_lines) != 1:
            return f"{len(err_lines)} stderr lines"
    elif result.returncode != 0:
        return f"exit {result.returncode}: {err_lines[-1] if err_lines else ''}"
    if probe.check is not None:
        return probe.check(tmp, result)
    return None
