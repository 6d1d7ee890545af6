#!/usr/bin/env bash
# The committed commands behind results/doom_*: DoomTakeCover, every controller trained only in M's dream.
#
#   bash scripts/doom_results.sh quick [D]        # wm-fast run --env doom --preset quick; results/doom_quick.{json,md}, results/doom_quick/
#   bash scripts/doom_results.sh headline [D]     # the same run continued with --preset headline (iterate rounds 3-5),
#                                                 # scored on 100 episodes; results/doom_headline.{json,md}, results/doom_headline/, GIF
#   bash scripts/doom_results.sh m-sequence [D]   # M on D's episodes from scratch with 500-step sequences beside D's last
#                                                 # M (100); results/doom_m_sequence.{json,md}
#   bash scripts/doom_results.sh random3k [D]     # the paper's recipe on 3,000 random episodes, no iterate round:
#                                                 # results/doom_random3k.{json,md}, results/doom_random3k/
#   bash scripts/doom_results.sh random3k-tau [D] # the tau table in that run's dream; results/doom_temperature_random3k.*
#   bash scripts/doom_results.sh random3k-gen100 [D]  # that CMA-ES continued to 100 generations (copy D100);
#                                                 # results/doom_random3k_gen100.{json,md}
#   bash scripts/doom_results.sh random3k-tau1-restarts [D] # C at tau 1.0 with 3 restarts chosen in the dream (copy
#                                                 # D_t1); results/doom_random3k_tau1_restarts.{json,md}
#   bash scripts/doom_results.sh random3k-dropout [D] # D's data, V and latents; M retrained with dropout 0.05, C in
#                                                 # dropout-0.1 dreams at tau 1.0 with 3 restarts chosen in the dream;
#                                                 # results/doom_random3k_dropout.{json,md}, results/doom_random3k_dropout/
#   bash scripts/doom_results.sh random3k-dropout05 [D] # the same M dreaming at dropout 0.05 (copy D_dropout05);
#                                                 # results/doom_random3k_dropout05.{json,md}, results/doom_random3k_dropout05/
#   bash scripts/doom_results.sh random3k-dropout-tau [D] # the tau table in those dropout dreams (same seeds as
#                                                 # random3k-tau); results/doom_temperature_random3k_dropout.*
#   bash scripts/doom_results.sh random10k [D]    # the paper's 10,000 random episodes (copy D_10k: D's 3,000 episodes,
#                                                 # V and latents, 7,000 more collected and encoded), M 6 epochs, C at
#                                                 # tau 1.0 with 3 restarts chosen in the dream, scored on 9,000,000-099;
#                                                 # results/doom_random10k.{json,md}, results/doom_random10k/
#   bash scripts/doom_results.sh random10k-restart0 [D] # random10k's first restart alone, once it has finished (copy
#                                                 # D_10k_r0), scored on 9,100,000-099; results/doom_random10k_restart0.{json,md}
#   bash scripts/doom_results.sh random10k-tau [D] # the tau table in random10k's dream (copy D_10k), real on
#                                                 # 9,200,000-099; results/doom_temperature_random10k.*; then the C
#                                                 # best there (a sweep C or random10k's own) scored on 9,300,000-099:
#                                                 # results/doom_random10k_heldout.{json,md}
#   bash scripts/doom_results.sh random10k-pooled [D] # random10k's C on its four blocks of 100 (9,000,000 to
#                                                 # 9,300,099) pooled; results/doom_random10k_pooled.{json,md}
#   bash scripts/doom_results.sh random10k-m12 [D] # random10k's M continued to 12 epochs (copy D_10k_m12), C at tau
#                                                 # 1.0, one CMA-ES run, scored on 9,400,000-099; results/doom_random10k_m12.*
#   bash scripts/doom_results.sh random10k-base [D] # a new machine without D_10k's 10,000 episodes: results/
#                                                 # doom_random10k's V, M and C (D_10k_base) with a start pool of the
#                                                 # first frames of random episodes on env seeds 0-999 (collected again
#                                                 # in D_10k_pool: the first 1,000 of the original collection seeds)
#   bash scripts/doom_results.sh random10k-calibration [D] # how long the random policy lives in that dream against
#                                                 # the game, per tau and done threshold; results/doom_dream_calibration.*
#   bash scripts/doom_results.sh random10k-threshold [D] # Cs from zeros in that dream at done thresholds 0.25 and
#                                                 # 0.1 (D_10k_thr025, D_10k_thr01) and random10k's C, chosen on
#                                                 # 9,500,000-099, the chosen scored on 9,600,000-099;
#                                                 # results/doom_random10k_threshold.{json,md} and folder
#   bash scripts/doom_results.sh random10k-threshold-confirm [D] # the chosen C on 9,700,000-099, pooled with its
#                                                 # held-out block; results/doom_random10k_thr025_pooled.{json,md}
#   bash scripts/doom_results.sh random10k-round [D] # one iterate round on that C's own play, a new C from zeros in
#                                                 # the new dream (D_10k_round), scored on 9,800,000-099 and
#                                                 # 9,900,000-099; results/doom_random10k_round_pooled.*, folder
#   bash scripts/doom_results.sh random10k-dropout-m [D] # the 10,000 random episodes again, M with dropout 0.05
#                                                 # (D_10k_dropout); V and M in results/doom_random10k_dropout/
#   bash scripts/doom_results.sh random10k-dropout-c [D] # then C in its dropout-0.1 dreams (D_10k_dropout_c, start
#                                                 # pool of random10k-base), scored on 10,000,000-099 and
#                                                 # 10,100,000-099; results/doom_random10k_dropout_pooled.*
#   bash scripts/doom_results.sh random10k-dropout-select [D] # that CMA-ES's evaluated means, one chosen on
#                                                 # 10,200,000-099 and scored on 10,300,000-099;
#                                                 # results/doom_random10k_dropout_select.{json,md}
#   bash scripts/doom_results.sh action-shares [D] # what the dropout C, the random10k C and the threshold-0.25 C do:
#                                                 # share of left / stay / right in 64 dreams and in 16 real episodes
#                                                 # (10,400,000-015, a diagnostic); results/doom_action_shares.*
#   bash scripts/doom_results.sh random10k-thr025-long [D] # threshold-0.25's CMA-ES to 100 generations, its
#                                                 # evaluated means chosen on 10,500,000-049, the chosen scored on
#                                                 # 10,600,000-099; results/doom_random10k_thr025_long_select.*
#   bash scripts/doom_results.sh random10k-mix [D] # M from scratch on the 10,000 random episodes and the 500
#                                                 # threshold-0.25 C episodes of random10k-round; C from zeros in its
#                                                 # dream, scored on 10,700,000-099 and 10,800,000-099, pooled;
#                                                 # results/doom_random10k_mix{,_pooled}.*, results/doom_random10k_mix/
#   bash scripts/doom_results.sh random10k-mix-thr05 [D] # C in random10k-mix's dream at done threshold 0.5,
#                                                 # scored on 10,900,000-099 and 11,000,000-099, pooled;
#                                                 # results/doom_random10k_mix_thr05{,_pooled}.*
#   bash scripts/doom_results.sh random10k-mix-thr05-long [D] # the same CMA-ES to 100 generations, its last mean
#                                                 # scored on 11,100,000-099 and 11,200,000-099, pooled;
#                                                 # results/doom_random10k_mix_thr05_long{,_pooled}.*
#   bash scripts/doom_results.sh random10k-mix-round [D] # one iterate round on random10k-mix-thr05's C: its 500
#                                                 # episodes, M continued 6 epochs, C from zeros in the new dream,
#                                                 # scored on 11,300,000-099 and 11,400,000-099, pooled;
#                                                 # results/doom_random10k_mix_round{,_pooled}.*
#   bash scripts/doom_results.sh random10k-mix-both [D] # M from scratch on the 10,000 random episodes and both Cs'
#                                                 # 500 (threshold 0.25's and 0.5's); C from zeros in its dream at
#                                                 # threshold 0.5, scored on 11,500,000-099 and 11,600,000-099, pooled;
#                                                 # results/doom_random10k_mix_both{,_pooled}.*, results/doom_random10k_mix_both/
#   bash scripts/doom_results.sh random10k-mix-both-thr09 [D] # C in that dream at done threshold 0.9, scored
#                                                 # on 11,700,000-099 and 11,800,000-099, pooled;
#                                                 # results/doom_random10k_mix_both_thr09{,_pooled}.*
#   bash scripts/doom_results.sh mix-both-diagnostics [D] # the random policy's dream life in random10k-mix-thr05's
#                                                 # and random10k-mix-both's dreams per done threshold, and what
#                                                 # their Cs do; results/doom_dream_calibration_mix_{thr05,both_c}.*,
#                                                 # results/doom_action_shares_mix_both.*
#   bash scripts/doom_results.sh random10k-m12-restarts [D] # random10k-m12's V and M, C from zeros as random10k's
#                                                 # (tau 1.0, threshold 0.5, 3 restarts chosen in the dream), scored
#                                                 # on 11,900,000-099 and 12,000,000-099, pooled;
#                                                 # results/doom_random10k_m12_restarts{,_pooled}.*
#   bash scripts/doom_results.sh random10k-m12-warm [D] # C in the 12-epoch M's dream starting from random10k's C
#                                                 # (step size 0.05), scored on 12,100,000-099 and 12,200,000-099,
#                                                 # pooled; results/doom_random10k_m12_warm{,_pooled}.*
#   bash scripts/doom_results.sh random10k-m24 [D] # M from scratch on the 10,000 random episodes, 24 epochs, length
#                                                 # buckets 16 (resumes per epoch, over sessions); C as in
#                                                 # random10k-m12-warm, scored on 12,300,000-099 and 12,400,000-099,
#                                                 # pooled; results/doom_random10k_m24{,_pooled}.*
#   bash scripts/doom_results.sh random10k-m12-wall [D] # one iterate round on the 12-epoch M aimed at wall-hugging:
#                                                 # a wall-hugging C's 500 real episodes join the 10,000 random ones,
#                                                 # M continues 2 epochs, C from zeros in that dream, scored on
#                                                 # 12,900,000-099 and 13,000,000-099, pooled;
#                                                 # results/doom_random10k_m12_wall_pooled.*, results/doom_random10k_m12_wall/
#   bash scripts/doom_results.sh m12-wall-diagnostics [D] # after random10k-m12-wall: the cross-dream Cs and the
#                                                 # random policy in that round's dream (no game played);
#                                                 # results/doom_cross_dream_m12_wall.*, results/doom_dream_calibration_m12_wall.*
#   bash scripts/doom_results.sh random10k-v [D]  # V trained longer (every 20th frame of the 10,000 random episodes,
#                                                 # 4 epochs, from scratch), re-encoded, M from scratch (6 epochs), C
#                                                 # from zeros; scored on 13,100,000-099 and 13,200,000-099, pooled;
#                                                 # results/doom_random10k_v{,_pooled}.*, results/doom_random10k_v/
#   bash scripts/doom_results.sh vae-compare [D]  # random10k's V and random10k-v's on frames of the threshold-0.25
#                                                 # C's play (random10k-round's collection; no game played);
#                                                 # results/doom_vae_compare.{json,md,png}
#   bash scripts/doom_results.sh random10k-ensemble [D] # C from zeros scored in two Ms' dreams at once (random10k's
#                                                 # 6-epoch M and the 12-epoch M, 8 + 8 dreams a candidate), scored on
#                                                 # 12,500,000-099 and 12,600,000-099, pooled;
#                                                 # results/doom_random10k_ensemble{,_pooled}.*
#   bash scripts/doom_results.sh random10k-ensemble-warm [D] # the same two dreams, CMA-ES from random10k's C (step
#                                                 # size 0.05, 30 generations), scored on 12,700,000-099 and
#                                                 # 12,800,000-099, pooled; results/doom_random10k_ensemble_warm{,_pooled}.*
#   bash scripts/doom_results.sh cross-dream [D]  # seven committed Cs in three dreams (random10k's M at thresholds
#                                                 # 0.5 and 0.25, the 12-epoch M), and the random policy's dream life
#                                                 # in the 12-epoch M's dream; results/doom_cross_dream.*,
#                                                 # results/doom_dream_calibration_m12.*
#   bash scripts/doom_results.sh temperature [D]  # the paper's tau table on the run's random-data M, without and with
#                                                 # dropout dreams; results/doom_temperature.{json,md,png}, the
#                                                 # controllers in results/doom_headline/sweep and results/doom_dropout/sweep
#
# Env seeds: random play 0-299; iterate round r collects from 1,000,000 + r*100,000; each round's C is scored on
# 3,000,000-3,000,031 (the headline's round is chosen there); the quick and headline scores are on 1,000,000.. and
# the tau table on 2,000,000-2,000,099, which no stage uses. Every command resumes after a kill (rerun it).
set -euo pipefail
cd "$(dirname "$0")/.."
W=.venv/bin/wm-fast
PY=.venv/bin/python
source scripts/lib.sh  # edit_config
derive() {  # derive SRC DST EDIT [FILE...]: DST = SRC's random data, V, latents (hard links: latent files are
            # replaced atomically, never written in place) and FILEs, with config edits; EDIT is Python run on
            # the config dict `c`; an existing DST is left as it is (resume)
  local src=$1 dst=$2 edit=$3 extra=()
  shift 3
  for f in "$@"; do extra+=("$src/$f"); done
  if [ ! -f "$dst/config.json" ]; then
    mkdir -p "$dst" && cp -al "$src/latents" "$dst"/
    cp -r "$src"/{collect.json,train-vae.json,encode.json,vae} "${extra[@]}" "$dst"/
    edit_config "$src" "$dst" "$edit"
  fi
}
two_blocks() {  # two_blocks P NAME FIRST SECOND OUT: P's C trained from zeros in its dream, scored on 100 episodes
                # from env seed FIRST (evaluate-dream.json) and from SECOND (evaluate.json), both pooled into
                # results/OUT_pooled.*; the run summarized into results/OUT.* and exported to results/OUT/
  local p=$1 name=$2 first=$3 second=$4 out=$5
  $W train-controller --run-dir "$p" --quiet
  [ -f "$p/evaluate-dream.json" ] || $W evaluate --run-dir "$p" --controller dream --episodes 100 \
    --seed-start "$first" --no-video --quiet
  [ -f "$p/evaluate.json" ] || $W evaluate --run-dir "$p" --controller latest --episodes 100 \
    --seed-start "$second" --no-video --quiet
  $PY scripts/pool_scores.py "results/${out}_pooled" "bash scripts/doom_results.sh $name $D" \
    "$p/evaluate-dream.json" "$p/evaluate.json"
  $W summarize --run-dir "$p" --controller dream --json-out "results/$out.json" \
    --command "bash scripts/doom_results.sh $name $D"
  $W export --run-dir "$p" --out "results/$out"
}
iterate_round() {  # iterate_round P NAME FIRST SECOND OUT [EPOCHS]: one iterate round on P (its C plays 500
                   # episodes, action noise spread 0-0.5; M continues EPOCHS epochs (default 6) on all of P's latents;
                   # C from zeros in the new dream, 50 generations), the round's C scored on 100 episodes from env
                   # seed FIRST (the round's own scoring) and from SECOND, both pooled into results/OUT_pooled.*;
                   # P exported to results/OUT/
  local p=$1 name=$2 first=$3 second=$4 out=$5 epochs=${6:-6}
  $W iterate --run-dir "$p" --rounds 1 --start dream --controller-from zeros --episodes 500 --noise 0.5 \
    --spread-noise --rnn-epochs "$epochs" --generations 50 --eval-episodes 100 --eval-seed-start "$first" --pick last --quiet
  [ -f "$p/evaluate-iterate.json" ] || $W evaluate --run-dir "$p" --controller iterate --episodes 100 \
    --seed-start "$second" --no-video --quiet
  $PY scripts/pool_scores.py "results/${out}_pooled" "bash scripts/doom_results.sh $name $D" \
    "$p/iterate/round_001/evaluate.json" "$p/evaluate-iterate.json"
  $W export --run-dir "$p" --out "results/$out"
}
mixed_m() {  # mixed_m S P EDIT N SRC:DIGIT...: S = the 10,000 random episodes' latents (D_10k_dropout's) plus each
             # SRC's agent episodes (SRC/latents/episode_1?????.npz, linked as episode_DIGIT?????.npz), random10k's V
             # and records, its config with EDIT (Python on `c`); N latent files in all; M from scratch in S; then
             # P = S's V and M with the start pool of random10k-base (hard links throughout; resumes)
  local s=$1 p=$2 edit=$3 n=$4 src f i
  shift 4
  if [ ! -f "$s/config.json" ]; then
    mkdir -p "$s/latents" && cp -al "${D}_10k_dropout/latents/." "$s/latents/"
    for src in "$@"; do
      for f in "${src%:*}/latents/"episode_1?????.npz; do
        i=$(basename "$f" .npz); ln "$f" "$s/latents/episode_${src##*:}${i:9}.npz"
      done
    done
    cp -r results/doom_random10k/{collect.json,train-vae.json,encode.json,vae} "$s"/
    edit_config results/doom_random10k "$s" "$edit"
  fi
  [ "$(ls "$s/latents" | wc -l)" -eq "$n" ] || { echo "expected $n latent files in $s/latents" >&2; exit 1; }
  $W train-rnn --run-dir "$s" --quiet
  if [ ! -f "$p/config.json" ]; then
    mkdir -p "$p" && cp -al "${D}_10k_pool/latents" "$p"/
    cp -r "$s"/{config.json,collect.json,train-vae.json,encode.json,train-rnn.json,vae,rnn} "$p"/
  fi
}
CROSS_DREAM_CS=(  # NAME=PATH@REAL of the seven committed Cs that cross-dream and m12-wall-diagnostics dream
  "random10k (tau 1.0, 3 restarts)=results/doom_random10k/controller/controller.pt@825.9"
  "threshold 0.25=results/doom_random10k_threshold/thr025/controller/controller.pt@836.9"
  "random3k, tau 1.0, 3 restarts=results/doom_random3k/controller_tau1_restarts/controller.pt@807.2"
  "mixed-data M, threshold 0.5=results/doom_random10k_mix_thr05/controller/controller.pt@803.8"
  "random10k-m12 (1 restart)=results/doom_random10k_m12/controller/controller.pt@183.4"
  "dropout M, dropout dreams=results/doom_random10k_dropout/controller/controller.pt@178.7"
  "mix-both M, threshold 0.5=results/doom_random10k_mix_both/controller/controller.pt@173.0")
