"""cmm sweep (runtime/sweep.py) and the Ray backend (runtime/jobs_ray.py): the same table whoever runs the jobs.

Two "days" of bench/gen_l2.py's stream, a grid of two spreads: a 4-job sweep. It runs here (jobs = 1), then on a
local Ray cluster started by this module (``ray.init(num_cpus=2)``, shared by every Ray test: Ray starts slowly),
and the two results.csv must be the same bytes. A Ray worker killed half way through a job: the job runs again,
and the table is complete with no row twice.
"""
from __future__ import annotations

import os
import signal

import pytest

from bench.gen_l2 import generate, instrument, split_days
from cmm.cli import main as cmm
from runtime import sweep as sweeps
from runtime.jobs import DONE_MARKER, run_jobs
from tests.files import save_events
from tests.test_stream import config_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEP = """base = "base.toml"
metric = "epnl"
walk_forward = true
[params]
"strategy.params.half_spread_ticks" = [1, 2]
[data]
sets = [["day0.npz"], ["day1.npz"]]
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    for k, day in enumerate(split_days(generate(4_000, seed=5), 2, 5_000_000_000)):
        save_events(str(d / f"day{k}.npz"), day, instrument())
    (d / "base.toml").write_text(config_text(["day0.npz"]))
    (d / "sweep.toml").write_text(SWEEP)
    return d


@pytest.fixture(scope="module")
def local(sweep_dir):
    """The sweep run here, one job at a time: the reference table."""
    out = sweep_dir / "local"
    assert cmm(["sweep", "--config", str(sweep_dir / "sweep.toml"), "--out", str(out), "--jobs", "1",
                "--no-progress"]) == 0
    return out


def test_the_table_the_best_sets_and_walk_forward(local, sweep_dir):
    rows = (local / "results.csv").read_text().splitlines()
    assert rows[0].startswith("job,data,strategy.params.half_spread_ticks,epnl,")
    assert [r.split(",")[1:3] for r in rows[1:]] == [["day0", "1"], ["day1", "1"], ["day0", "2"], ["day1", "2"]]
    s = sweeps.load(str(sweep_dir / "sweep.toml"))
    outcome = sweeps.run(s, str(local), jobs=1, progress=False)
    assert [r.status for r in outcome.results] == ["skipped"] * 4      # complete: nothing runs again
    epnl = {(r["data"], r["strategy.params.half_spread_ticks"]): r["epnl"] for r in outcome.rows}
    best = sweeps.best(s, outcome)
    means = {k: (epnl[("day0", k)] + epnl[("day1", k)]) / 2 for k in (1, 2)}
    assert [b["strategy.params.half_spread_ticks"] for b in best] == sorted(means, key=lambda k: -means[k])
    assert best[0]["epnl_mean"] == pytest.approx(max(means.values()), rel=1e-12)
    assert best[0]["epnl_min"] <= best[0]["epnl_mean"] <= best[0]["epnl_max"]
    wf = (local / "walk_forward.csv").read_text().splitlines()
    chosen = max((1, 2), key=lambda k: epnl[("day0", k)])
    assert wf[1].split(",")[:3] == ["day0", "day1", str(chosen)]
    assert float(wf[1].split(",")[-1]) == epnl[("day1", chosen)]     # scored out of sample, on the next day
    assert not (local / "heatmap.png").exists()                     # one parameter varies: no heatmap


def test_deleting_one_job_reruns_only_that_job(local, sweep_dir, tmp_path):
    before = (local / "results.csv").read_bytes()
    jobs = sorted(p for p in (local / "jobs").iterdir())
    victim = jobs[2]
    markers = {p.name: (p / DONE_MARKER).stat().st_mtime_ns for p in jobs if p != victim}
    import shutil
    shutil.rmtree(victim)
    s = sweeps.load(str(sweep_dir / "sweep.toml"))
    outcome = sweeps.run(s, str(local), jobs=1, progress=False)
    assert sorted(r.id for r in outcome.results if r.status == "done") == [victim.name]
    assert {p.name: (p / DONE_MARKER).stat().st_mtime_ns for p in jobs if p != victim} == markers
    sweeps.write(s, outcome, str(local))
    assert (local / "results.csv").read_bytes() == before


def test_a_bad_key_is_one_line_before_anything_runs(sweep_dir, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SWEEP.replace("[data]", '"queue.modle" = ["x"]\n[data]').replace('"base.toml"',
                                                                                   repr(str(sweep_dir / "base.toml"))))
    bad.write_text(bad.read_text().replace('["day0.npz"], ["day1.npz"]',
                                           f'["{sweep_dir}/day0.npz"], ["{sweep_dir}/day1.npz"]'))
    assert cmm(["sweep", "--config", str(bad), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "modle" in err and "bad.toml" in err
    assert not (tmp_path / "o").exists()


# ---- Ray: one local cluster for the module

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray tests need the [ray] extra (installed by [dev])")
    old = os.environ.get("PYTHONPATH")
    # The workers import this module (killed_once) as pytest named it: from the repository or tests/.
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests")] + ([old] if old else []))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


def test_ray_gives_the_same_table(ray_cluster, local, sweep_dir):
    out = sweep_dir / "ray"
    assert cmm(["sweep", "--config", str(sweep_dir / "sweep.toml"), "--out", str(out), "--ray", "auto",
                "--no-progress"]) == 0
    assert (out / "results.csv").read_bytes() == (local / "results.csv").read_bytes()
    assert (out / "best.csv").read_bytes() == (local / "best.csv").read_bytes()
    pids = {(p / "pid").read_text() for p in (out / "jobs").iterdir() if (p / "pid").exists()}
    assert not pids     # sweep jobs write only their results


def killed_once(out: str, text: bytes, base_path: str) -> dict:
    """A sweep job whose first attempt dies with its worker (SIGKILL) half way: after the flag is written."""
    flag = out + ".attempts"
    with open(flag, "a") as f:
        f.write(f"{os.getpid()}\n")
    if len(open(flag).read().splitlines()) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return sweeps.sweep_job(out, text, base_path)


def test_a_killed_worker_is_retried_and_counted_once(ray_cluster, local, sweep_dir):
    from runtime.jobs_ray import backend
    s = sweeps.load(str(sweep_dir / "sweep.toml"))
    out = str(sweep_dir / "killed")
    params = sweeps.grid(s.cfg.params)
    jobs = sweeps.jobs_for(s, params, out)
    jobs[1] = type(jobs[1])(id=jobs[1].id, fn=killed_once, out=jobs[1].out, args=jobs[1].args, key=jobs[1].key)
    results = run_jobs(jobs, 2, backend=backend("auto"), progress=False)
    assert [r.status for r in results] == ["done"] * 4, [r.error for r in results]
    attempts = open(jobs[1].out + ".attempts").read().splitlines()
    assert len(attempts) == 2 and attempts[0] != attempts[1]          # two workers: the first died
    outcome = sweeps.Outcome(params=params, rows=sweeps._rows(s, params, results), results=results)
    sweeps.write(s, outcome, out)
    assert (sweep_dir / "killed" / "results.csv").read_bytes() == (local / "results.csv").read_bytes()


def test_random_and_optuna_draw_the_same_sets_every_time(sweep_dir, tmp_path):
    space = {"a": sweeps.Range(low=1, high=9, int=True), "b": [10, 20], "c": sweeps.Range(low=0.1, high=10.0, log=True)}
    first = sweeps.random_sets(space, 5, seed=3)
    assert first == sweeps.random_sets(space, 5, seed=3) != sweeps.random_sets(space, 5, seed=4)
    assert len(first) == 5 and all(1 <= p["a"] <= 9 and p["b"] in (10, 20) and 0.1 <= p["c"] <= 10 for p in first)
    pytest.importorskip("optuna", reason="search.method = optuna needs the [optuna] extra")
    text = SWEEP.replace('walk_forward = true', '').replace(
        '[1, 2]', '{low = 1, high = 3, int = true}').replace('["day0.npz"], ["day1.npz"]', '["day0.npz"]')
    (sweep_dir / "optuna.toml").write_text(text + '[search]\nmethod = "optuna"\nsamples = 3\nbatch = 2\nseed = 1\n')
    tables = []
    for k in (1, 2):
        outcome, _ = sweeps.sweep(str(sweep_dir / "optuna.toml"), str(tmp_path / f"o{k}"), jobs=1, progress=False,
                                  log=lambda line: None)
        assert all(r.ok for r in outcome.results) and len(outcome.results) == len(outcome.params) <= 3
        spreads = [p["strategy.params.half_spread_ticks"] for p in outcome.params]
        assert len(set(spreads)) == len(spreads) and all(1 <= x <= 3 for x in spreads)     # no set twice
        tables.append((tmp_path / f"o{k}" / "results.csv").read_bytes())
    assert tables[0] == tables[1]


def dies_once(out: str) -> int:
    """A job whose first attempt kills its own worker process."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "attempts"), "a") as f:
        f.write(f"{os.getpid()}\n")
    if len(open(os.path.join(out, "attempts")).read().splitlines()) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 7


