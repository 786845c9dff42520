#!/usr/bin/env bash
# Each teacher (SAGE, APPNP, SGC, GCNII) and its GLNN student on CPF Cora and CiteSeer,
# transductive, seeds 0-9, on one GPU: 16 runs at a time (one CPU thread each), then the
# table (python -m g2m.report; baseline = the label-only MLP beside every student).
# Usage: G2M_DATA_DIR=<raw files> OUT=<dir> [BUDGET_S=240] bash experiments/teachers/gpu_table.sh
set -u
out=${OUT:-multirun/teachers}
mkdir -p "$out/logs"
export G2M_STORE_DIR=${G2M_STORE_DIR:-$out/store}
for seed in 0 1 2 3 4 5 6 7 8 9; do
  for ds in cora citeseer; do
    for teacher in sage appnp sgc gcnii; do echo "$ds $teacher $seed"; done
  done
done > "$out/jobs.txt"
# each line: dataset teacher seed; a run that does not finish inside BUDGET_S is left out
timeout "${BUDGET_S:-240}" xargs -P 16 -L 1 sh -c 'python -m g2m.train dataset=$0 teacher=$1 \
  seed=$2 loss=glnn trainer=gpu threads=1 logger=none trainer.enable_progress_bar=false \
  hydra.run.dir='"$out"'/runs/$0-$1-seed$2 > '"$out"'/logs/$0-$1-seed$2.log 2>&1' < "$out/jobs.txt"
echo "finished runs: $(ls "$out"/runs/*/metrics.json 2>/dev/null | wc -l) of $(wc -l < "$out/jobs.txt")"
python -m g2m.report "$out/runs" --out "$out/report" --times recorded --by dataset teacher loss