COMMANDS="quick|headline|random3k|random3k-tau|random3k-gen100|random3k-tau1-restarts|random3k-dropout|random3k-dropout05|random3k-dropout-tau|random10k|random10k-restart0|random10k-tau|random10k-pooled|random10k-m12|random10k-base|random10k-calibration|random10k-threshold|random10k-threshold-confirm|random10k-round|random10k-dropout-m|random10k-dropout-c|random10k-dropout-select|action-shares|random10k-thr025-long|random10k-mix|random10k-mix-thr05|random10k-mix-thr05-long|random10k-mix-round|random10k-mix-both|random10k-mix-both-thr09|mix-both-diagnostics|random10k-m12-restarts|random10k-m12-warm|random10k-m24|random10k-m12-wall|m12-wall-diagnostics|random10k-v|vae-compare|random10k-ensemble|random10k-ensemble-warm|cross-dream|temperature|m-sequence"
cmd=${1:?usage: doom_results.sh $COMMANDS [D]}
D=${2:-runs/doom}
case "$cmd" in
quick)
  $W run --env doom --preset quick --run-dir "$D" --quiet
  $W summarize --run-dir "$D" --json-out results/doom_quick.json \
    --command "bash scripts/doom_results.sh quick $D  (wm-fast run --env doom --preset quick --run-dir $D)"
  $W export --run-dir "$D" --out results/doom_quick
  ;;
