"""The `Env` protocol: one environment as the rest of wm_fast steps it (below the registry and VecEnv)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Env(Protocol):
    """What the rest of wm_fast expects from an environment.

    Frames are (64, 64, 3) uint8 RGB; actions are (action_dim,) float32 within
    [action_low, action_high]. (CartPole's observations are its (4,) float32 state instead:
    it has no V: z is its normalized state.)
    """

    name: str
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    max_steps: int

    def reset(self, seed: int) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]: ...

    def render(self) -> np.ndarray: ...

    def close(self) -> None: ...
