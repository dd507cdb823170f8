"""``cmm train`` and ``cmm probe``: the model pipeline of :mod:`cmm_models.pipeline`, driven by a TOML config.

``cmm train`` runs teacher -> probe -> distill -> MoE -> export and writes the
report; ``cmm probe`` runs only as far as the probe (teacher, then the layer x
task map and its heatmap) and prints the map. Both resume: finished stages whose
inputs and config are unchanged are skipped, ``--force`` redoes them.
"""
from __future__ import annotations

import os
import sys


def _common(p) -> None:
    p.add_argument("--config", required=True, metavar="FILE.toml")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory; finished stages are reused")
    p.add_argument("--teacher", metavar="PATH", help="a local Hugging Face model directory (replaces [teacher] model)")
    p.add_argument("--force", action="store_true", help="redo every stage, even those that are up to date")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: the config's threads, 1 unless set); results repeat byte for byte "
                        "at the same N")
    p.add_argument("--no-progress", action="store_true", help="never draw a progress bar")


def register(groups) -> None:
    train = groups.add_parser("train", help="train teacher, probe, experts and MoE; export a verified bundle")
    _common(train)
    train.set_defaults(handler=run_train)
    probe = groups.add_parser("probe", help="train (or reuse) the teacher and map which layers drive which output")
    _common(probe)
    probe.set_defaults(handler=run_probe)


def _run(args, until: str):
    from cmm_models import config, pipeline
    from common.config import ConfigError
    from common.errors import DataError

    cfg = config.load(args.config, teacher=args.teacher)
    if os.path.lexists(args.out) and not os.path.isdir(args.out):
        raise DataError("exists and is not a directory: a run directory is reused, never replaced; "
                        "choose another --out", path=args.out, field="--out")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"expected a positive thread count, got {args.threads}", field="--threads")
    import torch
    torch.set_num_threads(args.threads or cfg.threads)
    return pipeline.train(cfg, args.out, force=args.force, until=until, config_path=args.config,
                          progress=not args.no_progress and sys.stderr.isatty())


def run_train(args) -> int:
    _run(args, "bundle")
    print(f"bundle: {args.out}/bundle (verified); variants: {args.out}/bundles/; report: {args.out}/report.md")
    return 0


def run_probe(args) -> int:
    from pathlib import Path

    from cmm_models.pipeline import load_probe_map, stage_info

    _run(args, "probe")
    probe = load_probe_map(Path(args.out))
    print("layer  " + "  ".join(f"{t:>10}" for t in probe.tasks))
    for layer, row in enumerate(probe.attribution):
        print(f"{layer:>5}  " + "  ".join(f"{v:>10.3f}" for v in row))
    print(f"assignment: {stage_info(Path(args.out), 'probe')['assignment']}")
    print(f"map: {args.out}/probe/probe.json, heatmap: {args.out}/probe/probe.png")
    return 0
