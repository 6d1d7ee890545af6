"""What length buckets buy M's training: real (unpadded) steps per second with and without them.

    python benchmarks/m_length_buckets.py [--latents DIR] [--batches 12] [--buckets 16] [--out results/NAME]

M at Doom's paper size (z 64, 1 action, LSTM 512, K 5 per dimension, sequences of 500, batches of
32) trains on episodes whose lengths come from a latents folder (--latents: only the lengths are
read) or, without one, from a gamma distribution with Doom's random-play mean (about 320 steps).
The same epoch's first --batches batches (as the sampler orders them) are timed without and with
--buckets pools, alternating the two (best of --repeats each). Printed and written: padded and real
steps, seconds, real steps per second and the ratio measured in the same run; --out writes OUT.json and
OUT.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from wm_fast.mdnrnn import MDNRNN  # noqa: E402
from wm_fast.provenance import write_results  # noqa: E402
from wm_fast.sequences import LatentEpisodes, SequenceSampler  # noqa: E402
from wm_fast.shards import npy_header  # noqa: E402
from wm_fast.train_rnn import rnn_losses  # noqa: E402

Z, A, HIDDEN, K, SEQ_LEN, BATCH = 64, 1, 512, 5, 500, 32


def random_episodes(lengths: np.ndarray, seed: int = 0) -> LatentEpisodes:
    """Episodes of the given lengths with random latents (the benchmark needs only their shapes)."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    steps = int(lengths.sum())
    dones = np.zeros(steps, np.float32)
    dones[np.cumsum(lengths) - 1] = 1.0
    return LatentEpisodes.from_arrays(
        mu=rng.standard_normal((steps + len(lengths), Z), dtype=np.float32),
        logvar=np.full((steps + len(lengths), Z), -2.0, np.float32),
        actions=rng.choice(np.array([-1.0, 0.0, 1.0], np.float32), size=(steps, A)),
        rewards=np.ones(steps, np.float32), dones=dones, lengths=lengths)


def episode_lengths(latents: str | None, n: int, seed: int) -> np.ndarray:
    """Steps of each episode in `latents` (read from the files' headers), else n gamma draws of mean 320."""
    if latents:
        files = sorted(glob.glob(os.path.join(latents, "episode_*.npz")))
        if not files:
            raise SystemExit(f"no episode_*.npz in {latents}")
        out = []
        for p in files:
            with zipfile.ZipFile(p) as zf:
                out.append(npy_header(zf, "rewards.npy")[0][0])
        return np.asarray(out, dtype=np.int64)
    return np.maximum(np.random.default_rng(seed).gamma(2.0, 160.0, size=n).astype(np.int64), 10)


def train_seconds(model: MDNRNN, opt: torch.optim.Optimizer, episodes: LatentEpisodes,
                  windows: list[np.ndarray]) -> float:
    """Wall time of one training step (forward, loss, backward, Adam) on each batch of windows."""
    t0 = time.perf_counter()
    for w in windows:
        batch = episodes.gather(w)
        z = batch.mu  # the means stand in for sampled z: the same shapes and work
        out, _ = model(z[:-1], batch.actions)
        loss = rnn_losses(out, z[1:], batch.rewards, batch.dones, batch.mask, "per_dim",
                          done_pos_weight=10.0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latents", help="a latents folder whose episode lengths to use (default: gamma draws)")
    ap.add_argument("--episodes", type=int, default=3000, help="gamma-drawn episodes when --latents is not given")
    ap.add_argument("--batches", type=int, default=12, help="batches timed per setting")
    ap.add_argument("--buckets", type=int, default=16, help="rnn.length_buckets to compare with 0")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--out", help="write the rows and the ratio to OUT.json and OUT.md")
    args = ap.parse_args()
    if args.buckets <= 0 or args.batches <= 0:
        ap.error("--buckets and --batches must be positive")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    episodes = random_episodes(episode_lengths(args.latents, args.episodes, seed=0))
    model = MDNRNN(Z, A, hidden=HIDDEN, n_gaussians=K, layout="per_dim")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    settings = {b: SequenceSampler(episodes, SEQ_LEN, BATCH, seed=0, length_buckets=b).batch_windows(0)[:args.batches]
                for b in (0, args.buckets)}
    train_seconds(model, opt, episodes, settings[0][:1])  # warm-up
    seconds = {b: float("inf") for b in settings}
    for _ in range(args.repeats):  # alternate, so drifting clocks touch both alike
        for b, windows in settings.items():
            seconds[b] = min(seconds[b], train_seconds(model, opt, episodes, windows))
    rows = []
    for b, windows in settings.items():
        real = int(sum(w[:, 2].sum() for w in windows))
        padded = int(sum(w[:, 2].max() * len(w) for w in windows))
        rows.append({"length_buckets": b, "batches": len(windows), "real_steps": real, "padded_steps": padded,
                     "seconds": seconds[b], "real_steps_per_s": real / seconds[b]})
        print(f"length_buckets {b:3d}: {real:8d} real of {padded:8d} padded steps in {seconds[b]:7.2f} s: "
              f"{real / seconds[b]:8.0f} real steps/s", flush=True)
    ratio = rows[1]["real_steps_per_s"] / rows[0]["real_steps_per_s"]
    print(f"real steps per second with buckets / without: x{ratio:.2f}")
    if args.out:
        lengths = f"those of {args.latents}" if args.latents else "gamma-drawn"
        lines = [f"# M's training with and without length buckets (Doom size: z {Z}, LSTM {HIDDEN}, K {K}, "
                 f"sequences of {SEQ_LEN}, batches of {BATCH})", "",
                 f"Episode lengths: {lengths} ({len(episodes)} episodes, mean {episodes.lengths.mean():.0f} steps). "
                 f"The first {args.batches} batches of epoch 0, best of {args.repeats}.", "",
                 "| length_buckets | real steps | padded steps | seconds | real steps / s |",
                 "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['length_buckets']} | {r['real_steps']} | {r['padded_steps']} | {r['seconds']:.2f} | "
                  f"{r['real_steps_per_s']:.0f} |" for r in rows]
        lines += ["", f"Real steps per second with buckets over without, same run: **x{ratio:.2f}**."]
        write_results(args.out, {"command": " ".join(["python", *sys.argv]), "commit": common.git_commit(),
                                 "machine": common.machine_description(), "episodes": len(episodes),
                                 "mean_length": float(episodes.lengths.mean()), "rows": rows,
                                 "real_steps_per_s_ratio": ratio}, lines)


if __name__ == "__main__":
    main()
