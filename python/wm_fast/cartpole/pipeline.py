"""The CartPole pipeline: rounds of collect, train M, train C by CMA-ES in the dream (`run_cartpole`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, ControllerConfig
from ..controller import input_size, n_params, output_size
from ..envs.cartpole import ACTION_DIM, MAX_STEPS, STATE_DIM
from ..mdnrnn import MDNRNN
from ..storage import atomic_write_json, load_checkpoint, read_json, save_checkpoint
from ..threads import torch_threads
from .agent import Agent, load_agent, play, save_episode, score
from .config import (ACTION_MAPPING, CONFIG_FILE, CONTROLLER_FILE, CONTROLLER_INPUT, LOGVAR, REWARD_SOURCE,
                     RNN_FILE, SUMMARY_FILE, TRAIN_SEED_LIMIT, CartPoleConfig)
from .model import train_model



def controller_config(cfg: CartPoleConfig, generations: int, seed: int) -> ControllerConfig:
    return ControllerConfig(
        popsize=cfg.popsize, rollouts=cfg.rollouts, sigma0=cfg.sigma0, generations=generations,
        dream_steps=cfg.dream_steps, temperature=cfg.temperature, done_threshold=cfg.done_threshold,
        l2_penalty=cfg.l2_penalty, eval_every=min(cfg.eval_every, generations), eval_rollouts=cfg.eval_rollouts,
        backend=cfg.backend, seed=seed)


def start_pool(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream start states: the first (normalized) state of every real episode, logvar LOGVAR."""
    from ..shards import load_latents

    mu = torch.as_tensor(np.stack([load_latents(f)["mu"][0] for f in files]))
    return mu, torch.full_like(mu, LOGVAR)


def dream_evaluator(model: MDNRNN, files: list[Path], cfg: CartPoleConfig, ccfg: ControllerConfig):
    from ..es import DreamEvaluator

    mu, logvar = start_pool(files)
    return DreamEvaluator(model, mu, logvar, ccfg, ACTION_MAPPING, CONTROLLER_INPUT, REWARD_SOURCE,
                          common_random_numbers=cfg.common_random_numbers)


def dream_score(model: MDNRNN, params: torch.Tensor, files: list[Path], cfg: CartPoleConfig,
                seed: int) -> dict[str, float]:
    """C's returns in M's dream: `dream_score_rollouts` dreams of at most 500 steps (as real episodes) with
    the training options (temperature, done threshold, start states), a seed not used in training."""
    from ..dream import DreamOptions, dream

    mu, logvar = start_pool(files)
    opts = DreamOptions(steps=MAX_STEPS, rollouts=cfg.dream_score_rollouts, temperature=cfg.temperature,
                        seed=seed, action_mapping=ACTION_MAPPING, controller_input=CONTROLLER_INPUT,
                        reward_source=REWARD_SOURCE, done_threshold=cfg.done_threshold)
    r = dream(model, params[None], mu, logvar, opts, backend=cfg.backend).returns[0]
    return {"mean": float(r.mean()), "std": float(r.std(unbiased=False)), "rollouts": cfg.dream_score_rollouts}


# --------------------------------------------------------------------------------------------
# The pipeline.
# --------------------------------------------------------------------------------------------


def _seed_base(round_: int) -> int:
    """Env seeds of round r's collected episodes start here (all below TRAIN_SEED_LIMIT)."""
    return round_ * 100_000


def _round_eval_seed(round_: int) -> int:
    return TRAIN_SEED_LIMIT - 50_000 + round_ * 1000


def _check_config(run_dir: Path, cfg: CartPoleConfig) -> None:
    path = run_dir / CONFIG_FILE
    want = dataclasses.asdict(cfg)
    if path.exists():
        have = {**dataclasses.asdict(CartPoleConfig()), **read_json(path).get("config", {})}  # fields added since
        diff = sorted(k for k in set(want) | set(have) if k not in ("backend", "threads") and have.get(k) != want.get(k))
        if diff:
            changes = ", ".join(f"{k}: {have.get(k)!r} -> {want.get(k)!r}" for k in diff)
            raise ConfigError(f"{path} was made with other settings ({changes}); "
                              f"use another --run-dir or the same settings")
    else:
        atomic_write_json(path, {"env": "cartpole", "config": want})


def run_cartpole(run_dir: Path | str, cfg: CartPoleConfig, progress: bool = True,
                 log=print) -> dict[str, Any]:
    """Run (or resume) the whole pipeline in `run_dir`; returns the summary (also summary.json)."""
    cfg.check()
    with torch_threads(cfg.threads):
        return _run_cartpole(Path(run_dir), cfg, progress, log)


