"""Real-environment CMA-ES: the `es.Evaluator` that scores a population on real episodes.

    spec = agent_spec("carracing", "gymnasium", 1000, 8, "D/vae/vae.pt", "D/rnn/rnn.pt")
    with RealEvaluator(spec, workers=2, backend="local") as ev:   # or backend="ray"
        returns = ev(params, seed=gen_seed, rollouts=16)           # (P, n) -> (P,)

Episodes run on the worker pool of `wm_fast.rollout.pool` (its docstring says what happens
to workers that die, hang or raise). A candidate whose rollouts were all given up gets the
generation's worst mean; otherwise its fitness is the mean over the rollouts that finished.

Early stops. With `patience` > 0 an episode ends after that many steps in a row without a
positive reward, and its return is what it earned until then. For CarRacing (-0.1 a step,
+1000/N a new tile) this changes the fitness in two ways: the -0.1 of the steps not played is
not charged (a stopped episode scores up to 0.1 x the steps left higher than it would have),
and an episode that would have found the track again loses its later tiles. The final
`evaluate` never stops early.

Seeds. Rollout r of candidate p in a generation with seed g uses env seed
`rollout_seed(g, p, r)` (a hash of the three), independent of workers, env slots and faults.
With `common_random_numbers`, every candidate of a call plays the same tracks,
`rollout_seed(g, 0, r)`: CarRacing is deterministic given its seed and the actions, so the
ranking of a generation then reflects the candidates alone, not which tracks they drew.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .rollout.episodes import EpisodeRequest
from .rollout.pool import RealEvalError, Task, WorkerPool, WorkerSpec, agent_spec, run_requests, short_event

__all__ = ["RealEvalError", "RealEvaluator", "agent_spec", "episode_seeds", "format_duration", "projected_seconds",
           "rollout_seed"]

log = logging.getLogger("wm_fast.real")


def rollout_seed(generation_seed: int, candidate: int, rollout: int) -> int:
    """Env seed of rollout `rollout` of candidate `candidate` in the generation seeded `generation_seed`."""
    state = np.random.SeedSequence([int(generation_seed), int(candidate), int(rollout), 0x7EA1]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def episode_seeds(generation_seed: int, candidates: int, rollouts: int,
                  common_random_numbers: bool = False) -> list[tuple[int, int, int]]:
    """(candidate, rollout, env seed) of every episode of a call seeded `generation_seed`, in the
    order the evaluator runs them; with common random numbers candidate p plays candidate 0's seeds."""
    return [(p, r, rollout_seed(generation_seed, 0 if common_random_numbers else p, r))
            for p in range(candidates) for r in range(rollouts)]


class RealEvaluator:
    """The `es.Evaluator` for real episodes: P candidates x R rollouts spread over a WorkerPool.

    Attributes after each call: `steps_done` (env steps so far), `episodes_done`,
    `last_report` (the pool's report of the call; `es.train_controller` logs it). Use as a
    context manager, or call `close()`, to stop the workers.
    """

    name = "real"

    def __init__(self, spec: WorkerSpec, workers: int = 2, backend: str = "local", address: str | None = None,
                 timeout_s: float = 600.0, max_attempts: int = 3, progress: bool = False, patience: int = 0,
                 common_random_numbers: bool = False):
        self.pool = WorkerPool(spec, workers, backend, address, timeout_s, max_attempts)
        self.spec, self.progress, self.patience = spec, progress, patience
        self.common_random_numbers = common_random_numbers
        self.steps_done = 0
        self.episodes_done = 0
        self.last_report: dict[str, Any] | None = None

    def __enter__(self) -> "RealEvaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray:
        from tqdm.auto import tqdm

        params = np.asarray(params, dtype=np.float32)
        n_cand = len(params)
        episodes = episode_seeds(seed, n_cand, rollouts, self.common_random_numbers)
        keys = [(p, r) for p, r, _ in episodes]
        requests = [EpisodeRequest(env_seed, params[p], patience=self.patience) for p, _, env_seed in episodes]
        bar = tqdm(total=len(requests), disable=not self.progress, leave=False, desc="real episodes", unit="ep")
        try:
            results, report = run_requests(
                self.pool, requests, on_episode=lambda i, out: bar.update(1),
                label=lambda i: f"candidate {keys[i][0]} rollout {keys[i][1]} (env seed {requests[i].seed})")
        finally:
            bar.close()
        returns = np.full((n_cand, rollouts), np.nan)
        for (p, r), out in zip(keys, results):
            if out is not None:
                returns[p, r] = out["return"]
                self.steps_done += int(out["steps"])
                self.episodes_done += 1
        if np.isnan(returns).all():
            raise RealEvalError("every real episode of this call failed; last: " + short_event(report["events"][-1]))
        done = ~np.isnan(returns)
        means = np.where(done.any(1), np.nansum(returns, 1) / np.maximum(done.sum(1), 1), np.nan)
        empty = np.flatnonzero(np.isnan(means))
        if len(empty):
            worst = float(np.nanmin(means))
            means[empty] = worst
            msg = f"candidates {empty.tolist()} lost every rollout: given the worst mean of the call, {worst:.2f}"
            report["events"].append(msg)
            log.error(msg)
        self.last_report = report
        return means

    def probe(self, params: np.ndarray, steps: int = 200) -> dict[str, float]:
        """Measure real steps/s: on each worker, every env slot runs an episode of at most `steps`
        steps with controller `params` (n,), as one batch (the speed of CMA-ES's batches).

        Returns {"steps_per_s_per_worker" (median over workers), "workers", "steps"}.
        """
        params = np.asarray(params, dtype=np.float32)
        n = self.pool.workers
        tasks = [Task([EpisodeRequest(1_000_000_007 + k, params)], kind="probe", probe_steps=steps,
                      label=f"speed probe {k}") for k in range(n)]
        results, _ = self.pool.run(tasks)
        rates = [r["steps"] / r["seconds"] for r in results if r is not None and r["seconds"] > 0]
        return {"steps_per_s_per_worker": float(np.median(rates)) if rates else float("nan"),
                "workers": float(n), "steps": float(steps)}


def projected_seconds(steps_per_s_per_worker: float, workers: int, generations: int, popsize: int,
                      rollouts: int, evaluations: int, eval_rollouts: int, max_steps: int) -> float:
    """Wall time of a real-environment CMA-ES run at the given speed, counting every episode
    at `max_steps` steps (an upper bound when episodes end early) and assuming the workers
    share the episodes perfectly."""
    episodes = generations * popsize * rollouts + evaluations * eval_rollouts
    return episodes * max_steps / max(steps_per_s_per_worker * workers, 1e-9)


def format_duration(seconds: float) -> str:
    """3.2 h, 41 min, 12 s, 2.5 days."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"

