"""Random-policy data collection into episode shards: parallel, resumable, checked.

`collect` writes episode i (env seed `cfg.seed + i`) to `out_dir/episode_{i:06d}.npz` in the
shard format of `wm_fast.shards` (for a state env such as CartPole, a latent file: its
normalized state is z). Episodes run on the worker pool (`rollout.pool`; in this
process when `cfg.workers == 1`), each worker stepping a VecEnv of `cfg.envs_per_worker`
slots with one random policy per slot, and each worker writes its shards atomically. So a run
killed at any moment (even `kill -9`) keeps every finished episode; the next call checks the
shards that are there (cheaply: `shards.shard_problem`), collects again the missing ones and
any that are truncated or corrupt (saying so), and removes leftover temporary files.

Randomness: the env is reset with the episode seed and the policy draws from its own
generator `policy_rng(seed)`, so an episode depends on its seed only (not on the worker
count, the env slots, or which worker ran it).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import envs
from ..config import CollectConfig
from ..shards import check_disk_space, episode_name, list_episodes, shard_problem
from ..errors import CollectError, ConfigError
from ..records import record_or_check
from .episodes import EpisodeRequest
from .policies import POLICY_NAMES
from .pool import RealEvalError, WorkerPool, WorkerSpec, run_requests, share, short_event

_TEMP_GLOB = ".episode_*.npz.*.tmp"  # what storage.atomic_write_bytes leaves behind if killed
META_NAME = "collect.json"
"""Settings the episodes in a folder were collected with (checked when resuming)."""
_LOCK_NAME = ".collect.lock"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
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


def _check_meta(folder: Path, cfg: CollectConfig, env_name: str, env_backend: str) -> None:
    """Record the settings in `folder/collect.json`, or refuse others than the recorded ones."""
    meta = {"env": env_name, "policy": cfg.policy, "max_steps": cfg.max_steps, "seed": cfg.seed}
    if env_backend != "gymnasium":  # folders made before backends existed hold gymnasium episodes
        meta["env_backend"] = env_backend
    record_or_check(folder / META_NAME, meta, f"the episodes in {folder}", "use another folder or the same settings")


def remove_temp_files(folder: Path | str) -> int:
    """Delete temporary shard files left by a killed writer; returns how many."""
    n = 0
    for p in Path(folder).glob(_TEMP_GLOB):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _validate(cfg: CollectConfig, env_name: str, env_backend: str) -> None:
    envs.check_backend(env_name, env_backend)
    if cfg.policy not in POLICY_NAMES:
        raise ConfigError(f"collect.policy must be one of {', '.join(POLICY_NAMES)}, got {cfg.policy!r}")
    for name in ("episodes", "max_steps", "workers", "envs_per_worker"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"collect.{name} must be positive, got {getattr(cfg, name)}")
    if cfg.seed < 0:
        raise ConfigError(f"collect.seed must be non-negative, got {cfg.seed}")


def collect(
    out_dir: Path | str, cfg: CollectConfig, env_name: str = "carracing", env_backend: str = "gymnasium",
    progress: bool = True, log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Collect episodes 0 .. cfg.episodes-1 into `out_dir`, skipping the complete ones already there.

    Returns stats: episodes (finished episodes now in out_dir), collected_now,
    skipped_existing, recollected_broken (truncated or corrupt shards collected again),
    frames (stored now: T+1 per episode), steps (env steps now), seconds, episodes_per_s,
    frames_per_s, steps_per_s, mean_return (of the episodes collected now; None when none),
    workers, envs_per_worker, env_backend, removed_temp (leftover temporary files deleted),
    estimated_bytes (disk space the new shards were estimated to need).

    Raises:
        ConfigError: bad settings, or settings that differ from those `out_dir` was filled with.
        InsufficientDiskSpaceError: the new shards would not fit on the disk (checked up front).
        CollectError: an episode failed on every try, a worker died for good, or another
            collection holds `out_dir`.
    """
    from tqdm.auto import tqdm

    _validate(cfg, env_name, env_backend)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir):
        _check_meta(out_dir, cfg, env_name, env_backend)
        removed = remove_temp_files(out_dir)
        existing = list_episodes(out_dir)
        facts = envs.facts(env_name)
        kind = "episode" if facts.observation == "frames" else "latents"
        broken = {i: why for i, p in existing.items()
                  if i < cfg.episodes and (why := shard_problem(p, kind)) is not None}  # type: ignore[arg-type]
        for i, why in sorted(broken.items()):
            log(f"[wm-fast] collect: {existing[i]} is unusable ({why}); collecting episode {i} again")
            existing[i].unlink()
        missing = [i for i in range(cfg.episodes) if i not in existing or i in broken]
        skipped = cfg.episodes - len(missing)
        estimated = (check_disk_space(out_dir, len(missing), cfg.max_steps + 1, action_dim=facts.action_dim)
                     if kind == "episode" else 0)
        requests = [EpisodeRequest(cfg.seed + i, keep=True) for i in missing]
        shards = [str(out_dir / episode_name(i)) for i in missing]
        workers, slots = share(max(len(missing), 1), cfg.workers, cfg.envs_per_worker)
        spec = WorkerSpec(env_name, env_backend, cfg.max_steps, slots, policy=cfg.policy)
        start = time.perf_counter()
        stats = {"done": 0, "frames": 0, "steps": 0, "return": 0.0}
        bar = tqdm(total=cfg.episodes, initial=skipped, unit="ep", desc="collect", disable=not progress)

        def on_episode(i: int, out: dict[str, Any]) -> None:
            stats["done"] += 1
            stats["frames"] += out["steps"] + 1
            stats["steps"] += out["steps"]
            stats["return"] += out["return"]
            rate = 1.0 / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix({"ep/s": f"{stats['done'] * rate:.2f}", "frames/s": f"{stats['frames'] * rate:.0f}"},
                            refresh=False)
            bar.update(1)

        if requests:
            with bar, WorkerPool(spec, workers, "inline" if workers == 1 else "local") as pool:
                try:
                    results, report = run_requests(
                        pool, requests, shards, on_episode=on_episode,
                        label=lambda k: f"episode {missing[k]} (env seed {requests[k].seed})")
                except RealEvalError as e:
                    raise CollectError(f"collection workers could not run: {e}; finished episodes are kept: "
                                       "rerun to collect the rest") from e
            failed = [missing[k] for k, r in enumerate(results) if r is None]
            if failed:
                raise CollectError(f"episodes {failed} failed on every try ({short_event(report['events'][-1])}); "
                                   "finished episodes are kept: rerun to collect the rest")
        seconds = time.perf_counter() - start
    done = stats["done"]
    per_s = 1.0 / seconds if seconds > 0 else 0.0
    return {
        "episodes": sum(1 for i in list_episodes(out_dir) if i < cfg.episodes),
        "collected_now": done,
        "skipped_existing": skipped,
        "recollected_broken": len(broken),
        "frames": stats["frames"],
        "steps": stats["steps"],
        "seconds": seconds,
        "episodes_per_s": done * per_s,
        "frames_per_s": stats["frames"] * per_s,
        "steps_per_s": stats["steps"] * per_s,
        "mean_return": stats["return"] / done if done else None,
        "workers": workers,
        "envs_per_worker": spec.num_envs,
        "env_backend": env_backend,
        "removed_temp": removed,
        "estimated_bytes": estimated,
    }
