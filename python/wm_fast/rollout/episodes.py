"""The one loop that steps real environments: `run_episodes` (collection, evaluation,
real-environment CMA-ES, iterate's collection and CartPole all go through it).

A list of `EpisodeRequest`s is run on a `VecEnv` with an `Actor` (a random policy or V+M+C):
each free slot takes the next request, the active slots step together, and a slot whose
episode ends takes the next request at once, so the batch stays full. An episode depends on
its request only (seed, params, noise), not on the slot, the batch or the order.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from ..envs.vec import VecEnv
from .policies import RandomPolicy, make_policy, policy_rng


@dataclass
class EpisodeRequest:
    """One episode to run."""

    seed: int
    """Env seed (the track / initial state); also seeds the policy's and the noise's generators."""
    params: np.ndarray | None = None
    """C's flat parameters (n,) float32, for an agent; None for a random policy."""
    noise: float = 0.0
    """Exploration (0: none): the std of Gaussian noise on C's continuous actions, or, for a discrete
    action mapping, the probability of a uniformly random action instead of C's."""
    record: bool = False
    """Keep `env.render()` frames for a video (result key "frames")."""
    keep: bool = False
    """Keep the observations, actions and rewards (result keys "observations", "actions", "rewards")."""
    max_steps: int | None = None
    """Cut the episode after this many steps (default: the env's own limit)."""
    patience: int = 0
    """> 0: end a hopeless episode after this many steps in a row without a positive reward (CarRacing:
    off the track); its return is what it earned so far (result "stopped_early"). 0: never."""


class Actor(Protocol):
    """Chooses actions for the slots of a VecEnv."""

    def begin(self, slot: int, seed: int, params: np.ndarray | None, noise: float = 0.0) -> None:
        """An episode with env seed `seed` starts in `slot`."""

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Actions (N, A) float32 for observations (N, *obs_shape); rows where `active` is False are ignored."""


class RandomActor:
    """One random policy per slot (see policies.py), reset with `policy_rng(seed)` per episode."""

    def __init__(self, policy: str, num_envs: int, low: np.ndarray, high: np.ndarray):
        self.policies: list[RandomPolicy] = [make_policy(policy, low, high) for _ in range(num_envs)]

    def begin(self, slot: int, seed: int, params: np.ndarray | None = None, noise: float = 0.0) -> None:
        self.policies[slot].reset(policy_rng(seed))

    def act(self, obs: np.ndarray, active: np.ndarray) -> np.ndarray:
        out = np.zeros((len(self.policies), len(self.policies[0].low)), dtype=np.float32)
        for i in np.flatnonzero(active):
            out[i] = self.policies[i].act()
        return out


def run_episodes(vec: VecEnv, requests: list[EpisodeRequest], actor: Actor,
                 on_episode: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every request on `vec`'s slots with `actor`; results in request order.

    Each result: return (float, the rewards summed in step order), steps, terminated,
    truncated (True when cut by a time limit, the env's or the request's), seed; plus
    "observations" (T+1, *obs_shape), "actions" (T, A) float32, "rewards" (T,) float32 when
    the request `keep`s them, and "frames" (a list of RGB frames, one before each step) when
    it `record`s. `on_episode(i, result)` is called as each episode ends.
    """
    n = vec.num_envs
    results: list[dict[str, Any] | None] = [None] * len(requests)
    queue = collections.deque(range(len(requests)))
    owner = np.full(n, -1)  # request index running in each slot
    state: list[dict[str, Any]] = [{} for _ in range(n)]
    obs: np.ndarray | None = None

    def start(slot: int) -> None:
        nonlocal obs
        i = queue.popleft()
        req = requests[i]
        first = vec.reset(slot, req.seed)
        if obs is None:
            obs = np.zeros((n, *first.shape), dtype=first.dtype)
        obs[slot] = first
        actor.begin(slot, req.seed, req.params, req.noise)
        owner[slot] = i
        limit = vec.max_steps if req.max_steps is None else min(req.max_steps, vec.max_steps)
        state[slot] = {"return": 0.0, "steps": 0, "limit": limit, "frames": [], "dry": 0,
                       "observations": [first] if req.keep else None, "actions": [], "rewards": []}

    def finish(slot: int, terminated: bool) -> None:
        i, st = int(owner[slot]), state[slot]
        req = requests[i]
        out: dict[str, Any] = {"return": st["return"], "steps": st["steps"], "terminated": terminated,
                               "truncated": not terminated, "seed": int(req.seed),
                               "stopped_early": bool(req.patience and st["dry"] >= req.patience)}
        if req.keep:
            out["observations"] = np.stack(st["observations"])
            out["actions"] = np.asarray(st["actions"], dtype=np.float32).reshape(st["steps"], vec.action_dim)
            out["rewards"] = np.asarray(st["rewards"], dtype=np.float32)
        if req.record:
            out["frames"] = st["frames"]
        results[i] = out
        owner[slot] = -1
        state[slot] = {}
        if on_episode is not None:
            on_episode(i, out)

    while queue or (owner >= 0).any():
        for slot in range(n):
            if owner[slot] < 0 and queue:
                start(slot)
        active = owner >= 0
        assert obs is not None
        for slot in np.flatnonzero(active):
            if requests[owner[slot]].record:
                state[slot]["frames"].append(vec.render(slot).copy())
        actions = vec.canonical(actor.act(obs, active))
        next_obs, rewards, terminated, truncated = vec.step(actions, active)
        for slot in np.flatnonzero(active):
            st, req = state[slot], requests[owner[slot]]
            st["return"] += float(rewards[slot])
            st["steps"] += 1
            obs[slot] = next_obs[slot]
            if req.keep:
                st["observations"].append(next_obs[slot])
                st["actions"].append(actions[slot].copy())
                st["rewards"].append(rewards[slot])
            st["dry"] = 0 if rewards[slot] > 0 else st["dry"] + 1
            hopeless = req.patience > 0 and st["dry"] >= req.patience
            if terminated[slot] or truncated[slot] or st["steps"] >= st["limit"] or hopeless:
                finish(slot, bool(terminated[slot]))
    return results  # type: ignore[return-value]
