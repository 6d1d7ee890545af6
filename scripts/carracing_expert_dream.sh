#!/usr/bin/env bash
# The commands behind results/carracing_expert_dream.{json,md}: CarRacing C's trained only in M's dream, on the
# episodes of a good driver (Dropout's Dream Land's recipe: 90 % of its M's data came from a real-env expert).
#
#   bash scripts/carracing_expert_dream.sh [smooth|raw|summary|all|dropout|dropout-long|more]   (default all; each resumes after a kill)
#
# Base: results/carracing_headline (V and M from 80 random-policy episodes; controller_real is the headline chain's
# real-env C, 808 held out), with those 80 episodes collected and encoded again (env seeds 0-79: the quick run's).
# One iterate round per row: 150 episodes of that C (up to 500 steps, action noise spread 0-0.1, env seeds
# 1,100,000-1,100,149), M continued 20 epochs on the 230 (10 % held out for M's quality), then C from
# zeros only in the new M's dream (32 x 8 dreams, 60 generations), scored once on 100 gymnasium episodes from env
# seed 5,100,000, which no stage uses and no choice is made on. Rows, on the same episodes:
#   smooth: M's reward target is the mean of the next 10 rewards (--rnn.reward-smoothing 10)
#   raw:    M's reward target is the reward (the control; its episodes are smooth's, hard-linked)
#   dropout (session 12, named before it ran; not in `all`): smooth with Dropout's Dream Land's dropout: M continued
#           with variational dropout 0.05 on z and h, C in dreams with one fresh mask per rollout at rate 0.1; on this
#           part's own collection of the same 230 episodes (same seeds, C and noise); results/carracing_expert_dropout.*
#   dropout-long (session 12, named before it ran, after dropout's 85.9): dropout's round M and dream (dropout 0.1),
#           CMA-ES from zeros 64 x 16 dreams for 300 generations (dreams are cheap: 60 of 32 x 8 took 35 s), scored
#           once on gymnasium seeds 5,200,000-099, used by nothing else; results/carracing_expert_dropout_long.*
#   more (session 12, named before it ran, after dropout-long's -27.7): smooth with 500 of the driver's episodes
#           instead of 150 (env seeds 1,100,000-1,100,499, noise spread 0-0.1 over the 500), scored once on
#           gymnasium seeds 5,300,000-099, used by nothing else; results/carracing_expert_more.*
set -euo pipefail
cd "$(dirname "$0")/.."
W=.venv/bin/wm-fast
PY=.venv/bin/python
source scripts/lib.sh  # edit_config
S=runs/car_expert_smooth R=runs/car_expert_raw P=runs/car_expert_dropout O=results/carracing_expert_dream
ROUND=(--rounds 1 --start real --controller-from zeros --noise 0.1 --spread-noise --rnn-epochs 20 --generations 60
       --eval-episodes 100 --quiet)
ITER=("${ROUND[@]}" --episodes 150 --eval-seed-start 5100000)
base() {  # base DIR SMOOTHING [EDIT]: the headline run's config, stage records, V, M and Cs, with M's reward
          # smoothing and EDIT (Python on the config dict `c`)
  if [ ! -f "$1/config.json" ]; then
    mkdir -p "$1"
    cp -r results/carracing_headline/{collect.json,train-vae.json,encode.json,train-rnn.json,vae,rnn,controller,controller_real} "$1"/
    edit_config results/carracing_headline "$1" "c['rnn']['reward_smoothing'] = $2; ${3:-pass}"
  fi
  [ -f "$1/latents/episode_000079.npz" ] || { $W collect --run-dir "$1" --quiet && $W encode --run-dir "$1" --quiet; }
}
part=${1:-all}
if [ "$part" = smooth ] || [ "$part" = all ]; then
  base $S 10
  $W iterate --run-dir $S "${ITER[@]}"
fi
if [ "$part" = raw ] || [ "$part" = all ]; then
  [ -d $R/episodes ] || { mkdir -p $R && cp -al $S/episodes $S/latents $R/; }  # the same 230 episodes: collect
  base $R 1                                                                  # and encode skip them
  $W iterate --run-dir $R "${ITER[@]}"
fi
if [ "$part" = summary ] || [ "$part" = all ]; then
  $PY scripts/expert_dream_summary.py $O "bash scripts/carracing_expert_dream.sh" \
    "smooth:M's reward target smoothed over 10 frames:$S" "raw:M's reward target the reward itself:$R"
fi
if [ "$part" = dropout ]; then
  base $P 10 'c["rnn"]["dropout"] = 0.05; c["controller"]["dream_dropout"] = 0.1'
  $W iterate --run-dir $P "${ITER[@]}"
  $PY scripts/expert_dream_summary.py results/carracing_expert_dropout \
    "bash scripts/carracing_expert_dream.sh dropout" \
    "dropout:reward smoothed over 10 frames; M dropout 0.05, dream dropout 0.1:$P"
fi
if [ "$part" = dropout-long ]; then
  Q=runs/car_expert_dropout_long
  if [ ! -f $Q/config.json ]; then
    mkdir -p $Q/rnn && cp -al $P/latents $Q/ && cp -r $P/{collect.json,train-vae.json,encode.json,train-rnn.json,vae} $Q/
    cp $P/iterate/round_001/rnn/rnn.pt $Q/rnn/
    edit_config $P $Q 'c["controller"].update(popsize=64, rollouts=16, generations=300)
c["evaluate"]["seed_start"] = 5200000'
  fi
  $W train-controller --run-dir $Q --quiet
  [ -f $Q/evaluate-dream.json ] || $W evaluate --run-dir $Q --controller dream --episodes 100 --no-video --quiet
  $W summarize --run-dir $Q --controller dream --json-out results/carracing_expert_dropout_long.json \
    --command "bash scripts/carracing_expert_dream.sh dropout-long"
  $W export --run-dir $Q --out results/carracing_expert_dropout_long
fi
if [ "$part" = more ]; then
  base runs/car_expert_more 10
  $W iterate --run-dir runs/car_expert_more "${ROUND[@]}" --episodes 500 --eval-seed-start 5300000
  $PY scripts/expert_dream_summary.py results/carracing_expert_more \
    "bash scripts/carracing_expert_dream.sh more" "more:reward smoothed over 10 frames; 500 driver episodes:runs/car_expert_more"
fi