def _run_cartpole(run_dir: Path, cfg: CartPoleConfig, progress: bool, log) -> dict[str, Any]:
    from ..pipeline import git_commit

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, cfg)
    ep_dir = run_dir / "episodes"
    rounds: list[dict[str, Any]] = []
    prev_rnn: Path | None = None
    prev_params: torch.Tensor | None = None

    def collect(round_: int, agent: Agent | None) -> dict[str, Any]:
        rdir = run_dir / f"round_{round_:02d}"
        record = rdir / "collect.json"
        if record.exists():
            return read_json(record)
        t0 = time.perf_counter()
        n = cfg.random_episodes if agent is None else cfg.round_episodes
        seeds = _seed_base(round_) + np.arange(n)
        rng = np.random.default_rng([cfg.seed, round_])
        eps = None if agent is None else np.linspace(0.0, cfg.explore, n)
        if agent is not None and cfg.explore_params > 0:
            p = agent.controller.params
            sigma = torch.as_tensor(rng.permutation(np.linspace(0.0, cfg.explore_params, n)), dtype=torch.float32)
            noise = torch.as_tensor(rng.standard_normal((n, p.numel())), dtype=torch.float32)
            agent = Agent(agent.model, p[None] + sigma[:, None] * p.pow(2).mean().sqrt() * noise)
        eps_list = play(seeds, agent, eps)
        for i, ep in enumerate(eps_list):
            save_episode(ep_dir / f"r{round_:02d}_{i:05d}.npz", ep)
        rets = np.array([e["ret"] for e in eps_list])
        out = {"round": round_, "policy": "random" if agent is None else "controller+explore",
               "episodes": n, "steps": int(rets.sum()), "mean_return": float(rets.mean()),
               "explore": [0.0, cfg.explore] if agent is not None else None,
               "explore_params": [0.0, cfg.explore_params] if agent is not None else None,
               "seconds": time.perf_counter() - t0}
        atomic_write_json(record, out)
        return out

    collected = [collect(0, None)]
    for r in range(cfg.rounds + 1):
        rdir = run_dir / f"round_{r:02d}"
        record = rdir / "round.json"
        files = sorted(p for p in ep_dir.glob("r*.npz") if int(p.name[1:3]) <= r)
        if record.exists():
            row = read_json(record)
        else:
            t0 = time.perf_counter()
            rnn_path = rdir / RNN_FILE
            if rnn_path.exists():
                m_metrics = load_checkpoint(rnn_path, required=("metrics",))["metrics"]
            else:
                m_metrics = train_model(files, rnn_path, cfg, cfg.rnn_steps if r == 0 else cfg.rnn_round_steps,
                                        init=prev_rnn, seed=cfg.seed * 1000 + r)
            from ..es import load_controller, train_controller
            from ..train_rnn import load_mdnrnn

            model = load_mdnrnn(rnn_path)
            gens = cfg.generations if r == 0 else cfg.round_generations
            ccfg = controller_config(cfg, max(gens, 1), cfg.seed * 1000 + r)
            n = n_params(input_size(STATE_DIM, cfg.hidden, CONTROLLER_INPUT), output_size(ACTION_MAPPING, ACTION_DIM))
            c_dir = rdir / "controller"
            t_c = time.perf_counter()
            if gens > 0:
                train_controller(dream_evaluator(model, files, cfg, ccfg), n, c_dir, ccfg,
                                 x0=None if prev_params is None else prev_params.double().numpy(),
                                 progress=progress, eval_start=prev_params is not None)
                params = load_controller(c_dir / "controller.pt")
            else:
                params = prev_params
            c_seconds = time.perf_counter() - t_c
            d = dream_score(model, params, files, cfg, seed=cfg.seed * 1000 + r + 777)
            real = score(Agent(model, params), _round_eval_seed(r), cfg.round_eval_episodes)
            save_checkpoint(rdir / CONTROLLER_FILE, {"params": params, "dream_return": d["mean"]})
            row = {"round": r, "data_episodes": len(files), "data_steps": m_metrics["data_steps"],
                   "m": {k: v for k, v in m_metrics.items() if k != "history"}, "c_generations": gens,
                   "c_seconds": c_seconds, "dream": d, "real": {k: v for k, v in real.items() if k != "returns"},
                   "seconds": time.perf_counter() - t0}
            atomic_write_json(record, row)
        rounds.append(row)
        log(f"[cartpole] round {r}: {row['data_episodes']} episodes ({row['data_steps']} steps), "
            f"M rmse {row['m']['rmse']:.4f} (step {row['m']['step_rms']:.4f}), done P/R "
            f"{row['m']['done_precision']:.2f}/{row['m']['done_recall']:.2f}; dream {row['dream']['mean']:.1f}, "
            f"real {row['real']['mean']:.1f} ± {row['real']['std']:.1f} ({row['real']['episodes']} episodes)")
        prev_rnn = rdir / RNN_FILE
        prev_params = load_checkpoint(rdir / CONTROLLER_FILE, required=("params",))["params"].float()
        if r < cfg.rounds:
            from ..train_rnn import load_mdnrnn

            collected.append(collect(r + 1, Agent(load_mdnrnn(prev_rnn), prev_params)))

    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists():
        return read_json(summary_path)
    last = run_dir / f"round_{cfg.rounds:02d}"
    shutil.copyfile(last / RNN_FILE, run_dir / RNN_FILE)
    shutil.copyfile(last / CONTROLLER_FILE, run_dir / CONTROLLER_FILE)
    final = score(load_agent(run_dir), cfg.eval_seed_start, cfg.eval_episodes)
    env_steps = int(sum(c["steps"] for c in collected))
    summary = {
        "env": "cartpole", "model": cfg.model, "n_rounds": cfg.rounds, "commit": git_commit(),
        "real_mean": final["mean"], "real_std": final["std"], "real_min": final["min"],
        "real_episodes": final["episodes"], "real_seed_start": final["seed_start"],
        "dream_mean": rounds[-1]["dream"]["mean"], "dream_std": rounds[-1]["dream"]["std"],
        "env_steps": env_steps,
        "scoring_env_steps": int(sum(r["real"]["steps"] for r in rounds)),
        "wall_s": float(sum(c["seconds"] for c in collected) + sum(r["seconds"] for r in rounds)
                        + final["seconds"]),
        "load_avg_1min": os.getloadavg()[0], "collect": collected, "rounds": rounds,
        "real_returns": final["returns"],
    }
    atomic_write_json(summary_path, summary)
    return summary
