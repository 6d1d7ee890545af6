"""N environments stepped as a batch: the `VecEnv` every real-environment loop uses.

A VecEnv has `num_envs` slots. `reset(slot, seed)` starts an episode in one slot on the
track (initial state) of `seed`; `step(actions, active)` steps the active slots with their
rows of `actions`. The rule for episode ends is explicit: **no autoreset**. A slot whose
episode terminated or was truncated stays ended; stepping it again raises, until `reset`
starts a new episode in it. So every episode starts from its own seed, and an episode's
frames and returns depend on that seed only, not on which slot or batch it ran in.

Backends (chosen by name, recorded in every stage record): "gymnasium" steps gymnasium
envs one after the other in this process (the reference implementation that papers and
users compare against); "envpool" uses EnvPool's C++ CarRacing-v3 (an optional extra;
different tracks and rendering than gymnasium's for the same seed, see envs/carracing.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .base import Env


class VecEnv:
    """`num_envs` single environments as slots (see the module docstring).

    Attributes:
        num_envs: N.
        obs_shape: shape of one observation, e.g. (64, 64, 3) frames or (4,) states.
        action_dim, action_low, action_high: the action box, (A,) float32 bounds.
        max_steps: an episode is truncated after this many steps.
    """

    def __init__(self, make_one: Callable[[], Env], num_envs: int, backend: str = "gymnasium"):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.backend = backend
        self.envs = [make_one() for _ in range(num_envs)]
        first = self.envs[0]
        self.num_envs = num_envs
        self.action_dim = int(first.action_dim)
        self.action_low = np.asarray(first.action_low, dtype=np.float32)
        self.action_high = np.asarray(first.action_high, dtype=np.float32)
        self.max_steps = int(first.max_steps)
        self.obs_shape: tuple[int, ...] | None = None
        self.obs_dtype: np.dtype | None = None
        self.running = np.zeros(num_envs, dtype=bool)

    def reset(self, slot: int, seed: int) -> np.ndarray:
        """Start an episode in `slot` from `seed`; returns its first observation."""
        obs = np.asarray(self.envs[slot].reset(int(seed)))
        self.obs_shape, self.obs_dtype = obs.shape, obs.dtype
        self.running[slot] = True
        return obs

    def step(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every slot where `active` (N,) is True with its row of `actions` (N, A).

        Returns obs (N, *obs_shape) (zeros for slots not stepped), rewards (N,) float64,
        terminated (N,) bool, truncated (N,) bool. A slot that terminates or truncates is ended.

        Raises:
            RuntimeError: an active slot has no running episode (ended and not reset).
        """
        active = np.asarray(active, dtype=bool)
        if (active & ~self.running).any():
            raise RuntimeError(f"slots {np.flatnonzero(active & ~self.running).tolist()} have no running episode; "
                               "reset them first (a VecEnv never resets a slot by itself)")
        assert self.obs_shape is not None and self.obs_dtype is not None
        n = self.num_envs
        obs = np.zeros((n, *self.obs_shape), dtype=self.obs_dtype)
        rewards = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(active):
            obs[i], rewards[i], terminated[i], truncated[i] = self.envs[i].step(actions[i])
        self.running &= ~(terminated | truncated)
        return obs, rewards, terminated, truncated

    def canonical(self, actions: np.ndarray) -> np.ndarray:
        """The actions (N, A) as the envs take them: each row through its env's `canonical_action`
        when it has one (Doom snaps a to -1 / 0 / +1), so that recorded actions are the moves made."""
        snap = getattr(self.envs[0], "canonical_action", None)
        if snap is None:
            return actions
        return np.stack([snap(row) for row in actions]).astype(np.float32)

    def render(self, slot: int) -> np.ndarray:
        """A full-resolution RGB frame of `slot` for videos."""
        return self.envs[slot].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> "VecEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
