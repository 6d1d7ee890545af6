#!/usr/bin/env bash
# The commands behind results/carracing_ablation.{json,md}: every row on the data, V and M of one quick
# run (80 random-policy episodes), scored on the same 100 held-out gymnasium episodes (env seeds
# 5,000,000-5,000,099, which no stage uses). Each command resumes after a kill; a finished score is kept.
#
#   bash scripts/carracing_ablation.sh [QUICK_RUN_DIR]   (default runs/quick: bash scripts/carracing_quick.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-runs/quick}
W=.venv/bin/wm-fast
PY=.venv/bin/python
source scripts/lib.sh  # edit_config
score() {  # score RUN CONTROLLER: C on the 100 held-out episodes into RUN/evaluate-CONTROLLER.json, unless done
  [ -f "$1/evaluate-$2.json" ] || $W evaluate --run-dir "$1" --controller "$2" --episodes 100 --seed-start 5000000 \
    --no-video --quiet
}
B=runs/ablation
[ -d $B ] || { cp -r "$Q" $B; rm -f $B/evaluate*.json $B/evaluate*.gif; }

# dream only, and real only (the quick preset's two controllers)
score $B dream
score $B real

# + dropout dreams: M retrained with dropout 0.05 on the same latents, C in dreams with dropout 0.1
D=runs/ablation_dropout
if [ ! -d $D ]; then
  mkdir -p $D && cp -r $B/{collect.json,train-vae.json,encode.json,vae,latents} $D/
  edit_config $B $D 'c["rnn"]["dropout"], c["controller"]["dream_dropout"], c["real"]["run_mode"] = 0.05, 0.1, "off"'
fi
$W train-rnn --run-dir $D --quiet
$W train-controller --run-dir $D --quiet
score $D dream

# + real fine-tune: the dream-only C above as CMA-ES's start on EnvPool, 40 generations of 16 (the real-only
# row's budget) at the preset's fine-tune step size
F=runs/ablation_ft
if [ ! -d $F ]; then
  mkdir -p $F && cp -r $B/{config.json,collect.json,train-vae.json,encode.json,train-rnn.json,train-controller.json,vae,rnn,controller} $F/
fi
$W train-controller --run-dir $F --mode dream-then-real --real.finetune-generations 40 --quiet
score $F dream-real

# + C's own episodes: one iterate round collecting with the real-only C (+ noise), M continued on old + new
# episodes, then C trained from zeros only in the new M's dream
I=runs/ablation_iter
[ -d $I ] || { cp -r $B $I; rm -f $I/evaluate-*.json; }
# (round 2: the same again, collecting with round 1's dream-trained C, whose mistakes M then learns)
for r in 1 2; do
  $W iterate --run-dir $I --rounds $r --start real --controller-from zeros --episodes 60 --noise 0.1 --spread-noise \
    --rnn-epochs 20 --generations 60 --eval-episodes 20 --quiet
  [ -f $I/evaluate-iterate-round$r.json ] || { rm -f $I/evaluate-iterate.json; score $I iterate;
                                               cp $I/evaluate-iterate.json $I/evaluate-iterate-round$r.json; }
done

$PY scripts/ablation_summary.py runs
