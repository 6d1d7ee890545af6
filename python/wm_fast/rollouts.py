"""Random-policy data collection: policies, one episode, and parallel, resumable collection.

`collect` writes episode i (env seed `cfg.seed + i`) to `out_dir/episode_{i:06d}.npz` in the
shard format of `wm_fast.shards`. Shards are written atomically by the worker that collected
them, so a run killed at any moment (even `kill -9`) keeps every finished episode, and the
next call collects only the missing indices. Leftover temporary files are removed on start.

Randomness: the env is reset with the episode seed and the policy draws from its own
generator `policy_rng(seed)`, so an episode depends on its seed only (not on the worker
count or on which worker ran it).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import envs
from .config import CollectConfig, ConfigError
from .shards import episode_name, list_episodes, save_episode
from .storage import WmFastError, atomic_write_json, read_json

POLICY_NAMES = ("iid", "brownian", "held")
_POLICY_STREAM = 0x5EED_A17  # mixed into the policy seed so it differs from the env's stream
_TEMP_GLOB = ".episode_*.npz.*.tmp"  # what storage.atomic_write_bytes leaves behind if killed
META_NAME = "collect.json"
"""Settings the episodes in a folder were collected with (checked when resuming)."""
_LOCK_NAME = ".collect.lock"


class CollectError(WmFastError):
    """Collection failed: an episode raised, a worker died, or the folder is in use."""


# ----------------------------------------------------------------------------- policies


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


_POLICIES: dict[str, type[RandomPolicy]] = {
    "iid": IIDPolicy,
    "brownian": BrownianPolicy,
    "held": HeldPolicy,
}


def make_policy(name: str, low: np.ndarray, high: np.ndarray) -> RandomPolicy:
    """Random policy `name` ("iid", "brownian" or "held") over the box [low, high]."""
    if name not in _POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    return _POLICIES[name](low, high)


# ----------------------------------------------------------------------------- one episode


def collect_episode(
    env: envs.Env, policy: RandomPolicy | str, seed: int, max_steps: int
) -> dict[str, Any]:
    """Run one episode of `policy` from `env.reset(seed)`, at most `max_steps` steps.

    Returns the shard arrays (see `wm_fast.shards`), with T the number of steps:
        frames (T+1, H, W, 3) uint8, actions (T, A) float32, rewards (T,) float32,
        terminated bool, truncated bool (True when cut at max_steps), seed int.
    """
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if isinstance(policy, str):
        policy = make_policy(policy, env.action_low, env.action_high)
    policy.reset(policy_rng(seed))
    first = env.reset(seed)
    frames = np.empty((max_steps + 1, *first.shape), dtype=np.uint8)
    actions = np.empty((max_steps, len(policy.low)), dtype=np.float32)
    rewards = np.empty((max_steps,), dtype=np.float32)
    frames[0] = first
    terminated = truncated = False
    t = 0
    while t < max_steps and not (terminated or truncated):
        actions[t] = policy.act()
        frames[t + 1], rewards[t], terminated, truncated = env.step(actions[t])
        t += 1
    return {
        "frames": frames[: t + 1],
        "actions": actions[:t],
        "rewards": rewards[:t],
        "terminated": bool(terminated),
        "truncated": bool(truncated or not terminated),
        "seed": int(seed),
    }


def _episode_to_file(
    env: envs.Env, policy: str, index: int, seed: int, max_steps: int, path: Path
) -> dict[str, Any]:
    """Collect episode `index` and write its shard to `path`; returns small stats."""
    start = time.perf_counter()
    ep = collect_episode(env, policy, seed, max_steps)
    save_episode(path, **ep)
    steps = len(ep["actions"])
    return {
        "index": index,
        "steps": steps,
        "frames": steps + 1,
        "return": float(ep["rewards"].sum(dtype=np.float64)),
        "terminated": ep["terminated"],
        "seconds": time.perf_counter() - start,
    }


# ----------------------------------------------------------------------------- workers

Task = tuple[int, int, Path]  # (index, env seed, shard path)
_worker_env: dict[str, Any] = {}  # per worker process: the one env it keeps alive


def _worker_init(parent_pid: int) -> None:
    """Worker start: leave Ctrl-C to the parent, and die if the parent dies (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan keeps writing shards
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _worker_task(
    env_name: str, policy: str, index: int, seed: int, max_steps: int, path: Path
) -> dict[str, Any]:
    """Run in a worker: collect one episode with the worker's long-lived env."""
    key = (env_name, max_steps)
    if _worker_env.get("key") != key:
        if "env" in _worker_env:
            _worker_env.pop("env").close()
        _worker_env["env"] = envs.make(env_name, max_steps=max_steps)
        _worker_env["key"] = key
    return _episode_to_file(_worker_env["env"], policy, index, seed, max_steps, path)


def _run_in_process(tasks: list[Task], env_name: str, cfg: CollectConfig) -> Iterator[dict[str, Any]]:
    """Collect `tasks` one after the other with one env in this process."""
    env = envs.make(env_name, max_steps=cfg.max_steps)
    try:
        for index, seed, path in tasks:
            try:
                yield _episode_to_file(env, cfg.policy, index, seed, cfg.max_steps, path)
            except Exception as e:
                raise CollectError(
                    f"collecting episode {index} (env seed {seed}) failed: {type(e).__name__}: {e}"
                ) from e
    finally:
        env.close()


def _run_pool(
    tasks: list[Task], env_name: str, cfg: CollectConfig, workers: int
) -> Iterator[dict[str, Any]]:
    """Collect `tasks` over `workers` spawned processes; yields stats as episodes finish.

    At most 2 * workers episodes are queued at once. On any error, or when the consumer
    stops early, the remaining episodes are cancelled and the workers terminated.
    """
    pool = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),)
    )
    pending: dict[Future, Task] = {}
    queue = iter(tasks)
    ok = False
    try:
        while True:
            while len(pending) < 2 * workers and (task := next(queue, None)) is not None:
                index, seed, path = task
                fut = pool.submit(_worker_task, env_name, cfg.policy, index, seed, cfg.max_steps, path)
                pending[fut] = task
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                index, seed, _ = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool as e:
                    raise CollectError(
                        f"a collection worker died (crashed or was killed) while episode {index} "
                        "was running; finished episodes are kept: rerun to collect the rest"
                    ) from e
                except Exception as e:
                    raise CollectError(
                        f"collecting episode {index} (env seed {seed}) failed in a worker: "
                        f"{type(e).__name__}: {e}"
                    ) from e
        ok = True
    finally:
        _stop_pool(pool, graceful=ok)


