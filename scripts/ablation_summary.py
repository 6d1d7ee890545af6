"""results/carracing_ablation.{json,md}: the CarRacing ablation table, from the run directories
that scripts/carracing_ablation.sh makes (rows whose run is missing are left out and named).

    python scripts/ablation_summary.py [RUNS_ROOT]   (default runs/)

Every row: real return over the same 100 held-out gymnasium episodes (env seeds 5,000,000-
5,000,099), the dream score of its controller where it has one, the real env steps that went
into it (random collection, real CMA-ES, C's own episodes) and the wall time of its stages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from wm_fast.report import progress
from wm_fast.storage import atomic_write_json, read_json

SHARED = ("collect", "train-vae", "encode")


def _seconds(run: Path, stages: tuple[str, ...]) -> float:
    return sum(read_json(run / f"{s}.json")["seconds"] for s in stages)


def _real_steps(controller_dir: Path) -> float:
    c = progress(controller_dir)
    return max(c["gen_steps"][-1], c["eval_steps"][-1] if c["eval_steps"] else 0.0)


def rows(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    base, dropout, it = root / "ablation", root / "ablation_dropout", root / "ablation_iter"
    random_steps = read_json(base / "collect.json")["metrics"]["steps"]
    out, missing = [], []

    def add(name: str, run: Path, evaluation: str, dream: float | None, steps: float, seconds: float,
            note: str) -> None:
        path = run / f"{evaluation}.json"
        if not path.exists():
            missing.append(f"{name} ({path} missing)")
            return
        ev = read_json(path)
        out.append({"row": name, "real_mean": ev["mean"], "real_std": ev["std"], "episodes": ev["episodes"],
                    "seeds": [ev["seeds"][0], ev["seeds"][-1]], "dream": dream, "real_env_steps": steps,
                    "wall_min": seconds / 60, "commit": ev["commit"], "machine": ev["machine"], "note": note})

    add("dream only (80 random episodes)", base, "evaluate-dream",
        read_json(base / "train-controller.json")["metrics"]["best_eval_return"], random_steps,
        _seconds(base, SHARED + ("train-rnn", "train-controller")), "the quick preset's dream stage")
    if (dropout / "train-controller.json").exists():
        add("+ dropout dreams (M dropout 0.05, dream dropout 0.1)", dropout, "evaluate-dream",
            read_json(dropout / "train-controller.json")["metrics"]["best_eval_return"], random_steps,
            _seconds(base, SHARED) + _seconds(dropout, ("train-rnn", "train-controller")),
            "same data, V and seeds as the row above")
    else:
        missing.append("+ dropout dreams (not trained)")
    rounds = read_json(it / "iterate.json")["rounds"] if (it / "iterate.json").exists() else []
    steps, seconds = random_steps + _real_steps(base / "controller_real"), _seconds(
        base, SHARED + ("train-rnn", "train-controller-real"))
    notes = {1: "episodes of the real-only C below, with exploration noise (its real steps count)",
             2: "more episodes, of round 1's dream-trained C: M sees where that C goes wrong"}
    for row in rounds[:2]:
        r = row["round"]
        steps += read_json(it / "iterate" / f"round_{r:03d}" / "collect.json")["metrics"]["steps"]
        seconds += row["seconds"]
        add(f"+ C's own episodes, iterate round {r} (C from zeros, only in the dream)", it,
            f"evaluate-iterate-round{r}", row["dream_return"], steps, seconds, f"{row['new_episodes']} {notes[r]}")
    if not rounds:
        missing.append("+ C's own episodes (no iterate round)")
    ft = root / "ablation_ft"
    if (ft / "train-controller-dream-real.json").exists():
        add("+ real fine-tune: the dream-only C as CMA-ES's start, 40 generations of 16 on EnvPool", ft,
            "evaluate-dream-real", None, random_steps + _real_steps(ft / "controller_dream_real"),
            _seconds(base, SHARED + ("train-rnn", "train-controller")) + _seconds(ft, ("train-controller-dream-real",)),
            "the real-only row's budget, started from the dream-only C instead of zeros")
    else:
        missing.append("+ real fine-tune (not trained)")
    uncounted = progress(base / "controller_real")["uncounted_evals"]
    add("real only: CMA-ES on EnvPool, 40 generations of 16 (quick)", base, "evaluate-real", None,
        random_steps + _real_steps(base / "controller_real"),
        _seconds(base, SHARED + ("train-rnn", "train-controller-real")), "V and M from the random episodes"
        + (f"; the steps of its {len(uncounted)} evaluations of the CMA mean (16 episodes each) predate their "
           "logging and are not counted" if uncounted else ""))
    if len(rounds) < 2:
        missing.append("iterate round 2 (not finished in the work period it was started in)")
    return out, missing


def main(root: Path) -> None:
    table, missing = rows(root)
    atomic_write_json(Path("results/carracing_ablation.json"), {"rows": table, "missing": missing,
                                                                 "command": "bash scripts/carracing_ablation.sh"})
    md = ["| controller | real (mean ± std, 100 held-out episodes) | dream | real env steps | wall time | commit |",
          "|---|---|---|---|---|---|"]
    for r in table:
        dream = "—" if r["dream"] is None else f"{r['dream']:.1f}"
        steps = "?" if r["real_env_steps"] is None else f"{r['real_env_steps'] / 1e3:.0f} k"
        md.append(f"| {r['row']} | {r['real_mean']:.1f} ± {r['real_std']:.1f} | {dream} | {steps} | "
                  f"{r['wall_min']:.0f} min | {r['commit']} |")
    machines = sorted({r["machine"] for r in table})
    md += ["", f"Machine: {'; '.join(machines)}. Held out: gymnasium CarRacing-v3, env seeds "
           "5,000,000-5,000,099 for every row. Command: `bash scripts/carracing_ablation.sh`. "
           "Wall times are of stages that shared 2 cores with other jobs."]
    md += [f"- {r['row']}: {r['note']}" for r in table]
    if missing:
        md += ["", "Not measured: " + "; ".join(missing)]
    Path("results/carracing_ablation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs"))
