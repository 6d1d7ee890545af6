"""What a dream-trained C does, in M's dream and in the real game: the share of each discrete move.

    python scripts/action_shares.py OUT COMMAND SEED_START EPISODES RUN_DIR:CONTROLLER [RUN_DIR:CONTROLLER ...]

For each controller (a checkpoint path, scored with its own run's V and M): ROLLOUTS dreams with the run's
controller settings (temperature, dream dropout, done threshold, start pool), and EPISODES real episodes from
env seed SEED_START. Counts every step taken while alive. A C that scores well in the dream and badly in the
game often does one thing the dream over-rewards (e.g. presses one way at every step); this shows it. Only for
envs whose action mapping is discrete (Doom's threshold: left / stay / right). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from wm_fast.dream import dream
from wm_fast.envs import facts
from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.rollout.episodes import EpisodeRequest
from wm_fast.rollout.pool import WorkerPool, run_requests
from wm_fast.storage import load_checkpoint

MOVES = {-1.0: "left", 0.0: "stay", 1.0: "right"}
ROLLOUTS = 64


def shares(actions: np.ndarray) -> dict[str, float]:
    """Share of each move among `actions` (K,) with values in {-1, 0, 1}."""
    return {name: float(np.mean(actions == value)) if len(actions) else 0.0 for value, name in MOVES.items()}


def in_dream(run: Run, params: torch.Tensor) -> tuple[dict[str, float], float]:
    """(move shares over the alive steps, mean return) of ROLLOUTS dreams of C's params (n,), with the
    run's own dream (`Run.dream_evaluator`: its M, start pool and controller settings)."""
    ev = run.dream_evaluator(run.cfg.controller)
    result = dream(ev.model, params[None], ev.init_mu, ev.init_logvar, ev.options(seed=1, rollouts=ROLLOUTS),
                   backend=ev.backend, return_trajectories=True)  # type: ignore[arg-type]
    assert result.trajectories is not None
    alive = result.trajectories["alive"].numpy()
    return shares(result.trajectories["action"][..., 0].numpy()[alive]), float(result.returns.mean())


def in_game(run: Run, params: np.ndarray, seed_start: int, episodes: int) -> tuple[dict[str, float], float]:
    """(move shares over every step, mean return) of `episodes` real episodes of C's params (n,)."""
    ev = run.cfg.evaluate
    spec = run.real_worker_spec(ev.max_steps, env_backend=ev.env_backend)
    requests = [EpisodeRequest(seed_start + i, params, keep=True) for i in range(episodes)]
    with WorkerPool(spec, 1, "inline") as pool:
        results, _ = run_requests(pool, requests)
    done = [r for r in results if r is not None]
    if len(done) != episodes:
        sys.exit(f"{episodes - len(done)} real episodes failed")
    actions = np.concatenate([np.asarray(r["actions"])[:, 0] for r in done])
    return shares(actions), float(np.mean([r["return"] for r in done]))


def main(out: str, command: str, seed_start: str, episodes: str, *pairs: str) -> None:
    if not pairs or any(":" not in p for p in pairs):
        sys.exit(__doc__)
    first, n = int(seed_start), int(episodes)
    rows = []
    for pair in pairs:
        run_dir, controller = pair.split(":", 1)
        run = Run(run_dir, progress=False, save_config=False)
        if facts(run.cfg.env).action_mapping != "threshold":
            sys.exit(f"{run_dir}: {run.cfg.env}'s actions are not discrete moves; this script is for Doom")
        params = load_checkpoint(controller, required=("params",))["params"].float()
        dream_shares, dream_return = in_dream(run, params)
        game_shares, game_return = in_game(run, params.numpy(), first, n)
        rows.append({"run_dir": run_dir, "controller": controller, "dream": dream_shares,
                     "dream_return": dream_return, "real": game_shares, "real_return": game_return})
        print(f"{controller}: dream {dream_return:.1f} {dream_shares}, real {game_return:.1f} {game_shares}",
              flush=True)
    summary = {"command": command, "commit": git_commit(), "machine": machine_description(), "rollouts": ROLLOUTS,
               "real_seeds": [first, first + n - 1], "rows": rows}

    def cells(s: dict[str, float]) -> str:
        return " / ".join(f"{100 * s[name]:.0f} %" for name in MOVES.values())

    lines = ["# What each dream-trained C does: share of its moves (left / stay / right)", "",
             f"Dream: {ROLLOUTS} dreams with the run's own controller settings, alive steps only. Real: {n} episodes, "
             f"env seeds {first:,}–{first + n - 1:,} (a diagnostic, not a score).", "",
             "| controller | dream return | dream moves | real return | real moves |", "|---|---:|---|---:|---|",
             *(f"| `{r['controller']}` | {r['dream_return']:.1f} | {cells(r['dream'])} | {r['real_return']:.1f} | "
               f"{cells(r['real'])} |" for r in rows)]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
