"""Merge two `wm-fast sweep-temperature` tables (without and with dropout dreams) into the paper's
temperature table for results/: OUT.json, OUT.md and OUT.png, naming the command, commit and machine.

    python scripts/doom_temperature_summary.py runs/doom runs/doom_dropout results/doom_temperature
"""

from __future__ import annotations

import sys
from pathlib import Path

from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.storage import read_json
from wm_fast.sweep import plot

PAPER = {0.1: (2086, 193), 0.5: (2060, 196), 1.0: (1145, 868), 1.15: (918, 1092), 1.3: (732, 753)}
"""The paper's table: tau -> (dream, real)."""


def main(plain_dir: str, dropout_dir: str, out: str) -> None:
    tables = [read_json(Path(d) / "sweep" / "temperature.json") for d in (plain_dir, dropout_dir)]
    rnn = [read_json(Path(d) / "train-rnn.json") for d in (plain_dir, dropout_dir)]
    first, last = tables[0]["seeds"]
    if tables[1]["seeds"] != tables[0]["seeds"]:
        raise SystemExit("the two sweeps were scored on different seeds")
    summary = {
        "command": f"bash scripts/doom_results.sh temperature {plain_dir}",
        "commit": git_commit(), "machine": machine_description(), "seeds": [first, last],
        "random": tables[0]["random"],
        "rows": [{**r, "m_dropout": rec["config"]["rnn"]["dropout"]} for t, rec in zip(tables, rnn) for r in t["rows"]],
        "m_quality": [{k: v for k, v in rec["metrics"].items() if k.startswith("quality_")} for rec in rnn],
    }
    lines = [f"DoomTakeCover, C trained only in M's dream (M on {read_json(Path(plain_dir) / 'collect.json')['metrics']['episodes']} "
             f"random-policy episodes), at each temperature τ; real score over 100 episodes, env seeds {first:,}–{last:,} "
             "(used by no stage). Dream score: the CMA mean's return in its own dream.", "",
             "| τ | dropout (M / dream) | dream | real (mean ± std) | paper dream / real |", "|---:|---|---:|---|---|"]
    for r in sorted(summary["rows"], key=lambda r: (r["dream_dropout"], r["temperature"])):
        paper = PAPER.get(r["temperature"])
        lines.append(f"| {r['temperature']:g} | {r['m_dropout']:g} / {r['dream_dropout']:g} | {r['dream']:.0f} | "
                     f"{r['real_mean']:.0f} ± {r['real_std']:.0f} | {f'{paper[0]} / {paper[1]}' if paper else ''} |")
    rnd = summary["random"]
    lines.append(f"| random policy ({rnd['policy']}) | | | {rnd['mean']:.0f} ± {rnd['std']:.0f} | — / 210 ± 108 |")
    text = write_results(out, summary, lines)
    plot(summary, Path(out).with_suffix(".png"))  # dream and real against tau, without and with dropout
    print(text, end="")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
