"""One controller's real scores on several blocks of env seeds, pooled: mean, std and standard error.

    python scripts/pool_scores.py OUT COMMAND EVALUATE_JSON [EVALUATE_JSON ...]

Each EVALUATE_JSON holds the returns and seeds of one block of the same controller: an evaluate stage record, or
an iterate round's evaluate.json (which holds them under "metrics"); the blocks must not share a seed. Writes
OUT.json and OUT.md (results/ format: command, commit, machine).
"""

from __future__ import annotations

import sys

import numpy as np

from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.storage import read_json


def main(out: str, command: str, paths: list[str]) -> None:
    records = [(p, read_json(p)) for p in paths]  # a stage record (`evaluate-*.json`) or an iterate step record,
    blocks = [(p, rec if "seeds" in rec else rec["metrics"]) for p, rec in records]  # which nests them in metrics
    seeds = [s for _, ev in blocks for s in ev["seeds"]]
    if len(set(seeds)) != len(seeds):
        sys.exit("the score files share env seeds: pool blocks of distinct seeds only")
    returns = np.array([r for _, ev in blocks for r in ev["returns"]], dtype=float)
    mean, std = float(returns.mean()), float(returns.std())
    stderr = std / np.sqrt(len(returns))
    rows = [{"file": p, "seeds": [ev["seeds"][0], ev["seeds"][-1]], "episodes": len(ev["returns"]),
             "mean": float(np.mean(ev["returns"])), "std": float(np.std(ev["returns"]))} for p, ev in blocks]
    summary = {"command": command, "commit": git_commit(), "machine": machine_description(), "blocks": rows,
               "episodes": len(returns), "mean": mean, "std": std, "standard_error": stderr}
    lines = [f"Pooled over {len(returns)} episodes: **{mean:.1f} ± {std:.1f}** (standard error {stderr:.1f}).", "",
             "| env seeds | episodes | real (mean ± std) | file |", "|---|---:|---|---|",
             *(f"| {r['seeds'][0]:,}–{r['seeds'][1]:,} | {r['episodes']} | {r['mean']:.1f} ± {r['std']:.1f} | "
               f"`{r['file']}` |" for r in rows)]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
