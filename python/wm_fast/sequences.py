"""Latent sequences for training M: episodes from latent files, chunked into windows.

A batch pairs inputs (z_t, a_t) with targets (z_{t+1}, rewards[t], dones[t]) for
t = start..start+L-1 of one episode window. It holds V's posterior (mu, logvar), not z:
the trainer samples z = mu + exp(logvar / 2) * eps afresh for every batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .shards import load_latents
from .storage import CorruptShardError


class LatentBatch(NamedTuple):
    """One training batch of B windows of length L (time first).

    mu, logvar: (L+1, B, Z)  V's posterior for frames start..start+L (zero past an episode's end)
    actions:    (L, B, A)
    rewards:    (L, B)       M's reward targets (the rewards, or their smoothed form: `smooth_rewards`)
    dones:      (L, B)
    mask:       (L, B)       1.0 where step t of the window is inside its episode
    raw_rewards: (L, B)      the env's rewards as recorded (the same as `rewards` without smoothing)
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    mask: torch.Tensor
    raw_rewards: torch.Tensor

    def to(self, device: torch.device | str) -> "LatentBatch":
        return LatentBatch(*(t.to(device) for t in self))


def smooth_rewards(rewards: np.ndarray, window: int) -> np.ndarray:
    """M's reward target for one episode: the mean of the next `window` rewards, (T,) -> (T,) float32.

    target_t = (r_t + ... + r_{t+k-1}) / k, with r = 0 past the episode's end; k = 1 returns the rewards.
    CarRacing pays +1000/N on the one frame a tile is first touched, which M can hardly place frame by
    frame; the k-frame mean is closer to a speed along the track. Each reward is spread over the k steps
    before it, so an episode's sum of targets equals its sum of rewards but for the first k-1 steps'
    shares (r_s counts min(s+1, k)/k).
    """
    if window < 1:
        raise ValueError(f"reward smoothing window must be >= 1, got {window}")
    r = np.asarray(rewards, dtype=np.float32)
    if window == 1 or r.size == 0:
        return r
    ahead = np.concatenate([np.cumsum(r, dtype=np.float64), np.full(window - 1, np.sum(r, dtype=np.float64))])
    before = np.concatenate([[0.0], np.cumsum(r, dtype=np.float64)[:-1]])
    return ((ahead[window - 1:window - 1 + r.size] - before) / window).astype(np.float32)


