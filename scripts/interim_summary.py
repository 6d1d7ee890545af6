"""An interim score of one finished restart, while the other restarts of its run still train.

    python scripts/interim_summary.py EVALUATE_JSON LOG_JSONL OUT COMMAND

EVALUATE_JSON: `wm-fast evaluate --controller dream` of a run copy holding the restart's C;
LOG_JSONL: that restart's CMA-ES log (its "mean_solution_return" rows are the dream evaluations
of the CMA mean). Writes OUT.json and OUT.md (results/ format: command, commit, machine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wm_fast.provenance import write_results


def main(evaluate_json: str, log_jsonl: str, out: str, command: str) -> None:
    ev = json.loads(Path(evaluate_json).read_text())
    rows = [json.loads(line) for line in Path(log_jsonl).read_text().splitlines() if line.strip()]
    evals = [(r["generation"], r["mean_solution_return"]) for r in rows if "mean_solution_return" in r]
    if not evals:
        sys.exit(f"{log_jsonl} has no dream evaluations of the CMA mean (mean_solution_return)")
    seeds = ev["seeds"]
    cfg = ev["config"]
    summary = {
        "command": command, "commit": ev["commit"], "machine": ev["machine"],
        "real_mean": ev["mean"], "real_std": ev["std"], "episodes": ev["episodes"],
        "env_seeds": [seeds[0], seeds[-1]], "dream_evaluations": evals,
        "best_dream_evaluation": max(v for _, v in evals), "evaluate_seconds": ev["seconds"],
        "evaluate_config": cfg,
    }
    lines = [
        f"# {Path(out).name}: one restart's controller, trained only in the dream",
        "",
        f"Real: **{ev['mean']:.1f} ± {ev['std']:.1f}** over {ev['episodes']} episodes, "
        f"env seeds {seeds[0]:,}–{seeds[-1]:,} (a block used for nothing else).",
        "",
        "Dream evaluations of the CMA mean (generation: mean return over the evaluation rollouts): "
        + ", ".join(f"{g}: {v:.1f}" for g, v in evals) + "; the best one's C is the one scored.",
    ]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
