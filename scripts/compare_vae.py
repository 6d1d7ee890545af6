"""Several Vs on the same frames: what their z keeps (a picture) and how well they reconstruct (a table).

    python scripts/compare_vae.py OUT COMMAND --vaes NAME=PATH [...] --episodes EPISODE_DIR [--pictured K ...]

Frames: every 20th frame of the first 50 episodes in EPISODE_DIR (use episodes no V trained on: e.g. a C's play
when the Vs saw random play only). The table gives each V's mean squared error a pixel (decoding z = mu, pixels
in [0, 1]) over all those frames, and over the frames with a fireball only (more than 4 yellow-white pixels:
red above 200/255 and green above 180/255). The picture (OUT.png) shows the frames at 1/4, 1/2 and 3/4 of the
episodes numbered K (positions in EPISODE_DIR's order): the original above each V's reconstruction. Writes
OUT.json, OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio
import numpy as np
import torch

from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.shards import list_episodes, load_episode
from wm_fast.train_vae import load_vae
from wm_fast.vae import frames_to_tensor

STRIDE, EPISODES, RED, GREEN, BRIGHT_PIXELS, SCALE = 20, 50, 200, 180, 4, 3


@torch.no_grad()
def reconstruct(vae: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    """uint8 (n, 64, 64, 3) -> V's decoding of mu, float (n, 64, 64, 3) in [0, 1]."""
    out = []
    for batch in frames_to_tensor(frames).split(256):
        mu, _ = vae.encode(batch)
        out.append(vae.decode(mu).clamp(0, 1).permute(0, 2, 3, 1))
    return torch.cat(out).numpy()


def bright(frames: np.ndarray) -> np.ndarray:
    """(n, 64, 64, 3) uint8 -> (n,) bool: more than BRIGHT_PIXELS yellow-white pixels (red above RED and green
    above GREEN: a fireball; walls, floor and monsters stay below)."""
    yellow = (frames[..., 0] > RED) & (frames[..., 1] > GREEN)
    return yellow.sum(axis=(1, 2)) > BRIGHT_PIXELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("command")
    ap.add_argument("--vaes", nargs="+", required=True, help="NAME=PATH")
    ap.add_argument("--episodes", required=True, help="folder of episode shards")
    ap.add_argument("--pictured", nargs="+", type=int, default=[0, 1, 2, 3])
    a = ap.parse_args()
    specs = [spec.partition("=")[::2] for spec in a.vaes]  # (name, path)
    vaes = [(name, load_vae(path).eval()) for name, path in specs]
    files = list(list_episodes(a.episodes).values())[:EPISODES]
    frames = np.concatenate([load_episode(f)["frames"][::STRIDE] for f in files])
    lit = bright(frames)
    rows = []
    for (name, path), (_, vae) in zip(specs, vaes):
        err = ((reconstruct(vae, frames) - frames / 255.0) ** 2).mean(axis=(1, 2, 3))
        rows.append({"vae": name, "path": path, "mse_all": float(err.mean()),
                     "mse_bright": float(err[lit].mean()) if lit.any() else None})
    picture = []
    for k in a.pictured:
        ep = load_episode(files[k])["frames"]
        picked = ep[[len(ep) // 4, len(ep) // 2, 3 * len(ep) // 4]]
        recs = [(reconstruct(vae, picked) * 255).round().astype(np.uint8) for _, vae in vaes]
        picture.append(np.concatenate([np.concatenate([picked[j]] + [r[j] for r in recs], axis=0)
                                       for j in range(len(picked))], axis=1))
    image = np.concatenate(picture, axis=1)
    iio.imwrite(f"{a.out}.png", np.kron(image, np.ones((SCALE, SCALE, 1), dtype=np.uint8)))
    header = (f"Frames: every {STRIDE}th of the first {len(files)} episodes in `{a.episodes}` ({len(frames)} frames, "
              f"{int(lit.sum())} with a fireball: more than {BRIGHT_PIXELS} pixels with red above {RED}/255 and green "
              f"above {GREEN}/255). Error: mean squared error a pixel of V's decoding of mu, pixels in [0, 1]. Picture "
              f"(`{a.out}.png`): in each column a frame (top) and, below it, each V's reconstruction in the "
              f"order of the table.")
    table = ["| V | all frames | frames with a fireball |", "|---|---:|---:|"]
    table += [f"| {r['vae']} (`{r['path']}`) | {r['mse_all']:.5f} | "
              f"{'-' if r['mse_bright'] is None else format(r['mse_bright'], '.5f')} |" for r in rows]
    write_results(a.out, {"command": a.command, "commit": git_commit(), "machine": machine_description(),
                          "episodes": a.episodes, "frames": len(frames), "bright_frames": int(lit.sum()),
                          "rows": rows},
                  ["# What V keeps: reconstructions of the same frames", "", header, "", *table])


if __name__ == "__main__":
    main()
