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

Both are written as zip archives of `.npy` entries compressed with DEFLATE (zlib level 1), so
they stay ordinary `.npz` files that `np.load` reads. Measured on CarRacing random-policy
episodes (4 episodes, 500 and 1000 steps, three policies): 1.13-1.62 KB per frame instead of
12.3 KB (7.6x-10.9x smaller); a 500-frame episode writes in 22-30 ms (fsync included) and
reads in 9-11 ms (uncompressed: 5-10 and 3-7 ms). Uncompressed shards written by older
versions (plain `np.savez`) load as before.

`shard_problem` / `shard_is_complete` find a truncated or broken shard without decompressing
its frames; `check_disk_space` refuses a collection that would not fit on the disk up front.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from .storage import CorruptShardError, InsufficientDiskSpaceError, atomic_write_bytes

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


COMPRESS_LEVEL = 1
"""zlib level of shard entries: 7.6x-10.9x smaller than raw CarRacing frames, and fast."""


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as a DEFLATE-compressed `.npz` (one `<name>.npy` entry each), atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
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
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError) as e:
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


# --------------------------------------------------------------------------------------
# Cheap completeness check (no frame decompression)
# --------------------------------------------------------------------------------------

_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header


def npy_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the `.npy` entry `name` of an open `.npz`.

    Reads only the start of the entry (a few KB of a compressed one), never its data.

    Raises:
        KeyError: no such entry. ValueError, EOFError, zipfile.BadZipFile, zlib.error: a
            broken entry.
    """
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version} in {name}")
        return tuple(int(d) for d in shape), dtype, f.tell()


def _entries_inside_file(zf: zipfile.ZipFile, path: Path) -> str | None:
    """Check every entry's local header and that its data ends before the central directory."""
    fp = zf.fp
    assert fp is not None
    end = getattr(zf, "start_dir", None)
    if end is None:
        end = path.stat().st_size
    for info in zf.infolist():
        fp.seek(info.header_offset)
        head = fp.read(_LOCAL_HEADER_SIZE)
        if len(head) < _LOCAL_HEADER_SIZE or head[:4] != _LOCAL_HEADER:
            return f"entry {info.filename} has no valid local header"
        name_len = int.from_bytes(head[26:28], "little")
        extra_len = int.from_bytes(head[28:30], "little")
        data_end = info.header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len + info.compress_size
        if data_end > end:
            return f"entry {info.filename} runs past the end of its data ({data_end} > {end} bytes)"
    return None


def shard_problem(path: Path | str, kind: Literal["episode", "latents"] = "episode") -> str | None:
    """Why the shard at `path` is unusable, or None when it is complete.

    Cheap: reads the zip's central directory and local headers, checks that every required
    array is present and lies inside the file, reads the `.npy` header of `frames` (a few KB
    of it, never the frames) and reads the small arrays in full (their CRC is checked). The
    shapes must be consistent as `load_episode` requires. A truncated file (any cut, since
    the central directory sits at the end), a missing array, a half-written header or a
    broken small array are found; a bit flip inside the compressed frames is not (only
    `load_episode`, which decompresses them, finds that).

    For `kind="latents"` the whole file is read and checked (latent files are small).

    Returns:
        None, or a short reason, e.g. "missing", "not a zip archive (truncated or corrupt)",
        "lacks arrays ['frames']".
    """
    path = Path(path)
    if kind not in ("episode", "latents"):
        raise ValueError(f"kind must be 'episode' or 'latents', got {kind!r}")
    if not path.exists():
        return "missing"
    if kind == "latents":
        try:
            load_latents(path)
        except CorruptShardError as e:
            return str(e)
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in EPISODE_KEYS if f"{k}.npy" not in names]
            if missing:
                return f"lacks arrays {missing}"
            problem = _entries_inside_file(zf, path)
            if problem:
                return problem
            shape, dtype, header_len = npy_header(zf, "frames.npy")
            expected = header_len + math.prod(shape) * dtype.itemsize
            actual = zf.getinfo("frames.npy").file_size
            if actual != expected:
                return f"frames entry holds {actual} bytes, its header {shape} {dtype} needs {expected}"
            arrays = {}
            for k in EPISODE_KEYS:
                if k != "frames":
                    with zf.open(f"{k}.npy") as f:  # reading to the end checks the CRC
                        arrays[k] = np.lib.format.read_array(f, allow_pickle=False)
    except zipfile.BadZipFile as e:
        return f"not a readable zip archive, truncated or corrupt ({e})"
    except (zlib.error, OSError, ValueError, EOFError, KeyError, zipfile.LargeZipFile) as e:
        return f"unreadable ({type(e).__name__}: {e})"
    # a zero-stride stand-in with the frames' shape and dtype: _check_episode reads only those
    arrays["frames"] = np.broadcast_to(np.zeros((), dtype=dtype), shape)
    try:
        _check_episode(path, arrays)
    except CorruptShardError as e:
        return str(e)
    return None