def _stop_pool(pool: ProcessPoolExecutor, graceful: bool) -> None:
    """Shut the pool down; unless `graceful`, terminate the workers instead of waiting."""
    if graceful:
        pool.shutdown(wait=True)
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(timeout=10)


# ----------------------------------------------------------------------------- collect


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (released by the OS even on kill -9)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: no lock
        yield
        return
    with open(folder / _LOCK_NAME, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CollectError(f"another collection is writing to {folder}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_meta(folder: Path, cfg: CollectConfig, env_name: str) -> None:
    """Record the settings in `folder/collect.json`, or check them against the recorded ones."""
    meta = {"env": env_name, "policy": cfg.policy, "max_steps": cfg.max_steps, "seed": cfg.seed}
    path = folder / META_NAME
    if not path.exists():
        atomic_write_json(path, meta)
        return
    old = read_json(path)
    diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
    if diff:
        what = ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{folder} holds episodes collected with {what}; use another folder or the same settings"
        )


def remove_temp_files(folder: Path | str) -> int:
    """Delete temporary shard files left by a killed writer; returns how many."""
    n = 0
    for p in Path(folder).glob(_TEMP_GLOB):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _validate(cfg: CollectConfig, env_name: str) -> None:
    envs.check(env_name)
    if cfg.policy not in POLICY_NAMES:
        raise ConfigError(f"collect.policy must be one of {', '.join(POLICY_NAMES)}, got {cfg.policy!r}")
    for name in ("episodes", "max_steps", "workers"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"collect.{name} must be positive, got {getattr(cfg, name)}")
    if cfg.seed < 0:
        raise ConfigError(f"collect.seed must be non-negative, got {cfg.seed}")


def collect(
    out_dir: Path | str, cfg: CollectConfig, env_name: str = "carracing", progress: bool = True
) -> dict[str, Any]:
    """Collect episodes 0 .. cfg.episodes-1 into `out_dir`, skipping those already there.

    Runs in this process when `cfg.workers == 1`, else over `cfg.workers` spawned worker
    processes that each keep one env alive and write their own shards.

    Returns stats: episodes (finished episodes now in out_dir), collected_now,
    skipped_existing, frames (stored now: T+1 per episode), steps (env steps now), seconds,
    episodes_per_s, frames_per_s, steps_per_s, mean_return (of the episodes collected now),
    workers, removed_temp (leftover temporary files deleted).

    Raises:
        ConfigError: bad settings, or settings that differ from those `out_dir` was filled with.
        CollectError: an episode failed, a worker died, or another collection holds `out_dir`.
    """
    from tqdm.auto import tqdm

    _validate(cfg, env_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out_dir):
        _check_meta(out_dir, cfg, env_name)
        removed = remove_temp_files(out_dir)
        existing = list_episodes(out_dir)
        missing = [i for i in range(cfg.episodes) if i not in existing]
        tasks = [(i, cfg.seed + i, out_dir / episode_name(i)) for i in missing]
        skipped = cfg.episodes - len(tasks)
        workers = min(cfg.workers, len(tasks))
        if not tasks:
            results: Iterator[dict[str, Any]] = (s for s in ())
        elif workers > 1:
            results = _run_pool(tasks, env_name, cfg, workers)
        else:
            results = _run_in_process(tasks, env_name, cfg)

        start = time.perf_counter()
        done = frames = steps = 0
        returns = 0.0
        bar = tqdm(total=cfg.episodes, initial=skipped, unit="ep", desc="collect", disable=not progress)
        with bar, contextlib.closing(results):  # closing: stop the workers if we leave early
            for s in results:
                done, frames, steps = done + 1, frames + s["frames"], steps + s["steps"]
                returns += s["return"]
                rate = 1.0 / max(time.perf_counter() - start, 1e-9)
                postfix = {"ep/s": f"{done * rate:.2f}", "frames/s": f"{frames * rate:.0f}"}
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
        seconds = time.perf_counter() - start
    per_s = 1.0 / seconds if seconds > 0 else 0.0
    return {
        "episodes": sum(1 for i in list_episodes(out_dir) if i < cfg.episodes),
        "collected_now": done,
        "skipped_existing": skipped,
        "frames": frames,
        "steps": steps,
        "seconds": seconds,
        "episodes_per_s": done * per_s,
        "frames_per_s": frames * per_s,
        "steps_per_s": steps * per_s,
        "mean_return": returns / done if done else float("nan"),
        "workers": max(workers, 1),
        "removed_temp": removed,
    }