headline)
  $W run --env doom --preset headline --run-dir "$D" --quiet
  $W video --run-dir "$D" --seed 1000000 --steps 400 --out results/doom_headline_real_vs_dream.gif
  $W summarize --run-dir "$D" --json-out results/doom_headline.json \
    --command "bash scripts/doom_results.sh headline $D  (wm-fast run --env doom --preset headline --run-dir $D)"
  $W export --run-dir "$D" --out results/doom_headline
  ;;
random3k)
  # Episodes 0-299 are the quick run's (same seeds and policy); results/doom_random3k_gen100.md continued this
  # CMA-ES to 100 generations (random3k-gen100).
  $W run --env doom --preset quick --run-dir "$D" --collect.episodes 3000 --vae.frame-stride 10 --rnn.hidden 512 \
    --rnn.seq-len 500 --rnn.epochs 12 --controller.popsize 64 --controller.rollouts 16 --controller.generations 50 \
    --iterate.run-rounds 0 --evaluate.episodes 100 --quiet
  $W summarize --run-dir "$D" --json-out results/doom_random3k.json \
    --command "bash scripts/doom_results.sh random3k $D"
  $W export --run-dir "$D" --out results/doom_random3k
  ;;
random3k-tau)
  $W sweep-temperature --run-dir "$D" --temperatures 0.1 0.5 1.0 1.15 1.3 --episodes 100 --seed-start 2000000 \
    --controller.popsize 32 --controller.rollouts 8 --controller.generations 40 --controller.eval-rollouts 256 --quiet
  for ext in json md png; do cp "$D/sweep/temperature.$ext" "results/doom_temperature_random3k.$ext"; done
  ;;
random3k-gen100)
  # the random3k CMA-ES continued from 50 to 100 generations (its steps were run by hand in session 7; same steps)
  P=${D}100
  derive "$D" "$P" 'c["controller"]["generations"] = 100; c["evaluate"]["seed_start"] = 4000000' \
    train-rnn.json rnn controller
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --episodes 100 --seed-start 4000000 --quiet
  $W summarize --run-dir "$P" --controller dream --json-out results/doom_random3k_gen100.json \
    --command "bash scripts/doom_results.sh random3k-gen100 $D"
  ;;
random3k-tau1-restarts)
  # tau 1.0 was chosen by the random-3k tau table (env seeds 2,000,000-099); this score uses 6,000,000-099
  P=${D}_t1
  derive "$D" "$P" 'c["controller"].update(temperature=1.0, restarts=3); c["evaluate"]["seed_start"] = 6000000' \
    train-rnn.json rnn
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --episodes 100 --seed-start 6000000 \
    --no-video --quiet
  $W summarize --run-dir "$P" --controller dream --json-out results/doom_random3k_tau1_restarts.json \
    --command "bash scripts/doom_results.sh random3k-tau1-restarts $D"
  ;;
random3k-dropout)
  # tau 1.0 was chosen by the random-3k tau table (env seeds 2,000,000-099); this score uses 7,000,000-099
  P=${D}_dropout
  derive "$D" "$P" 'c["rnn"]["dropout"] = 0.05; c["controller"].update(dream_dropout=0.1, temperature=1.0, restarts=3)
c["evaluate"].update(seed_start=7000000, episodes=100); c["iterate"]["run_rounds"] = 0'
  $W train-rnn --run-dir "$P" --quiet
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --quiet
  $W summarize --run-dir "$P" --controller dream --json-out results/doom_random3k_dropout.json \
    --command "bash scripts/doom_results.sh random3k-dropout $D"
  $W export --run-dir "$P" --out results/doom_random3k_dropout
  ;;
