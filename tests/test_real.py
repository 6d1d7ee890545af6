"""Real-environment CMA-ES: the real evaluator on local workers and Ray, worker faults,
worker memory, and kill -9 then resume of train-controller."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_fast.config import ControllerConfig
from wm_fast.controller import input_size, n_params
from wm_fast.es import train_controller
from wm_fast.real import RealEvalError, RealEvaluator, agent_spec, rollout_seed
from wm_fast.rollout import EpisodeRequest, run_episodes
from wm_fast.rollout.pool import Task

FAKE = "fake_env:make_env"  # tests/fake_env.py: cheap, deterministic, faults on demand
N = n_params(input_size(32, 16), 3)  # C for the fake_models fixture's V and M
TESTS = Path(__file__).resolve().parent

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'wm-fast[ray]')")


def wm_fast(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "wm_fast", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def copy_run(src: Path, dst: Path, keep_controller: bool = True) -> Path:
    shutil.copytree(src, dst)
    if not keep_controller:
        shutil.rmtree(dst / "controller")
        (dst / "train-controller.json").unlink()
    return dst


@pytest.fixture
def faults(tmp_path, monkeypatch):
    """The folder where a test drops fault files for tests/fake_env.py (see its docstring)."""
    folder = tmp_path / "faults"
    folder.mkdir()
    monkeypatch.setenv("WM_FAST_FAKE_FAULTS", str(folder))
    return folder


def spec(models, max_steps: int = 10, num_envs: int = 2):
    """The worker spec of the fake env with the fake_models fixture's V and M."""
    return agent_spec(FAKE, "gymnasium", max_steps, num_envs, *models)


def params(p: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, (p, N)).astype(np.float32)


def test_rollout_seeds_are_distinct_and_depend_only_on_their_keys():
    seeds = {rollout_seed(7, p, r) for p in range(64) for r in range(16)}
    assert len(seeds) == 64 * 16
    assert rollout_seed(7, 3, 2) == rollout_seed(7, 3, 2) != rollout_seed(8, 3, 2)


def test_balanced_groups_leave_no_worker_a_short_extra_task():
    from wm_fast.rollout.pool import balanced_groups

    sizes = lambda n, workers, slots: [len(g) for g in balanced_groups(list(range(n)), workers, slots)]  # noqa: E731
    assert sizes(20, 2, 8) == [5, 5, 5, 5]
    assert sizes(16, 2, 8) == [8, 8] and sizes(80, 2, 8) == [8] * 10
    assert sizes(100, 2, 8) == [8, 8] + [7] * 12 and sizes(3, 2, 8) == [2, 1] and sizes(1, 2, 8) == [1]
    assert balanced_groups([], 2, 8) == []
    assert sum(balanced_groups(list(range(37)), 3, 5), []) == list(range(37))


def test_real_evaluator_returns_what_one_process_computes(fake_models):
    from wm_fast.rollout.pool import WorkerCore

    x = params(3)
    with RealEvaluator(spec(fake_models, num_envs=3), workers=2) as ev:
        got = ev(x, 11, 2)
        assert ev.steps_done == 3 * 2 * 10 and ev.episodes_done == 6
        assert not ev.last_report["events"]
    core = WorkerCore(spec(fake_models, num_envs=1))  # one env, one episode at a time, in this process
    want = []
    for p in range(3):
        eps = [EpisodeRequest(rollout_seed(11, p, r), x[p]) for r in range(2)]
        want.append(np.mean([r["return"] for r in run_episodes(core.vec, eps, core.actor)]))
    np.testing.assert_array_equal(got, want)


def test_dead_raising_and_hung_workers_do_not_change_the_generation(fake_models, faults, caplog):
    x = params(4)
    with RealEvaluator(spec(fake_models), workers=2, timeout_s=60) as ev:
        clean = ev(x, 5, 2)
        for fault, counter in (("kill", "worker_deaths"), ("raise", "errors"), ("hang", "timeouts")):
            ev.pool.timeout_s = 3.0 if fault == "hang" else 60.0
            (faults / fault).touch()
            t0 = time.monotonic()
            got = ev(x, 5, 2)
            np.testing.assert_array_equal(got, clean)
            summary, events = ev.last_report["summary"], ev.last_report["events"]
            assert summary[counter] == 1 and summary["retried"] == 1 and summary["failed"] == 0, (fault, summary)
            assert "re-queued for another worker" in events[0]
            assert time.monotonic() - t0 < 40
        assert "exited (exit code -9)" in " ".join(r.getMessage() for r in caplog.records)

        # A worker killed from outside while it runs an episode (each episode now takes 0.5 s).
        (faults / "sleep").write_text("0.05")
        victim = ev.pool.pids()[0]
        threading.Timer(0.7, os.kill, (victim, signal.SIGKILL)).start()
        got = ev(x, 5, 2)
        np.testing.assert_array_equal(got, clean)
        assert ev.last_report["summary"]["worker_deaths"] == 1
        assert victim not in ev.pool.pids() and len(ev.pool.pids()) == 2
        (faults / "sleep").unlink()

        # An episode that fails on every attempt is given up (its batch is retried episode by episode):
        # its candidate keeps its other rollout, and every other episode counts.
        (faults / "raise_seeds").write_text(str(rollout_seed(5, 0, 0)))
        got = ev(x, 5, 2)
        summary = ev.last_report["summary"]
        assert summary["failed"] == 2 and summary["errors"] == 6, summary  # its batch, then the episode alone
        assert "gave up after 3 attempts" in ev.last_report["events"][-1]
        np.testing.assert_array_equal(got[1:], clean[1:])
        assert np.isfinite(got[0]) and got[0] != clean[0]


