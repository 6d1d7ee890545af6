"""dream-then-real and iterative refinement through the CLI on the `tiny` preset."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from test_real import copy_run, read_log, wm_fast

STEP_LINES = ("round_001: collect", "round_001: encode", "round_001: rnn")


def test_dream_then_real_starts_from_the_dream_solution(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "D")
    proc = wm_fast("train-controller", "--run-dir", "D", "--mode", "dream-then-real", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "train-controller (dream): already complete" in proc.stdout
    assert "projected wall time" in proc.stdout
    out = run_dir / "controller_dream_real"
    assert [h["generation"] for h in read_log(out / "log.jsonl")] == [1, 2]
    state = torch.load(out / "es_state.pt", weights_only=True)
    assert state["evals"][0]["generation"] == 0  # the dream solution, scored in the real env first
    assert state["config"]["sigma0"] == 0.05 and state["generation"] == 2
    dream = torch.load(run_dir / "controller" / "controller.pt", weights_only=True)["params"]
    assert state["history"][0]["sigma"] < 0.05 * 1.5 and dream.shape == state["mean_params"].shape
    record = json.loads((run_dir / "train-controller-dream-real.json").read_text())
    assert record["complete"] and record["metrics"]["start"] == "dream solution"

    ev = wm_fast("evaluate", "--run-dir", "D", "--controller", "dream-real", "--episodes", "1", "--no-video",
                 "--quiet", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    assert len(json.loads((run_dir / "evaluate-dream-real.json").read_text())["returns"]) == 1


@pytest.fixture(scope="module")
def iterated(tiny_run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("iterate")
    copy_run(tiny_run_dir, root / "D")
    proc = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "D", proc


def test_one_iterate_round(iterated):
    run_dir, proc = iterated
    record = json.loads((run_dir / "iterate.json").read_text())
    (row,) = record["rounds"]
    assert row["round"] == 1 and row["new_episodes"] == 2 and row["episodes_total"] == 4 + 2
    assert row["real_episodes"] == 2 and len(row["real_returns"]) == 2
    assert row["dream_return"] >= row["dream_return_start"]
    for name in ("episode_100000.npz", "episode_100001.npz"):
        assert (run_dir / "episodes" / name).exists() and (run_dir / "latents" / name).exists()
    rnd = run_dir / "iterate" / "round_001"
    for step in ("collect", "encode", "rnn", "controller", "evaluate"):
        assert (rnd / f"{step}.json").exists()
    base = torch.load(run_dir / "rnn" / "rnn.pt", weights_only=True)["epoch"]
    assert torch.load(rnd / "rnn" / "rnn.pt", weights_only=True)["epoch"] == base + 1
    for line in STEP_LINES:
        assert line in proc.stdout


def test_a_finished_round_is_not_redone_and_its_controller_can_be_evaluated(iterated):
    run_dir, _ = iterated
    again = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--quiet", cwd=run_dir.parent)
    assert again.returncode == 0, again.stderr
    assert not any(line in again.stdout for line in STEP_LINES)
    assert len(json.loads((run_dir / "iterate.json").read_text())["rounds"]) == 1
    ev = wm_fast("evaluate", "--run-dir", "D", "--controller", "iterate", "--episodes", "1", "--no-video",
                 "--quiet", cwd=run_dir.parent)
    assert ev.returncode == 0, ev.stderr
    changed = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--episodes", "3", cwd=run_dir.parent)
    assert changed.returncode == 2 and "iterate.episodes: 2 -> 3" in changed.stderr


def test_a_killed_iterate_continues_at_its_step(iterated, tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "D")
    marker = run_dir / "iterate" / "round_001" / "rnn.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "wm_fast", "iterate", "--run-dir", "D", "--rounds", "1", "--quiet"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "iterate ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "iterate.json").exists()

    rerun = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--quiet", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not any(line in rerun.stdout for line in STEP_LINES)  # collect, encode and M were done
    (row,) = json.loads((run_dir / "iterate.json").read_text())["rounds"]
    (want,) = json.loads((iterated[0] / "iterate.json").read_text())["rounds"]
    same = ("new_episodes", "episodes_total", "collect_mean_return", "rnn_loss", "dream_return", "real_returns")
    assert {k: row[k] for k in same} == {k: want[k] for k in same}  # as if it had never been killed


def test_a_round_from_zeros_trains_c_only_in_the_dream(tiny_run_dir, tmp_path):
    run_dir = copy_run(tiny_run_dir, tmp_path / "D")
    proc = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--controller-from", "zeros", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = torch.load(run_dir / "iterate" / "round_001" / "controller" / "es_state.pt", weights_only=True)
    assert state["evals"][0]["generation"] > 0  # no scoring of a starting C: CMA-ES began at zeros
    (row,) = json.loads((run_dir / "iterate.json").read_text())["rounds"]
    assert row["dream_return_start"] is None


def test_pick_best_names_the_round_best_on_its_scoring_episodes(tmp_path):
    import dataclasses

    from wm_fast.config import get_preset
    from wm_fast.pipeline import Run
    from wm_fast.storage import atomic_write_json

    cfg = get_preset("tiny")
    rows = [{"round": 1, "real_mean": 5.0}, {"round": 2, "real_mean": 9.0}, {"round": 3, "real_mean": 1.0}]
    atomic_write_json(tmp_path / "iterate.json", {"rounds": rows})
    last = Run(tmp_path, cfg, progress=False, save_config=False)
    assert last.controller_models("iterate")["controller"] == tmp_path / "iterate/round_003/controller/controller.pt"
    assert last.controller_models("iterate-best")["rnn"] == tmp_path / "iterate/round_002/rnn/rnn.pt"
    best = Run(tmp_path, dataclasses.replace(cfg, iterate=dataclasses.replace(cfg.iterate, pick="best")),
               progress=False, save_config=False)
    assert best.controller_models("latest")["controller"] == tmp_path / "iterate/round_002/controller/controller.pt"


def test_a_round_continues_an_exported_m_with_a_fresh_optimizer(tiny_run_dir, tmp_path):
    """`wm-fast export` strips M's optimizer state (older exports its history too) and leaves the episodes out:
    a round continues such an M with a fresh Adam instead of refusing, says so in its rnn step, and collects
    into a new episodes folder."""
    run_dir = copy_run(tiny_run_dir, tmp_path / "D")
    shutil.rmtree(run_dir / "episodes")
    rnn = run_dir / "rnn" / "rnn.pt"
    state = torch.load(rnn, weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in ("optimizer", "torch_rng", "history")}, rnn)
    proc = wm_fast("iterate", "--run-dir", "D", "--rounds", "1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rnd = run_dir / "iterate" / "round_001"
    metrics = json.loads((rnd / "rnn.json").read_text())["metrics"]
    assert metrics["fresh_optimizer"] is True and metrics["epochs_total"] == state["epoch"] + 1
    assert torch.load(rnd / "rnn" / "rnn.pt", weights_only=True)["epoch"] == state["epoch"] + 1
    assert len(list((run_dir / "episodes").glob("episode_*.npz"))) == metrics["episodes"] - len(
        list((tiny_run_dir / "episodes").glob("episode_*.npz")))


def test_a_rounds_score_uses_the_runs_evaluate_settings(tmp_path, monkeypatch):
    """Each round's C is scored as `evaluate` would: on evaluate's env backend (a run may collect on EnvPool and
    score on gymnasium), workers and episode cap, on the round's own episodes and seeds."""
    import dataclasses

    from wm_fast import iterate as iterate_module
    from wm_fast.config import get_preset
    from wm_fast.pipeline import Run

    cfg = get_preset("tiny")
    cfg = dataclasses.replace(cfg, env_backend="envpool",
                              evaluate=dataclasses.replace(cfg.evaluate, env_backend="gymnasium", max_steps=77,
                                                           workers=1, envs_per_worker=3),
                              iterate=dataclasses.replace(cfg.iterate, eval_episodes=5, eval_seed_start=4242))
    run = Run(tmp_path, cfg, progress=False, save_config=False)
    seen = {}
    monkeypatch.setattr(run, "score", lambda controller, ev_cfg, **kw: seen.update(cfg=ev_cfg, rnn=kw["rnn_path"]))
    iterate_module._evaluate(run, 2, None)
    ev = seen["cfg"]
    assert (ev.env_backend, ev.max_steps, ev.workers, ev.envs_per_worker) == ("gymnasium", 77, 1, 3)
    assert (ev.episodes, ev.seed_start, ev.video) == (5, 4242, False)
    assert seen["rnn"] == tmp_path / "iterate/round_002/rnn/rnn.pt"


