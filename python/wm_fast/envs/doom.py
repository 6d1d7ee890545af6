"""DoomTakeCover (ViZDoom's `VizdoomTakeCover-v1` through its gymnasium wrapper) as World Models plays it.

The agent stands at one wall of a room; monsters at the other wall throw fireballs. Reward +1 for
every frame alive; an episode ends when the agent dies, or is cut at `max_steps` (2100 frames,
the paper's limit: a minute at 35 frames/s). One step is one game frame (frame skip 1, as in the
paper: a random policy survives ~210 frames).

- Observation: the 160x120 RGB screen (rendered without HUD) area-resized to 64x64 uint8.
- Action: one float a in [-1, 1] (C's single output): move left if a < -1/3, right if a > 1/3,
  else stay. `canonical_action` snaps a to -1 / 0 / +1, the value M is trained and dreams on.
- The episode's game seed comes from the env seed (the wrapper seeds ViZDoom from it).
- ViZDoom writes a `_vizdoom/` folder and `_vizdoom.ini` into the working directory; here both go
  to a private temporary folder removed by `close()`, never into the user's folder.

Needs the `doom` extra: `pip install 'wm-fast[doom]'` (the vizdoom 1.3.2 wheel, ~60 MB, headless).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import numpy as np

from .frames import area_resize

FRAME_SHAPE = (64, 64, 3)
"""Shape of a preprocessed observation."""
RAW_SHAPE = (120, 160, 3)
"""Shape of the screen ViZDoom renders (RES_160X120)."""
MAX_STEPS = 2100
"""The paper's episode limit, in frames."""
GYM_ID = "VizdoomTakeCover-v1"
_STAY, _RIGHT, _LEFT = 0, 1, 2  # the wrapper's Discrete(3): no button, MOVE_RIGHT, MOVE_LEFT


def preprocess(screen: np.ndarray) -> np.ndarray:
    """Area-resize one screen: (120, 160, 3) uint8 -> (64, 64, 3) uint8."""
    screen = np.asarray(screen)
    if screen.shape != RAW_SHAPE:
        raise ValueError(f"preprocess expects a {RAW_SHAPE} screen, got {screen.shape}")
    return area_resize(screen, FRAME_SHAPE[0], FRAME_SHAPE[1])


def canonical_action(action: np.ndarray) -> np.ndarray:
    """(1,) float -> (1,) float32 in {-1, 0, +1}: the move it makes (left, stay, right)."""
    a = float(np.asarray(action, dtype=np.float32).reshape(-1)[0])
    return np.array([1.0 if a > 1 / 3 else -1.0 if a < -1 / 3 else 0.0], dtype=np.float32)


def require_vizdoom():
    """The `vizdoom` module with its gymnasium envs registered, or a ConfigError naming the extra."""
    try:
        import vizdoom
        import vizdoom.gymnasium_wrapper  # noqa: F401  (registers VizdoomTakeCover-v1)
    except ImportError as e:
        from ..errors import ConfigError

        raise ConfigError("the doom environment needs ViZDoom, an optional extra (~60 MB): "
                          "pip install 'wm-fast[doom]'") from e
    return vizdoom


@contextlib.contextmanager
def _working_directory(path: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class TakeCover:
    """One DoomTakeCover game with preprocessed frames (see the module docstring).

    Attributes:
        name: "doom".
        action_dim: 1 (a in [-1, 1], mapped to left / stay / right).
        action_low, action_high: (1,) float32, -1 and 1.
        max_steps: an episode is truncated after this many frames.
        frame_shape: (64, 64, 3).
    """

    name = "doom"
    action_dim = 1
    frame_shape = FRAME_SHAPE

    def __init__(self, max_steps: int = MAX_STEPS, render_mode: str | None = None) -> None:
        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        require_vizdoom()
        import gymnasium as gym

        self.max_steps = int(max_steps)
        self.action_low = np.array([-1.0], dtype=np.float32)
        self.action_high = np.array([1.0], dtype=np.float32)
        self._home = tempfile.mkdtemp(prefix="wm_fast_vizdoom_")
        self._env = gym.make(GYM_ID, screen_resolution="RES_160X120", disable_env_checker=True,
                             doom_config_path=os.path.join(self._home, "_vizdoom.ini"))
        with _working_directory(self._home):  # the engine creates ./_vizdoom/ when it starts
            self._env.unwrapped.game.init()
        self._raw: np.ndarray | None = None
        self.steps = 0

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode whose game is seeded from `seed`; returns the first frame (64, 64, 3) uint8."""
        obs, _ = self._env.reset(seed=int(seed))
        self._raw = obs["screen"]
        self.steps = 0
        return preprocess(self._raw)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Move by `action` (1,) (see `canonical_action`) for one frame; returns (frame, reward,
        terminated, truncated). Reward is +1 for the frame survived. The game shows no screen
        after death: the frame returned then is the last one seen."""
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (1,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite (1,) array, got {a}")
        if self._raw is None:
            raise RuntimeError("call reset() first")
        move = canonical_action(a)[0]
        button = _RIGHT if move > 0 else _LEFT if move < 0 else _STAY
        obs, reward, terminated, truncated, _ = self._env.step(button)
        if not terminated:
            self._raw = obs["screen"]
        self.steps += 1
        truncated = bool(truncated or self.steps >= self.max_steps) and not terminated
        return preprocess(self._raw), float(reward), bool(terminated), truncated

    canonical_action = staticmethod(canonical_action)

    def render(self) -> np.ndarray:
        """The last full screen (120, 160, 3) uint8, for videos."""
        if self._raw is None:
            raise RuntimeError("call reset() first")
        return self._raw

    def close(self) -> None:
        """Stop the game and remove its private folder."""
        self._env.close()
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> "TakeCover":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_env(max_steps: int = MAX_STEPS, render_mode: str | None = None) -> TakeCover:
    """A DoomTakeCover game truncated at `max_steps` frames."""
    return TakeCover(max_steps=max_steps, render_mode=render_mode)
