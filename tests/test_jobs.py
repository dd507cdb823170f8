"""runtime.jobs: parallel, resumable, failure-isolated jobs whose results do not depend on the width."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from common.config import ConfigError
from common.errors import DataError
from runtime.jobs import DONE_MARKER, ERROR_LOG, Job, failures, run_jobs


def draw(out: str, seed: int, n: int) -> dict:
    """A job that writes a file and returns a number computed from its own seed."""
    x = np.random.default_rng(seed).standard_normal(n)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "x.npy"), x)
    with open(os.path.join(out, "count"), "a") as f:        # one line per time it ran
        f.write("ran\n")
    return {"seed": seed, "sum": float(x.sum()), "pid": os.getpid()}


def bad(out: str, why: str) -> None:
    raise DataError(why, path="input.csv", line=3, field="price")


def crash(out: str) -> None:
    return 1 / 0


def total(out: str, paths: list[str]) -> float:
    """A job that reads what others wrote: runs only after them."""
    return float(sum(np.load(os.path.join(p, "x.npy")).sum() for p in paths))


def jobs_in(root, seeds=(1, 2, 3, 4)) -> list[Job]:
    jobs = [Job(id=f"draw-{s}", fn=draw, out=str(root / f"d{s}"), args=(s, 1000)) for s in seeds]
    jobs.append(Job(id="total", fn=total, out=str(root / "total"), args=([j.out for j in jobs],),
                    after=tuple(j.id for j in jobs)))
    return jobs


def values(results):
    return [{k: v for k, v in r.value.items() if k != "pid"} if isinstance(r.value, dict) else r.value
            for r in results]


def test_parallel_equals_serial_and_resumes(tmp_path):
    serial = run_jobs(jobs_in(tmp_path / "one"), 1, progress=False)
    parallel = run_jobs(jobs_in(tmp_path / "two"), 2, progress=False)
    assert [r.status for r in serial] == ["done"] * 5 and [r.status for r in parallel] == ["done"] * 5
    assert values(serial) == values(parallel)
    expected = sum(float(np.random.default_rng(s).standard_normal(1000).sum()) for s in (1, 2, 3, 4))
    assert serial[-1].value == pytest.approx(expected, rel=1e-12)
    for s in (1, 2, 3, 4):       # byte-identical files whatever the width
        assert (tmp_path / "one" / f"d{s}" / "x.npy").read_bytes() == (tmp_path / "two" / f"d{s}" / "x.npy").read_bytes()
    # worker processes ran the draws in parallel; inline, this process ran them
    assert os.getpid() not in {r.value["pid"] for r in parallel[:4]}
    assert {r.value["pid"] for r in serial[:4]} == {os.getpid()}
    # Resumed: nothing runs again, the stored values come back.
    again = run_jobs(jobs_in(tmp_path / "two"), 2, progress=False)
    assert [r.status for r in again] == ["skipped"] * 5
    assert values(again) == values(parallel)
    assert (tmp_path / "two" / "d1" / "count").read_text() == "ran\n"
    # A half-finished job (no marker) and a changed key run again; the rest are skipped.
    os.unlink(tmp_path / "two" / "d2" / DONE_MARKER)
    changed = jobs_in(tmp_path / "two")
    changed[2] = Job(id="draw-3", fn=draw, out=changed[2].out, args=(3, 1000), key="v2")
    third = run_jobs(changed, 2, progress=False)
    assert [r.status for r in third] == ["skipped", "done", "done", "skipped", "skipped"]


def test_a_failure_is_reported_and_the_others_finish(tmp_path):
    jobs = [Job(id="ok", fn=draw, out=str(tmp_path / "ok"), args=(7, 10)),
            Job(id="bad", fn=bad, out=str(tmp_path / "bad"), args=("expected a positive price",)),
            Job(id="crash", fn=crash, out=str(tmp_path / "crash")),
            Job(id="after-bad", fn=total, out=str(tmp_path / "ab"), args=([],), after=("bad",))]
    lines = []
    results = run_jobs(jobs, 2, progress=False, on_result=lines.append)
    assert [r.status for r in results] == ["done", "failed", "failed", "failed"]
    assert results[1].error == "input.csv:3: price: expected a positive price"
    assert results[2].error == "ZeroDivisionError: division by zero"
    assert results[3].error == "not run: bad failed"
    assert "Traceback" in (tmp_path / "crash" / ERROR_LOG).read_text()
    assert not (tmp_path / "bad" / DONE_MARKER).exists()
    assert json.loads((tmp_path / "ok" / DONE_MARKER).read_text())["id"] == "ok"
    assert sorted(r.id for r in lines) == ["after-bad", "bad", "crash", "ok"]
    assert failures(results).splitlines() == ["bad: input.csv:3: price: expected a positive price",
                                              "crash: ZeroDivisionError: division by zero",
                                              "after-bad: not run: bad failed"]


def test_bad_job_lists_are_refused_before_anything_runs(tmp_path):
    a = Job(id="a", fn=draw, out=str(tmp_path / "a"), args=(1, 1))
    with pytest.raises(ConfigError, match="two jobs share the id 'a'"):
        run_jobs([a, Job(id="a", fn=draw, out=str(tmp_path / "b"))], 1)
    with pytest.raises(ConfigError, match="share the output directory"):
        run_jobs([a, Job(id="b", fn=draw, out=str(tmp_path / "a"))], 1)
    with pytest.raises(ConfigError, match="waits on 'zz'"):
        run_jobs([Job(id="b", fn=draw, out=str(tmp_path / "b"), after=("zz",))], 1)
    with pytest.raises(ConfigError, match="in a circle"):
        run_jobs([Job(id="x", fn=draw, out=str(tmp_path / "x"), after=("y",)),
                  Job(id="y", fn=draw, out=str(tmp_path / "y"), after=("x",))], 1)
    with pytest.raises(ConfigError, match="at least one worker"):
        run_jobs([a], 0)
    assert not (tmp_path / "a").exists()
