"""results/carracing_expert_dream.{json,md}: C's trained only in the dream of M's trained on a good driver's
episodes (scripts/carracing_expert_dream.sh), one row per run directory, and each run's small state (V, M, C of
its iterate round; no episodes) under OUT/<key>/.

    python scripts/expert_dream_summary.py OUT COMMAND KEY:LABEL:RUN_DIR [KEY:LABEL:RUN_DIR ...]

Rows whose run has no finished iterate round are named as missing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from wm_fast.export import export_run
from wm_fast.provenance import write_results
from wm_fast.storage import read_json


def row(key: str, label: str, run: Path) -> dict:
    record = read_json(run / "iterate.json")
    it = record["rounds"][0]
    folder = run / "iterate" / "round_001"
    rnn = read_json(folder / "rnn.json")["metrics"]
    collect = read_json(folder / "collect.json")["metrics"]
    return {"key": key, "label": label, "run_dir": str(run), "real_mean": it["real_mean"], "real_std": it["real_std"],
            "real_episodes": it["real_episodes"], "real_seeds": [it["real_seeds"][0], it["real_seeds"][-1]],
            "dream": it["dream_return"], "episodes": it["episodes_total"],
            "collected_here": collect["new_episodes"], "collect_steps": collect["steps"],
            "reward_mse_tiles": rnn.get("quality_reward_mse_pos"),
            "reward_mse_other": rnn.get("quality_reward_mse_rest"),
            "z_nll": rnn.get("quality_z_nll"), "seconds": it["seconds"], "commit": record["commit"],
            "machine": record["machine"]}


def main(out: str, command: str, specs: list[str]) -> None:
    rows, missing = [], []
    for spec in specs:
        key, label, run_dir = spec.split(":", 2)
        run = Path(run_dir)
        if not (run / "iterate.json").exists():
            missing.append(label)
            continue
        rows.append(row(key, label, run))
        export_run(run, Path(out) / key)
        shutil.rmtree(Path(out) / key / "controller_real")  # the collecting C: results/carracing_headline's
    if not rows:
        sys.exit("no finished row: run scripts/carracing_expert_dream.sh first")
    summary = {"command": command, "commit": rows[0]["commit"], "machine": rows[0]["machine"], "rows": rows,
               "missing": missing}
    seeds = rows[0]["real_seeds"]
    lines = ["| M | real (mean ± std) | dream | M's reward MSE, held out: tile steps / others | "
             "z NLL | wall time | commit |", "|---|---|---|---|---|---|---|",
             *(f"| {r['label']} | {r['real_mean']:.1f} ± {r['real_std']:.1f} ({r['real_episodes']}) | "
               f"{r['dream']:.1f} | {r['reward_mse_tiles']:.3f} / {r['reward_mse_other']:.4f} | {r['z_nll']:.3f} | "
               f"{r['seconds'] / 60:.0f} min | {r['commit']} |" for r in rows),
             "", f"Every C was trained from zeros only in its M's dream. M: the headline run's M (80 random-policy "
             f"episodes) continued on {rows[0]['episodes']} episodes: those 80 and "
             f"{rows[0]['episodes'] - 80} of the headline chain's real-env C with action noise; real scores on gymnasium CarRacing-v3, env seeds {seeds[0]:,}-{seeds[1]:,}, which no stage "
             f"used. Machine: {rows[0]['machine']}. Each row's V, M and C: {out}/<row>/ "
             "(`wm-fast evaluate --run-dir ... --controller iterate`).",
             *([f"Not measured: {', '.join(missing)}"] if missing else [])]
    print(write_results(out, summary, lines))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
