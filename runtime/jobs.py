"""Independent jobs in parallel processes: resumable, failure-isolated, the same results whatever the width.

A :class:`Job` is a picklable callable (a module-level function) with its
arguments, a stable ``id`` and an output directory. :func:`run_jobs` runs a
list of them, ``jobs`` at a time, and returns one :class:`JobResult` per job in
the order given, so what a caller builds from the results never depends on
which process finished first.

- **Resumable.** When a job returns, its return value is written (JSON, atomically)
  into ``OUT/.cmm-job.json`` with the job's ``key``; a later run finds the marker,
  skips the job and hands back the stored value. A job killed half way leaves no
  marker and runs again. A different ``key`` (the caller's fingerprint of the
  job's inputs) means the stored result is stale: the job runs again.
- **Failure-isolated.** A job that raises is reported with its error (one line:
  the exception's own message for our ``DataError`` / ``ConfigError``, the type
  and message otherwise) and its full traceback in ``OUT/.cmm-job-error.txt``; the
  others go on. A job whose dependency failed is not run and says which one.
- **Dependencies.** ``after`` names jobs that must finish first (train before
  backtest); a job starts as soon as everything it waits on is done.
- **Deterministic.** Each job runs alone in its process with its own inputs, and
  must seed whatever it draws from itself; results come back in input order.
- **Backends.** Where jobs run is an executor (:class:`concurrent.futures.Executor`)
  from :data:`BACKENDS`: ``"process"`` (a spawn-started process pool: no fork of
  a parent that holds torch's or Numba's threads) and ``"inline"`` (this process,
  one at a time; what ``jobs = 1`` uses); or any factory ``(workers) -> Executor``
  passed as ``backend`` (:mod:`runtime.jobs_ray`: a Ray cluster). With
  ``warm = warm_worker`` (backtests: compare, sweep) each worker imports the engine
  and loads its jitted functions once, before its first job, so the Numba cache is
  read once per worker, not inside a job.
- **Dead workers.** A worker process that dies (killed, out of memory) takes its
  job with it, and a process pool with it all its jobs in flight: those jobs run
  again, up to ``retries`` times each, on a fresh pool. A job's result is only
  ever its completion marker and its return value, both keyed by its id, so a
  job run twice is counted once.
"""
from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import multiprocessing
import os
import time
import traceback
from typing import Any, Callable

import msgspec

from common.atomic import atomic_write
from common.config import ConfigError
from common.errors import DataError
from common.progress import Progress

DONE_MARKER = ".cmm-job.json"
ERROR_LOG = ".cmm-job-error.txt"


class Job(msgspec.Struct, frozen=True):
    """One unit of work: ``fn(out, *args, **kwargs)``; its return value must be JSON-encodable (msgspec)."""

    id: str                                  # stable across runs: names the job in reports and in ``after``
    fn: Callable
    out: str                                 # the job's output directory; the completion marker goes here
    args: tuple = ()
    kwargs: dict = {}
    after: tuple[str, ...] = ()              # ids of jobs that must finish first
    key: str = ""                            # the caller's fingerprint of the inputs; a changed key reruns


class JobResult(msgspec.Struct, frozen=True):
    id: str
    status: str                              # "done" (ran now), "skipped" (found complete), "failed"
    value: Any = None                        # what fn returned (from the marker when skipped)
    error: str | None = None                 # one line, when failed
    seconds: float = 0.0                     # wall time of the run (0 when skipped)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class _Marker(msgspec.Struct):
    id: str
    key: str
    value: Any
    seconds: float


def completed(job: Job) -> JobResult | None:
    """The job's stored result, if its output directory holds a marker with the same key; else None."""
    path = os.path.join(job.out, DONE_MARKER)
    try:
        with open(path, "rb") as f:
            marker = msgspec.json.decode(f.read(), type=_Marker)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if marker.id != job.id or marker.key != job.key:
        return None
    return JobResult(id=job.id, status="skipped", value=marker.value)


def one_line(error: BaseException) -> str:
    """An error as a report shows it: our located messages as they are, others with their type."""
    if isinstance(error, (DataError, ConfigError)):
        return str(error)
    return f"{type(error).__name__}: {error}".splitlines()[0]


