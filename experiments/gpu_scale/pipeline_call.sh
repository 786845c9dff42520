#!/usr/bin/env bash
# The products-scale pipeline on one GPU, in one call: the whole loss=vq and loss=glnn runs
# with the device-bound student loop (each trains its own teacher: store=false), then the
# glnn student with today's loop (one batch per Lightning step, no graphs) distilling the
# same teacher as the new glnn run (from the artifact store). Then a table of all three.
#
# Usage: bash experiments/gpu_scale/pipeline_call.sh OUT_DIR SEED
#   SKIP_VQ=1: the glnn runs only; SKIP_GLNN=1: the vq run only; SKIP_OLD=1: not today's-loop
#   run (the new runs only)
set -uo pipefail
out=$1 seed=$2
runs=${RUNS_DIR:-/tmp/g2m-runs}  # run dirs hold GB-sized teacher artifacts: kept off OUT_DIR
common=(dataset=synthetic-products trainer=gpu trainer.enable_progress_bar=false seed=$seed)
run() {  # NAME OVERRIDES...
  local name=$1
  shift
  timeout 280 python3 -m g2m.train "${common[@]}" "$@" hydra.run.dir=$runs/$name \
    > $out/$name.log 2>&1 || echo "$name failed (exit $?)" >&2
  mkdir -p $out/$name && cp $runs/$name/metrics.json $runs/$name/timings.json $out/$name/ 2>/dev/null
}
[ "${SKIP_VQ:-0}" = 1 ] || run vq-new-seed$seed loss=vq store=false
[ "${SKIP_GLNN:-0}" = 1 ] ||
  run glnn-new-seed$seed loss=glnn store=$([ "${SKIP_OLD:-0}" = 1 ] && echo false || echo true)
[ "${SKIP_OLD:-0}" = 1 ] || [ "${SKIP_GLNN:-0}" = 1 ] ||
  run glnn-old-seed$seed loss=glnn store=true student.steps_per_call=1 student.cuda_graph=false
python3 experiments/gpu_scale/summarise_runs.py $out/*-seed$seed
