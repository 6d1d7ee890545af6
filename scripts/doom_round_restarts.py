"""How much of an iterate round's real score is CMA-ES's luck: CMA-ES from zeros in one round's dream with
several seeds (the run's controller settings otherwise), each C scored on the round's own scoring episodes.
Seed 0 is the round's own run again (its C must come out the same).

    python scripts/doom_round_restarts.py D ROUND OUT [SEEDS...]   # e.g. runs/doom_quick2 2 results/doom_round_restarts 0 1 2 3
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path


def main(run_dir: str, round_number: str, out: str, *seeds: str) -> None:
    from wm_fast.config import EvalConfig
    from wm_fast.es import load_controller, train_controller
    from wm_fast.pipeline import Run
    from wm_fast.provenance import git_commit, machine_description, write_results
    from wm_fast.storage import read_json

    run, r = Run(Path(run_dir), progress=False, save_config=False), int(round_number)
    folder = Path(run_dir) / "iterate" / f"round_{r:03d}"
    row = read_json(Path(run_dir) / "iterate.json")["rounds"][r - 1]
    first, n = row["real_seeds"][0], row["real_episodes"]
    it = run.cfg.iterate
    dream = run.dream_evaluator(run.cfg.controller, folder / "rnn" / "rnn.pt")  # M and start latents, loaded once
    ecfg = EvalConfig(episodes=n, seed_start=first, max_steps=run.cfg.evaluate.max_steps, video=False,
                      workers=run.cfg.evaluate.workers, envs_per_worker=run.cfg.evaluate.envs_per_worker)
    rows = []
    for seed in [int(s) for s in seeds] or [0, 1, 2]:
        cfg = dataclasses.replace(run.cfg.controller, generations=it.generations, seed=seed)
        ev = dream.with_config(cfg)
        c_dir = Path(run_dir) / "restarts" / f"round_{r:03d}" / f"seed_{seed}"
        metrics = train_controller(ev, ev.n_params, c_dir, cfg, progress=False)
        real = run.score(c_dir / "controller.pt", ecfg, rnn_path=folder / "rnn" / "rnn.pt")
        same = bool((load_controller(c_dir / "controller.pt") == load_controller(folder / "controller" /
                                                                                  "controller.pt")).all())
        rows.append({"seed": seed, "dream": metrics["best_eval_return"], "real_mean": real["mean"],
                     "real_std": real["std"], "same_as_round": same})
        print(rows[-1], flush=True)
    summary = {"command": f"python scripts/doom_round_restarts.py {run_dir} {r} {out} {' '.join(seeds)}".strip(),
               "commit": git_commit(), "machine": machine_description(), "round": r,
               "round_real_mean": row["real_mean"], "seeds_scored": [first, first + n - 1], "rows": rows}
    lines = [f"CMA-ES from zeros in the dream of iterate round {r} of `{run_dir}` ({it.generations} generations of "
             f"{run.cfg.controller.popsize} × {run.cfg.controller.rollouts} dreams, τ {run.cfg.controller.temperature:g}), "
             f"one run per CMA-ES seed; each C scored on the round's {n} scoring episodes (env seeds "
             f"{first:,}–{first + n - 1:,}). The round's own C: {row['real_mean']:.1f}.", "",
             "| CMA-ES seed | dream | real (mean ± std) | the round's own C? |", "|---:|---:|---|---|"]
    lines += [f"| {x['seed']} | {x['dream']:.1f} | {x['real_mean']:.1f} ± {x['real_std']:.1f} | "
              f"{'yes' if x['same_as_round'] else 'no'} |" for x in rows]
    print(write_results(out, summary, lines), end="")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
