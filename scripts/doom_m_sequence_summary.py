"""How far M's training sequence length makes Doom's dream trustworthy: two Ms on the same episodes.

D is a Doom run continued by iterate rounds (its last round's M trained on 100-step sequences); P holds D's
V and latents (every episode, random play and rounds alike) with M trained from scratch on 500-step
sequences, C trained from zeros in its dream, and P/evaluate.json (wm-fast evaluate on the rounds' scoring
seeds). For each M: its quality on the held-out episodes (every 10th: the same ones for both), and the dream
score (τ 1.15, 256 rollouts) of every round's C of D beside that C's real score on its scoring episodes.

    python scripts/doom_m_sequence_summary.py runs/doom_quick2 runs/doom_seq500 results/doom_m_sequence
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from wm_fast.es import load_controller
from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results
from wm_fast.storage import read_json

QUALITY = ("z_nll", "done_precision", "done_recall", "ends")


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(d: str, p: str, out: str) -> None:
    run, rounds = Run(Path(d), progress=False, save_config=False), read_json(Path(d) / "iterate.json")["rounds"]
    last = Path(d) / "iterate" / f"round_{len(rounds):03d}"
    models = {"seq 100 (D's last round)": (last / "rnn" / "rnn.pt", read_json(last / "rnn.json")["metrics"],
                                           read_json(Path(d) / "config.json")["rnn"]["seq_len"]),
              "seq 500 (P)": (Path(p) / "rnn" / "rnn.pt", read_json(Path(p) / "train-rnn.json")["metrics"],
                              read_json(Path(p) / "config.json")["rnn"]["seq_len"])}
    controllers = [Path(d) / r["controller"] for r in rounds] + [Path(p) / "controller" / "controller.pt"]
    params = np.stack([load_controller(c).double().numpy() for c in controllers])
    real = [r["real_mean"] for r in rounds] + [read_json(Path(p) / "evaluate.json")["mean"]]
    rows = []
    for name, (path, metrics, seq_len) in models.items():
        dream = run.dream_evaluator(run.cfg.controller, path)(params, seed=123, rollouts=256).tolist()
        rows.append({"m": name, "seq_len": seq_len, "epochs": metrics.get("epochs_total", metrics.get("epochs")),
                     **{k: metrics[f"quality_{k}"] for k in QUALITY}, "dream": dream,
                     "spearman_rounds": spearman(dream[:-1], real[:-1])})
    summary = {"command": f"bash scripts/doom_results.sh m-sequence {d}", "commit": git_commit(),
               "machine": machine_description(), "controllers": [str(c) for c in controllers], "real": real,
               "real_seeds": [rounds[0]["real_seeds"][0], rounds[0]["real_seeds"][-1]], "rows": rows}
    names = [f"C{r['round']}" for r in rounds] + ["P's C"]
    lines = [f"DoomTakeCover: two Ms on the same {read_json(Path(d) / 'iterate.json')['rounds'][-1]['episodes_total']} "
             "episodes, on the same held-out tenth of them. Dream: the mean return of each C over 256 dreams "
             f"(τ 1.15); real: its mean over 32 episodes, env seeds {summary['real_seeds'][0]:,}–"
             f"{summary['real_seeds'][1]:,}.", "",
             "| M | z NLL | done precision | done recall | " + " | ".join(f"{n} dream" for n in names)
             + " | Spearman (rounds' C, dream vs real) |", "|---|---:|---:|---:|" + "---:|" * len(names) + "---:|"]
    for r in rows:
        lines.append(f"| {r['m']} | {r['z_nll']:.3f} | {r['done_precision']:.2f} | {r['done_recall']:.2f} | "
                     + " | ".join(f"{x:.0f}" for x in r["dream"]) + f" | {r['spearman_rounds']:+.2f} |")
    lines.append("| real | | | | " + " | ".join(f"{x:.0f}" for x in real) + " | |")
    print(write_results(out, summary, lines), end="")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
