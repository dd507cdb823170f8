"""The job runner's Ray backend: :func:`runtime.jobs.run_jobs` sends the same jobs to a Ray cluster.

``--ray auto`` joins the cluster this machine belongs to (``ray start`` ran here) or, when there is none,
starts one on this machine; ``--ray HOST:PORT`` (or ``ray://HOST:PORT``) joins that one. Each job is one
Ray task of one CPU running :func:`runtime.jobs.execute`, exactly what a local worker runs, so the results,
the completion markers and the results directories are the same bytes whichever ran them.

- **Data.** A job carries paths, not events: its config's data files and its output directory. Every
  node must see them at the same path (a shared filesystem: NFS, a mounted bucket), and the code must be
  importable on every node (the same checkout, or the package installed). docs/scale.md has the plan
  for a cluster of many machines.
- **Workers.** Ray keeps its worker processes between tasks; each runs the runner's ``warm`` (the
  engine's jitted functions: :func:`runtime.jobs.warm_worker`) once, before its first job.
- **Dead workers.** Ray's own retries are off: a task whose worker died comes back as
  :class:`runtime.jobs.WorkerDied`, and the runner retries it as it does a local one, so one rule
  (``retries``) holds on every backend and a job is counted once.

Ray is an optional extra (``pip install 'cmm-engine[ray]'``); without it ``--ray`` is one line.
"""
from __future__ import annotations

import concurrent.futures as cf
import sys
from typing import Callable

from common.config import ConfigError
from runtime.jobs import WorkerDied

_warmed: set = set()


def _call(warm, fn, *args, **kwargs):
    """A job inside a Ray worker: the worker runs ``warm`` before its first job (once per worker process)."""
    if warm is not None and warm not in _warmed:
        warm()
        _warmed.add(warm)
    return fn(*args, **kwargs)


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("needs Ray, an optional extra: pip install 'cmm-engine[ray]'", field="--ray") \
            from None
    return ray


def connect(address: str, workers: int | None = None, log=print) -> None:
    """Join the cluster at ``address`` ("auto": this machine's, else a new one here with ``workers`` CPUs)."""
    ray = _ray()
    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address == "auto":
        try:
            ray.init(address="auto", **kwargs)
            return
        except ConnectionError:
            pass
        log(f"ray: no cluster running here; starting one on this machine ({workers or 'all'} CPUs)")
        ray.init(address="local", num_cpus=workers, **kwargs)
        return
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}",
                          field="--ray") from None


class RayExecutor(cf.Executor):
    """Submitted calls become Ray tasks of one CPU; their futures are ordinary ``concurrent.futures`` ones."""

    def __init__(self, warm=None):
        ray = _ray()
        self._warm = warm
        self._ray = ray
        self._task = ray.remote(num_cpus=1, max_retries=0)(_call)
        self._refs = []
        x = ray.exceptions
        # A worker killed mid-task comes back as a RaySystemError (a RayTaskError of it), a lost node or
        # the memory monitor's kill as their own: each is the worker's death, not the job's error.
        self._died = tuple(t for t in (getattr(x, n, None) for n in (
            "WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "RaySystemError", "LocalRayletDiedError"))
            if t is not None)

    def submit(self, fn, /, *args, **kwargs):
        ref = self._task.remote(self._warm, fn, *args, **kwargs)
        self._refs.append(ref)
        inner = ref.future()
        outer = cf.Future()

        def done(f):
            e = f.exception()
            if e is None:
                outer.set_result(f.result())
            elif isinstance(e, self._died):
                outer.set_exception(WorkerDied(str(e).splitlines()[0]))
            else:
                outer.set_exception(e)
        inner.add_done_callback(done)
        return outer

    def shutdown(self, wait=True, *, cancel_futures=False):
        if cancel_futures:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:   # noqa: BLE001 - a finished task cannot be cancelled; nothing to do
                    pass
        self._refs = []


def backend(address: str, workers: int | None = None, log=print) -> Callable[..., cf.Executor]:
    """A :func:`runtime.jobs.run_jobs` backend on the Ray cluster at ``address``."""
    connect(address, workers, log=lambda line: print(line, file=sys.stderr) if log is print else log(line))
    return lambda width, warm=None: RayExecutor(warm)
