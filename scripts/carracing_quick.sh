#!/usr/bin/env bash
# The committed command behind results/carracing_quick.{json,md} and results/carracing_quick/: the
# README's main job (`wm-fast run --env carracing --preset quick`: random-policy episodes, V, M, C in
# M's dream, then C by CMA-ES on EnvPool's CarRacing, scored on 20 gymnasium episodes from env seed
# 10,000, which no stage used). The run's small state (config, stage records, V, M and both
# controllers without optimizer states; no episodes) is copied to results/carracing_quick/, where
# `wm-fast evaluate --run-dir results/carracing_quick --episodes N --seed-start S` re-scores it.
# Resumable: rerun after a kill and finished steps are skipped. 20-26 minutes on an idle 2-core machine (AMD EPYC, Intel Xeon).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/quick}
W=.venv/bin/wm-fast
bash scripts/install.sh
$W run --env carracing --preset quick --run-dir "$D"
$W summarize --run-dir "$D" --json-out results/carracing_quick.json \
  --command "bash scripts/carracing_quick.sh $D  (wm-fast run --env carracing --preset quick --run-dir $D)"
$W export --run-dir "$D" --out results/carracing_quick
