"""CartPole-v1 (gymnasium, two discrete actions) with the 4-dim state as the observation.

Observations are the raw state (x, x_dot, theta, theta_dot) as float32 (4,); `normalize`
divides it by `STATE_SCALE`, which brings every component to roughly [-1, 1] and is what
the state-based world model (`wm_fast.cartpole`) uses as its "latent" z. Actions are
one-hot vectors (2,) (push left, push right), as C's "argmax" mapping produces them; `step`
also takes the action index. Reward +1 per step, the terminating step included; episodes
terminate when |x| > 2.4 or |theta| > 12 degrees and are truncated at `max_steps` (500).
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 4
"""Size of an observation: x, x_dot, theta, theta_dot."""
ACTION_DIM = 2
"""Discrete actions: 0 pushes left, 1 pushes right."""
X_THRESHOLD = 2.4
"""|x| beyond this terminates the episode."""
THETA_THRESHOLD = 12 * 2 * np.pi / 360
"""|theta| beyond this (12 degrees, in radians) terminates the episode."""
STATE_SCALE = np.array([X_THRESHOLD, 2.0, THETA_THRESHOLD, 2.0], dtype=np.float32)
"""Divisor of each state component in `normalize`: the termination bounds for x and theta,
2 (units/s, rad/s) for the velocities."""
MAX_STEPS = 500
"""CartPole-v1's own episode limit."""


def normalize(state: np.ndarray) -> np.ndarray:
    """Raw states (..., 4) -> float32 (..., 4) divided by STATE_SCALE."""
    return (np.asarray(state, dtype=np.float32) / STATE_SCALE).astype(np.float32)


def action_index(action) -> int:
    """An action index (0 or 1) from an int or a one-hot / score vector (2,) (its argmax)."""
    a = np.asarray(action)
    if a.ndim == 0:
        i = int(a)
        if i not in (0, 1):
            raise ValueError(f"action index must be 0 or 1, got {i}")
        return i
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"action must be an index or have shape ({ACTION_DIM},), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"action must be finite, got {a}")
    return int(np.argmax(a))


class CartPole:
    """One CartPole-v1 environment with state observations.

    Attributes:
        name: "cartpole".
        action_dim: 2 (one-hot: left, right).
        action_low, action_high: (2,) float32, 0 and 1 (one-hot bounds).
        max_steps: an episode is truncated after this many steps (500 in CartPole-v1).
        obs_shape: (4,).
    """

    name = "cartpole"
    action_dim = ACTION_DIM
    obs_shape = (STATE_DIM,)

    def __init__(self, max_steps: int = MAX_STEPS, render_mode: str | None = None) -> None:
        import gymnasium as gym

        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_steps = int(max_steps)
        self.action_low = np.zeros(ACTION_DIM, dtype=np.float32)
        self.action_high = np.ones(ACTION_DIM, dtype=np.float32)
        # rgb_array always: gymnasium draws a frame only when render() is called, so videos just work.
        self._env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=self.max_steps,
                             disable_env_checker=True)
        self.steps = 0
        self.state: np.ndarray | None = None

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode from the initial state of `seed`; returns the state (4,) float32."""
        obs, _ = self._env.reset(seed=int(seed))
        self.steps = 0
        self.state = np.asarray(obs, dtype=np.float32)
        return self.state

    def step(self, action) -> tuple[np.ndarray, float, bool, bool]:
        """Apply `action` (index, or (2,) one-hot / scores: argmax); returns (state, reward, terminated, truncated)."""
        obs, reward, terminated, truncated, _ = self._env.step(action_index(action))
        self.steps += 1
        self.state = np.asarray(obs, dtype=np.float32)
        truncated = bool(truncated or self.steps >= self.max_steps) and not terminated
        return self.state, float(reward), bool(terminated), truncated

    def render(self) -> np.ndarray:
        """An RGB frame (400, 600, 3) uint8."""
        return self._env.render()

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> "CartPole":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_env(max_steps: int = MAX_STEPS, render_mode: str | None = None) -> CartPole:
    """A CartPole-v1 env with state observations, truncated at `max_steps` (500 by default)."""
    return CartPole(max_steps=max_steps, render_mode=render_mode)
