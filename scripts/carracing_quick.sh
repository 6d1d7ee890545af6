#!/usr/bin/env bash
# The committed command behind results/carracing_quick.{json,md} and results/carracing_quick/: the
# README's main job (`wm-fast run --env carracing --preset quick`: random-policy episodes, V, M, C in
# M's dream, then C by CMA-ES on EnvPool's CarRacing, scored on 20 gymnasium episodes from env seed
# 10,000, which no stage used). The run's small state (config, stage records, V, M and both
# controllers without optimizer states; no episodes) is copied to results/carracing_quick/, where
# `wm-fast evaluate --run-dir results/carracing_quick --episodes N --seed-start S` re-scores it.
# Resumable: rerun after a kill and finished steps are skipped. ~25 minutes on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/quick}
W=.venv/bin/wm-fast
bash scripts/install.sh
$W run --env carracing --preset quick --run-dir "$D"
$W summarize --run-dir "$D" --json-out results/carracing_quick.json \
  --command "bash scripts/carracing_quick.sh $D  (wm-fast run --env carracing --preset quick --run-dir $D)"
.venv/bin/python - "$D" results/carracing_quick <<'PY'
import shutil, sys
from pathlib import Path
from wm_fast.storage import load_checkpoint, save_checkpoint
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(dst, ignore_errors=True)
dst.mkdir(parents=True)
for f in sorted(src.glob("*.json")) + sorted(src.glob("controller*/log.jsonl")) + sorted(src.glob("controller*/controller.pt")):
    (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, dst / f.relative_to(src))
for name, keep in (("vae/vae.pt", ("model", "z_dim", "epoch", "config")),
                   ("rnn/rnn.pt", ("model", "z_dim", "action_dim", "hidden", "n_gaussians", "layout", "epoch", "config"))):
    state = load_checkpoint(src / name)
    (dst / name).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst / name, {k: state[k] for k in keep})  # without the optimizer: what evaluate loads
print(f"copied {sum(1 for p in dst.rglob('*') if p.is_file())} files to {dst}")
PY
