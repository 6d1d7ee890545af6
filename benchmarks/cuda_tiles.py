"""Paper-generation time of engine_cuda for each rows-per-block tile (WM_FAST_CUDA_TILE).

    python benchmarks/cuda_tiles.py [--batches 1 64 1024] [--tiles 0 1 2 4 8 16]

Tile 0 is the backend's own choice. Prints milliseconds per 1000-step dream (best of --repeats).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from wm_fast.dream import DreamOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--tiles", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for batch in args.batches:
        world = common.make_world(batch, device="cuda")
        opts = DreamOptions(steps=args.steps, rollouts=world.rollouts, seed=1)
        for tile in args.tiles:
            if tile:
                os.environ["WM_FAST_CUDA_TILE"] = str(tile)
            else:
                os.environ.pop("WM_FAST_CUDA_TILE", None)
            common.run_engine(world, DreamOptions(steps=5, rollouts=world.rollouts), "cuda")
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                common.run_engine(world, opts, "cuda")
                best = min(best, time.perf_counter() - t0)
            print(f"batch {batch:5d} tile {tile or 'auto':>4}: {best * 1e3:8.2f} ms per {args.steps}-step dream, "
                  f"{batch * args.steps / best:14,.0f} steps/s", flush=True)


if __name__ == "__main__":
    main()
