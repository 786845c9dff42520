#!/usr/bin/env bash
# The calibrated synthetic products graph on one GPU: for each (feature signal, homophily,
# seed) a loss=glnn run (the SAGE teacher and its GLNN student, with the full-batch
# label-only MLP beside it: baseline=true) and a loss=supervised run (the same student MLP
# trained on the labels alone, mini-batch, as the student stage trains it), on the same
# draw and split. NODES below 2,449,029 draws a smaller graph of the same degree;
# NODES=full keeps products' size. PARALLEL=1 runs each setting's seeds at once (accuracy
# only: runs sharing the GPU are not timed fairly); SKIP_MLP=1: the glnn runs only.
#
# Usage: bash experiments/gpu_scale/calibrate_call.sh OUT_DIR NODES "SIGNALS" "HOMOPHILIES" "SEEDS"
set -uo pipefail
out=$1 nodes=$2 signals=$3 homophilies=$4 seeds=$5
runs=${RUNS_DIR:-/tmp/g2m-runs}
size=()
[ "$nodes" = full ] || size=(dataset.generator.num_nodes=$nodes)
dirs=()
one() {  # NAME OVERRIDES...: one run, its log in OUT_DIR
  local name=$1
  shift
  timeout ${RUN_TIMEOUT:-280} python3 -m g2m.train dataset=synthetic-products-calibrated \
    "${size[@]}" "$@" trainer=gpu trainer.enable_progress_bar=false logger=none store=false \
    hydra.run.dir=$runs/$name > $out/$name.log 2>&1 || echo "$name failed (exit $?)" >&2
  mkdir -p $out/$name && cp $runs/$name/metrics.json $runs/$name/timings.json $out/$name/ 2>/dev/null
}
for signal in $signals; do
  for homophily in $homophilies; do
    for seed in $seeds; do
      name=cal-n$nodes-s$signal-h$homophily-seed$seed
      set -- dataset.generator.feature_signal=$signal dataset.generator.homophily=$homophily seed=$seed
      if [ "${PARALLEL:-0}" = 1 ]; then
        one $name-glnn loss=glnn baseline=true "$@" &
        [ "${SKIP_MLP:-0}" = 1 ] || one $name-mlp loss=supervised baseline=false "$@" &
      else
        one $name-glnn loss=glnn baseline=true "$@"
        [ "${SKIP_MLP:-0}" = 1 ] || one $name-mlp loss=supervised baseline=false "$@"
      fi
      dirs+=($runs/$name-glnn $runs/$name-mlp)
    done
    wait
  done
done
python3 experiments/gpu_scale/summarise_runs.py "${dirs[@]}"