def _with_init_from(run_dir, init_from, sigma0=None):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["controller"]["init_from"] = str(init_from)
    if sigma0 is not None:
        cfg["controller"]["sigma0"] = sigma0
    (run_dir / "config.json").write_text(json.dumps(cfg))


def test_dream_search_starts_from_init_from(tiny_run_dir, tmp_path):
    import wm_fast

    run_dir = copy_run(tiny_run_dir, tmp_path / "D", keep_controller=False)
    start = torch.load(tiny_run_dir / "controller" / "controller.pt", weights_only=True)["params"]
    _with_init_from(run_dir, tiny_run_dir / "controller" / "controller.pt", sigma0=1e-8)
    wm_fast.Run(run_dir, progress=False).train_controller()
    state = torch.load(run_dir / "controller" / "es_state.pt", weights_only=True)
    assert state["evals"][0]["generation"] == 0  # the starting C is scored in the dream first
    torch.testing.assert_close(state["mean_params"], start, atol=1e-5, rtol=0)  # a step size of 1e-8 stays there
    assert json.loads((run_dir / "train-controller.json").read_text())["config"]["controller"]["init_from"]


def test_init_from_errors_name_the_problem(tiny_run_dir, tmp_path):
    import wm_fast
    from wm_fast.storage import CheckpointError, save_checkpoint

    run_dir = copy_run(tiny_run_dir, tmp_path / "D", keep_controller=False)
    bad = tmp_path / "bad.pt"
    cases = [(tmp_path / "missing.pt", wm_fast.ConfigError, "no controller file at"),
             (bad, wm_fast.ConfigError, "holds 5 params, this run's C has")]
    save_checkpoint(bad, {"params": torch.zeros(5)})
    for path, error, message in cases:
        _with_init_from(run_dir, path)
        with pytest.raises(error, match=message):
            wm_fast.Run(run_dir, progress=False).train_controller()
    save_checkpoint(bad, {"params": torch.full((5,), float("nan"))})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        wm_fast.Run(run_dir, progress=False).train_controller()
    _with_init_from(run_dir, " ")
    with pytest.raises(wm_fast.ConfigError, match="controller.init_from must name a controller.pt file"):
        wm_fast.Run(run_dir, progress=False)
    assert not (run_dir / "controller").exists()  # nothing trained, nothing lost


