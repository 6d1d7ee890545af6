"""How dropout dreams rank known Doom controllers: results/doom_dropout_probe.{json,md}.

Scores four controllers in the dream of the random-3k dropout M (dropout 0.05 in training) at several dream
dropout rates, and in the no-dropout random-3k M, each on the same 256 dreams (tau 1.0, common random numbers):
the tau1-restarts C (real 807), the dropout-0.1 C (real 167), "always left" (bias only) and "stay" (zeros).

    .venv/bin/python scripts/doom_dropout_probe.py runs/doom_r3k results/doom_dropout_probe
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

from wm_fast.es import load_controller
from wm_fast.pipeline import Run
from wm_fast.provenance import git_commit, machine_description, write_results

D, OUT = Path(sys.argv[1]), Path(sys.argv[2])
run = Run(f"{D}_dropout", progress=False)
good = load_controller(f"{D}_t1/controller/controller.pt").numpy()
dropout_c = load_controller(run.controller_path).numpy()
left = np.zeros_like(good)
left[-1] = -5.0  # bias only: tanh(-5) < -1/3, always left
names = ["tau1-restarts C (real 807.2)", "dropout-0.1 C (real 167.1)", "always left", "stay"]
params = np.stack([good, dropout_c, left, np.zeros_like(good)]).astype(np.float32)
base = dataclasses.replace(run.cfg.controller, temperature=1.0, common_random_numbers=True)
dreams = {label: run.dream_evaluator(base, rnn_path=Path(rnn))  # each M and the start latents loaded once
          for label, rnn in (("dropout M", f"{D}_dropout/rnn/rnn.pt"), ("no-dropout M", f"{D}/rnn/rnn.pt"))}
settings = [("dropout M", p) for p in (0.0, 0.02, 0.05, 0.1)] + [("no-dropout M", 0.0)]
rows = []
for label, p in settings:
    scores = dreams[label].with_config(dataclasses.replace(base, dream_dropout=p))(params, 321, 256)
    rows.append({"m": label, "dream_dropout": p, "scores": dict(zip(names, map(float, scores)))})
    print(rows[-1])
lines = ["Dream scores (tau 1.0, 256 common dreams each) of four DoomTakeCover controllers, to see which dream "
         "ranks them as the real game does:", "",
         "| M | dream dropout | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
lines += [f"| {r['m']} | {r['dream_dropout']} | " + " | ".join(f"{v:.0f}" for v in r["scores"].values()) + " |"
          for r in rows]
write_results(OUT, {"command": f"python scripts/doom_dropout_probe.py {D} {OUT}", "commit": git_commit(),
                    "machine": machine_description(), "rows": rows}, lines)
print(OUT.with_suffix(".md").read_text())