def test_train_controller_logs_a_killed_worker_and_ends_as_without_it(fake_models, faults, tmp_path):
    cfg = ControllerConfig(popsize=4, rollouts=2, sigma0=0.3, generations=3, eval_every=3, eval_rollouts=2,
                           l2_penalty=0.0, seed=1)
    with RealEvaluator(spec(fake_models), workers=2) as ev:
        train_controller(ev, N, tmp_path / "clean", cfg, progress=False)
        (faults / "kill").touch()  # the first worker to start an episode dies, in generation 1
        train_controller(ev, N, tmp_path / "faulty", cfg, progress=False)
        train_controller(ev, N, tmp_path / "resumed", dataclasses.replace(cfg, generations=1), progress=False)
        train_controller(ev, N, tmp_path / "resumed", cfg, progress=False)
    log = read_log(tmp_path / "faulty" / "log.jsonl")
    assert log[0]["faults"]["worker_deaths"] == 1
    assert any("exited (exit code -9)" in e for e in log[0]["faults"]["events"])
    assert all("faults" not in h for h in log[1:]) and all(h["evaluator"] == "real" for h in log)
    means = [torch.load(tmp_path / d / "controller.pt", weights_only=True)["mean_params"]
             for d in ("clean", "faulty", "resumed")]
    torch.testing.assert_close(means[1], means[0], rtol=0, atol=0)
    torch.testing.assert_close(means[2], means[0], rtol=0, atol=0)


def test_worker_memory_stays_flat_over_many_generations(fake_models, tmp_path):
    # 50 generations x 32 short episodes: ~640 episodes per worker between generations 10 and 50,
    # so a leak of 32 kB per episode (or per parameter update) would show.
    cfg = ControllerConfig(popsize=8, rollouts=4, sigma0=0.3, generations=50, eval_every=50, eval_rollouts=2)
    with RealEvaluator(spec(fake_models, 3), workers=2) as ev:
        train_controller(ev, N, tmp_path, cfg, progress=False)
    log = read_log(tmp_path / "log.jsonl")
    at10, at50 = log[9]["worker_rss_mb"], log[49]["worker_rss_mb"]
    assert at10.keys() == at50.keys() and len(at10) == 2  # the same two workers all along
    growth = {pid: at50[pid] - at10[pid] for pid in at10}
    assert all(g < 20 for g in growth.values()), growth


def test_a_worker_that_cannot_start_is_a_clear_error(fake_models, tmp_path):
    spec = agent_spec(FAKE, "gymnasium", 10, 2, tmp_path / "missing_vae.pt", fake_models[1])
    with pytest.raises(RealEvalError, match="missing_vae.pt"):
        with RealEvaluator(spec, workers=1) as ev:
            ev(params(2), 0, 1)