random3k-dropout05)
  # random3k-dropout's M, dreaming at dropout 0.05 (its training rate) instead of 0.1: at 0.1 the C scored like one
  # that only turns left (real 167; scripts/doom_dropout_probe.py); 0.05 was chosen after that score, so this one
  # uses env seeds 8,000,000-099
  P=${D}_dropout05
  derive "${D}_dropout" "$P" 'c["controller"]["dream_dropout"] = 0.05; c["evaluate"]["seed_start"] = 8000000' \
    train-rnn.json rnn
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --quiet
  $W summarize --run-dir "$P" --controller dream --json-out results/doom_random3k_dropout05.json \
    --command "bash scripts/doom_results.sh random3k-dropout05 $D"
  $W export --run-dir "$P" --out results/doom_random3k_dropout05
  ;;
random3k-dropout-tau)
  # the tau table in the dropout dreams of random3k-dropout's M, on the same env seeds as random3k-tau
  P=${D}_dropout
  $W sweep-temperature --run-dir "$P" --temperatures 0.1 0.5 1.0 1.15 1.3 --episodes 100 --seed-start 2000000 \
    --controller.popsize 32 --controller.rollouts 8 --controller.generations 40 --controller.eval-rollouts 256 \
    --controller.restarts 1 --quiet
  for ext in json md png; do cp "$P/sweep/temperature.$ext" "results/doom_temperature_random3k_dropout.$ext"; done
  ;;
random10k)
  # Episodes 0-2,999 and their latents are D's (hard links; V was trained on them alone), 3,000-9,999 are new with
  # the same policy. tau 1.0 and 3 restarts as chosen for random3k-tau1-restarts (tau table on 2,000,000-099).
  # M gets 6 epochs over 9,000 training episodes: 2.2x the gradient steps of D's 12 epochs over 2,700.
  P=${D}_10k
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "$D/episodes" "$D/latents" "$P"/ && cp -r "$D"/{train-vae.json,vae} "$P"/
    edit_config "$D" "$P" 'c["collect"]["episodes"] = 10000; c["rnn"]["epochs"] = 6
c["controller"].update(temperature=1.0, restarts=3); c["evaluate"]["seed_start"] = 9000000'
  fi
  $W collect --run-dir "$P" --quiet
  $W encode --run-dir "$P" --quiet
  $W train-rnn --run-dir "$P" --quiet
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate.json" ] || $W evaluate --run-dir "$P" --episodes 100 --seed-start 9000000 --quiet
  $W summarize --run-dir "$P" --json-out results/doom_random10k.json \
    --command "bash scripts/doom_results.sh random10k $D"
  $W export --run-dir "$P" --out results/doom_random10k
  ;;
random10k-restart0)
  # An interim score while random10k's restarts 1-2 run: restart 0's C (the run restarts=1 would make) on env seeds
  # 9,100,000-099, a block of its own, so that the chosen C's score on 9,000,000-099 stays untouched.
  S=${D}_10k P=${D}_10k_r0
  [ -f "$S/controller/restart_0/controller.pt" ] || { echo "restart 0 of $S has not finished"; exit 1; }
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P/controller" && cp -r "$S"/{collect.json,encode.json,train-vae.json,train-rnn.json,vae,rnn} "$P"/
    cp "$S"/controller/restart_0/{controller.pt,log.jsonl,curve.png} "$P/controller/"
    edit_config "$S" "$P" 'c["controller"]["restarts"] = 1; c["evaluate"]["seed_start"] = 9100000'
  fi
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --episodes 100 --seed-start 9100000 \
    --no-video --quiet
  $PY scripts/interim_summary.py "$P" results/doom_random10k_restart0 "bash scripts/doom_results.sh random10k-restart0 $D"
  ;;
random10k-tau)
  # Named before it ran (session 10): the candidates are the five sweep Cs and random10k's own C; the one with the
  # best real mean on 9,200,000-099 is scored once on 9,300,000-099, and that score is the result, whatever it is.
  P=${D}_10k
  $W sweep-temperature --run-dir "$P" --temperatures 0.1 0.5 1.0 1.15 1.3 --episodes 100 --seed-start 9200000 \
    --controller.popsize 32 --controller.rollouts 8 --controller.generations 40 --controller.eval-rollouts 256 \
    --controller.restarts 1 --quiet
  for ext in json md png; do cp "$P/sweep/temperature.$ext" "results/doom_temperature_random10k.$ext"; done
  $PY scripts/doom_heldout_choice.py "$P" 9200000 9300000 results/doom_random10k_heldout \
    "bash scripts/doom_results.sh random10k-tau $D"
  $W export --run-dir "$P" --out results/doom_random10k  # now with sweep/ (every tau's C) and heldout/ (the scores)
  ;;
random10k-m12)
  # Named before it ran (session 10): M's loss was still falling after 6 epochs, so M is continued to 12 (constant
  # learning rate: the same as 12 from the start); C as random10k's at tau 1.0 but one restart (time); the score on
  # 9,400,000-099 is the result, whatever it is.
  P=${D}_10k_m12
  derive "${D}_10k" "$P" 'c["rnn"]["epochs"] = 12; c["controller"]["restarts"] = 1; c["evaluate"]["seed_start"] = 9400000' \
    rnn
  $W train-rnn --run-dir "$P" --quiet
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate.json" ] || $W evaluate --run-dir "$P" --episodes 100 --seed-start 9400000 --no-video --quiet
  $W summarize --run-dir "$P" --json-out results/doom_random10k_m12.json \
    --command "bash scripts/doom_results.sh random10k-m12 $D"
  $W export --run-dir "$P" --out results/doom_random10k_m12
  ;;
random10k-base)
  S=${D}_10k_pool P=${D}_10k_base
  if [ ! -f "$S/config.json" ]; then
    mkdir -p "$S" && cp -r results/doom_random10k/{train-vae.json,vae} "$S"/
    edit_config results/doom_random10k "$S" 'c["collect"]["episodes"] = 1000'
  fi
  [ -f "$S/encode.json" ] || { $W collect --run-dir "$S" --quiet && $W encode --run-dir "$S" --quiet; }
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "$S/latents" "$P"/
    cp -r results/doom_random10k/{config.json,vae,rnn,controller,collect.json,encode.json,train-vae.json} "$P"/
    cp results/doom_random10k/{train-rnn.json,train-controller.json} "$P"/
  fi
  ;;
random10k-calibration)
  $PY scripts/doom_dream_calibration.py "${D}_10k_base" results/doom_dream_calibration \
    "bash scripts/doom_results.sh random10k-calibration $D"
  ;;
random10k-threshold)
  # Named before it ran (session 11), after results/doom_dream_calibration.md (collection data only): the random
  # policy dies sooner in this dream than in the game (211 against 328 steps), but random10k's C lives 1,764 steps
  # at done threshold 0.5 and 951 at 0.1: it spends its dreams where M gives death a 10-50 % chance a step, which
  # the threshold 0.5 forgives. Cs from zeros at tau 1.0 with done thresholds 0.25 and 0.1 (one CMA-ES run each,
  # 64 x 16, 50 generations) and random10k's own C are scored on 9,500,000-099; the best there is scored once on
  # 9,600,000-099, and that score is the result, whatever it is.
  B=${D}_10k_base
  for thr in 025 01; do
    derive "$B" "${D}_10k_thr$thr" "c['controller'].update(done_threshold=0.${thr#0}, restarts=1)" rnn train-rnn.json
    $W train-controller --run-dir "${D}_10k_thr$thr" --quiet
  done
  O=results/doom_random10k_threshold
  $PY scripts/doom_heldout_choice.py "$B" 9500000 9600000 $O "bash scripts/doom_results.sh random10k-threshold $D" \
    "${D}_10k_thr025" "${D}_10k_thr01"
  for thr in 025 01; do  # each run's V, M (byte for byte results/doom_random10k's) and C
    $W export --run-dir "${D}_10k_thr$thr" --out $O/thr$thr
  done
  cp -r "$B/heldout" $O/
  ;;
