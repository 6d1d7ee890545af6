"""An interim score of one finished restart, while the other restarts of its run still train.

    python scripts/interim_summary.py RUN_DIR OUT COMMAND

RUN_DIR: a run copy holding the restart's C in controller/ (its CMA-ES log.jsonl beside it) and
`wm-fast evaluate --controller dream`'s evaluate-dream.json. Writes OUT.json and OUT.md (results/
format: command, commit, machine), the dream CMA-ES described as `wm-fast summarize` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wm_fast.provenance import write_results
from wm_fast.report import _dream_search, _dream_search_lines  # noqa: PLC2701 (summarize's own formatting)
from wm_fast.storage import read_json


def main(run_dir: str, out: str, command: str) -> None:
    run = Path(run_dir)
    ev = read_json(run / "evaluate-dream.json")
    log = [json.loads(line) for line in (run / "controller" / "log.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in log if "mean_solution_return" in r]
    if not evals:
        sys.exit(f"{run}/controller/log.jsonl has no dream evaluations of the CMA mean (mean_solution_return)")
    search = _dream_search(read_json(run / "config.json"), {"generations": log[-1]["generation"], "evals": evals})
    seeds = ev["seeds"]
    summary = {
        "command": command, "commit": ev["commit"], "machine": ev["machine"],
        "real_mean": ev["mean"], "real_std": ev["std"], "episodes": ev["episodes"],
        "env_seeds": [seeds[0], seeds[-1]], "dream_search": search,
        "best_dream_evaluation": max(e["return"] for e in search["evals"]), "evaluate_seconds": ev["seconds"],
        "evaluate_config": ev["config"],
    }
    lines = [
        f"# {Path(out).name}: one restart's controller, trained only in the dream",
        "",
        f"Real: **{ev['mean']:.1f} ± {ev['std']:.1f}** over {ev['episodes']} episodes, "
        f"env seeds {seeds[0]:,}–{seeds[-1]:,} (a block used for nothing else). The C scored is the CMA mean "
        "with the best dream evaluation.",
        *_dream_search_lines(search),
    ]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
