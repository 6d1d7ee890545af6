"""Random policies for data collection: one per env slot, each reset with its episode's generator.

An episode's actions depend on its env seed only: `policy_rng(seed)` seeds the policy.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

POLICY_NAMES = ("iid", "brownian", "held", "drive")
_POLICY_STREAM = 0x5EED_A17  # mixed into the policy seed so it differs from the env's stream


def policy_rng(seed: int) -> np.random.Generator:
    """The policy's generator for the episode with env seed `seed`."""
    return np.random.default_rng([int(seed), _POLICY_STREAM])


class RandomPolicy:
    """A random policy over the action box [low, high] (both (A,) float32).

    `reset(rng)` starts an episode; `act()` returns the next action (A,) float32 inside the
    box. All randomness comes from the generator given to `reset`.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"low and high must be (A,) arrays, got {self.low.shape} {self.high.shape}")
        self.rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def uniform(self) -> np.ndarray:
        """A uniform action in the box, (A,) float32."""
        return self.rng.uniform(self.low, self.high).astype(np.float32)

    def act(self) -> np.ndarray:
        raise NotImplementedError


class IIDPolicy(RandomPolicy):
    """A fresh uniform action every step."""

    def act(self) -> np.ndarray:
        return self.uniform()


class BrownianPolicy(RandomPolicy):
    """A random walk clipped to the box: a_0 uniform, a_{t+1} = clip(a_t + sqrt(dt) * N(0, 1)).

    As ctallec/world-models' `sample_continuous_policy` with dt = 1/50.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, dt: float = 1 / 50) -> None:
        super().__init__(low, high)
        self.scale = float(np.sqrt(dt))
        self.action: np.ndarray | None = None

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.action = None

    def act(self) -> np.ndarray:
        if self.action is None:
            self.action = self.uniform()
        else:
            step = self.scale * self.rng.standard_normal(self.low.shape)
            self.action = np.clip(self.action + step, self.low, self.high).astype(np.float32)
        return self.action.copy()


class HeldPolicy(RandomPolicy):
    """A uniform action held for a uniform number of steps in [min_hold, max_hold].

    As the original DoomTakeCover collection (an action repeated for 1-10 steps).
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, min_hold: int = 1, max_hold: int = 10) -> None:
        super().__init__(low, high)
        if not 1 <= min_hold <= max_hold:
            raise ValueError(f"need 1 <= min_hold <= max_hold, got {min_hold}, {max_hold}")
        self.min_hold, self.max_hold = min_hold, max_hold
        self.action: np.ndarray | None = None
        self.left = 0

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.action, self.left = None, 0

    def act(self) -> np.ndarray:
        if self.left == 0 or self.action is None:
            self.action = self.uniform()
            self.left = int(self.rng.integers(self.min_hold, self.max_hold + 1))
        self.left -= 1
        return self.action.copy()


class DrivePolicy(RandomPolicy):
    """CarRacing's (steer, gas, brake): a random driver that stays on the road longer, so that the
    data holds the track's tiles and their rewards, not only grass.

    Steering is an Ornstein-Uhlenbeck walk around straight ahead (s += -theta*s + sigma*N(0,1),
    clipped to [-1, 1]); gas is a uniform level in [0.3, 1] held 10-50 steps; with probability
    `brake_prob` a step starts a brake of 1-5 steps at a uniform level in [0.3, 0.8], without gas.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, theta: float = 0.15, sigma: float = 0.3,
                 brake_prob: float = 0.02) -> None:
        super().__init__(low, high)
        if self.low.shape != (3,):
            raise ConfigError("the drive policy is for CarRacing's 3 actions (steer, gas, brake); "
                              f"this env has {self.low.shape[0]}")
        self.theta, self.sigma, self.brake_prob = theta, sigma, brake_prob
        self.steer, self.gas, self.gas_left, self.brake, self.brake_left = 0.0, 0.0, 0, 0.0, 0

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.steer, self.gas, self.gas_left, self.brake, self.brake_left = 0.0, 0.0, 0, 0.0, 0

    def act(self) -> np.ndarray:
        rng = self.rng
        self.steer = float(np.clip(self.steer * (1 - self.theta) + self.sigma * rng.standard_normal(), -1, 1))
        if self.gas_left == 0:
            self.gas, self.gas_left = float(rng.uniform(0.3, 1.0)), int(rng.integers(10, 51))
        self.gas_left -= 1
        if self.brake_left == 0 and rng.random() < self.brake_prob:
            self.brake, self.brake_left = float(rng.uniform(0.3, 0.8)), int(rng.integers(1, 6))
        braking = self.brake_left > 0
        self.brake_left = max(self.brake_left - 1, 0)
        action = np.array([self.steer, 0.0 if braking else self.gas, self.brake if braking else 0.0], dtype=np.float32)
        return np.clip(action, self.low, self.high)


_POLICIES: dict[str, type[RandomPolicy]] = {
    "iid": IIDPolicy,
    "brownian": BrownianPolicy,
    "held": HeldPolicy,
    "drive": DrivePolicy,
}


def make_policy(name: str, low: np.ndarray, high: np.ndarray) -> RandomPolicy:
    """Random policy `name` ("iid", "brownian", "held" or CarRacing's "drive") over the box [low, high]."""
    if name not in _POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    return _POLICIES[name](low, high)