random10k-threshold-confirm)
  # Named before it ran (session 11), once random10k-threshold had chosen the threshold-0.25 C (909.1 on its
  # selection block, 873.9 held out): the same C on one more block, 9,700,000-099, reported whatever it is, and
  # pooled with the held-out block (the selection block stays out of the pool: it was chosen on).
  P=${D}_10k_thr025
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --episodes 100 --seed-start 9700000 \
    --no-video --quiet
  $PY scripts/pool_scores.py results/doom_random10k_thr025_pooled \
    "bash scripts/doom_results.sh random10k-threshold-confirm $D" "${D}_10k_base/heldout/heldout.json" \
    "$P/evaluate-dream.json"
  ;;
random10k-round)
  # Named before it ran (session 12). results/doom_dream_calibration.md: C spends its dreams where random play
  # rarely goes and M gives death a 10-50 % chance a step. One iterate round (the paper's iterative procedure)
  # gives M data there: the threshold-0.25 C (results/doom_random10k_threshold/thr025, 836.9 pooled) plays 500
  # real episodes (action noise spread 0-0.5, env seeds 1,100,000-1,100,499), M continues 6 epochs on those and
  # the start pool's 1,000 random episodes, and a new C is trained from zeros only in the new M's dream (tau 1.0,
  # done threshold 0.25, 64 x 16, 50 generations): no C ever gets a real return. The round's C is scored on
  # 9,800,000-099 (the result, whatever it is) and then on 9,900,000-099; both blocks pooled. No choice is made.
  B=${D}_10k_base P=${D}_10k_round
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "$B/latents" "$P"/
    cp -r results/doom_random10k_threshold/thr025/. "$P"/
  fi
  iterate_round "$P" random10k-round 9800000 9900000 doom_random10k_round
  ;;
random10k-dropout-m)
  # Named before it ran (session 12), for a session of its own (~2 hours on 2 cores): Dropout's Dream Land's
  # Doom recipe on the paper's 10,000 random episodes (its dream dropout sweep: 0.0 767, 0.1 933). The random-10k
  # run's collection again (env seeds 0-9,999) encoded with its V, and M from scratch as random10k's (6 epochs)
  # but with variational dropout 0.05 on z and h. V and M go to results/doom_random10k_dropout/ (no C yet).
  S=${D}_10k_dropout
  if [ ! -f "$S/config.json" ]; then
    mkdir -p "$S" && cp -r results/doom_random10k/{train-vae.json,vae} "$S"/
    edit_config results/doom_random10k "$S" 'c["rnn"]["dropout"] = 0.05; c["controller"]["dream_dropout"] = 0.1
c["controller"]["restarts"] = 1; c["evaluate"]["seed_start"] = 10000000'
  fi
  [ -f "$S/encode.json" ] || { $W collect --run-dir "$S" --quiet && $W encode --run-dir "$S" --quiet; }
  $W train-rnn --run-dir "$S" --quiet
  $W export --run-dir "$S" --out results/doom_random10k_dropout
  ;;
random10k-dropout-c)
  # Named before it ran (session 12). After random10k-dropout-m: C from zeros in M's dropout dreams (a fresh mask
  # pair per rollout at 0.1; tau 1.0, done threshold 0.5, 64 x 16, 50 generations, 1 restart), dreams starting
  # from the start pool of random10k-base (run that first on a new machine). Scored on 10,000,000-099 (the
  # result, whatever it is), then on 10,100,000-099; both pooled. No choice is made.
  P=${D}_10k_dropout_c
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "${D}_10k_pool/latents" "$P"/
    cp -r results/doom_random10k_dropout/. "$P"/
  fi
  $W train-controller --run-dir "$P" --quiet
  [ -f "$P/evaluate-dream.json" ] || $W evaluate --run-dir "$P" --controller dream --episodes 100 \
    --seed-start 10000000 --no-video --quiet
  # the same C again ("latest" is the dream C in a run without iterate rounds), into evaluate.json
  [ -f "$P/evaluate.json" ] || $W evaluate --run-dir "$P" --controller latest --episodes 100 \
    --seed-start 10100000 --no-video --quiet
  $PY scripts/pool_scores.py results/doom_random10k_dropout_pooled \
    "bash scripts/doom_results.sh random10k-dropout-c $D" "$P/evaluate-dream.json" "$P/evaluate.json"
  $W export --run-dir "$P" --out results/doom_random10k_dropout
  ;;
random10k-dropout-select)
  # Named before random10k-dropout-c had a score (session 13). Its CMA-ES keeps every mean it evaluated in the dream
  # (generations 10, 20, ..., 50: controller/means/); each is scored on the same 100 real episodes (10,200,000-099)
  # and the best there once on 10,300,000-099, which nothing else uses: the result, whatever it is. Results in
  # results/doom_random10k_dropout_select.{json,md}.
  P=${D}_10k_dropout_c
  $PY scripts/choose_generation.py 10200000 100 10300000 results/doom_random10k_dropout_select \
    "bash scripts/doom_results.sh random10k-dropout-select $D" "$P"
  ;;
action-shares)
  # After random10k-dropout-c's 178.7: its C, random10k's (D_10k_base) and threshold-0.25's, each in its own
  # run's dream (settings and start pool) and in the same 16 real episodes
  T=${D}_10k_thr025
  if [ ! -f "$T/config.json" ]; then
    mkdir -p "$T" && cp -al "${D}_10k_pool/latents" "$T"/ && cp -r results/doom_random10k_threshold/thr025/. "$T"/
  fi
  $PY scripts/action_shares.py results/doom_action_shares "bash scripts/doom_results.sh action-shares $D" 10400000 16 \
    "${D}_10k_dropout_c:results/doom_random10k_dropout/controller/controller.pt" \
    "${D}_10k_base:${D}_10k_base/controller/controller.pt" \
    "$T:results/doom_random10k_threshold/thr025/controller/controller.pt"
  ;;
random10k-thr025-long)
  # Named before it ran (session 14), after the dropout C's 178.7. The best C so far is threshold-0.25's (836.9
  # pooled, 50 generations). The same CMA-ES (random10k's V and M, tau 1.0, threshold 0.25, 64 x 16, seed 0, one
  # restart) run to 100 generations; each mean it evaluated (generations 10, 20, ..., 100) scored on the same 50
  # real episodes (10,500,000-049), the best there scored once on 10,600,000-099, which nothing else uses: the
  # result, whatever it is. Real episodes on 2 workers x 4 games (the layout does not change an episode).
  P=${D}_10k_thr025_long
  derive "${D}_10k_base" "$P" "c['controller'].update(done_threshold=0.25, restarts=1, generations=100); \
c['evaluate'].update(workers=2, envs_per_worker=4)" rnn train-rnn.json
  $W train-controller --run-dir "$P" --quiet
  $PY scripts/choose_generation.py 10500000 50 10600000 results/doom_random10k_thr025_long_select \
    "bash scripts/doom_results.sh random10k-thr025-long $D" "$P" --export results/doom_random10k_thr025_long
  ;;
random10k-mix)
  # Named before it ran (session 15). random10k-round (M continued 6 epochs on the threshold-0.25 C's 500 episodes
  # and 1,000 random ones: 633.5) and random10k-m12 (M continued 6 epochs on the random data: 183.4) both gave M
  # 12 epochs, so they cannot tell the C episodes' effect from the longer training. Here M is trained from scratch
  # with random10k's settings (6 epochs, seed 0, no dropout) on all 10,000 random episodes (D_10k_dropout's
  # latents, random10k's V) plus those 500 C episodes (env seeds 1,100,000-1,100,499, action noise spread 0-0.5);
  # then C from zeros only in its dream with threshold-0.25's settings (tau 1.0, done threshold 0.25, 64 x 16,
  # 50 generations, one restart, seed 0; dreams start from the 1,000 first frames of random10k-base's pool).
  # Scored on 10,700,000-099 (the result, whatever it is), then on 10,800,000-099; both pooled. No choice is made.
  P=${D}_10k_mix_c
  mixed_m "${D}_10k_mix" "$P" "c['controller'].update(done_threshold=0.25, restarts=1)
