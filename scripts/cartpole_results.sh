#!/usr/bin/env bash
# The committed command behind results/cartpole_pipeline.{json,md} and results/cartpole_pipeline/:
# World Models on CartPole-v1's state through the main pipeline (`wm-fast run --env cartpole
# --preset quick`: random play, M, C in M's dream, 5 iterate rounds with the controller's own
# episodes), then the final controller scored on 100 real episodes from env seed 30,000,000,
# which no stage used (collection: 0.., iterate: 1,000,000+, round scoring: 2,000,000..).
# The run's small state (config, stage records, M and C of the pipeline and of every round; no
# episodes) is copied to results/cartpole_pipeline/, where `wm-fast evaluate` re-scores it.
# Resumable: rerun after a kill and finished steps are skipped. ~5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/cartpole-quick}
W=.venv/bin/wm-fast
bash scripts/install.sh
$W run --env cartpole --preset quick --run-dir "$D"
$W evaluate --run-dir "$D" --episodes 100 --seed-start 30000000 --no-video
$W summarize --run-dir "$D" --json-out results/cartpole_pipeline.json \
  --command "bash scripts/cartpole_results.sh $D  (wm-fast run --env cartpole --preset quick --run-dir $D; wm-fast evaluate --run-dir $D --episodes 100 --seed-start 30000000 --no-video)"
.venv/bin/python - "$D" results/cartpole_pipeline <<'PY'
import shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(dst, ignore_errors=True)
keep = ["*.json", "rnn/rnn.pt", "controller/controller.pt", "controller/log.jsonl", "iterate/round_*/*.json",
        "iterate/round_*/rnn/rnn.pt", "iterate/round_*/controller/controller.pt"]
for pattern in keep:
    for f in sorted(src.glob(pattern)):
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst / f.relative_to(src))
print(f"copied {sum(1 for _ in dst.rglob('*') if _.is_file())} files to {dst}")
PY
