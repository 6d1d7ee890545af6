"""How much of CarRacing's track each random collection policy sees (issue #11: better data).

    python benchmarks/random_policies.py --episodes 32 --max-steps 500 --json results/random_policies.json \
        --md results/random_policies.md

M can only learn the tile rewards it sees. For every random policy (rollout/policies.py), the same
env seeds (gymnasium CarRacing-v3) are played for --max-steps steps by a `WorkerCore` and we count
the steps with a positive reward (a new tile), the episodes' returns and the steps spent in a row
without a tile at the end (off the track). Not a speed benchmark: its figures do not depend on the
machine, but the file names it anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from wm_fast.rollout import POLICY_NAMES, EpisodeRequest, run_episodes  # noqa: E402
from wm_fast.rollout.pool import WorkerCore, WorkerSpec  # noqa: E402


def measure(policy: str, seeds: list[int], max_steps: int, backend: str, num_envs: int = 8) -> dict[str, float]:
    core = WorkerCore(WorkerSpec("carracing", backend, max_steps, num_envs, policy=policy))
    try:
        results = run_episodes(core.vec, [EpisodeRequest(s, keep=True) for s in seeds], core.actor)
    finally:
        core.close()
    rewards = [r["rewards"] for r in results]
    tiles = np.array([(x > 0).sum() for x in rewards])
    return {"policy": policy, "episodes": len(seeds), "steps": int(sum(len(x) for x in rewards)),
            "tile_steps_per_episode": float(tiles.mean()), "tile_step_fraction": float(tiles.sum() / sum(len(x) for x in rewards)),
            "episodes_with_no_tile": int((tiles == 0).sum()), "mean_return": float(np.mean([r["return"] for r in results])),
            "std_return": float(np.std([r["return"] for r in results]))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--seed-start", type=int, default=7_000_000)
    p.add_argument("--backend", default="gymnasium")
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args()
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    rows = [measure(name, seeds, args.max_steps, args.backend) for name in POLICY_NAMES]
    meta = {"commit": common.git_commit(), "machine": common.machine_description()}
    out = {"rows": rows, "episodes": args.episodes, "max_steps": args.max_steps, "backend": args.backend,
           "seeds": [seeds[0], seeds[-1]], **meta,
           "command": "python benchmarks/random_policies.py " + " ".join(sys.argv[1:])}
    md = ["| policy | tile steps per episode | share of steps on a new tile | episodes with no tile | return |",
          "|---|---:|---:|---:|---|"]
    md += [f"| {r['policy']} | {r['tile_steps_per_episode']:.1f} | {100 * r['tile_step_fraction']:.1f} % | "
           f"{r['episodes_with_no_tile']} of {r['episodes']} | {r['mean_return']:.1f} ± {r['std_return']:.1f} |" for r in rows]
    md += ["", f"{args.episodes} episodes of {args.max_steps} steps each on {args.backend} CarRacing-v3, env seeds "
           f"{seeds[0]}..{seeds[-1]}; command `{out['command']}`, commit {meta['commit']}, {meta['machine']}."]
    print(json.dumps(rows, indent=1))
    print("\n".join(md))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.md:
        args.md.write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
