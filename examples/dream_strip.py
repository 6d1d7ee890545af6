"""A dream strip: frames V decodes from M's dream beside the real frames, from the same start.

Takes a real episode of a run directory, encodes its first frame, then lets M dream forward
with the same actions the real car took (open loop), sampling z at temperature τ; V decodes
both rows. Where the rows diverge, M's world differs from the real one.

    python examples/dream_strip.py --run-dir runs/quick --out dream_strip.png
    python examples/dream_strip.py --small      # makes a `tiny` run first (seconds)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from _common import save
from wm_fast.mdnrnn import sample_mdn
from wm_fast.shards import list_episodes, load_episode
from wm_fast.train_rnn import load_mdnrnn
from wm_fast.train_vae import load_vae
from wm_fast.vae import frames_to_tensor


@torch.no_grad()
def dream_beside_real(run_dir: Path, episode: int = 0, steps: int = 40, every: int = 5,
                      temperature: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real frames and dreamed frames (n, 64, 64, 3) uint8 at steps 0, every, 2*every, ..."""
    vae, model = load_vae(run_dir / "vae" / "vae.pt"), load_mdnrnn(run_dir / "rnn" / "rnn.pt")
    ep = load_episode(list(list_episodes(run_dir / "episodes").values())[episode])
    steps = min(steps, len(ep["actions"]))
    actions = torch.from_numpy(ep["actions"][:steps])
    mu, logvar = vae.encode(frames_to_tensor(ep["frames"][:1]))
    g = torch.Generator().manual_seed(seed)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
    state, dreamed = None, [z]
    for t in range(steps):
        out, state = model.step(z, actions[t : t + 1], state)
        z = sample_mdn(out, temperature, model.layout, generator=g)
        dreamed.append(z)
    picks = list(range(0, steps + 1, every))
    decoded = vae.decode(torch.cat([dreamed[i] for i in picks]))
    dream_frames = (decoded.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return ep["frames"][picks], dream_frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, default=None, help="a finished run (tiny or quick)")
    p.add_argument("--out", type=Path, default=Path("dream_strip.png"))
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--small", action="store_true", help="make a `tiny` run first and use it")
    args = p.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        import wm_fast

        run_dir = Path(tempfile.mkdtemp(prefix="wm_fast_tiny_"))
        cfg = wm_fast.get_preset("tiny")
        run = wm_fast.Run(run_dir, cfg, progress=False)
        run.collect(); run.train_vae(); run.encode(); run.train_rnn()
    steps = min(args.steps, 20) if args.small else args.steps
    real, dream = dream_beside_real(run_dir, steps=steps, every=max(1, steps // 10),
                                    temperature=args.temperature)
    fig, axes = plt.subplots(2, len(real), figsize=(1.1 * len(real), 2.6))
    for j in range(len(real)):
        for i, (row, name) in enumerate(((real, "real"), (dream, "dream"))):
            axes[i, j].imshow(row[j])
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(name)
        axes[0, j].set_title(f"t={j * max(1, steps // 10)}", fontsize=7)
    save(fig, args.out)


if __name__ == "__main__":
    main()