c['evaluate'].update(seed_start=10700000, workers=2, envs_per_worker=4)" 10500 "${D}_10k_round:1"
  two_blocks "$P" random10k-mix 10700000 10800000 doom_random10k_mix
  ;;
random10k-mix-thr05)
  # Named before it ran (session 15), after random10k-mix's 654.0: its C lives 577 steps in its own dream and
  # about 654 in the game, so that M's dream is now harsher than the game, where random10k's M (1,590 in the dream
  # at threshold 0.25, 837 in the game) was kinder. The done threshold 0.25 was chosen for random10k's M; here C is
  # trained from zeros in random10k-mix's dream at the paper's threshold, 0.5, all else as random10k-mix (tau 1.0,
  # 64 x 16, 50 generations, one restart, seed 0, the same start pool). Scored on 10,900,000-099 (the result,
  # whatever it is), then on 11,000,000-099; both pooled. No choice is made.
  P=${D}_10k_mix_thr05
  derive "${D}_10k_mix_c" "$P" "c['controller']['done_threshold'] = 0.5; c['evaluate']['seed_start'] = 10900000" \
    rnn train-rnn.json
  two_blocks "$P" random10k-mix-thr05 10900000 11000000 doom_random10k_mix_thr05
  ;;
random10k-mix-thr05-long)
  # Named before it ran (session 15), after random10k-mix-thr05's 803.8: in that dream C's score now tracks the game
  # (717 dream, 804 real), where random10k's dream overrated it (1,590 against 837) and 100 generations did not help
  # (random10k-thr025-long). So in this dream more search may pay: the same CMA-ES (seed 0) run to 100 generations
  # in a fresh copy (its first 50 repeat random10k-mix-thr05's), and its last mean, the run's C (no choice), scored
  # on 11,100,000-099 (the result, whatever it is), then on 11,200,000-099; both pooled.
  P=${D}_10k_mix_thr05_long
  derive "${D}_10k_mix_c" "$P" "c['controller'].update(done_threshold=0.5, generations=100)
c['evaluate']['seed_start'] = 11100000" rnn train-rnn.json
  two_blocks "$P" random10k-mix-thr05-long 11100000 11200000 doom_random10k_mix_thr05_long
  ;;
random10k-mix-round)
  # Named before it ran (session 16), after random10k-mix-thr05 (803.8) and its 100-generation run (722.4): in the
  # mixed-data M's dream C's score tracks the game, but more search there did not help. The paper's answer is
  # another round: the threshold-0.5 C (random10k-mix-thr05's) plays 500 real episodes (action noise spread 0-0.5,
  # env seeds 1,100,000-1,100,499: iterate's round-1 seeds, which the threshold-0.25 C's collection also used),
  # encoded with random10k's V beside the 10,000 random episodes; M continues 6 epochs from the mixed M on those
  # 10,500, and a new C is trained from zeros only in that dream (tau 1.0, done threshold 0.5, 64 x 16,
  # 50 generations, one restart, seed 0). No C ever gets a real return. The round's C is scored on
  # 11,300,000-099 (the result, whatever it is), then on 11,400,000-099; both pooled. No choice is made.
  P=${D}_10k_mix_round
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P/latents" && cp -al "${D}_10k_dropout/latents/." "$P/latents/"
    cp -r "${D}_10k_mix_thr05"/{collect.json,train-vae.json,encode.json,train-rnn.json,train-controller.json,vae,rnn,controller} "$P"/
    edit_config "${D}_10k_mix_thr05" "$P" "c['evaluate']['seed_start'] = 11300000"
  fi
  iterate_round "$P" random10k-mix-round 11300000 11400000 doom_random10k_mix_round
  ;;
random10k-mix-both)
  # Named before it ran (session 17), after random10k-mix-round (618.1): M continued on the threshold-0.5 C's own
  # play made the dream kind again (1,702 dream steps, 618 real), where M from scratch on the random episodes plus
  # one C's 500 (random10k-mix) gave a dream that tracks the game (thr 0.5: 717 dream, 804 real). Here M is trained
  # from scratch with random10k's settings (6 epochs, seed 0, no dropout) on the 10,000 random episodes plus both
  # Cs' 500 episodes: the threshold-0.25 C's (random10k-round's collection) and the threshold-0.5 C's
  # (random10k-mix-round's collection; both collections used env seeds 1,100,000-1,100,499 and episode indices
  # 100,000-100,499, so the latter are linked here as indices 200,000-200,499). Then C from zeros only in its dream
  # at the paper's done threshold 0.5 (tau 1.0, 64 x 16, 50 generations, one restart, seed 0; dreams start from the
  # 1,000 first frames of random10k-base's pool). Scored on 11,500,000-099 (the result, whatever it is), then on
  # 11,600,000-099; both pooled. No choice is made.
  P=${D}_10k_mix_both_c
  mixed_m "${D}_10k_mix_both" "$P" "c['controller'].update(done_threshold=0.5, restarts=1)
c['evaluate'].update(seed_start=11500000, workers=2, envs_per_worker=4)" 11000 "${D}_10k_round:1" \
    "${D}_10k_mix_round:2"
  two_blocks "$P" random10k-mix-both 11500000 11600000 doom_random10k_mix_both
  ;;
mix-both-diagnostics)
  # After random10k-mix-both (173.0) and its threshold-0.9 C (171.2): the random policy's dream life in the
  # mixed-data Ms' dreams at done thresholds 0.5, 0.75 and 0.9 (tau 1.0) beside its life in the game (training data
  # only), random10k-mix-thr05's M and random10k-mix-both's; then what the two mix-both Cs and the mix-thr05 C do,
  # in their dreams and in the same 16 real episodes (10,400,000-015, the diagnostic seeds of action-shares)
  for r in mix_thr05 mix_both_c; do
    $PY scripts/doom_dream_calibration.py "${D}_10k_$r" "results/doom_dream_calibration_$r" \
      "bash scripts/doom_results.sh mix-both-diagnostics $D" --temperatures 1.0 --thresholds 0.5 0.75 0.9 --rollouts 128
  done
  $PY scripts/action_shares.py results/doom_action_shares_mix_both "bash scripts/doom_results.sh mix-both-diagnostics $D" \
    10400000 16 "${D}_10k_mix_thr05:${D}_10k_mix_thr05/controller/controller.pt" \
    "${D}_10k_mix_both_c:${D}_10k_mix_both_c/controller/controller.pt" \
    "${D}_10k_mix_both_thr09:${D}_10k_mix_both_thr09/controller/controller.pt"
  ;;
random10k-mix-both-thr09)
  # Named after random10k-mix-both's 173.0 (session 17), before this ran. That M's done head fires early: in its
  # dream (threshold 0.5, tau 1.0) the random policy lives 124 steps against 328 in the game (its start pool's
  # episodes), every C died by ~250 dream steps and CMA-ES had nothing to climb (dream 261 -> 254 over 50
  # generations). In the dreams whose Cs scored 804-837 in the game the random policy lived 182-211 dream steps;
  # in this M's dream it lives 208 at done threshold 0.9 (scripts/doom_dream_calibration.py on training data
  # only). So: C from zeros in random10k-mix-both's dream at done threshold 0.9, all else as there (tau 1.0,
  # 64 x 16, 50 generations, one restart, seed 0, the same start pool). Scored on 11,700,000-099 (the result,
  # whatever it is), then on 11,800,000-099; both pooled. No choice is made. (These seeds were named for a
  # tau-1.15 C in that dream, which was not run: a warmer dream kills sooner, and that dream already killed
  # every C.)
  P=${D}_10k_mix_both_thr09
  derive "${D}_10k_mix_both_c" "$P" "c['controller']['done_threshold'] = 0.9; c['evaluate']['seed_start'] = 11700000" \
    rnn train-rnn.json
  two_blocks "$P" random10k-mix-both-thr09 11700000 11800000 doom_random10k_mix_both_thr09
  ;;
