"""A cheap deterministic environment for worker tests, used as env name "fake_env:make_env".

Faults are injected through files in the folder named by $WM_FAST_FAKE_FAULTS, checked at
every reset, each consumed by the one worker that renames it first (so it fires once):
  kill    the worker SIGKILLs itself (a crash mid-generation)
  hang    the worker sleeps for an hour (a hung env)
  raise   the env raises RuntimeError
A file "sleep" holding a number makes every step sleep that many seconds, and a file
"raise_seeds" (one env seed a line) makes every reset with one of those seeds raise;
neither is consumed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np


def _take(name: str) -> bool:
    folder = os.environ.get("WM_FAST_FAKE_FAULTS")
    if not folder:
        return False
    try:
        os.rename(Path(folder) / name, Path(folder) / f"{name}.taken.{os.getpid()}")
        return True
    except OSError:
        return False


class FakeEnv:
    name = "fake"
    action_dim = 3
    action_mapping = "carracing"

    def __init__(self, max_steps: int = 20, render_mode=None):
        self.max_steps = max_steps
        self.action_low = np.array([-1.0, 0.0, 0.0], dtype=np.float32)
        self.action_high = np.array([1.0, 1.0, 1.0], dtype=np.float32)
        self.sleep = 0.0

    def _frame(self) -> np.ndarray:
        return np.full((64, 64, 3), (self.seed * 7 + self.t * 13) % 256, dtype=np.uint8)

    def reset(self, seed: int) -> np.ndarray:
        if _take("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        if _take("hang"):
            time.sleep(3600)
        if _take("raise"):
            raise RuntimeError("fake env fault on purpose")
        folder = Path(os.environ.get("WM_FAST_FAKE_FAULTS", "/nonexistent"))
        if (folder / "raise_seeds").exists() and str(seed) in (folder / "raise_seeds").read_text().split():
            raise RuntimeError(f"fake env always fails on seed {seed}")
        self.sleep = float((folder / "sleep").read_text()) if (folder / "sleep").exists() else 0.0
        self.seed, self.t = int(seed), 0
        self.offset = float(np.random.default_rng(seed).normal())
        return self._frame()

    def step(self, action: np.ndarray):
        if self.sleep:
            time.sleep(self.sleep)
        self.t += 1
        reward = self.offset - float((action[0] - 0.5) ** 2)
        return self._frame(), reward, False, self.t >= self.max_steps

    def render(self) -> np.ndarray:
        return self._frame()

    def close(self) -> None:
        pass


def make_env(max_steps: int = 20, render_mode=None) -> FakeEnv:
    return FakeEnv(max_steps, render_mode)