def episode_windows(lengths: np.ndarray, seq_len: int, rng: np.random.Generator,
                    end_windows: bool = True) -> np.ndarray:
    """Shuffled training windows (N, 3) of (episode, start, length) over episodes of `lengths` steps.

    Episode e of T steps gets ceil(T / L) windows of min(T, L) steps: the first starts at 0
    (episode starts, where dreams start from M's zero state, are seen every epoch), the last ends
    at the episode's last step (where the rare done label is: random starts alone would almost
    never reach it; `end_windows=False` leaves it random, an ablation), the others start
    uniformly in [0, T - L]. Shuffled across episodes.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    rows = []
    for e, t in enumerate(np.asarray(lengths, dtype=np.int64)):
        n = -(-int(t) // seq_len)
        if n == 0:
            continue
        starts = rng.integers(0, max(int(t) - seq_len, 0) + 1, size=n)
        starts[0] = 0
        if end_windows and n > 1:
            starts[-1] = int(t) - seq_len
        rows.append(np.stack([np.full(n, e), starts, np.full(n, min(int(t), seq_len))], 1))
    w = np.concatenate(rows).astype(np.int64)
    return w[rng.permutation(len(w))]


class LatentEpisodes:
    """All latent files in memory, concatenated (frames and steps kept in flat arrays).

    Args:
        latent_files: paths of latent files (`shards.save_latents` format).
        reward_smoothing: M's reward targets are `smooth_rewards(rewards, reward_smoothing)` of each episode
            (1: the rewards themselves).
    Raises:
        CorruptShardError: a file is unreadable, or its Z or A differs from the first file's.
        ValueError: no files, or reward_smoothing < 1.
    """

    def __init__(self, latent_files: Sequence[Path | str], reward_smoothing: int = 1) -> None:
        files = [Path(p) for p in latent_files]
        if not files:
            raise ValueError("no latent files given")
        mus, lvs, acts, rews, dones, lengths = [], [], [], [], [], []
        z_dim = a_dim = None
        for p in files:
            d = load_latents(p)
            if z_dim is None:
                z_dim, a_dim = d["mu"].shape[1], d["actions"].shape[1]
            elif d["mu"].shape[1] != z_dim or d["actions"].shape[1] != a_dim:
                raise CorruptShardError(
                    f"latents {p}: Z={d['mu'].shape[1]}, A={d['actions'].shape[1]} differ from "
                    f"Z={z_dim}, A={a_dim} of {files[0]}")
            mus.append(d["mu"]); lvs.append(d["logvar"]); acts.append(d["actions"])
            rews.append(d["rewards"]); dones.append(d["dones"]); lengths.append(d["rewards"].shape[0])
        if sum(lengths) == 0:
            raise ValueError(f"the {len(files)} latent files hold no steps")
        self.files = files
        self._set_arrays(np.concatenate(mus), np.concatenate(lvs), np.concatenate(acts), np.concatenate(rews),
                         np.concatenate(dones), np.asarray(lengths, dtype=np.int64))
        if reward_smoothing != 1:
            self.rewards = np.concatenate([smooth_rewards(r, reward_smoothing) for r in rews])

    @classmethod
    def from_arrays(cls, mu: np.ndarray, logvar: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    dones: np.ndarray, lengths: np.ndarray) -> "LatentEpisodes":
        """Episodes already concatenated, without files: mu, logvar (sum(T)+N, Z); actions (sum(T), A);
        rewards, dones (sum(T),); lengths (N,) the steps T of each episode."""
        episodes = cls.__new__(cls)
        episodes.files = []
        episodes._set_arrays(mu, logvar, actions, rewards, dones, np.asarray(lengths, dtype=np.int64))
        return episodes

    def _set_arrays(self, mu: np.ndarray, logvar: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    dones: np.ndarray, lengths: np.ndarray) -> None:
        self.z_dim: int = int(mu.shape[1])
        self.action_dim: int = int(actions.shape[1])
        self.lengths = lengths
        """Steps T of each episode (each has T+1 frames)."""
        self.step_offset = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.frame_offset = self.step_offset + np.arange(len(self.lengths))
        self.mu, self.logvar, self.actions, self.dones = mu, logvar, actions, dones
        self.raw_rewards = self.rewards = rewards

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def total_steps(self) -> int:
        return int(self.lengths.sum())

    def windows(self, seq_len: int, rng: np.random.Generator) -> np.ndarray:
        """Random windows covering every episode's steps about once: (N, 3) of (episode, start, length).

        See `episode_windows`; windows shorter than L (episodes shorter than L) are padded by
        `gather`, with a mask.
        """
        return episode_windows(self.lengths, seq_len, rng)

    def gather(self, windows: np.ndarray) -> LatentBatch:
        """Build a batch from windows (B, 3) of (episode, start, length); L = longest window."""
        ep, start, length = windows[:, 0], windows[:, 1], windows[:, 2]
        L = int(length.max())
        j = np.arange(L)
        step_ok = j[None, :] < length[:, None]  # (B, L)
        frame_ok = np.arange(L + 1)[None, :] <= length[:, None]  # (B, L+1)
        s_idx = np.where(step_ok, self.step_offset[ep][:, None] + start[:, None] + j[None, :], 0)
        f_idx = np.where(frame_ok, self.frame_offset[ep][:, None] + start[:, None] + np.arange(L + 1)[None, :], 0)

        def take(arr: np.ndarray, idx: np.ndarray, ok: np.ndarray) -> torch.Tensor:
            x = arr[idx]
            x = x * ok.reshape(ok.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
            return torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1)))  # time first

        return LatentBatch(
            mu=take(self.mu, f_idx, frame_ok),
            logvar=take(self.logvar, f_idx, frame_ok),
            actions=take(self.actions, s_idx, step_ok),
            rewards=take(self.rewards, s_idx, step_ok),
            dones=take(self.dones, s_idx, step_ok),
            mask=torch.from_numpy(np.ascontiguousarray(step_ok.T.astype(np.float32))),
            raw_rewards=take(self.raw_rewards, s_idx, step_ok),
        )


class SequenceSampler:
    """Seeded epochs of batches of random windows of `seq_len` steps.

    Epoch e draws its windows from np.random.default_rng([seed, e]), so an epoch's batches
    do not depend on what ran before it (resuming reproduces them). With `length_buckets` k > 0
    the epoch's shuffled windows are cut into pools of k batches, each pool sorted by window length
    and cut into batches, and the batches shuffled: the same windows in batches of like length, so
    `gather` pads less (random10k-mix-both's 11,000 Doom episodes, L = 500, B = 32: 70 % of the padded
    steps are real without, 96 % with k = 16; results/m_length_buckets_cpu.md).
    """

    def __init__(self, episodes: LatentEpisodes, seq_len: int, batch_size: int, seed: int = 0,
                 length_buckets: int = 0) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if length_buckets < 0:
            raise ValueError(f"length_buckets must be non-negative, got {length_buckets}")
        self.episodes = episodes
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.length_buckets = int(length_buckets)

    def n_windows(self) -> int:
        return int(sum(-(-int(t) // self.seq_len) for t in self.episodes.lengths))

    def __len__(self) -> int:
        """Batches per epoch (the last one may be smaller than batch_size)."""
        return -(-self.n_windows() // self.batch_size)

    def mean_steps_per_batch(self) -> float:
        """Real (unpadded) steps in an epoch's windows over its batches: the same for every epoch."""
        lengths = self.episodes.lengths
        steps = sum(min(int(t), self.seq_len) * -(-int(t) // self.seq_len) for t in lengths)
        return steps / max(len(self), 1)

    def batch_windows(self, epoch: int) -> list[np.ndarray]:
        """The windows (B, 3) of (episode, start, length) of each batch of epoch `epoch`."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        w = self.episodes.windows(self.seq_len, rng)
        b = self.batch_size
        if not self.length_buckets:
            return [w[i:i + b] for i in range(0, len(w), b)]
        pool = b * self.length_buckets
        batches = []
        for p in range(0, len(w), pool):
            chunk = w[p:p + pool]
            chunk = chunk[np.argsort(chunk[:, 2], kind="stable")]
            batches += [chunk[i:i + b] for i in range(0, len(chunk), b)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def epoch(self, epoch: int) -> Iterator[LatentBatch]:
        """The batches of epoch `epoch`."""
        for windows in self.batch_windows(epoch):
            yield self.episodes.gather(windows)


def sample_z(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, 1) drawn fresh (never train M on the means)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps
