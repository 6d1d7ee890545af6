"""Episode shards and latent files: one `.npz` per episode, written atomically.

Episode shard `episodes/episode_{i:06d}.npz` (written by `collect`):
    frames      uint8   (T+1, 64, 64, 3)  observation before each step, plus the last one
    actions     float32 (T, A)            action taken at step t
    rewards     float32 (T,)              reward received for actions[t]
    terminated  bool    ()                the env terminated after the last step
    truncated   bool    ()                the episode was cut by a time limit
    seed        int64   ()                env seed of the episode

Latent file `latents/episode_{i:06d}.npz` (written by `encode`):
    mu, logvar  float32 (T+1, Z)          V's posterior for every frame
    actions     float32 (T, A)
    rewards     float32 (T,)
    dones       float32 (T,)              1.0 where the episode terminated after step t
    seed        int64   ()

Convention (tested on a hand-made episode): M's step t consumes (z_t, a_t) and predicts
z_{t+1}, rewards[t] and dones[t].
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from .storage import CorruptShardError, atomic_write_bytes

EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")

EPISODE_KEYS = ("frames", "actions", "rewards", "terminated", "truncated", "seed")
LATENT_KEYS = ("mu", "logvar", "actions", "rewards", "dones", "seed")


def episode_name(index: int) -> str:
    """File name of episode `index`."""
    return f"episode_{index:06d}.npz"


def list_episodes(folder: Path | str) -> dict[int, Path]:
    """Finished episode files in `folder` by index (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = EPISODE_RE.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise CorruptShardError(f"shard {path} lacks arrays {missing}")
            return {k: data[k] for k in keys}
    except CorruptShardError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise CorruptShardError(f"shard {path} is corrupt or truncated ({type(e).__name__}: {e})") from e


def save_episode(
    path: Path | str,
    frames: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: bool,
    truncated: bool,
    seed: int,
) -> None:
    """Write one episode shard atomically. Shapes as in the module docstring."""
    arrays = {
        "frames": np.asarray(frames, dtype=np.uint8),
        "actions": np.asarray(actions, dtype=np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminated": np.asarray(bool(terminated)),
        "truncated": np.asarray(bool(truncated)),
        "seed": np.asarray(int(seed), dtype=np.int64),
    }
    _check_episode(Path(path), arrays)
    _save_npz(Path(path), arrays)


def load_episode(path: Path | str) -> dict[str, np.ndarray]:
    """Read and validate one episode shard.

    Raises:
        CorruptShardError: unreadable file, missing arrays, or inconsistent shapes.
    """
    path = Path(path)
    arrays = _load_npz(path, EPISODE_KEYS)
    _check_episode(path, arrays)
    return arrays


def _check_episode(path: Path, a: dict[str, np.ndarray]) -> None:
    f, act, r = a["frames"], a["actions"], a["rewards"]
    if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
        raise CorruptShardError(f"shard {path}: frames must be uint8 (T+1, H, W, 3), got {f.dtype} {f.shape}")
    t = f.shape[0] - 1
    if t < 1:
        raise CorruptShardError(f"shard {path}: an episode needs at least one step, got {t}")
    if act.ndim != 2 or act.shape[0] != t:
        raise CorruptShardError(f"shard {path}: actions must be ({t}, A), got {act.shape}")
    if r.shape != (t,):
        raise CorruptShardError(f"shard {path}: rewards must be ({t},), got {r.shape}")
    if not (np.isfinite(act).all() and np.isfinite(r).all()):
        raise CorruptShardError(f"shard {path}: actions or rewards hold NaN or infinite values")


def save_latents(
    path: Path | str,
    mu: np.ndarray,
    logvar: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    dones: np.ndarray,
    seed: int,
) -> None:
    """Write one episode's latents atomically. Shapes as in the module docstring."""
    arrays = {
        "mu": np.asarray(mu, dtype=np.float32),
        "logvar": np.asarray(logvar, dtype=np.float32),
        "actions": np.asarray(actions, dtype=np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "dones": np.asarray(dones, dtype=np.float32),
        "seed": np.asarray(int(seed), dtype=np.int64),
    }
    _check_latents(Path(path), arrays)
    _save_npz(Path(path), arrays)


def load_latents(path: Path | str) -> dict[str, np.ndarray]:
    """Read and validate one latent file.

    Raises:
        CorruptShardError: unreadable file, missing arrays, or inconsistent shapes.
    """
    path = Path(path)
    arrays = _load_npz(path, LATENT_KEYS)
    _check_latents(path, arrays)
    return arrays


def _check_latents(path: Path, a: dict[str, np.ndarray]) -> None:
    mu, lv = a["mu"], a["logvar"]
    if mu.ndim != 2 or lv.shape != mu.shape:
        raise CorruptShardError(f"latents {path}: mu and logvar must both be (T+1, Z), got {mu.shape} {lv.shape}")
    t = mu.shape[0] - 1
    if a["actions"].ndim != 2 or a["actions"].shape[0] != t:
        raise CorruptShardError(f"latents {path}: actions must be ({t}, A), got {a['actions'].shape}")
    for k in ("rewards", "dones"):
        if a[k].shape != (t,):
            raise CorruptShardError(f"latents {path}: {k} must be ({t},), got {a[k].shape}")
    for k in ("mu", "logvar", "actions", "rewards", "dones"):
        if not np.isfinite(a[k]).all():
            raise CorruptShardError(f"latents {path}: {k} holds NaN or infinite values")
