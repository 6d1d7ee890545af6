"""DQN (Mnih et al. 2015) on CartPole-v1's state: the baseline the dream-trained controllers face.

A standard, readable implementation:
  * Q-network: MLP 4 -> hidden -> hidden -> 2 (ReLU), one Q-value per action.
  * Replay buffer: a ring of the last `buffer_size` transitions (s, a, r, s', terminated),
    sampled uniformly in minibatches of `batch_size`.
  * Target network: a copy of the Q-network, refreshed every `target_every` steps; targets
    y = r + gamma * (1 - terminated) * max_a' Q_target(s', a') (truncation at 500 steps is not
    an end: the bootstrap stays), Huber loss, Adam, gradient-norm clip.
  * epsilon-greedy: epsilon decays linearly from `eps_start` to `eps_end` over the first
    `eps_fraction` of the steps.
Every `eval_every` steps the greedy policy plays `eval_episodes` validation episodes; the
best-scoring network is kept (`dqn.pt`) and finally scored on `final_episodes` episodes
from seeds no training or validation episode used. Validation steps count as env steps.

    wm-fast dqn --run-dir runs/dqn
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..envs.cartpole import ACTION_DIM, MAX_STEPS, STATE_DIM, make_env
from ..provenance import git_commit
from ..records import refuse_changed
from ..storage import atomic_write_bytes, atomic_write_json, dumps_json, load_checkpoint, read_json, save_checkpoint
from ..threads import torch_threads

CHECKPOINT = "dqn.pt"
SUMMARY = "dqn_summary.json"


@dataclass
class DQNConfig:
    """DQN on CartPole-v1 (`wm-fast dqn`)."""

    total_steps: int = 100_000
    """Environment steps of training."""
    hidden: int = 128
    """Width of the Q-network's two hidden layers."""
    buffer_size: int = 50_000
    """Replay buffer capacity (transitions)."""
    batch_size: int = 128
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount."""
    lr: float = 5e-4
    """Adam learning rate."""
    learning_starts: int = 1_000
    """Steps of pure exploration before the first gradient step."""
    train_every: int = 1
    """Environment steps per gradient step."""
    target_every: int = 500
    """Steps between target-network refreshes (a full copy)."""
    eps_start: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.02
    """Final exploration rate."""
    eps_fraction: float = 0.2
    """Fraction of total_steps over which epsilon decays linearly."""
    grad_clip: float = 10.0
    """Gradient-norm clip."""
    eval_every: int = 5_000
    """Steps between validation rounds of the greedy policy (the best network is kept)."""
    eval_episodes: int = 10
    """Validation episodes per round."""
    final_episodes: int = 100
    """Episodes scoring the kept network at the end."""
    final_seed_start: int = 2_000_000
    """Final episode i uses env seed final_seed_start + i (training and validation use seeds below 1,000,000)."""
    threads: int = 1
    """torch threads (the network is small: one thread is fastest)."""
    seed: int = 0
    """Seed of the network, the buffer sampling, exploration and the env seeds."""

    def check(self) -> None:
        for name in ("total_steps", "hidden", "buffer_size", "batch_size", "train_every", "target_every",
                     "eval_every", "eval_episodes", "final_episodes", "threads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.eps_end <= self.eps_start <= 1:
            raise ConfigError(f"need 0 <= eps_end <= eps_start <= 1, got {self.eps_end}, {self.eps_start}")
        if not 0 < self.eps_fraction <= 1:
            raise ConfigError(f"eps_fraction must be in (0, 1], got {self.eps_fraction}")
        if self.learning_starts < self.batch_size:
            raise ConfigError(f"learning_starts ({self.learning_starts}) must be >= batch_size ({self.batch_size})")
        if self.final_seed_start < 1_000_000:
            raise ConfigError("final_seed_start must be >= 1,000,000 (seeds below are for training)")


def tiny_config(**overrides: Any) -> DQNConfig:
    """Seconds: a smoke test, not a result."""
    return dataclasses.replace(DQNConfig(total_steps=600, hidden=16, buffer_size=500, batch_size=16,
                                         learning_starts=100, target_every=50, eval_every=300, eval_episodes=2,
                                         final_episodes=3), **overrides)


def get_config(preset: str = "quick", **overrides: Any) -> DQNConfig:
    """The DQN config of `preset` ("tiny" or "quick") with `overrides` (None values ignored)."""
    presets = {"tiny": tiny_config, "quick": lambda **kw: dataclasses.replace(DQNConfig(), **kw)}
    if preset not in presets:
        raise ConfigError(f"unknown DQN preset {preset!r}; choose one of {', '.join(presets)}")
    cfg = presets[preset](**{k: v for k, v in overrides.items() if v is not None})
    cfg.check()
    return cfg


class QNetwork(nn.Module):
    """Q(s, .): (B, 4) states -> (B, 2) action values."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(STATE_DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, ACTION_DIM))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)

    @torch.no_grad()
    def act(self, s: np.ndarray) -> int:
        """Greedy action for one state (4,)."""
        return int(self(torch.as_tensor(s, dtype=torch.float32)[None]).argmax(-1))