def execute(job: Job) -> JobResult:
    """Run one job here (in whatever process the backend chose) and mark it complete; never raises."""
    t0 = time.perf_counter()
    try:
        value = job.fn(job.out, *job.args, **job.kwargs)
        seconds = time.perf_counter() - t0
        encoded = msgspec.json.encode(_Marker(id=job.id, key=job.key, value=value, seconds=seconds))
        os.makedirs(job.out, exist_ok=True)
        with atomic_write(os.path.join(job.out, DONE_MARKER)) as f:
            f.write(encoded)
        with_error = os.path.join(job.out, ERROR_LOG)
        if os.path.exists(with_error):
            os.unlink(with_error)
        return JobResult(id=job.id, status="done", value=msgspec.json.decode(encoded, type=_Marker).value,
                         seconds=seconds)
    except Exception as e:             # noqa: BLE001 - one job's failure must not stop the others
        try:
            os.makedirs(job.out, exist_ok=True)
            with atomic_write(os.path.join(job.out, ERROR_LOG), "w") as f:
                f.write(traceback.format_exc())
        except (OSError, DataError):
            pass
        return JobResult(id=job.id, status="failed", error=one_line(e), seconds=time.perf_counter() - t0)


class InlineExecutor(cf.Executor):
    """Runs each submitted call at once, in this process: ``jobs = 1``, a debugger, a profiler."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:     # noqa: BLE001 - handed to the caller through the future
            future.set_exception(e)
        return future


def warm_worker() -> None:
    """A new worker's first act: import the engine and run a tiny replay, so the jitted functions are
    loaded from the Numba cache (or compiled into it) once per worker rather than inside its first job."""
    import numpy as np

    from engine.views import EngineConfig, make_sim, run_to_end
    from feeds.events import DEPTH, EVENT_DTYPE, EXCH, LOCAL

    rows = np.zeros(2, dtype=EVENT_DTYPE)
    rows["ev"] = DEPTH | EXCH | LOCAL | np.array([1 << 29, 1 << 28], dtype=np.uint64)
    rows["px"], rows["qty"] = [99.0, 101.0], 1.0
    rows["exch_ts"] = rows["local_ts"] = [1, 2]
    run_to_end(make_sim(rows, EngineConfig(tick_size=1.0, lot_size=1.0)))


def _process_pool(workers: int, warm: Callable[[], None] | None = None) -> cf.Executor:
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=warm)


class WorkerDied(RuntimeError):
    """A backend's word that the worker running a job died (:mod:`runtime.jobs_ray`)."""


def worker_died(error: BaseException) -> bool:
    """Whether a job's future failed because its worker process died, not because the job raised
    (:func:`execute` never raises): a broken process pool, or a backend's :class:`WorkerDied`."""
    return isinstance(error, (BrokenProcessPool, WorkerDied))


# A backend: (workers, warm) -> Executor, where ``warm`` (or None) is what each new worker runs first.
BACKENDS: dict[str, Callable[..., cf.Executor]] = {
    "process": _process_pool,
    "inline": lambda workers, warm=None: InlineExecutor(),
}


def default_jobs() -> int:
    """The machine's cores: ``--jobs`` when not given."""
    return os.cpu_count() or 1


def check_jobs(jobs: list[Job]) -> None:
    """Refuse duplicate ids or output directories and unknown or circular ``after`` names, before anything runs."""
    ids = [j.id for j in jobs]
    for name, values in (("id", ids), ("output directory", [os.path.abspath(j.out) for j in jobs])):
        seen = set()
        for v in values:
            if v in seen:
                raise ConfigError(f"two jobs share the {name} {v!r}", field="jobs")
            seen.add(v)
    known = set(ids)
    for j in jobs:
        for a in j.after:
            if a not in known:
                raise ConfigError(f"job {j.id!r} waits on {a!r}, which is not a job", field="jobs")
    # Circular waits: repeatedly remove jobs whose dependencies are all removed.
    waiting = {j.id: set(j.after) for j in jobs}
    while waiting:
        ready = [i for i, deps in waiting.items() if not deps & waiting.keys()]
        if not ready:
            raise ConfigError(f"jobs wait on each other in a circle: {', '.join(sorted(waiting))}", field="jobs")
        for i in ready:
            del waiting[i]


