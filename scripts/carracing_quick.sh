#!/usr/bin/env bash
# The committed command behind results/carracing_quick*.{json,md}: the README's main job, then
# issue #4's refinements (dream-then-real, one iterate round), each scored on 20 real episodes.
# Resumable: rerun after a kill and finished steps are skipped. ~14 minutes on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/quick}
W=.venv/bin/wm-fast
bash scripts/install.sh
$W run --env carracing --preset quick --run-dir "$D"
$W evaluate --run-dir "$D" --episodes 20 --video
$W summarize --run-dir "$D" --json-out results/carracing_quick.json \
  --command "bash scripts/carracing_quick.sh $D  (wm-fast run --env carracing --preset quick --run-dir $D; wm-fast evaluate --run-dir $D --episodes 20)"
$W train-controller --run-dir "$D" --mode dream-then-real
$W evaluate --run-dir "$D" --controller dream-real --episodes 20
$W iterate --run-dir "$D" --rounds 1 --eval-episodes 20
.venv/bin/python -c "
from wm_fast.report import write_refinement
write_refinement('$D', 'results/carracing_quick_refine.json', 'bash scripts/carracing_quick.sh $D')
print(open('results/carracing_quick_refine.md').read())"
