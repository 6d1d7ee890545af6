"""The CMA-ES driver: it optimises, checkpoints every generation and resumes exactly."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from wm_fast.config import ControllerConfig
from wm_fast.es import DreamEvaluator, load_controller, train_controller
from wm_fast.storage import CheckpointError


class Quadratic:
    """Return = -|x - 0.5|^2 plus seeded noise, so seeds matter as in a dream."""

    name = "quadratic"

    def __init__(self):
        self.calls = 0

    def __call__(self, params, seed, rollouts):
        self.calls += 1
        noise = np.random.default_rng(seed).normal(0, 0.01, size=(len(params), rollouts)).mean(1)
        return -((params - 0.5) ** 2).sum(1) + noise


CFG = ControllerConfig(popsize=8, rollouts=2, sigma0=0.3, generations=12, eval_every=4,
                       eval_rollouts=4, l2_penalty=0.0, seed=3)


def test_cma_improves_and_writes_outputs(tmp_path):
    metrics = train_controller(Quadratic(), 5, tmp_path, CFG, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [h["generation"] for h in log] == list(range(1, 13))
    assert log[-1]["mean"] > log[0]["mean"]
    assert metrics["best_eval_return"] > -0.5
    assert [e["generation"] for e in metrics["evals"]] == [4, 8, 12]
    assert (tmp_path / "curve.png").stat().st_size > 1000
    params = load_controller(tmp_path / "controller.pt")
    assert params.shape == (5,)


def test_every_evaluated_mean_is_kept_as_a_controller(tmp_path):
    """means/generation_GGGG.pt holds the CMA mean each evaluation scored: the best of them is controller.pt's
    C, the last is the final mean, and a resumed run writes the same files."""
    train_controller(Quadratic(), 5, tmp_path / "straight", CFG, progress=False)
    snapshots = sorted((tmp_path / "straight" / "means").iterdir())
    assert [p.name for p in snapshots] == [f"generation_{g:04d}.pt" for g in (4, 8, 12)]
    states = [torch.load(p, weights_only=True) for p in snapshots]
    final = torch.load(tmp_path / "straight" / "controller.pt", weights_only=True)
    k = max(range(len(states)), key=lambda i: states[i]["eval_return"])
    torch.testing.assert_close(load_controller(snapshots[k]), final["params"], rtol=0, atol=0)
    torch.testing.assert_close(states[-1]["params"], final["mean_params"], rtol=0, atol=0)
    assert [st["generation"] for st in states] == [4, 8, 12] and states[k]["eval_return"] == final["eval_return"]
    train_controller(Quadratic(), 5, tmp_path / "resumed", dataclasses.replace(CFG, generations=6), progress=False)
    np.random.seed(1)  # as in a new process
    train_controller(Quadratic(), 5, tmp_path / "resumed", CFG, progress=False)
    for p in snapshots:
        torch.testing.assert_close(torch.load(tmp_path / "resumed" / "means" / p.name, weights_only=True)["params"],
                                   torch.load(p, weights_only=True)["params"], rtol=0, atol=0)


@pytest.mark.parametrize("n", [5, 300])  # cma steps sigma with CSA below n = 300, with TPA from 300 on
def test_resume_gives_the_identical_result(tmp_path, n):
    train_controller(Quadratic(), n, tmp_path / "straight", CFG, progress=False)
    half = dataclasses.replace(CFG, generations=5)
    train_controller(Quadratic(), n, tmp_path / "resumed", half, progress=False)
    np.random.seed(1)  # as in a new process
    evaluator = Quadratic()
    train_controller(evaluator, n, tmp_path / "resumed", CFG, progress=False)
    assert evaluator.calls == 7 + 2  # 7 generations left + evaluations at 8 and 12
    a = torch.load(tmp_path / "straight" / "controller.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "controller.pt", weights_only=True)
    torch.testing.assert_close(a["mean_params"], b["mean_params"], rtol=0, atol=0)
    sa = torch.load(tmp_path / "straight" / "es_state.pt", weights_only=True)
    sb = torch.load(tmp_path / "resumed" / "es_state.pt", weights_only=True)
    assert sa["sigma"] == sb["sigma"]
    assert [h["best"] for h in sa["history"]] == [h["best"] for h in sb["history"]]


def test_rerun_of_a_finished_run_does_no_work(tmp_path):
    train_controller(Quadratic(), 3, tmp_path, dataclasses.replace(CFG, generations=2), progress=False)
    evaluator = Quadratic()
    train_controller(evaluator, 3, tmp_path, dataclasses.replace(CFG, generations=2), progress=False)
    assert evaluator.calls == 0


def test_truncated_state_is_a_clear_error(tmp_path):
    train_controller(Quadratic(), 3, tmp_path, dataclasses.replace(CFG, generations=2), progress=False)
    state = tmp_path / "es_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="es_state.pt"):
        train_controller(Quadratic(), 3, tmp_path, CFG, progress=False)


def test_wrong_dimension_is_a_clear_error(tmp_path):
    train_controller(Quadratic(), 3, tmp_path, dataclasses.replace(CFG, generations=1), progress=False)
    with pytest.raises(CheckpointError, match="3 parameters, expected 4"):
        train_controller(Quadratic(), 4, tmp_path, CFG, progress=False)


def test_dream_evaluator_runs_cma_in_the_dream(tmp_path, small_model):
    cfg = dataclasses.replace(CFG, generations=2, dream_steps=5, backend="torch", eval_every=1)
    ev = DreamEvaluator(small_model, torch.randn(3, 4), torch.zeros(3, 4), cfg)
    metrics = train_controller(ev, 12 * 3 + 3, tmp_path, cfg, progress=False)
    assert metrics["generations"] == 2
    assert ev.steps_done > 0


def test_an_ensemble_averages_its_ms_dreams_over_split_rollouts(small_model):
    from wm_fast.es import EnsembleDreamEvaluator
    from wm_fast.mdnrnn import MDNRNN

    cfg = dataclasses.replace(CFG, dream_steps=6, backend="torch")
    torch.manual_seed(1)
    other = MDNRNN(z_dim=4, action_dim=3, hidden=8, n_gaussians=3, layout="per_dim").eval()
    mu, logvar = torch.randn(3, 4), torch.zeros(3, 4)
    own, second = DreamEvaluator(small_model, mu, logvar, cfg), DreamEvaluator(other, mu, logvar, cfg)
    params = np.random.default_rng(0).normal(0, 1, (5, 12 * 3 + 3)).astype(np.float32)
    ensemble = EnsembleDreamEvaluator([own, second])
    returns = ensemble(params, 7, 4)
    np.testing.assert_allclose(returns, (own(params, 7, 2) + second(params, 7, 2)) / 2, rtol=1e-6)
    assert not np.allclose(own(params, 7, 2), second(params, 7, 2))  # the two Ms dream differently
    np.testing.assert_array_equal(EnsembleDreamEvaluator([own])(params, 7, 4), own(params, 7, 4))
    assert ensemble.steps_done == own.steps_done + second.steps_done and ensemble.n_params == 39
    with pytest.raises(ValueError, match="3 rollouts do not split evenly among 2 Ms"):
        ensemble(params, 7, 3)
    wide = MDNRNN(z_dim=4, action_dim=3, hidden=16, n_gaussians=3, layout="per_dim").eval()
    with pytest.raises(ValueError, match="differ in size"):
        EnsembleDreamEvaluator([own, DreamEvaluator(wide, mu, logvar, cfg)])


def test_l2_penalty_pulls_the_mean_to_zero(tmp_path):
    """Fitness = mean return - l2_penalty * mean(x^2): with flat returns only the penalty acts."""

    class Flat:
        name = "flat"

        def __call__(self, params, seed, rollouts):
            return np.zeros(len(params))

    cfg = dataclasses.replace(CFG, generations=15, l2_penalty=1.0, sigma0=0.2)
    train_controller(Flat(), 4, tmp_path, cfg, x0=np.ones(4), progress=False)
    mean = torch.load(tmp_path / "controller.pt", weights_only=True)["mean_params"]
    assert float((mean**2).mean()) < 0.25


def test_a_time_budget_stops_cleanly_and_the_rerun_ends_as_uninterrupted(tmp_path):
    import time

    from wm_fast.errors import TimeBudgetReached

    train_controller(Quadratic(), 5, tmp_path / "straight", CFG, progress=False)
    for generation in range(1, 5):  # each call: one generation, then the budget is spent
        with pytest.raises(TimeBudgetReached, match=f"after generation {generation} of 12"):
            train_controller(Quadratic(), 5, tmp_path / "budget", CFG, progress=False, deadline=time.monotonic())
        # nothing is evaluated before generation 4 (eval_every 4): until then, no controller to score
        assert (tmp_path / "budget" / "controller.pt").exists() == (generation >= 4)
    partial = torch.load(tmp_path / "budget" / "controller.pt", weights_only=True)
    assert partial["complete"] is False and partial["generation"] == 4
    np.random.seed(1)  # as in a new process
    train_controller(Quadratic(), 5, tmp_path / "budget", CFG, progress=False)
    a = torch.load(tmp_path / "straight" / "controller.pt", weights_only=True)
    b = torch.load(tmp_path / "budget" / "controller.pt", weights_only=True)
    torch.testing.assert_close(a["mean_params"], b["mean_params"], rtol=0, atol=0)
    assert b["complete"] is True


def test_progress_orders_generations_and_evaluations_in_time(tmp_path):
    from wm_fast.report import plot_progress, progress

    train_controller(Quadratic(), 5, tmp_path, CFG, progress=False)
    c = progress(tmp_path)
    assert len(c["gen_mean"]) == 12 and len(c["eval_score"]) == 3 and not c["uncounted_evals"]
    assert c["gen_hours"] == sorted(c["gen_hours"]) and c["eval_hours"][-1] >= c["gen_hours"][-1]
    png = plot_progress({"quadratic": c}, tmp_path / "p.png", final={"quadratic": (0.001, 0, -0.1, 0.05)})
    assert png.stat().st_size > 5000


def test_restarts_run_each_seed_and_keep_the_best_in_the_evaluator(tmp_path):
    cfg = dataclasses.replace(CFG, generations=3, restarts=3)
    metrics = train_controller(Quadratic(), 4, tmp_path / "r", cfg, progress=False)
    single = train_controller(Quadratic(), 4, tmp_path / "single", dataclasses.replace(cfg, restarts=1), progress=False)
    restart0 = torch.load(tmp_path / "r" / "restart_0" / "controller.pt", weights_only=True)
    alone = torch.load(tmp_path / "single" / "controller.pt", weights_only=True)
    torch.testing.assert_close(restart0["params"], alone["params"], rtol=0, atol=0)  # restart 0 = no restarts
    seeds = [torch.load(tmp_path / "r" / f"restart_{k}" / "es_state.pt", weights_only=True)["seed"] for k in range(3)]
    assert seeds == [3, 4, 5]
    chosen = torch.load(tmp_path / "r" / "controller.pt", weights_only=True)
    scores = chosen["restart_returns"]
    assert len(scores) == 3 and chosen["restart"] == int(np.argmax(scores)) == metrics["restart"]
    best = torch.load(tmp_path / "r" / f"restart_{chosen['restart']}" / "controller.pt", weights_only=True)
    torch.testing.assert_close(chosen["params"], best["params"], rtol=0, atol=0)
    assert (tmp_path / "r" / "log.jsonl").exists() and single["generations"] == metrics["generations"] == 3
    rerun = Quadratic()
    assert train_controller(rerun, 4, tmp_path / "r", cfg, progress=False)["restart"] == chosen["restart"]
    assert rerun.calls == 0  # finished restarts and their finished choice do no work again
    changed = Quadratic()
    train_controller(changed, 4, tmp_path / "r", dataclasses.replace(cfg, eval_rollouts=8), progress=False)
    assert changed.calls == 1  # the choice's own setting changed: it is made again