random10k-m12-restarts)
  # Named before it ran (session 18). random10k-m12 (M continued from 6 to 12 epochs on the random episodes, held-out
  # z NLL 0.391 against 0.418) gave 183.4, but with one CMA-ES run that stayed at dream ~950, where random10k's three
  # restarts in the 6-epoch dream all reached ~1,700 (its C: 825.9 over 400 episodes). Here the 12-epoch M gets
  # random10k's own C protocol: C from zeros, tau 1.0, done threshold 0.5, 64 x 16, 50 generations, 3 restarts, the
  # restart chosen on 256 common dreams; dreams start from the 1,000 first frames of random10k-base's pool. Scored on
  # 11,900,000-099 (the result, whatever it is), then on 12,000,000-099; both pooled. No choice is made on real play.
  P=${D}_10k_m12_restarts
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "${D}_10k_pool/latents" "$P"/
    cp -r results/doom_random10k_m12/{collect.json,encode.json,train-vae.json,train-rnn.json,vae,rnn} "$P"/
    edit_config results/doom_random10k_m12 "$P" "c['controller']['restarts'] = 3
c['evaluate'].update(seed_start=11900000, workers=2, envs_per_worker=4)"
  fi
  two_blocks "$P" random10k-m12-restarts 11900000 12000000 doom_random10k_m12_restarts
  ;;
random10k-m12-warm)
  # Named before it ran (session 18), after cross-dream (no game played): in random10k-m12's dream the Cs that
  # scored 804-837 in the game live 1,296-1,698 dream steps, the wall-hugging Cs that scored 173-183 live 978-1,000,
  # and CMA-ES from zeros stops at ~980 (random10k-m12; restarts 0 and 1 of random10k-m12-restarts). So this dream
  # ranks the good Cs first and the search from zeros misses them. Here CMA-ES starts from random10k's C (the
  # 6-epoch dream's own choice, made in that dream; controller.init_from) with step size 0.05, in the 12-epoch M's
  # dream: tau 1.0, done threshold 0.5, 64 x 16, 50 generations, one restart, seed 0, the same start pool; C is the
  # best dream-evaluated mean (generation 0, the start, included). Scored on 12,100,000-099 (the result, whatever it
  # is), then on 12,200,000-099; both pooled. No choice is made on real play.
  P=${D}_10k_m12_warm
  derive "${D}_10k_m12_restarts" "$P" "c['controller'].update(restarts=1, sigma0=0.05, \
init_from='results/doom_random10k/controller/controller.pt'); c['evaluate']['seed_start'] = 12100000" rnn train-rnn.json
  two_blocks "$P" random10k-m12-warm 12100000 12200000 doom_random10k_m12_warm
  ;;
random10k-m24)
  # Named before it ran (session 18; its C protocol changed before it ran, from 3 restarts from zeros to
  # random10k-m12-warm's, after cross-dream showed the search from zeros missing the good Cs in a longer-trained M's
  # dream): the README's "what bounds the Doom score" says M trains 6 of the original's 400 epochs. M from scratch
  # with random10k's settings (seed 0, no dropout) on the 10,000 random episodes for 24 epochs, with length buckets
  # of 16 batches (1.55x the real steps a second; the loss weighs every real step the same). train-rnn checkpoints
  # every epoch and resumes; across machines carry D_10k_m24/rnn/rnn.pt (it holds the optimizer state). Then C as
  # in random10k-m12-warm (from random10k's C, step size 0.05, tau 1.0, done threshold 0.5, 50 generations, one
  # restart, the same start pool), scored on 12,300,000-099 (the result, whatever it is), then on 12,400,000-099;
  # both pooled. No choice is made on real play.
  P=${D}_10k_m24_c
  mixed_m "${D}_10k_m24" "$P" "c['rnn'].update(epochs=24, length_buckets=16); c['controller'].update(restarts=1, \
sigma0=0.05, init_from='results/doom_random10k/controller/controller.pt')
c['evaluate'].update(seed_start=12300000, workers=2, envs_per_worker=4)" 10000
  two_blocks "$P" random10k-m24 12300000 12400000 doom_random10k_m24
  ;;
random10k-m12-wall)
  # Named before it ran (session 19), after cross-dream and the session-18 runs: in the 12-epoch M's dream the Cs
  # that scored 804-837 in the game live 1,296-1,698 steps, but the search from zeros stops at wall-hugging (Cs that
  # move to a wall and stay: ~1,000 dream steps, ~180 in the game), in all four runs that tried. Random play seldom
  # stays at a wall, so M never learnt what happens there. The paper's iterative procedure, aimed at that error: the
  # wall-hugging C of random10k-m12 (183.4 in the game) plays 500 real episodes (action noise spread 0-0.5, env
  # seeds 1,100,000-1,100,499: iterate's round-1 seeds), encoded with random10k's V beside the 10,000 random
  # episodes (D_10k_dropout's latents); the 12-epoch M (results/doom_random10k_m12, a fresh Adam: the export has no
  # optimizer state) continues 2 epochs on those 10,500; then C from zeros only in the new dream (tau 1.0, done
  # threshold 0.5, 64 x 16, 50 generations, one restart, seed 0; dreams start from the 10,500 episodes' first
  # frames). No C ever gets a real return. The round's C is scored on 12,900,000-099 (the result, whatever it
  # is), then on 13,000,000-099; both pooled. No choice is made.
  P=${D}_10k_m12_wall
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P/latents" && cp -al "${D}_10k_dropout/latents/." "$P/latents/"
    cp -r results/doom_random10k_m12/{collect.json,encode.json,train-vae.json,train-rnn.json,vae,rnn,controller} "$P"/
    edit_config results/doom_random10k_m12 "$P" "c['controller']['restarts'] = 1
c['real'].update(workers=2, envs_per_worker=4); c['evaluate'].update(seed_start=12900000, workers=2, envs_per_worker=4)"
  fi
  iterate_round "$P" random10k-m12-wall 12900000 13000000 doom_random10k_m12_wall 2
  ;;
m12-wall-diagnostics)
  # A diagnostic, no game played (session 19): the cross-dream Cs in random10k-m12-wall's round-1 M's dream (tau
  # 1.0, done threshold 0.5, the 1,000 first frames of random10k-base's pool), beside the 12-epoch M's it continued
  # from: did the wall-hugging Cs' dream life fall, and the good Cs' stay? Then the random policy's dream life there
  # (and the round's C's).
  S=${D}_10k_m12_wall P=${D}_10k_m12_wall_m
  [ -f "$S/iterate/round_001/controller/controller.pt" ] || { echo "random10k-m12-wall's round has not finished" >&2; exit 1; }
  if [ ! -f "$P/config.json" ]; then  # the round's M and C (the calibration dreams the run's C beside random play)
    mkdir -p "$P" && cp -al "${D}_10k_pool/latents" "$P"/
    cp -r "$S"/{config.json,collect.json,encode.json,train-vae.json,vae} "$S"/iterate/round_001/{rnn,controller} "$P"/
  fi
  $PY scripts/cross_dream.py results/doom_cross_dream_m12_wall "bash scripts/doom_results.sh m12-wall-diagnostics $D" \
    --runs "${D}_10k_m12_restarts" "$P" --controllers "${CROSS_DREAM_CS[@]}"
  $PY scripts/doom_dream_calibration.py "$P" results/doom_dream_calibration_m12_wall \
    "bash scripts/doom_results.sh m12-wall-diagnostics $D" --temperatures 1.0 --thresholds 0.25 0.5 0.75 0.9 --rollouts 128
  ;;
