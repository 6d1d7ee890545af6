"""The rounds of a run's iterate (D/iterate.json) as a results/ table: OUT.json and OUT.md, naming the command,
the commit and the machine the rounds ran on. For runs stopped before their final `evaluate`.

    python scripts/iterate_summary.py D OUT "the command that made D"
"""

from __future__ import annotations

import sys
from pathlib import Path

from wm_fast.provenance import write_results
from wm_fast.storage import read_json


def main(run_dir: str, out: str, command: str) -> None:
    record = read_json(Path(run_dir) / "iterate.json")
    rows = [{k: v for k, v in r.items() if k not in ("real_returns",)} for r in record["rounds"]]
    first, last = rows[0]["real_seeds"][0], rows[0]["real_seeds"][-1]
    for r in rows:
        r["real_seeds"] = [r["real_seeds"][0], r["real_seeds"][-1]]
    summary = {"command": command, "commit": record["commit"], "machine": record["machine"],
               "config": record["config"], "rounds": rows}
    lines = [f"Iterate rounds of `{run_dir}`: each round's C scored on {rows[0]['real_episodes']} real episodes, "
             f"env seeds {first:,}–{last:,}; dream: the best CMA-ES evaluation in the round's dream.", "",
             "| round | episodes in M's data | collected with noise (mean return) | dream | real (mean ± std) "
             "| seconds |",
             "|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['round']} | {r['episodes_total']:,} | {r['collect_mean_return']:.1f} | "
                     f"{r['dream_return']:.1f} | {r['real_mean']:.1f} ± {r['real_std']:.1f} | {r['seconds']:.0f} |")
    print(write_results(out, summary, lines), end="")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