def test_a_killed_pool_worker_is_retried_on_a_fresh_pool(tmp_path):
    from runtime.jobs import Job
    results = run_jobs([Job(id="dies", fn=dies_once, out=str(tmp_path / "d"))], 1, backend="process", progress=False)
    assert [(r.status, r.value) for r in results] == [("done", 7)]
    assert len(set((tmp_path / "d" / "attempts").read_text().split())) == 2


def test_without_ray_the_flag_is_one_line(sweep_dir, tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "ray", None)          # as if the [ray] extra were not installed
    assert cmm(["sweep", "--config", str(sweep_dir / "sweep.toml"), "--out", str(tmp_path / "o"),
                "--ray", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cmm: error: --ray: needs Ray, an optional extra: pip install 'cmm-engine[ray]'"
    assert not (tmp_path / "o").exists()


def test_sweep_refuses_a_directory_it_did_not_write_and_one_of_a_study(sweep_dir, tmp_path, capsys):
    for name, marker in (("mine", None), ("a_study", ".cmm-study")):
        out = tmp_path / name
        out.mkdir()
        (out / "notes.txt").write_text("keep")
        if marker:
            (out / marker).write_text("")
        assert cmm(["sweep", "--config", str(sweep_dir / "sweep.toml"), "--out", str(out), "--jobs", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.splitlines() == [f"cmm: error: {out}: --out: is a directory cmm sweep did not write (no .cmm-sweep marker): "
                                    "refusing to write into it; choose another --out"]
        assert sorted(os.listdir(out)) == sorted(["notes.txt"] + ([marker] if marker else []))
    (tmp_path / "file").write_text("x")
    assert cmm(["sweep", "--config", str(sweep_dir / "sweep.toml"), "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a sweep directory" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"