random10k-v)
  # Named before it ran (session 19). V's reconstructions of mid-episode random frames (a look, no score) keep the
  # walls and the near fireballs but lose the monsters and the small, far fireballs: C cannot dodge what z does not
  # hold, and M cannot dream it. V (results/doom_random10k) trained 2 epochs on every 10th frame of 3,000 episodes
  # (196,624 frame visits; recon 26.6 -> 13.6 a frame between its two epochs, still falling). Here V is trained from
  # scratch with the same settings (z 64, batch 64, lr 1e-3, KL tolerance 0.5, seed 0) on every 20th frame of all
  # 10,000 random episodes (env seeds 0-9,999, D_10k_dropout's) for 4 epochs (~3.1x the frame visits); every
  # episode is encoded with it; M from scratch with random10k's settings (6 epochs, seed 0, no dropout) and length
  # buckets of 16; C from zeros only in its dream (tau 1.0, done threshold 0.5, 64 x 16, 50 generations, one
  # restart, seed 0; dreams start from the 10,000 episodes' first frames). Every step resumes (V and M per epoch,
  # encode per episode, CMA-ES per generation). Scored on 13,100,000-099 (the result, whatever it is), then on
  # 13,200,000-099; both pooled. No choice is made on real play.
  P=${D}_10k_v
  if [ ! -f "$P/config.json" ]; then
    mkdir -p "$P" && cp -al "${D}_10k_dropout/episodes" "$P"/ && cp "${D}_10k_dropout/collect.json" "$P"/
    edit_config results/doom_random10k "$P" "c['vae'].update(epochs=4, frame_stride=20); c['rnn']['length_buckets'] = 16
c['controller']['restarts'] = 1; c['evaluate'].update(seed_start=13100000, workers=2, envs_per_worker=4)"
  fi
  $W train-vae --run-dir "$P" --quiet
  $W export --run-dir "$P" --out results/doom_random10k_v  # V first: it outlives this machine's episodes
  $W encode --run-dir "$P" --quiet
  $W train-rnn --run-dir "$P" --quiet
  two_blocks "$P" random10k-v 13100000 13200000 doom_random10k_v
  ;;
vae-compare)
  # A diagnostic, no game played (session 19): what each V keeps of frames neither saw in training (the
  # threshold-0.25 C's play, random10k-round's collection; both Vs trained on random play only)
  [ -f results/doom_random10k_v/vae/vae.pt ] || { echo "random10k-v's V has not finished" >&2; exit 1; }
  $PY scripts/compare_vae.py results/doom_vae_compare "bash scripts/doom_results.sh vae-compare $D" --vaes \
    "random10k (2 epochs, every 10th frame of 3,000 episodes)=results/doom_random10k/vae/vae.pt" \
    "random10k-v (4 epochs, every 20th frame of 10,000 episodes)=results/doom_random10k_v/vae/vae.pt" \
    --episodes "${D}_10k_round/episodes"
  ;;
random10k-ensemble)
  # Named before it ran (session 18), after random10k-m12-warm (725.4): CMA-ES from random10k's C in the 12-epoch
  # M's dream raised its dream score (1,646 -> 1,813) and lost 100 in the game; in the 6-epoch M's dream that C
  # lives 1,615 steps against random10k's C's 1,720 (a probe with scripts/cross_dream.py, no game; not kept). Each M's dream overrates
  # something the other does not (the wall-huggers: ~330 steps in the 6-epoch dream, ~990 in the 12-epoch one).
  # So C is scored in both at once (controller.dream_models): each candidate's 16 dreams split 8 in random10k's
  # 6-epoch M and 8 in the 12-epoch M (random10k-m12's), evaluations 128 + 128; from zeros, tau 1.0, done threshold
  # 0.5, 64 candidates, 50 generations, one restart, seed 0, the start pool of random10k-base; C is the best
  # dream-evaluated mean. Scored on 12,500,000-099 (the result, whatever it is), then on 12,600,000-099; both
  # pooled. No choice is made on real play.
  P=${D}_10k_ensemble
  derive "${D}_10k_base" "$P" "c['controller'].update(restarts=1, dream_models=['results/doom_random10k_m12/rnn/rnn.pt'])
c['evaluate'].update(seed_start=12500000, workers=2, envs_per_worker=4)" rnn train-rnn.json
  two_blocks "$P" random10k-ensemble 12500000 12600000 doom_random10k_ensemble
  ;;
random10k-ensemble-warm)
  # Named before it ran (session 18), while random10k-ensemble ran: from zeros its CMA mean stayed at 600-670 in the
  # two dreams (generations 10-29), about the wall-huggers' mean of ~330 and ~990. Here CMA-ES starts from
  # random10k's C (controller.init_from, step size 0.05) in the same two dreams (8 + 8 dreams a candidate, tau 1.0,
  # done threshold 0.5, 64 candidates, one restart, seed 0, the same start pool) for 30 generations (m12-warm's
  # best dream evaluation came at generation 10; time); C is the best dream-evaluated mean, the start included.
  # Scored on 12,700,000-099 (the result, whatever it is), then on 12,800,000-099; both pooled.
  P=${D}_10k_ensemble_warm
  derive "${D}_10k_ensemble" "$P" "c['controller'].update(sigma0=0.05, generations=30, \
init_from='results/doom_random10k/controller/controller.pt'); c['evaluate']['seed_start'] = 12700000" rnn train-rnn.json
  two_blocks "$P" random10k-ensemble-warm 12700000 12800000 doom_random10k_ensemble_warm
  ;;
cross-dream)
  # A diagnostic, no game played (session 18): does a dream rank the Cs as the game did? Each C's mean return over
  # 256 dreams (one dream seed for all) in random10k's dream (done threshold 0.5 and 0.25) and in random10k-m12's
  # (0.5); their real scores are copied from their results files. Then the random policy's dream life in the
  # 12-epoch M's dream (collection data only), as random10k-calibration measured it for the 6-epoch M.
  $PY scripts/cross_dream.py results/doom_cross_dream "bash scripts/doom_results.sh cross-dream $D" \
    --runs "${D}_10k_base" "${D}_10k_thr025" "${D}_10k_m12_restarts" --controllers "${CROSS_DREAM_CS[@]}"
  $PY scripts/doom_dream_calibration.py "${D}_10k_m12_restarts" results/doom_dream_calibration_m12 \
    "bash scripts/doom_results.sh cross-dream $D" --temperatures 1.0 --thresholds 0.25 0.5 0.75 0.9 --rollouts 128
  ;;
random10k-pooled)
  # restart 0's C (D_10k_r0) is the C that random10k chose (the same parameters)
  $PY scripts/pool_scores.py results/doom_random10k_pooled "bash scripts/doom_results.sh random10k-pooled $D" \
    "${D}_10k/evaluate.json" "${D}_10k_r0/evaluate-dream.json" "${D}_10k/heldout/select_own.json" \
    "${D}_10k/heldout/heldout.json"
  ;;
temperature)
  TAUS=(--temperatures 0.1 0.5 1.0 1.15 1.3 --episodes 100 --seed-start 2000000 --quiet)
  $W sweep-temperature --run-dir "$D" "${TAUS[@]}"
  P=${D}_dropout  # D's random data, V and latents; M retrained with dropout 0.05; dreams with dropout 0.1
  derive "$D" "$P" 'c["rnn"]["dropout"], c["controller"]["dream_dropout"], c["iterate"]["run_rounds"] = 0.05, 0.1, 0'
  $W train-rnn --run-dir "$P" --quiet
  $W sweep-temperature --run-dir "$P" "${TAUS[@]}"
  $PY scripts/doom_temperature_summary.py "$D" "$P" results/doom_temperature
  $W export --run-dir "$D" --out results/doom_headline   # with D/sweep: every tau's C
  $W export --run-dir "$P" --out results/doom_dropout    # the dropout M and its sweep
  ;;
m-sequence)
  # D's V and latents (random play + its iterate rounds); M from scratch on 500-step sequences; C from zeros in its
  # dream, scored on the rounds' scoring seeds; then both Ms side by side (results/doom_m_sequence.{json,md})
  P=${D}_seq500
  derive "$D" "$P" 'c["rnn"]["seq_len"], c["iterate"]["run_rounds"] = 500, 0'
  $W train-rnn --run-dir "$P" --quiet
  $W train-controller --run-dir "$P" --quiet
  $W evaluate --run-dir "$P" --episodes 32 --seed-start 3000000 --quiet
  $PY scripts/doom_m_sequence_summary.py "$D" "$P" results/doom_m_sequence
  ;;
*) echo "unknown command $cmd (one of $COMMANDS)" >&2; exit 2 ;;
esac
