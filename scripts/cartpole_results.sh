#!/usr/bin/env bash
# The committed command behind results/cartpole.{json,md} and results/cartpole/ (issue #5):
# every row of wm_fast.cartpole.RESULT_ROWS (world models on CartPole's state, trained only in
# the dream, and DQN), run through `wm-fast` with the exact command line each row records; the
# best dream row's M and C are copied to results/cartpole/ and re-evaluated there with
#   wm-fast evaluate --env cartpole --run-dir results/cartpole --episodes 100 --seed-start 10000000
# Finished runs are reused (rerun after a kill to continue). ~25 minutes on 2 cores (17 rows;
# the best row alone, `wm-fast cartpole --run-dir D --model mdn`, takes ~1.5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/cartpole}
.venv/bin/python -c "
from wm_fast.cartpole import reproduce_results
out = reproduce_results('$R')
print(open('results/cartpole.md').read())"