def test_dream_models_score_c_in_several_dreams(tiny_run_dir, tmp_path):
    import wm_fast
    from wm_fast.es import EnsembleDreamEvaluator

    run_dir = copy_run(tiny_run_dir, tmp_path / "D", keep_controller=False)
    cfg = json.loads((run_dir / "config.json").read_text())
    rollouts = cfg["controller"]["rollouts"]
    cfg["controller"]["dream_models"] = [str(tiny_run_dir / "rnn" / "rnn.pt")]
    (run_dir / "config.json").write_text(json.dumps(cfg))
    run = wm_fast.Run(run_dir, progress=False)
    ev = run.dream_evaluator(run.cfg.controller)
    assert isinstance(ev, EnsembleDreamEvaluator) and len(ev.members) == 2
    assert not isinstance(run.dream_evaluator(run.cfg.controller, rnn_path=run.rnn_path), EnsembleDreamEvaluator)
    run.train_controller()
    assert json.loads((run_dir / "train-controller.json").read_text())["complete"]

    with pytest.raises(wm_fast.ConfigError, match="no M at"):
        run.dream_evaluator(dataclasses.replace(run.cfg.controller, dream_models=[str(tmp_path / "missing.pt")]))
    cfg["controller"]["dream_models"] = ["a.pt", "b.pt"]
    cfg["controller"]["rollouts"] = rollouts * 3 + 1
    (run_dir / "train-controller.json").unlink()
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(wm_fast.ConfigError, match=r"controller.rollouts=\d+ does not split evenly among the 3 Ms"):
        wm_fast.Run(run_dir, progress=False)
