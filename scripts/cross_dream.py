"""How each of several controllers fares in each of several Ms' dreams: does a dream rank Cs as the game does?

    python scripts/cross_dream.py OUT COMMAND --runs RUN_DIR [RUN_DIR ...] --controllers NAME=PATH[@REAL] [...]

For each run (its M, start pool and controller settings: temperature, done threshold, dream dropout) and each
controller checkpoint: the mean return of ROLLOUTS dreams, the same dream seed for every C (common random numbers).
REAL is the controller's measured real score, copied into the table for comparison (from its results file); no
game is played here, so no env seed is used. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse

import torch

from wm_fast.es import Evaluator, load_controller
from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results

ROLLOUTS = 256


def dream_return(evaluator: Evaluator, params: torch.Tensor) -> float:
    """Mean return of ROLLOUTS dreams of C's params (n,) with a run's dream evaluator (seed 1 for every C; a run
    with controller.dream_models splits them among its Ms, as its CMA-ES did)."""
    return float(evaluator(params[None].numpy(), 1, ROLLOUTS)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("command")
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--controllers", nargs="+", required=True, help="NAME=PATH or NAME=PATH@REAL_SCORE")
    a = ap.parse_args()
    controllers = []
    for spec in a.controllers:
        name, _, rest = spec.partition("=")
        path, _, real = rest.partition("@")
        if not name or not path:
            ap.error(f"controller {spec!r}: expected NAME=PATH[@REAL]")
        controllers.append((name, path, float(real) if real else None))
    runs = [Run(r, progress=False, save_config=False) for r in a.runs]
    evaluators = [run.dream_evaluator(run.cfg.controller) for run in runs]  # M and start pool loaded once a run
    rows = []
    for name, path, real in controllers:
        params = load_controller(path)
        dreams = {r: dream_return(ev, params) for r, ev in zip(a.runs, evaluators)}
        rows.append({"controller": name, "path": path, "real": real, "dream": dreams})
        print(name, {r: round(v, 1) for r, v in dreams.items()}, flush=True)
    summary = {"command": a.command, "commit": git_commit(), "machine": machine_description(),
               "rollouts": ROLLOUTS, "runs": {r: {k: getattr(run.cfg.controller, k) for k in
                                                  ("temperature", "done_threshold", "dream_dropout")}
                                              for r, run in zip(a.runs, runs)}, "rows": rows}
    head = "| C | real (its results file) | " + " | ".join(f"dream of `{r}`" for r in a.runs) + " |"
    lines = [f"Mean return of {ROLLOUTS} dreams per cell (same dream seed for every C); settings per run: "
             + "; ".join(f"`{r}` τ {s['temperature']}, done threshold {s['done_threshold']}, dropout "
                         f"{s['dream_dropout']}" for r, s in summary["runs"].items()) + ".", "",
             head, "|---|---:|" + "---:|" * len(a.runs)]
    for row in rows:
        real = "" if row["real"] is None else f"{row['real']:.1f}"
        lines.append(f"| {row['controller']} | {real} | " + " | ".join(f"{row['dream'][r]:.1f}" for r in a.runs)
                     + " |")
    write_results(a.out, summary, lines)


if __name__ == "__main__":
    main()