class ReplayBuffer:
    """A ring buffer of (s, a, r, s', terminated) with uniform minibatch sampling."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.s = np.zeros((capacity, STATE_DIM), dtype=np.float32)
        self.a = np.zeros(capacity, dtype=np.int64)
        self.r = np.zeros(capacity, dtype=np.float32)
        self.s2 = np.zeros((capacity, STATE_DIM), dtype=np.float32)
        self.term = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos, self.rng = capacity, 0, 0, rng

    def add(self, s: np.ndarray, a: int, r: float, s2: np.ndarray, terminated: bool) -> None:
        i = self.pos
        self.s[i], self.a[i], self.r[i], self.s2[i], self.term[i] = s, a, r, s2, float(terminated)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size, size=n)
        return tuple(torch.as_tensor(x[idx]) for x in (self.s, self.a, self.r, self.s2, self.term))


class GreedyActor:
    """The rollout `Actor` of a Q-network: one-hot greedy actions, one state at a time (as in training)."""

    def __init__(self, q: QNetwork) -> None:
        self.q = q

    def begin(self, slot: int, seed: int, params: np.ndarray | None = None, noise: float = 0.0) -> None:
        pass

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        actions = np.zeros((len(obs), ACTION_DIM), dtype=np.float32)
        for i in np.flatnonzero(active):
            actions[i, self.q.act(obs[i])] = 1.0
        return actions


def play_greedy(q: QNetwork, seeds: np.ndarray, envs: int = 16) -> np.ndarray:
    """Returns of the greedy policy, one episode per seed (through `rollout.run_episodes`)."""
    from ..envs import make_vec
    from ..rollout import EpisodeRequest, run_episodes

    with make_vec("cartpole", max(1, min(envs, len(seeds))), MAX_STEPS) as vec:
        results = run_episodes(vec, [EpisodeRequest(int(seed)) for seed in seeds], GreedyActor(q))
    return np.asarray([r["return"] for r in results])


def train_dqn(run_dir: Path | str, cfg: DQNConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Train DQN, keep the best validated network (RUN_DIR/dqn.pt), score it; writes dqn_summary.json.

    A finished run with the same config returns its summary; another config is refused.
    """
    cfg.check()
    with torch_threads(cfg.threads):
        return _train_dqn(Path(run_dir), cfg, progress, log)


