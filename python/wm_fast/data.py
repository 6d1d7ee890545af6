"""Datasets read from the run directory: frames for V (and, below, latent sequences for M).

Both stream from one `.npz` per episode (see `shards.py`) and never hold the whole data set.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .shards import load_episode, npy_header
from .storage import CorruptShardError

# --------------------------------------------------------------------------------------
# Frames for V
# --------------------------------------------------------------------------------------


def _strided_count(n: int, stride: int) -> int:
    return (n + stride - 1) // stride


def episode_frame_count(path: Path | str) -> int:
    """Number of frames (T+1) in one episode shard, read from the array header only.

    Cheap for compressed and uncompressed shards alike: it reads the zip's central directory
    and the first few KB of the `frames` entry, never the frames.

    Raises:
        CorruptShardError: unreadable file or no `frames` array in it.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            shape, _, _ = npy_header(zf, "frames.npy")
    except KeyError as e:
        raise CorruptShardError(f"shard {path} lacks arrays ['frames']") from e
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as e:
        raise CorruptShardError(f"shard {path} is corrupt or truncated ({type(e).__name__}: {e})") from e
    if len(shape) != 4:
        raise CorruptShardError(f"shard {path}: frames must be (T+1, H, W, 3), got {shape}")
    return int(shape[0])


def count_frames(files: Sequence[Path | str], frame_stride: int = 1) -> int:
    """Frames a `FrameStream` over `files` yields per epoch (every `frame_stride`-th frame).

    Reads only the array headers, not the frames.

    Raises:
        CorruptShardError: a file is unreadable.
    """
    if frame_stride <= 0:
        raise ValueError(f"frame_stride must be positive, got {frame_stride}")
    return sum(_strided_count(episode_frame_count(p), frame_stride) for p in files)


class FrameStream(IterableDataset):
    """Shuffled batches of frames from episode shards, in bounded memory.

    Each epoch shuffles the shard order (seeded by `(seed, epoch)`), loads `shuffle_shards`
    episodes at a time into a buffer, shuffles the frames in the buffer and yields batches of
    uint8 frames `(B, H, W, 3)` (torch tensors; convert with `vae.frames_to_tensor`). Frames
    left over when a buffer does not divide into full batches (fewer than `batch_size`) are
    carried into the next buffer, so all batches are full except possibly the last one of the
    epoch (dropped when `drop_last`). Every (strided) frame is yielded exactly once per epoch.

    Memory held at once: at most `shuffle_shards` episodes plus `batch_size - 1` carried
    frames (`peak_buffer_frames` records the largest buffer of the last iteration).

    Under a multi-worker `DataLoader`, worker w of n takes every n-th shard of the epoch's
    order.

    Args:
        files: episode shard paths.
        batch_size: frames per batch.
        shuffle_shards: episodes loaded into the shuffle buffer at once.
        frame_stride: use frames 0, s, 2s, ... of each episode.
        seed: seed of both shuffles.
        drop_last: drop the final partial batch of an epoch.
    """

    def __init__(
        self,
        files: Sequence[Path | str],
        batch_size: int,
        shuffle_shards: int = 16,
        frame_stride: int = 1,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        for name, v in (("batch_size", batch_size), ("shuffle_shards", shuffle_shards),
                        ("frame_stride", frame_stride)):
            if v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        self.files = [Path(p) for p in files]
        self.batch_size = int(batch_size)
        self.shuffle_shards = int(shuffle_shards)
        self.frame_stride = int(frame_stride)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.peak_buffer_frames = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by the next `iter(self)` (it selects the shuffles)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iter_epoch(self.epoch)

    def num_batches(self, total_frames: int | None = None) -> int:
        """Batches per epoch (single process); reads shard headers unless `total_frames` is given."""
        n = count_frames(self.files, self.frame_stride) if total_frames is None else total_frames
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def iter_epoch(self, epoch: int) -> Iterator[torch.Tensor]:
        """Batches of epoch `epoch`: uint8 tensors (B, H, W, 3).

        Raises:
            CorruptShardError: a shard is unreadable (the message names the file).
        """
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.files))
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        self.peak_buffer_frames = 0
        carry: np.ndarray | None = None
        bs = self.batch_size
        for start in range(0, len(order), self.shuffle_shards):
            parts = [] if carry is None else [carry]
            for i in order[start : start + self.shuffle_shards]:
                frames = load_episode(self.files[i])["frames"]
                parts.append(frames[:: self.frame_stride])
            buf = np.concatenate(parts) if len(parts) > 1 else parts[0]
            del parts
            self.peak_buffer_frames = max(self.peak_buffer_frames, len(buf))
            perm = rng.permutation(len(buf))
            n_full = len(buf) // bs
            for b in range(n_full):
                yield torch.from_numpy(buf[perm[b * bs : (b + 1) * bs]])
            carry = buf[perm[n_full * bs :]] if n_full * bs < len(buf) else None
            del buf
        if carry is not None and not self.drop_last:
            yield torch.from_numpy(carry)


# --------------------------------------------------------------------------------------
# Latent sequences for M
# --------------------------------------------------------------------------------------