@needs_ray
def test_ray_actor_killed_mid_generation(fake_models, faults, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    x = params(4)
    with RealEvaluator(spec(fake_models), workers=2, backend="ray") as ev:
        clean = ev(x, 5, 2)
        (faults / "sleep").write_text("0.05")
        victim = ev.pool.pids()[0]
        threading.Timer(0.7, os.kill, (victim, signal.SIGKILL)).start()
        got = ev(x, 5, 2)
        assert ev.last_report["summary"]["worker_deaths"] == 1, ev.last_report
        assert "Ray actor" in ev.last_report["events"][0]
    np.testing.assert_array_equal(got, clean)


# ----------------------------------------------------------------------------- the CLI on tiny


@pytest.fixture(scope="module")
def local_real_run(tiny_run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("real_local")
    copy_run(tiny_run_dir, root / "D")
    proc = wm_fast("train-controller", "--run-dir", "D", "--mode", "real", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "D", proc


def test_real_mode_through_local_workers(local_real_run):
    run_dir, proc = local_real_run
    assert "projected wall time" in proc.stdout and "real steps/s per worker" in proc.stdout
    log = read_log(run_dir / "controller_real" / "log.jsonl")
    assert [h["generation"] for h in log] == [1, 2] and all(h["evaluator"] == "real" for h in log)
    assert all(h["episodes"] == 4 * 2 and h["steps_per_s"] > 0 for h in log)
    record = json.loads((run_dir / "train-controller-real.json").read_text())
    assert record["complete"] and record["metrics"]["projection"]["seconds"] > 0
    state = torch.load(run_dir / "controller_real" / "controller.pt", weights_only=True)
    assert state["evaluator"] == "real" and state["params"].shape == state["mean_params"].shape
    assert (run_dir / "controller_real" / "curve.png").exists()


@needs_ray
def test_real_mode_through_ray_gives_the_same_generations(local_real_run, tiny_run_dir, tmp_path):
    copy_run(tiny_run_dir, tmp_path / "D")
    proc = wm_fast("train-controller", "--run-dir", "D", "--mode", "real", "--real.backend", "ray", "--real.workers", "2",
                   "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ray_log = read_log(tmp_path / "D" / "controller_real" / "log.jsonl")
    local_log = read_log(local_real_run[0] / "controller_real" / "log.jsonl")
    for a, b in zip(ray_log, local_log, strict=True):
        assert (a["best"], a["mean"], a["worst"], a["sigma"]) == (b["best"], b["mean"], b["worst"], b["sigma"])


def test_a_dream_backend_given_as_the_real_backend_names_the_choices(tiny_run_dir, tmp_path):
    copy_run(tiny_run_dir, tmp_path / "D")
    proc = wm_fast("train-controller", "--run-dir", "D", "--mode", "real", "--real.backend", "cpp", cwd=tmp_path)
    assert proc.returncode == 2 and "'local', 'ray'" in proc.stderr and "Traceback" not in proc.stderr
    help_text = wm_fast("train-controller", "--run-dir", "D", "--help", cwd=tmp_path).stdout
    assert "--controller.backend" in help_text and "--real.backend" in help_text


def test_kill_9_then_rerun_ends_with_the_uninterrupted_result(tiny_run_dir, tmp_path):
    args = ("train-controller", "--run-dir", "D", "--controller.generations", "40", "--controller.eval-every", "10",
            "--quiet")
    straight = copy_run(tiny_run_dir, tmp_path / "straight" / "D", keep_controller=False)
    assert wm_fast(*args, cwd=straight.parent).returncode == 0

    killed = copy_run(tiny_run_dir, tmp_path / "killed" / "D", keep_controller=False)
    log = killed / "controller" / "log.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "wm_fast", *args], cwd=killed.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 8) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(log.read_text().splitlines())
    assert 8 <= done_at_kill < 40
    rerun = wm_fast(*args, cwd=killed.parent)
    assert rerun.returncode == 0, rerun.stderr

    a = torch.load(straight / "controller" / "controller.pt", weights_only=True)
    b = torch.load(killed / "controller" / "controller.pt", weights_only=True)
    torch.testing.assert_close(b["mean_params"], a["mean_params"], rtol=0, atol=0)
    torch.testing.assert_close(b["params"], a["params"], rtol=0, atol=0)
    strip = ("wall_s", "elapsed_s", "steps_per_s")
    la = [{k: v for k, v in h.items() if k not in strip} for h in read_log(straight / "controller" / "log.jsonl")]
    lb = [{k: v for k, v in h.items() if k not in strip} for h in read_log(log)]
    assert la == lb and len(la) == 40


def test_common_random_numbers_give_every_candidate_the_same_tracks(fake_models):
    x = np.repeat(params(1), 3, axis=0)  # three copies of one controller
    with RealEvaluator(spec(fake_models), workers=1) as ev:
        independent = ev(x, 5, 2)
    with RealEvaluator(spec(fake_models), workers=1, common_random_numbers=True) as ev:
        shared = ev(x, 5, 2)
    assert len(set(independent.tolist())) > 1  # the fake env's return depends on its seed
    assert len(set(shared.tolist())) == 1


def test_the_speed_probe_runs_every_env_slot(fake_models):
    with RealEvaluator(spec(fake_models, max_steps=10, num_envs=3), workers=2) as ev:
        probe = ev.probe(params(1)[0], steps=8)
        assert probe["workers"] == 2 and probe["steps_per_s_per_worker"] > 0
        results, _ = ev.pool.run([Task([EpisodeRequest(1, params(1)[0])], kind="probe", probe_steps=8)])
        assert results[0]["steps"] == 3 * 8  # 3 slots of 8 steps (the fake env runs 10)
