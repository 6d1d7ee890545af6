"""Choose one dream-trained C on a selection block of real episodes, then score it once on a held-out block.

    python scripts/doom_heldout_choice.py RUN_DIR SELECT_SEED HELDOUT_SEED OUT COMMAND [OTHER_RUN_DIR ...]

Candidates: every C of RUN_DIR's temperature sweep (RUN_DIR/sweep/tau_*/controller, already scored by the
sweep on the 100 episodes from SELECT_SEED), the run's own dream C (RUN_DIR/controller) and each OTHER_RUN_DIR's
dream C with that run's V and M (both scored here on the same episodes). The candidate with the best real mean
there is scored on the 100 episodes from HELDOUT_SEED, which nothing else uses; that score is the result,
whatever it is. Scores are kept in RUN_DIR/heldout/ (a rerun reuses them). Writes OUT.json and OUT.md
(results/ format: command, commit, machine).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.storage import atomic_write_json, read_json

EPISODES = 100


def score(run: Run, controller: Path, seed_start: int, out_json: Path, episodes: int = EPISODES) -> dict:
    """C's real score, with the run's V and M, on `episodes` episodes from `seed_start` (reused from out_json
    when its seeds match)."""
    kept = read_json(out_json) if out_json.exists() else {}
    if kept.get("seeds") == [seed_start + i for i in range(episodes)]:
        return kept
    ev_cfg = dataclasses.replace(run.cfg.evaluate, episodes=episodes, seed_start=seed_start, video=False)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    result = run.score(controller, ev_cfg)
    result.update(commit=git_commit(), machine=machine_description(), controller=str(controller))
    atomic_write_json(out_json, result)
    return result


def describe(run: Run) -> str:
    """A run's dream C in words: its dream settings and CMA-ES budget."""
    c = run.cfg.controller
    threshold = "" if c.done_threshold == 0.5 else f", done threshold {c.done_threshold:g}"
    return (f"tau {c.temperature:g}{threshold} ({c.popsize} x {c.rollouts} dreams, {c.generations} generations, "
            f"{c.restarts} restart{'s' if c.restarts > 1 else ''})")


def choose_and_hold_out(candidates: list[dict], runs: dict[str, Run], folder: Path, heldout: int,
                        command: str, select_seeds: list[int]) -> tuple[dict, dict, dict]:
    """The candidate with the best "select_mean", recorded in folder/chosen.json (a rerun that would choose
    another C stops: the held-out block is spent), scored once on the EPISODES episodes from `heldout` with its
    run (`runs`, by "run_dir") into folder/heldout.json. Returns (chosen, held-out score, results/ summary)."""
    chosen = max(candidates, key=lambda cand: cand["select_mean"])
    chosen_path = folder / "chosen.json"
    if chosen_path.exists() and read_json(chosen_path)["controller"] != chosen["controller"]:
        sys.exit(f"{chosen_path} names another C than {chosen['controller']}; the held-out block is spent")
    atomic_write_json(chosen_path, {"controller": chosen["controller"], "name": chosen["name"]})
    held = score(runs[chosen["run_dir"]], Path(chosen["controller"]), heldout, folder / "heldout.json")
    summary = {"command": command, "commit": held["commit"], "machine": held["machine"],
               "select_seeds": [select_seeds[0], select_seeds[-1]], "heldout_seeds": [heldout, heldout + EPISODES - 1],
               "candidates": candidates, "chosen": chosen["name"], "chosen_controller": chosen["controller"],
               "real_mean": held["mean"], "real_std": held["std"], "episodes": held["episodes"],
               "evaluate_seconds": held["seconds"]}
    return chosen, held, summary


def main(run_dir: str, select_seed: str, heldout_seed: str, out: str, command: str, *others: str) -> None:
    select, heldout = int(select_seed), int(heldout_seed)
    run = Run(run_dir, progress=False, save_config=False)
    runs = {str(run.dir): run}  # every candidate's run, by its folder
    select_seeds = [select + i for i in range(EPISODES)]
    candidates = []
    for tau_dir in sorted((run.dir / "sweep").glob("tau_*")):
        ev = read_json(tau_dir / "evaluate.json")
        if ev.get("seeds") != select_seeds:
            sys.exit(f"{tau_dir}/evaluate.json is not on env seeds {select:,}-{select + EPISODES - 1:,}")
        settings = read_json(tau_dir / "settings.json")
        candidates.append({"name": f"sweep tau {settings['temperature']:g} "
                                   f"({settings['popsize']} x {settings['rollouts']} dreams)",
                           "controller": str(tau_dir / "controller" / "controller.pt"),
                           "run_dir": str(run.dir),
                           "select_mean": ev["mean"], "select_std": ev["std"]})
    own = score(run, run.controller_path, select, run.dir / "heldout" / "select_own.json")
    candidates.append({"name": f"the run's C: {describe(run)}", "controller": str(run.controller_path),
                       "run_dir": str(run.dir), "select_mean": own["mean"], "select_std": own["std"]})
    for other_dir in others:
        other = Run(other_dir, progress=False, save_config=False)
        runs[str(other.dir)] = other
        ev = score(other, other.controller_path, select, run.dir / "heldout" / f"select_{other.dir.name}.json")
        candidates.append({"name": f"{other.dir.name}'s C: {describe(other)}",
                           "controller": str(other.controller_path), "run_dir": str(other.dir),
                           "select_mean": ev["mean"], "select_std": ev["std"]})
    chosen, held, summary = choose_and_hold_out(candidates, runs, run.dir / "heldout", heldout, command, select_seeds)
    lines = [
        "# Doom: one dream-trained C chosen on real episodes, scored on held-out ones",
        "",
        f"Held out: **{held['mean']:.1f} ± {held['std']:.1f}** over {held['episodes']} episodes, env seeds "
        f"{heldout:,}–{heldout + EPISODES - 1:,} (used for nothing else), of the C chosen on env seeds "
        f"{select:,}–{select + EPISODES - 1:,}: {chosen['name']}. Every C was trained only in M's dream.",
        "",
        f"| candidate | real on {select:,}–{select + EPISODES - 1:,} |",
        "|---|---|",
        *(f"| {cand['name']}{' (chosen)' if cand is chosen else ''} | "
          f"{cand['select_mean']:.1f} ± {cand['select_std']:.1f} |" for cand in candidates),
    ]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
