"""Encoding of episode shards into latent files with a trained V (resumable).

`latents/episode_{i:06d}.npz` holds V's posterior (mu, logvar) for all T+1 frames of episode
i, plus its actions, rewards, dones and seed (format in `shards.py`). `dones[t]` is 1.0 only
at the last step of an episode whose shard says `terminated`; a time-limit truncation is not
a done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .shards import EPISODE_RE, load_episode, load_latents, save_latents
from .vae import ConvVAE, frames_to_tensor


def episode_dones(t: int, terminated: bool) -> np.ndarray:
    """float32 (T,): zeros, with 1.0 at the last step when the episode terminated."""
    dones = np.zeros(t, dtype=np.float32)
    if terminated and t > 0:
        dones[-1] = 1.0
    return dones


@torch.no_grad()
def encode_frames(
    vae: ConvVAE, frames: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """V's posterior of uint8 frames (N, 64, 64, 3).

    Returns:
        mu, logvar: float32 numpy (N, Z) each.
    """
    dev = next(vae.parameters()).device
    mus, logvars = [], []
    for s in range(0, len(frames), batch_size):
        mu, logvar = vae.encode(frames_to_tensor(frames[s : s + batch_size], dev))
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def encode_episodes(
    episode_files: Sequence[Path | str],
    vae: ConvVAE,
    out_dir: Path | str,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Write one latent file per episode shard, `out_dir/<same name as the shard>`.

    Episodes whose latent file exists are skipped (files are written atomically, so an
    existing one is complete): a killed run continues where it stopped. One episode is in
    memory at a time. Runs under `torch.no_grad()` on V's device.

    Args:
        episode_files: shards named `episode_{i:06d}.npz`.
        vae: a trained ConvVAE (see `train_vae.load_vae`).
        out_dir: the latents folder.
        batch_size: frames per forward pass.
        progress: show a tqdm bar over episodes.
    Returns:
        `episodes` (total), `encoded`, `skipped`, `frames` (encoded now), `seconds`,
        `frames_per_s` (plain numbers, small enough for a stage record).
    Raises:
        CorruptShardError: a shard is unreadable (the message names the file).
        ValueError: a file name is not `episode_{i:06d}.npz`, or two shards share a name.
    """
    files = [Path(p) for p in episode_files]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = set()
    for p in files:
        if not EPISODE_RE.match(p.name):
            raise ValueError(f"episode file {p} is not named episode_NNNNNN.npz")
        if p.name in names:
            raise ValueError(f"two episode files are named {p.name}")
        names.add(p.name)

    was_training = vae.training
    vae.eval()
    encoded = skipped = frames_done = 0
    t0 = time.perf_counter()
    try:
        for p in tqdm(files, disable=not progress, desc="encode", unit="episode"):
            out = out_dir / p.name
            if out.exists():
                skipped += 1
                continue
            ep = load_episode(p)
            mu, logvar = encode_frames(vae, ep["frames"], batch_size)
            t = len(ep["rewards"])
            save_latents(
                out, mu, logvar, ep["actions"], ep["rewards"],
                episode_dones(t, bool(ep["terminated"])), int(ep["seed"]),
            )
            encoded += 1
            frames_done += len(ep["frames"])
            del ep, mu, logvar
    finally:
        vae.train(was_training)
    seconds = time.perf_counter() - t0
    return {
        "episodes": len(files),
        "encoded": encoded,
        "skipped": skipped,
        "frames": frames_done,
        "seconds": seconds,
        "frames_per_s": frames_done / seconds if seconds > 0 else 0.0,
    }


def initial_latents(latent_files: Sequence[Path | str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior of every episode's first frame: the pool dreams start from.

    Returns:
        mu, logvar: float32 tensors (N, Z), N = len(latent_files).
    Raises:
        CorruptShardError: a latent file is unreadable.
        ValueError: no files.
    """
    if not latent_files:
        raise ValueError("initial_latents: no latent files given")
    mus, logvars = [], []
    for p in latent_files:
        lat = load_latents(p)
        mus.append(lat["mu"][0].copy())
        logvars.append(lat["logvar"][0].copy())
    return torch.from_numpy(np.stack(mus)), torch.from_numpy(np.stack(logvars))
