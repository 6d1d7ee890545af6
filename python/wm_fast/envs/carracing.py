"""CarRacing-v3 (gymnasium, continuous actions) with World Models' 64x64 observations.

Each 96x96x3 frame is cropped to rows 0:84 (the dashboard at the bottom is dropped) and
area-resized to 64x64 uint8 RGB by `preprocess`. Actions are (steer, gas, brake) in the box
[-1, 0, 0] .. [1, 1, 1].
"""

from __future__ import annotations

import numpy as np

from .frames import area_resize

FRAME_SHAPE = (64, 64, 3)
"""Shape of a preprocessed observation."""
RAW_SHAPE = (96, 96, 3)
"""Shape of the environment's own observation."""
CROP_ROWS = 84
"""Rows kept from the top of the raw frame; the rows below hold the dashboard."""
ACTION_LOW = np.array([-1.0, 0.0, 0.0], dtype=np.float32)
ACTION_HIGH = np.array([1.0, 1.0, 1.0], dtype=np.float32)


def preprocess(obs: np.ndarray) -> np.ndarray:
    """Crop the dashboard and area-resize one frame: (96, 96, 3) uint8 -> (64, 64, 3) uint8.

    Deterministic: fixed area weights (exact pixel overlaps), then round half to even.
    """
    obs = np.asarray(obs)
    if obs.shape != RAW_SHAPE:
        raise ValueError(f"preprocess expects a {RAW_SHAPE} frame, got {obs.shape}")
    return area_resize(obs[:CROP_ROWS], FRAME_SHAPE[0], FRAME_SHAPE[1])


class CarRacing:
    """One CarRacing-v3 environment with preprocessed observations.

    Attributes:
        name: "carracing".
        action_dim: 3 (steer in [-1, 1], gas in [0, 1], brake in [0, 1]).
        action_low, action_high: (3,) float32 bounds of the action box.
        max_steps: an episode is truncated after this many steps.
        frame_shape: (64, 64, 3).
    """

    name = "carracing"
    action_dim = 3
    frame_shape = FRAME_SHAPE

    def __init__(self, max_steps: int = 1000, render_mode: str | None = None) -> None:
        import gymnasium as gym  # lazy: Box2D loads only when an env is made

        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_steps = int(max_steps)
        self.action_low = ACTION_LOW.copy()
        self.action_high = ACTION_HIGH.copy()
        self._env = gym.make(
            "CarRacing-v3",
            continuous=True,
            render_mode=render_mode,
            max_episode_steps=self.max_steps,
            disable_env_checker=True,
        )
        self._raw: np.ndarray | None = None
        self.steps = 0

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode on the track of `seed`; returns the first frame (64, 64, 3) uint8."""
        obs, _ = self._env.reset(seed=int(seed))
        self._raw = obs
        self.steps = 0
        return preprocess(obs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Apply `action` (3,) (clipped to the box); returns (frame, reward, terminated, truncated).

        `truncated` is True when the episode reaches `max_steps` without terminating.
        """
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (self.action_dim,):
            raise ValueError(f"action must have shape ({self.action_dim},), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, self.action_low, self.action_high)
        obs, reward, terminated, truncated, _ = self._env.step(a)
        self._raw = obs
        self.steps += 1
        truncated = bool(truncated or self.steps >= self.max_steps)
        return preprocess(obs), float(reward), bool(terminated), truncated

    @property
    def raw_obs(self) -> np.ndarray:
        """The last full-resolution observation (96, 96, 3) uint8, dashboard included."""
        if self._raw is None:
            raise RuntimeError("call reset() first")
        return self._raw

    def render(self) -> np.ndarray:
        """A full-resolution RGB frame for videos.

        (400, 600, 3) uint8 from the env's renderer when made with render_mode="rgb_array",
        otherwise the last raw observation (96, 96, 3).
        """
        if self._env.render_mode == "rgb_array":
            return self._env.render()
        return self.raw_obs

    def close(self) -> None:
        """Release the environment (pygame surfaces, Box2D world)."""
        self._env.close()

    def __enter__(self) -> "CarRacing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_env(max_steps: int = 1000, render_mode: str | None = None) -> CarRacing:
    """A CarRacing-v3 env truncated at `max_steps`; `render_mode="rgb_array"` for videos."""
    return CarRacing(max_steps=max_steps, render_mode=render_mode)


class EnvPoolCarRacing(CarRacing):
    """CarRacing-v3 from EnvPool's C++ implementation, with the same interface and preprocessing.

    Each `reset(seed)` makes a fresh one-env pool seeded `seed` (about 2 ms), so an episode
    depends on its seed only. EnvPool generates tracks from its own RNG and draws frames with
    OpenCV: the same seed gives another track than gymnasium's, and frames differ in detail
    (a V trained on one backend reconstructs the other's frames worse). Needs the `envpool`
    extra: `pip install 'wm-fast[envpool]'`.
    """

    def __init__(self, max_steps: int = 1000, render_mode: str | None = None) -> None:
        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        self.envpool = require_envpool()
        self.max_steps = int(max_steps)
        self.action_low = ACTION_LOW.copy()
        self.action_high = ACTION_HIGH.copy()
        self._pool = None
        self._raw = None
        self.steps = 0

    def reset(self, seed: int) -> np.ndarray:
        if self._pool is not None:
            self._pool.close()
        self._pool = self.envpool.make_gymnasium("CarRacing-v3", num_envs=1, batch_size=1, num_threads=1,
                                                 seed=int(seed), max_episode_steps=self.max_steps)
        obs, _ = self._pool.reset()
        self._raw = obs[0]
        self.steps = 0
        return preprocess(obs[0])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (self.action_dim,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite ({self.action_dim},) array, got {a}")
        if self._pool is None:
            raise RuntimeError("call reset() first")
        obs, reward, terminated, truncated, _ = self._pool.step(np.clip(a, self.action_low, self.action_high)[None])
        self._raw = obs[0]
        self.steps += 1
        return preprocess(obs[0]), float(reward[0]), bool(terminated[0]), bool(truncated[0] or self.steps >= self.max_steps)

    def render(self) -> np.ndarray:
        """The last raw observation (96, 96, 3): EnvPool has no high-resolution renderer."""
        return self.raw_obs

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def require_envpool():
    """The `envpool` module, or a ConfigError naming the extra that installs it."""
    try:
        import envpool
    except ImportError as e:
        from ..errors import ConfigError

        raise ConfigError("the envpool backend needs EnvPool, an optional extra (~600 MB): "
                          "pip install 'wm-fast[envpool]'") from e
    return envpool


def make_envpool_env(max_steps: int = 1000, render_mode: str | None = None) -> EnvPoolCarRacing:
    """A CarRacing-v3 env on EnvPool's C++ implementation, truncated at `max_steps`."""
    return EnvPoolCarRacing(max_steps=max_steps, render_mode=render_mode)