def _train_dqn(run_dir: Path, cfg: DQNConfig, progress: bool, log) -> dict[str, Any]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary_path = run_dir / SUMMARY
    if summary_path.exists():
        old = read_json(summary_path)
        same = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "threads"}
        refuse_changed({k: v for k, v in old.get("config", {}).items() if k != "threads"}, same,
                       f"the DQN run in {summary_path}", "use another --run-dir")
        return old
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    q = QNetwork(cfg.hidden)
    target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    buffer = ReplayBuffer(cfg.buffer_size, rng)
    env = make_env()
    episode = 0
    s = env.reset(cfg.seed * 100_000 + episode)
    ep_ret, train_returns, history = 0.0, [], []
    best = {"mean": -1.0, "step": 0}
    val_steps, val_round = 0, 0
    loss_sum, loss_n = 0.0, 0
    for step in range(1, cfg.total_steps + 1):
        eps = max(cfg.eps_end, cfg.eps_start - (cfg.eps_start - cfg.eps_end) * step / (cfg.eps_fraction * cfg.total_steps))
        a = int(rng.integers(ACTION_DIM)) if rng.random() < eps else q.act(s)
        s2, r, term, trunc = env.step(a)
        buffer.add(s, a, r, s2, term)
        s, ep_ret = s2, ep_ret + r
        if term or trunc:
            train_returns.append(ep_ret)
            episode += 1
            s, ep_ret = env.reset(cfg.seed * 100_000 + episode), 0.0

        if step >= cfg.learning_starts and step % cfg.train_every == 0:
            bs, ba, br, bs2, bterm = buffer.sample(cfg.batch_size)
            with torch.no_grad():
                y = br + cfg.gamma * (1.0 - bterm) * target(bs2).max(-1).values
            q_sa = q(bs).gather(1, ba[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(q_sa, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(q.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
        if step % cfg.target_every == 0:
            target.load_state_dict(q.state_dict())

        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            seeds = 500_000 + cfg.seed * 10_000 + val_round * cfg.eval_episodes + np.arange(cfg.eval_episodes)
            val = play_greedy(q, seeds)
            val_round += 1
            val_steps += int(val.sum())
            row = {"step": step, "epsilon": eps, "val_mean": float(val.mean()), "val_min": float(val.min()),
                   "train_return_last10": float(np.mean(train_returns[-10:])) if train_returns else None,
                   "loss": loss_sum / max(loss_n, 1), "episodes": episode, "elapsed_s": time.perf_counter() - t_start}
            history.append(row)
            loss_sum, loss_n = 0.0, 0
            if val.mean() >= best["mean"]:  # ties go to the later (more trained) network
                best = {"mean": float(val.mean()), "step": step}
                save_checkpoint(run_dir / CHECKPOINT, {"model": copy.deepcopy(q.state_dict()), "hidden": cfg.hidden,
                                                       "step": step, "val_mean": float(val.mean())})
            if progress:
                log(f"[dqn] step {step}: eps {eps:.2f}, validation {val.mean():.1f} (min {val.min():.0f}), "
                    f"best {best['mean']:.1f} @ {best['step']}")
    env.close()
    atomic_write_bytes(run_dir / "log.jsonl", "".join(dumps_json(h) + "\n" for h in history).encode())
    train_s = time.perf_counter() - t_start
    final = evaluate_dqn(run_dir, cfg.final_episodes, cfg.final_seed_start, out_name=None)
    summary = {
        "env": "cartpole", "method": "dqn", "commit": git_commit(), "config": dataclasses.asdict(cfg),
        "real_mean": final["mean"], "real_std": final["std"], "real_min": final["min"],
        "real_episodes": final["episodes"], "real_seed_start": final["seed_start"],
        "best_step": best["step"], "best_val_mean": best["mean"],
        "env_steps": cfg.total_steps + val_steps, "train_env_steps": cfg.total_steps, "validation_env_steps": val_steps,
        "train_s": train_s, "wall_s": time.perf_counter() - t_start, "load_avg_1min": os.getloadavg()[0],
        "history": history,
        "real_returns": final["returns"],
    }
    atomic_write_json(summary_path, summary)
    return summary


def load_qnetwork(path: Path | str) -> QNetwork:
    state = load_checkpoint(path, required=("model", "hidden"))
    q = QNetwork(int(state["hidden"]))
    q.load_state_dict(state["model"])
    return q.eval()


def evaluate_dqn(run_dir: Path | str, episodes: int = 100, seed_start: int = 10_000_000,
                 out_name: str | None = "evaluate.json") -> dict[str, Any]:
    """Score RUN_DIR/dqn.pt greedily on env seeds seed_start .. seed_start+episodes-1 (writes out_name)."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    returns = play_greedy(load_qnetwork(run_dir / CHECKPOINT), np.arange(seed_start, seed_start + episodes))
    result = {"env": "cartpole", "method": "dqn", "mean": float(returns.mean()), "std": float(returns.std()),
              "min": float(returns.min()), "episodes": int(episodes), "seed_start": int(seed_start),
              "seeds": [seed_start, seed_start + episodes - 1], "seconds": time.perf_counter() - t0,
              "commit": git_commit(), "run_dir": str(run_dir), "returns": returns.tolist()}
    if out_name:
        atomic_write_json(run_dir / out_name, result)
    return result


def evaluate_cli(run_dir: Path | str, episodes: int | None = None, seed_start: int | None = None) -> dict[str, Any]:
    """`wm-fast evaluate --run-dir D` for a DQN run (D/dqn.pt): 100 episodes from seed 10,000,000 by default."""
    result = evaluate_dqn(run_dir, 100 if episodes is None else episodes,
                          10_000_000 if seed_start is None else seed_start)
    print(dumps_json({"stage": "evaluate", "env": "cartpole", "method": "dqn", "run_dir": str(run_dir),
                      "metrics": {k: v for k, v in result.items() if not isinstance(v, (list, dict))}}, indent=1))
    return result


__all__ = ["DQNConfig", "QNetwork", "ReplayBuffer", "evaluate_cli", "evaluate_dqn", "get_config", "load_qnetwork", "tiny_config",
           "train_dqn"]
