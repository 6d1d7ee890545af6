"""results/carracing_headline.{json,md} and its progress plot, from a scored headline run.

    python scripts/headline_summary.py RUN_DIR RESULTS_DIR   (called by scripts/carracing_headline.sh score)

Checks that no env seed the run's CMA-ES used (generations and evaluations of the mean, hashed
by real.rollout_seed) falls among the held-out seeds before writing anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wm_fast.es import STATE_FILE, _generation_seed
from wm_fast.pipeline import load_config
from wm_fast.real import episode_seeds
from wm_fast.report import plot_progress, progress
from wm_fast.storage import atomic_write_json, load_checkpoint, read_json


def training_seeds(run_dir: Path) -> set[int]:
    """Every env seed of the run's real CMA-ES: its generations and the evaluations of its mean."""
    cfg = load_config(run_dir / "config.json").real
    state = load_checkpoint(run_dir / "controller_real" / STATE_FILE)
    seeds = {s for g in range(int(state["generation"]))
             for _, _, s in episode_seeds(_generation_seed(cfg.seed, g), cfg.popsize, cfg.rollouts,
                                          cfg.common_random_numbers)}
    for e in state["evals"]:
        seeds |= {s for _, _, s in episode_seeds(_generation_seed(cfg.seed, e["generation"], salt=1), 1, e["rollouts"])}
    return seeds


def main(run_dir: Path, out_dir: Path) -> None:
    ev = read_json(run_dir / "evaluate-real.json")
    held_out = set(ev["seeds"])
    used = training_seeds(run_dir)
    clash = sorted(used & held_out)
    if clash:
        raise SystemExit(f"held-out seeds {clash} were used by CMA-ES: choose another --seed-start")
    real = read_json(run_dir / "train-controller-real.json") if (run_dir / "train-controller-real.json").exists() else None
    state = load_checkpoint(run_dir / "controller_real" / STATE_FILE)
    chosen = max(state["evals"], key=lambda e: e["mean_solution_return"])
    curve = progress(run_dir / "controller_real")
    hours, steps = curve["gen_hours"][-1], curve["gen_steps"][-1]
    if curve["eval_hours"]:
        hours, steps = max(hours, curve["eval_hours"][-1]), max(steps, curve["eval_steps"][-1])
    png = plot_progress({"headline (real CMA-ES on EnvPool)": curve}, out_dir.parent / "carracing_headline_progress.png",
                        final={"headline (real CMA-ES on EnvPool)": (hours, steps, ev["mean"], ev["std"])})
    summary = {
        "command": "bash scripts/carracing_headline.sh step (repeated until it exits 0), then "
                   "bash scripts/carracing_headline.sh score",
        "commit": sorted({ev["commit"], *([real["commit"]] if real else [])}),
        "machine": ev["machine"],
        "held_out": {"mean": ev["mean"], "std": ev["std"], "episodes": ev["episodes"], "env_backend": ev["env_backend"],
                     "seeds": [min(held_out), max(held_out)], "returns": ev["returns"]},
        "seeds_checked": {"cma_es_env_seeds": len(used), "in_held_out_range": 0},
        "cma_es": {"generations": int(state["generation"]), "popsize": load_config(run_dir / "config.json").real.popsize,
                   "chosen_generation": chosen["generation"], "chosen_eval": chosen["mean_solution_return"],
                   "chosen_eval_rollouts": chosen["rollouts"], "wall_hours": hours, "env_steps": steps,
                   "evaluations_without_step_counts": curve["uncounted_evals"], "complete": bool(real)},
        "plot": str(png),
    }
    atomic_write_json(out_dir.parent / "carracing_headline.json", summary)
    cm = summary["cma_es"]
    cfg_generations = load_config(run_dir / "config.json").real.generations
    md = [
        "| run | real return, held-out (mean ± std, episodes) | CMA-ES generations | real env steps | CMA-ES wall time | commit |",
        "|---|---|---|---|---|---|",
        f"| headline preset, C by CMA-ES on EnvPool's CarRacing (V, M from gymnasium frames) | {ev['mean']:.1f} ± "
        f"{ev['std']:.1f} ({ev['episodes']}) | {cm['generations']} × {cm['popsize']} (of {cfg_generations}) | "
        f"{cm['env_steps'] / 1e6:.2f} M | "
        f"{cm['wall_hours']:.2f} h | {', '.join(summary['commit'])} |",
        "",
        f"Machine: {ev['machine']}. Held out: gymnasium CarRacing-v3, env seeds {min(held_out)}..{max(held_out)}, used by "
        f"no stage (checked against all {len(used)} env seeds of the run's CMA-ES). The scored controller is the CMA "
        f"mean of generation {chosen['generation']}, chosen by its {chosen['rollouts']} EnvPool evaluation episodes "
        f"({chosen['mean_solution_return']:.1f}). Command: `{summary['command']}`. Progress: {png.name}.",
    ]
    if not real:
        md.append("\nThe chain is not finished: more generations remain (`bash scripts/carracing_headline.sh step`).")
    (out_dir.parent / "carracing_headline.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
