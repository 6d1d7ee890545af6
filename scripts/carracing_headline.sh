#!/usr/bin/env bash
# The committed commands behind results/carracing_headline.{json,md} and results/carracing_headline/:
# the `headline` preset, run as a chain of resumable steps that each fit in a work period.
#
#   bash scripts/carracing_headline.sh step [MINUTES] [D]   # real CMA-ES for at most MINUTES (default 140)
#   bash scripts/carracing_headline.sh score [D]            # 100 held-out gymnasium episodes, summary, plot, GIF
#
# The run directory D (default runs/carracing_headline) starts as a copy of results/carracing_headline/,
# the chain so far, so a new machine continues it (its first stages were results/carracing_quick/'s, made
# before the quick preset's V was cut to 3 epochs; the headline preset keeps 4: tests/test_presets.py).
# `step` runs `wm-fast run --preset headline --stop-after-minutes`, which stops cleanly after a generation
# (exit status 3) with the CMA-ES state saved, then copies the small state (config, stage records, V, M,
# C, the CMA-ES state and logs; never episodes) to results/carracing_headline/. The held-out seeds of
# `score` (gymnasium, 5,000,000-5,000,099) are used by nothing else: CMA-ES draws its env seeds by
# hashing (see real.py), and `score` checks that none of them falls in that range.
set -uo pipefail
cd "$(dirname "$0")/.."
W=.venv/bin/wm-fast
PY=.venv/bin/python
R=results/carracing_headline
cmd=${1:?usage: carracing_headline.sh step [MINUTES] [D] | score [D]}
if [ "$cmd" = step ]; then MINUTES=${2:-140}; D=${3:-runs/carracing_headline}; else D=${2:-runs/carracing_headline}; fi

if [ ! -d "$D" ]; then
  mkdir -p "$D"
  cp -r "$R"/. "$D"/
fi

case "$cmd" in
step)
  $W run --preset headline --run-dir "$D" --stop-after-minutes "$MINUTES" --quiet
  status=$?
  [ $status -eq 0 ] || [ $status -eq 3 ] || exit $status
  $W export --run-dir "$D" --out "$R" --keep-optimizer
  echo "[headline] state copied to $R (exit $status: 3 = more generations remain, run this step again)"
  exit $status
  ;;
score)
  set -e
  $W evaluate --run-dir "$D" --controller real --episodes 100 --seed-start 5000000 --no-video --quiet
  $W video --run-dir "$D" --controller real --seed 5000000 --steps 300 --out "$R/real_vs_dream.gif"
  $PY scripts/headline_summary.py "$D" "$R"
  ;;
*) echo "unknown command $cmd (step or score)" >&2; exit 2 ;;
esac
