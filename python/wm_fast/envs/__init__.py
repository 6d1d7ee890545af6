"""Environments by name: `make("carracing", backend="gymnasium", max_steps=...)`, or N of them
as one `VecEnv` (envs/vec.py): `make_vec("carracing", 8, max_steps, backend="envpool")`.

Every environment module defines a factory per backend, `make_env(max_steps: int = ...,
render_mode=None)`, returning an object with the `Env` interface (envs/base.py). Adding an
environment is a new module plus one `EnvSpec` line in `_REGISTRY`, which declares the facts
the pipeline reads instead of hard-coding them (observation kind, action mapping, controller
input, reward source, episode limit, backends); its presets are in config.py. Modules are
imported only when `make` is called, so importing `wm_fast.envs` does not load Box2D,
EnvPool, ViZDoom, ...; `spec(name)` answers the static facts without importing anything.

A name of the form "package.module:factory" is imported as is, so you can collect data from
your own environment without editing the library.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable


from ..errors import ConfigError
from .base import Env

if TYPE_CHECKING:
    from .vec import VecEnv


BACKENDS = ("gymnasium", "envpool")
"""Implementations an environment may have: gymnasium's (the reference) or EnvPool's C++ one."""


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a registered environment: the pipeline reads them, never hard-codes them."""

    name: str
    """Registry name, e.g. "carracing"."""
    factories: dict[str, str]
    """Backend ("gymnasium", "envpool") -> "module:function" of its factory, imported by `make`."""
    action_dim: int
    """Size of the action vector the env's `step` takes."""
    action_mapping: str
    """How C's outputs become actions: "carracing", "threshold" or "argmax" (see controller.py)."""
    observation: str = "frames"
    """"frames" (64x64x3 uint8, encoded by V) or "state" (a float vector used as z directly: no V)."""
    controller_input: str = "zh"
    """What C reads: "zh" ([z, h]) or "zch" ([z, c, h])."""
    reward_source: str = "model"
    """Dream reward: "model" (M's reward head) or "alive" (+1 per step survived)."""
    default_max_steps: int = 1000
    """The environment's own episode limit."""

    @property
    def factory(self) -> str:
        """The gymnasium factory (the reference implementation)."""
        return self.factories["gymnasium"]


_REGISTRY: dict[str, EnvSpec] = {
    "carracing": EnvSpec("carracing", {"gymnasium": "wm_fast.envs.carracing:make_env",
                                       "envpool": "wm_fast.envs.carracing:make_envpool_env"}, 3, "carracing"),
    "cartpole": EnvSpec("cartpole", {"gymnasium": "wm_fast.envs.cartpole:make_env"}, 2, "argmax",
                        observation="state", reward_source="alive", default_max_steps=500),
    "doom": EnvSpec("doom", {"gymnasium": "wm_fast.envs.doom:make_env"}, 1, "threshold",
                    controller_input="zch", reward_source="alive", default_max_steps=2100),
}


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


def check_backend(name: str, backend: str) -> None:
    """Raise ConfigError unless environment `name` has an implementation on `backend`."""
    check(name)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown env backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if name in _REGISTRY and backend not in _REGISTRY[name].factories:
        raise ConfigError(f"environment {name!r} has no {backend} implementation; it has: "
                          f"{', '.join(_REGISTRY[name].factories)}")
    if name not in _REGISTRY and backend != "gymnasium":
        raise ConfigError(f"a 'module:function' environment ({name!r}) runs on the gymnasium backend only")


def factory(name: str, backend: str = "gymnasium") -> Callable[..., Env]:
    """The factory function of environment `name` on `backend` (imports its module).

    Raises:
        ConfigError: unknown name or backend, or a "module:function" path that cannot be imported.
    """
    check_backend(name, backend)
    if name in _REGISTRY:  # a registered env whose dependencies are missing keeps its real error
        module, _, attr = _REGISTRY[name].factories[backend].partition(":")
        return getattr(importlib.import_module(module), attr)
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"environment {name!r} cannot be imported ({type(e).__name__}: {e})") from e


def make(name: str, backend: str = "gymnasium", **kwargs: Any) -> Env:
    """Make environment `name` (e.g. "carracing") on `backend` with `kwargs` for its factory.

    Raises:
        ConfigError: unknown name or backend.
    """
    return factory(name, backend)(**kwargs)


def make_vec(name: str, num_envs: int, max_steps: int, backend: str = "gymnasium") -> "VecEnv":
    """`num_envs` environments `name` on `backend` as one VecEnv (see envs/vec.py)."""
    from .vec import VecEnv

    make_one = factory(name, backend)
    return VecEnv(lambda: make_one(max_steps=max_steps), num_envs, backend)


@functools.lru_cache(maxsize=None)
def facts(name: str) -> EnvSpec:
    """The registry facts of `name`; a "module:function" env gets frames, [z, h], M's reward and
    its own `action_dim` / `action_mapping` attributes (one env is made to read them, once per process)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    env = make(name, max_steps=1)
    try:
        return EnvSpec(name, {"gymnasium": name}, int(env.action_dim),
                       str(getattr(env, "action_mapping", "carracing")))
    finally:
        env.close()
