"""Environments by name: `make("carracing", max_steps=...)`.

Every environment module defines a factory `make_env(max_steps: int = ..., render_mode=None)`
returning an object with the `Env` interface below. Adding an environment is a new module
plus one `EnvSpec` line in `_REGISTRY`. Modules are imported only when `make` is called, so
importing `wm_fast.envs` does not load Box2D, ViZDoom, ...; `spec(name)` answers the static
facts (action size, how the controller's outputs become actions) without importing anything.

A name of the form "package.module:factory" is imported as is, so you can collect data from
your own environment without editing the library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from ..config import ConfigError


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a registered environment."""

    name: str
    """Registry name, e.g. "carracing"."""
    factory: str
    """"module:function" of the factory, imported by `make`."""
    action_dim: int
    """Size of the action vector the env's `step` takes."""
    action_mapping: str
    """How C's outputs become actions: "carracing", "threshold" or "argmax" (see controller.py)."""
    reward_source: str = "model"
    """Dream reward: "model" (M's reward head) or "alive" (+1 per step survived)."""
    own_pipeline: str | None = None
    """For envs without pixel frames (no V): the command of their own pipeline, which replaces
    the V/M/C pixel pipeline (`Run`, `wm-fast run/collect/train-vae/...`)."""


_REGISTRY: dict[str, EnvSpec] = {
    "carracing": EnvSpec("carracing", "wm_fast.envs.carracing:make_env", 3, "carracing"),
    "cartpole": EnvSpec("cartpole", "wm_fast.envs.cartpole:make_env", 2, "argmax", "alive",
                        own_pipeline="wm-fast cartpole --run-dir D"),
}


class Env(Protocol):
    """What the rest of wm_fast expects from an environment.

    Frames are (64, 64, 3) uint8 RGB; actions are (action_dim,) float32 within
    [action_low, action_high]. (CartPole's observations are its (4,) float32 state instead:
    it has no V; see wm_fast.cartpole.)
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


def names() -> tuple[str, ...]:
    """The registered environment names."""
    return tuple(_REGISTRY)


def spec(name: str) -> EnvSpec:
    """The `EnvSpec` of registered environment `name`.

    Raises:
        ConfigError: `name` is not registered.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown environment {name!r}; known environments: {', '.join(names())}")
    return _REGISTRY[name]


def check(name: str) -> None:
    """Raise ConfigError if `name` is neither registered nor a "module:function" path.

    Imports nothing, so a parent process can validate before starting workers.
    """
    if name not in _REGISTRY and ":" not in name:
        raise ConfigError(f"unknown environment {name!r}; known environments: {', '.join(names())}")


def check_pixel_pipeline(name: str) -> None:
    """Raise ConfigError if `name` is a registered env that the pixel pipeline does not serve."""
    check(name)
    own = _REGISTRY[name].own_pipeline if name in _REGISTRY else None
    if own is not None:
        raise ConfigError(f"environment {name!r} has no pixel frames for V, so the V/M/C pipeline (run, collect, "
                          f"train-vae, encode, train-rnn, train-controller, iterate) does not apply to it; "
                          f"use `{own}`")


def factory(name: str) -> Callable[..., Env]:
    """The factory function of environment `name` (imports its module).

    Raises:
        ConfigError: unknown name, or a "module:function" path that cannot be imported.
    """
    check(name)
    module, _, attr = (_REGISTRY[name].factory if name in _REGISTRY else name).partition(":")
    if name in _REGISTRY:  # a registered env whose dependencies are missing keeps its real error
        return getattr(importlib.import_module(module), attr)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"environment {name!r} cannot be imported ({type(e).__name__}: {e})") from e


def make(name: str, **kwargs: Any) -> Env:
    """Make environment `name` (e.g. "carracing") with `kwargs` for its factory.

    Raises:
        ConfigError: unknown name.
    """
    return factory(name)(**kwargs)
