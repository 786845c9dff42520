#!/usr/bin/env bash
# The products-scale student stage, today's loop against the device-bound one, in one call
# (one H200): each seed's teacher is trained once and shared through the artifact store, so
# both loops distil the same teachers. Then a table of both (summarise_runs.py).
#
# Usage: bash experiments/gpu_scale/student_loop.sh OUT_DIR "SEEDS" [NEW_OVERRIDES...]
#   bash experiments/gpu_scale/student_loop.sh $OUT "0 1 2"
set -uo pipefail
out=$1 seeds=$2
shift 2
common=(dataset=synthetic-products trainer=gpu loss=glnn trainer.enable_progress_bar=false)
for seed in $seeds; do  # the device-bound loop (the tuned products config) trains the teachers
  python3 -m g2m.train "${common[@]}" seed=$seed "$@" hydra.run.dir=$out/new-seed$seed \
    > $out/new-seed$seed.log 2>&1 || echo "new seed $seed failed" >&2
done
for seed in $seeds; do  # today's loop: one batch per Lightning step, no graphs
  python3 -m g2m.train "${common[@]}" seed=$seed student.steps_per_call=1 \
    student.cuda_graph=false hydra.run.dir=$out/old-seed$seed > $out/old-seed$seed.log 2>&1 \
    || echo "old seed $seed failed" >&2
done
python3 experiments/gpu_scale/summarise_runs.py $out/new-seed* $out/old-seed*
