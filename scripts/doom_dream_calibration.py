"""How deadly is M's Doom dream? The random policy's survival in the dream against its survival in the real game.

    python scripts/doom_dream_calibration.py RUN_DIR OUT COMMAND [--temperatures T ...] [--thresholds P ...]

The random policy (an action uniform in [-1, 1] held 1-10 steps, the collection policy) plays R dreams of M in
RUN_DIR for each (temperature, done threshold); its mean dream length is set beside the mean length of the
random episodes whose latent files are RUN_DIR's start pool (collection data, no held-out seed). A dream in
which the random policy lives far longer than in the game forgives mistakes the game punishes. RUN_DIR's C is
dreamed at the same settings (engine, same start pool) for comparison. Writes OUT.json and OUT.md (results/
format).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from wm_fast.es import load_controller
from wm_fast.mdnrnn import MDNRNN, sample_mdn
from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.shards import list_episodes, load_latents


@torch.no_grad()
def random_policy_lengths(model: MDNRNN, init_mu: torch.Tensor, init_logvar: torch.Tensor, rollouts: int, steps: int,
                          temperature: float, done_threshold: float, seed: int) -> np.ndarray:
    """Dream lengths (rollouts,) of the held random policy: a ~ U[-1, 1] held 1-10 steps, snapped to left / stay /
    right at -1/3 and 1/3 as the game does (envs.doom.canonical_action)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(init_mu.shape[0], (rollouts,), generator=g)
    z = init_mu[idx] + torch.exp(0.5 * init_logvar[idx]) * torch.randn(rollouts, init_mu.shape[1], generator=g)
    state = model.initial_state(rollouts)
    a = torch.zeros(rollouts, 1)
    hold_left = torch.zeros(rollouts, dtype=torch.int64)
    alive = torch.ones(rollouts, dtype=torch.bool)
    lengths = torch.zeros(rollouts, dtype=torch.int64)
    for _ in range(steps):
        renew = hold_left == 0
        a = torch.where(renew[:, None], torch.rand(rollouts, 1, generator=g) * 2 - 1, a)
        hold_left = torch.where(renew, torch.randint(1, 11, (rollouts,), generator=g), hold_left) - 1
        move = (a > 1 / 3).float() - (a < -1 / 3).float()
        out, state = model.step(z, move, state)
        lengths += alive.to(torch.int64)
        alive &= ~(torch.sigmoid(out.done_logit) > done_threshold)
        if not alive.any():
            break
        z = sample_mdn(out, temperature, model.layout, generator=g)
    return lengths.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out")
    ap.add_argument("command")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 1.15])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    ap.add_argument("--rollouts", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    run = Run(args.run_dir, None, progress=False, save_config=False)
    base = run.dream_evaluator(run.cfg.controller)
    c_params = load_controller(run.controller_path)[None].numpy()
    pool = list(list_episodes(run.latents_dir).values())
    real_lengths = np.array([len(load_latents(f)["rewards"]) for f in pool])
    real_random = float(real_lengths.mean())
    steps = run.cfg.controller.dream_steps
    rows = []
    for tau in args.temperatures:
        for thr in args.thresholds:
            lengths = random_policy_lengths(base.model, base.init_mu, base.init_logvar, args.rollouts, steps,
                                            tau, thr, args.seed)
            ev = base.with_config(dataclasses.replace(run.cfg.controller, temperature=tau, done_threshold=thr))
            c_mean = float(ev(c_params, args.seed, args.rollouts)[0])
            rows.append({"temperature": tau, "done_threshold": thr, "random_dream_mean": float(lengths.mean()),
                         "random_dream_std": float(lengths.std()), "controller_dream_mean": c_mean})
            print(rows[-1], flush=True)
    summary = {"command": args.command, "commit": git_commit(), "machine": machine_description(),
               "run_dir": str(args.run_dir), "rollouts": args.rollouts, "start_pool": int(base.init_mu.shape[0]),
               "real_random_mean_length": real_random, "real_random_std_length": float(real_lengths.std()),
               "real_random_episodes": len(pool), "rows": rows}
    lines = [f"The random policy lives {real_random:.1f} ± {real_lengths.std():.1f} steps in the game "
             f"(the {len(pool):,} episodes of the start pool). In M's dream ({args.rollouts} dreams each, "
             f"start pool of {base.init_mu.shape[0]:,} real first frames):", "",
             "| τ | done threshold | random policy, dream length (mean ± std) | the run's C, dream length |",
             "|---|---|---|---|",
             *(f"| {r['temperature']} | {r['done_threshold']} | {r['random_dream_mean']:.1f} ± "
               f"{r['random_dream_std']:.1f} | {r['controller_dream_mean']:.1f} |" for r in rows)]
    print(write_results(args.out, summary, lines))


if __name__ == "__main__":
    main()
