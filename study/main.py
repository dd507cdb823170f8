"""``cmm study``: plan the jobs, run them (parallel, resumable), write the report.

``OUT`` is kept between runs so that a second run skips what the first finished: it must be absent,
empty, or a study directory of ours (it holds :data:`MARKER`); anything else is refused before any
job runs.
"""
from __future__ import annotations

import os


from common.errors import DataError
from runtime.jobs import failures, run_jobs
from study import config as study_config
from study import report
from study.run import plan

MARKER = ".cmm-study"


def check_out(out: str) -> None:
    if os.path.lexists(out) and (not os.path.isdir(out) or os.path.islink(out)):
        raise DataError("exists and is not a study directory; choose another --out", path=out, field="--out")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MARKER)):
        raise DataError(f"is a directory cmm study did not write (no {MARKER} marker); choose another --out",
                        path=out, field="--out")


def study(config_path: str, out: str, jobs: int | None = None, progress: bool | None = None,
          log=print, backend=None) -> tuple[str, list]:
    """Run the study of ``config_path`` into ``out``; (the Markdown tables, the failed jobs' lines).
    ``backend``: where the jobs run (:func:`runtime.jobs.run_jobs`; local processes by default, or
    :func:`runtime.jobs_ray.backend`)."""
    cfg = study_config.load(config_path)
    check_out(out)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("cmm study wrote this directory; a study given it as --out resumes it.\n")
    todo = plan(cfg, os.path.abspath(out))

    def note(r) -> None:
        if not r.ok:
            log(f"failed: {r.id}: {r.error}")
    results = run_jobs(todo, jobs, backend=backend, progress=progress, label="study", on_result=note)
    failed = failures(results).splitlines()
    meta = {"config": os.path.abspath(config_path), "seeds": cfg.seeds, "episode_s": cfg.episode_s,
            "maker_fee": cfg.maker_fee, "rebate": cfg.rebate, "jobs": len(results),
            "skipped": sum(r.status == "skipped" for r in results), "failed": failed,
            "seconds": {r.id: round(r.seconds, 2) for r in results if r.status == "done"}}
    summary = report.summarize(results, cfg.bootstrap, cfg.stress_share)
    text = report.write(out, results, summary, meta)
    return text, failed
