"""``--jobs N`` and ``--ray auto|ADDRESS``: where the independent jobs of ``compare``, ``study`` and ``sweep`` run."""
from __future__ import annotations


def add_job_options(p, what: str) -> None:
    p.add_argument("--jobs", type=int, metavar="N", default=None,
                   help=f"{what} at once, each in its own process (default: the number of cores)")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help=f"run the {what} on a Ray cluster instead: 'auto' joins this machine's (or starts one "
                        "here), ADDRESS joins that one (docs/scale.md); needs the [ray] extra")


def backend_of(args):
    """The job runner's backend the options name: None (local processes) or a Ray cluster's."""
    if args.ray is None:
        return None
    from runtime.jobs_ray import backend
    return backend(args.ray, args.jobs)