def shard_is_complete(path: Path | str, kind: Literal["episode", "latents"] = "episode") -> bool:
    """True when the shard at `path` exists and is complete (see `shard_problem`, which says why not)."""
    return shard_problem(path, kind) is None


# --------------------------------------------------------------------------------------
# Disk space
# --------------------------------------------------------------------------------------

FRAME_COMPRESSION_ESTIMATE = 6.0
"""Conservative ratio raw / compressed of frames, used by `check_disk_space`.

Measured on CarRacing 64x64x3 random-policy episodes (brownian, iid and held policies, 500
and 1000 steps) written by `save_episode`: 1130-1620 bytes per frame over whole episodes
(7.6x-10.9x), at most 1780 bytes per frame over any 100-frame stretch. 12288 / 6 = 2048
bytes per frame is 1.26x the worst episode and 1.15x the worst stretch."""

_EPISODE_OVERHEAD = 8192  # zip and .npy headers (~2 KB) plus the file system's last block


def _nearest_existing(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def estimate_episode_bytes(
    frames_per_episode: int, frame_shape: tuple[int, ...] = (64, 64, 3), action_dim: int = 3
) -> int:
    """Conservative size on disk of one compressed episode shard of `frames_per_episode` frames.

    Frames at raw size / FRAME_COMPRESSION_ESTIMATE (2048 B for 64x64x3), actions and rewards
    uncompressed (random floats barely compress), plus 8 KB of headers and file-system slack.
    """
    if frames_per_episode <= 0:
        raise ValueError(f"frames_per_episode must be positive, got {frames_per_episode}")
    frame = math.ceil(math.prod(frame_shape) / FRAME_COMPRESSION_ESTIMATE)
    steps = frames_per_episode - 1
    return frames_per_episode * frame + steps * 4 * (action_dim + 1) + _EPISODE_OVERHEAD


def check_disk_space(
    folder: Path | str,
    episodes: int,
    frames_per_episode: int,
    frame_shape: tuple[int, ...] = (64, 64, 3),
    action_dim: int = 3,
) -> int:
    """Check up front that `episodes` compressed shards fit on the disk of `folder`.

    The estimate is conservative (see `estimate_episode_bytes` and
    `FRAME_COMPRESSION_ESTIMATE`: 2048 bytes per 64x64x3 frame, where CarRacing episodes
    measured 1130-1620). Pass the episodes still to be written and the most frames one can
    hold (max_steps + 1). `folder` need not exist yet: the disk of its nearest existing parent
    is checked.

    Returns:
        The estimated bytes (0 when `episodes` is 0).
    Raises:
        InsufficientDiskSpaceError: the estimate exceeds the free space; the message names
            both, the folder, and the fix (fewer episodes, or a folder on a larger disk).
        ValueError: negative `episodes` or non-positive `frames_per_episode`.
    """
    if episodes < 0:
        raise ValueError(f"episodes must be non-negative, got {episodes}")
    if episodes == 0:
        return 0
    need = episodes * estimate_episode_bytes(frames_per_episode, frame_shape, action_dim)
    where = _nearest_existing(Path(folder))
    free = shutil.disk_usage(where).free
    if need > free:
        fits = free // estimate_episode_bytes(frames_per_episode, frame_shape, action_dim)
        raise InsufficientDiskSpaceError(
            f"{episodes} episodes of up to {frames_per_episode} frames need about {_human(need)} "
            f"(estimated, compressed) in {Path(folder)}, but its disk has only {_human(free)} free; "
            f"collect fewer episodes (about {fits} fit) or use a folder on a disk with more free space"
        )
    return need
