"""Acting in the real CartPole: M + C batched over many episodes in lock step, collection and scoring."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..controller import LinearController, input_size, output_size
from ..envs.cartpole import ACTION_DIM, MAX_STEPS, normalize
from ..mdnrnn import MDNRNN
from ..storage import atomic_write_json, dumps_json
from .config import ACTION_MAPPING, CONTROLLER_FILE, CONTROLLER_INPUT, LOGVAR, RNN_FILE, TRAIN_SEED_LIMIT



class Agent:
    """M + C acting on N real CartPoles at once: a_t = C([z_t, h_t]), then M reads (z_t, a_t).

    params: (n,) one controller for every episode, or (N, n) one per episode.
    """

    def __init__(self, model: MDNRNN, params: torch.Tensor):
        self.model = model
        n_in = input_size(model.z_dim, model.hidden, CONTROLLER_INPUT)
        n_out = output_size(ACTION_MAPPING, model.action_dim)
        self.controller = LinearController(params, n_in, n_out, ACTION_MAPPING, model.action_dim)
        self.per_episode = self.controller.params.dim() == 2
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self, n: int) -> None:
        self.state = self.model.initial_state(n)

    @torch.no_grad()
    def act(self, z: np.ndarray, override: np.ndarray | None = None) -> np.ndarray:
        """Action indices (N,) for normalized states z (N, 4); M then reads the actions taken.

        override: (N,) int, -1 where C acts, else the action taken instead (exploration).
        """
        zt = torch.as_tensor(z, dtype=torch.float32)
        h, c = self.state
        x = torch.cat([zt, h], -1)
        raw = self.controller.raw(x[:, None])[:, 0] if self.per_episode else self.controller.raw(x)
        a = raw.argmax(-1).numpy()
        if override is not None:
            a = np.where(override >= 0, override, a)
        onehot = F.one_hot(torch.as_tensor(a), ACTION_DIM).float()
        _, self.state = self.model.step(zt, onehot, self.state)
        return a


def play(seeds: np.ndarray, agent: Agent | None = None, eps: np.ndarray | None = None,
         max_steps: int = MAX_STEPS, envs: int = 16) -> list[dict[str, Any]]:
    """Run one real episode per seed through the library's one episode loop (`rollout.run_episodes`).

    agent None plays uniformly random actions; with an agent (one controller, or one per
    episode), episode i takes a uniformly random action with probability eps[i]
    (exploration), else C's. Episodes run `envs` at a time and depend on their seed only.
    Returns per episode: states (T+1, 4) raw, actions (T,) int, terminated (bool), seed,
    and ret = T (+1 per step).
    """
    from ..envs import make_vec
    from ..rollout import EpisodeRequest, RandomActor, run_episodes
    from ..rollout.agent import BatchedAgent, state_encoder

    n = len(seeds)
    eps = np.zeros(n) if eps is None else np.asarray(eps, dtype=np.float64)
    with make_vec("cartpole", max(1, min(envs, n)), max_steps) as vec:
        if agent is None:
            actor: Any = RandomActor("iid", vec.num_envs, vec.action_low, vec.action_high)
            params: list[np.ndarray | None] = [None] * n
        else:
            actor = BatchedAgent(state_encoder("cartpole"), agent.model, ACTION_MAPPING, CONTROLLER_INPUT,
                                 vec.num_envs, vec.action_low, vec.action_high)
            p = agent.controller.params.numpy()
            params = [p[i] if agent.per_episode else p for i in range(n)]
        requests = [EpisodeRequest(int(s), params[i], noise=float(eps[i]), keep=True) for i, s in enumerate(seeds)]
        results = run_episodes(vec, requests, actor)
    return [{"states": r["observations"], "actions": r["actions"].argmax(1).astype(np.int64),
             "terminated": bool(r["terminated"]), "seed": int(r["seed"]), "ret": float(r["steps"])} for r in results]


def save_episode(path: Path, ep: dict[str, Any]) -> None:
    """One episode as a latent file: mu = normalized states, logvar = LOGVAR, one-hot actions."""
    from ..shards import save_latents

    t = len(ep["actions"])
    dones = np.zeros(t, dtype=np.float32)
    if ep["terminated"]:
        dones[-1] = 1.0
    mu = normalize(ep["states"])
    save_latents(path, mu, np.full_like(mu, LOGVAR), np.eye(ACTION_DIM, dtype=np.float32)[ep["actions"]],
                 np.ones(t, dtype=np.float32), dones, ep["seed"])


def load_agent(run_dir: Path | str) -> Agent:
    """The final M and C of a CartPole run directory (rnn.pt, controller.pt)."""
    from ..es import load_controller
    from ..train_rnn import load_mdnrnn

    run_dir = Path(run_dir)
    return Agent(load_mdnrnn(run_dir / RNN_FILE), load_controller(run_dir / CONTROLLER_FILE))


def score(agent: Agent, seed_start: int, episodes: int, max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """Real returns of C (greedy, no exploration) on env seeds seed_start .. seed_start+episodes-1."""
    seeds = np.arange(seed_start, seed_start + episodes)
    t0 = time.perf_counter()
    returns = np.array([ep["ret"] for ep in play(seeds, agent, max_steps=max_steps)])
    return {"mean": float(returns.mean()), "std": float(returns.std()), "min": float(returns.min()),
            "episodes": int(episodes), "seed_start": int(seed_start), "steps": int(returns.sum()),
            "seconds": time.perf_counter() - t0, "returns": returns.tolist()}


def evaluate(run_dir: Path | str, episodes: int = 100, seed_start: int = 10_000_000,
             max_steps: int = MAX_STEPS, out_name: str = "evaluate.json") -> dict[str, Any]:
    """Score the run's final C on real episodes; writes RUN_DIR/evaluate.json (mean, std, returns, seeds)."""
    from ..pipeline import git_commit

    if episodes <= 0:
        raise ConfigError(f"episodes must be positive, got {episodes}")
    run_dir = Path(run_dir)
    result = score(load_agent(run_dir), seed_start, episodes, max_steps)
    result.update(env="cartpole", run_dir=str(run_dir), commit=git_commit(),
                  seeds=[seed_start, seed_start + episodes - 1])
    atomic_write_json(run_dir / out_name, result)
    return result


