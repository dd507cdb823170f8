"""``cmm study``: plan the jobs, run them (parallel, resumable), write the report.

``OUT`` is kept between runs so that a second run skips what the first finished: it must be absent,
empty, or a study directory of ours (:func:`common.outdir.claim_resumable`); anything else is refused
before any job runs.
"""
from __future__ import annotations

import os

from common.outdir import claim_resumable
from runtime.jobs import failures, run_jobs
from study import config as study_config
from study import report
from study.run import plan

def study(config_path: str, out: str, jobs: int | None = None, progress: bool | None = None,
          log=print, backend=None) -> tuple[str, list]:
    """Run the study of ``config_path`` into ``out``; (the Markdown tables, the failed jobs' lines).
    ``backend``: where the jobs run (:func:`runtime.jobs.run_jobs`; local processes by default, or
    :func:`runtime.jobs_ray.backend`)."""
    cfg = study_config.load(config_path)
    claim_resumable(out, "study")
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