def run_jobs(jobs: list[Job], workers: int | None = None, *, backend: str | Callable[..., cf.Executor] | None = None,
             progress: bool | None = None, label: str = "jobs", retries: int = 2,
             warm: Callable[[], None] | None = None,
             on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run ``jobs`` (``workers`` at a time, default :func:`default_jobs`); one result per job, in input order.

    ``backend``: a key of :data:`BACKENDS` or a factory ``(workers) -> Executor``; by default ``"inline"``
    for one worker, else ``"process"``. A job whose worker died runs again, at most ``retries`` times.
    ``warm`` runs once in each new worker before its first job (:func:`warm_worker` for backtests).
    ``on_result`` is called in this process as each job ends (a log line); ``progress`` draws a bar
    (None: on a terminal).
    """
    check_jobs(jobs)
    workers = default_jobs() if workers is None else workers
    if workers < 1:
        raise ConfigError(f"expected at least one worker, got {workers}", field="--jobs")
    backend = backend or ("inline" if workers == 1 else "process")
    if isinstance(backend, str) and backend not in BACKENDS:
        raise ConfigError(f"unknown job backend {backend!r}; expected one of {', '.join(BACKENDS)}", field="backend")
    factory = BACKENDS[backend] if isinstance(backend, str) else backend
    results: dict[str, JobResult] = {}
    pending = list(jobs)
    with Progress(len(jobs), label, enabled=progress) as bar:
        def finish(result: JobResult) -> None:
            results[result.id] = result
            bar.update()
            if on_result is not None:
                on_result(result)

        for j in jobs:                 # the finished ones first: a resumed run shows its progress at once
            stored = completed(j)
            if stored is not None:
                finish(stored)
        pending = [j for j in pending if j.id not in results]
        running: dict[cf.Future, str] = {}
        by_id = {j.id: j for j in jobs}
        order = {j.id: k for k, j in enumerate(jobs)}
        attempts = {j.id: 0 for j in jobs}
        width = min(workers, max(len(pending), 1))
        executor = factory(width, warm)
        try:
            while pending or running:
                still = []
                for j in pending:
                    failed = [a for a in j.after if a in results and not results[a].ok]
                    if failed:
                        finish(JobResult(id=j.id, status="failed", error=f"not run: {failed[0]} failed"))
                    elif all(a in results for a in j.after) and len(running) < workers:
                        attempts[j.id] += 1
                        running[executor.submit(execute, j)] = j.id
                    else:
                        still.append(j)
                pending = still
                if not running:
                    if pending:        # cannot happen after check_jobs; never spin
                        raise RuntimeError(f"jobs stuck: {[j.id for j in pending]}")
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                broken = False
                for future in done:
                    job_id = running.pop(future)
                    try:
                        finish(future.result())
                    except Exception as e:  # noqa: BLE001 - the worker process itself died
                        if worker_died(e) and attempts[job_id] <= retries:
                            pending.append(by_id[job_id])       # runs again; its marker is written once
                            broken |= isinstance(e, BrokenProcessPool)
                        else:
                            tries = f" (its worker died {attempts[job_id]} times)" if worker_died(e) else ""
                            finish(JobResult(id=job_id, status="failed", error=one_line(e) + tries))
                if broken:
                    # A broken pool fails every job still in it: they go again, on a fresh pool.
                    for future in cf.wait(running).done:
                        job_id = running.pop(future)
                        if future.exception() is None:
                            finish(future.result())
                        else:
                            pending.append(by_id[job_id])
                    executor.shutdown(wait=True, cancel_futures=True)
                    executor = factory(width, warm)
                pending.sort(key=lambda j: order[j.id])
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return [results[j.id] for j in jobs]


def failures(results: list[JobResult]) -> str:
    """The failed jobs, one line each (empty when none failed)."""
    return "\n".join(f"{r.id}: {r.error}" for r in results if not r.ok)