def evaluate_cli(run_dir: Path | str, episodes: Optional[int] = None, seed_start: Optional[int] = None,
                 max_steps: Optional[int] = None) -> dict[str, Any]:
    """`wm-fast evaluate --env cartpole`: a world-model run (rnn.pt + controller.pt) or a DQN run (dqn.pt).

    Defaults: 100 episodes from seed 10,000,000 (no pipeline trains or scores rounds there).
    Writes RUN_DIR/evaluate.json and prints mean ± std.
    """
    run_dir = Path(run_dir)
    episodes = 100 if episodes is None else episodes
    seed_start = 10_000_000 if seed_start is None else seed_start
    if seed_start < TRAIN_SEED_LIMIT:
        print(f"[wm-fast] warning: seeds below {TRAIN_SEED_LIMIT:,} are used by training and round scoring")
    if (run_dir / RNN_FILE).exists() or not (run_dir / "dqn.pt").exists():
        result = evaluate(run_dir, episodes, seed_start, MAX_STEPS if max_steps is None else max_steps)
    else:
        from ..baselines.dqn import evaluate_dqn

        result = evaluate_dqn(run_dir, episodes, seed_start)
    print(dumps_json({"stage": "evaluate", "env": "cartpole", "run_dir": str(run_dir),
                      "metrics": {k: v for k, v in result.items() if not isinstance(v, (list, dict))}}, indent=1))
    print(f"[wm-fast] cartpole: real mean return {result['mean']:.1f} ± {result['std']:.1f} over {episodes} "
          f"episodes (seeds {seed_start}..{seed_start + episodes - 1}); see {run_dir}/evaluate.json")
    return result
