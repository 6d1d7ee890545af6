#!/usr/bin/env bash
# The commands behind results/carracing_expert_dream.{json,md}: CarRacing C's trained only in M's dream, on the
# episodes of a good driver (Dropout's Dream Land's recipe: 90 % of its M's data came from a real-env expert).
#
#   bash scripts/carracing_expert_dream.sh [smooth|raw|summary|all|dropout|dropout-long|more|select|envpool-2k]   (default all; each resumes after a kill)
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
#   select (session 13, named before it ran, after more's 98.0): more's M, C from zeros at tau 1.0 / 1.25 / 1.5, the
#           generation chosen on 20 real episodes (5,400,000-019), scored on 5,500,000-099; see the part below
#   envpool-2k (session 13, named before it ran, after more's 98.0): smooth with 2,000 driver episodes collected on
#           EnvPool (4x gymnasium's agent steps/s: results/real_env_cpu.md), scored on gymnasium 5,600,000-099
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
if [ "$part" = select ]; then
  # Named before it ran (session 13, for a later session: ~40 min). more's M (its round-1 M, 580 episodes) and V;
  # dreams start from the first frames of the 80 random episodes (env seeds 0-79, collected and encoded again).
  # C from zeros in that dream at tau 1.0, 1.25 and 1.5 (32 x 8 dreams, 60 generations, as more), each CMA-ES
  # mean its run evaluated (generations 10, 20, ..., 60: 18 candidates) scored on the same 20 gymnasium episodes
  # (env seeds 5,400,000-019); the best there scored once on 5,500,000-099, which nothing else uses: the result,
  # whatever it is. Asks whether the dream holds a driver that its own score cannot pick (dream 481.6 vs real 98.0).
  # The chosen C is exported as its run's dream controller: results/carracing_expert_select/ (wm-fast evaluate
  # --controller dream); the table in results/carracing_expert_select.{json,md}.
  L=runs/car_expert_select M=results/carracing_expert_more/more
  if [ ! -f $L/config.json ]; then
    mkdir -p $L/rnn && cp -r $M/{collect.json,train-vae.json,encode.json,vae} $L/
    cp $M/iterate/round_001/rnn/rnn.pt $L/rnn/
    edit_config $M $L 'c["evaluate"]["seed_start"] = 5500000'
  fi
  [ -f $L/latents/episode_000079.npz ] || { $W collect --run-dir $L --quiet && $W encode --run-dir $L --quiet; }
  TAUS=()
  for tau in 1.0 1.25 1.5; do
    T=${L}_tau$tau TAUS+=($T)
    if [ ! -f $T/config.json ]; then
      mkdir -p $T && cp -al $L/latents $T/ && cp -r $L/{collect.json,train-vae.json,encode.json,vae,rnn} $T/
      edit_config $L $T "c['controller']['temperature'] = $tau"
    fi
    $W train-controller --run-dir $T --quiet
  done
  $PY scripts/choose_generation.py 5400000 20 5500000 results/carracing_expert_select \
    "bash scripts/carracing_expert_dream.sh select" "${TAUS[@]}" --export results/carracing_expert_select
fi
if [ "$part" = envpool-2k ]; then
  # Named before it ran (session 13, for a later session: ~1 hour). more (500 driver episodes: 98.0) with 2,000:
  # the same base (80 random gymnasium episodes, reward smoothed over 10 frames), then the run's env backend set to
  # EnvPool for the round's collection only (the headline C, noise spread 0-0.1, env seeds 1,100,000-1,101,999,
  # up to 500 steps; V stays the gymnasium-trained one, as for the headline C that was trained on EnvPool);
  # M continued 20 epochs on the 2,080, C from zeros in its dream (32 x 8, 60 generations), scored once on
  # gymnasium CarRacing-v3, env seeds 5,600,000-099, which nothing else uses.
  E=runs/car_expert_envpool2k
  base $E 10
  [ -d $E/iterate ] || edit_config $E $E 'c["env_backend"] = "envpool"; c["evaluate"]["env_backend"] = "gymnasium"'
  $W iterate --run-dir $E "${ROUND[@]}" --episodes 2000 --eval-seed-start 5600000
  $PY scripts/expert_dream_summary.py results/carracing_expert_envpool2k \
    "bash scripts/carracing_expert_dream.sh envpool-2k" \
    "envpool-2k:reward smoothed over 10 frames; 2,000 driver episodes (EnvPool):$E"
fi
