#!/usr/bin/env bash
# GLNN on the CPF protocol: SAGE teacher -> MLP student, 10 seeds, transductive and inductive.
# Usage: G2M_DATA_DIR=../shared/datasets bash experiments/glnn_cpf/sweep.sh [OUT_DIR]
# (without G2M_DATA_DIR the raw files are downloaded). Then:
#   python -m g2m.report OUT_DIR --out OUT_DIR/report
set -euo pipefail
out=${1:-multirun/glnn_cpf}
for setting in transductive inductive; do
  for ds in cora citeseer a-photo a-computer; do
    python -m g2m.train -m dataset=$ds setting=$setting teacher=sage student=mlp loss=glnn \
      seed=0,1,2,3,4,5,6,7,8,9 trainer.accelerator=cpu trainer.enable_progress_bar=false \
      hydra.sweep.dir=$out/$ds-$setting
  done
done
