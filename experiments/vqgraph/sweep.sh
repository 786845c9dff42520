#!/usr/bin/env bash
# VQGraph (loss=vq) against GLNN from the same SAGE teacher, CPF protocol. The glnn run
# trains the teacher; every VQ variant reuses its teacher.pt (teacher.artifact), so the two
# students differ only in the objective (and the codebook stage).
#
# Usage: bash experiments/vqgraph/sweep.sh DATASET SEEDS OUT_DIR [extra overrides...]
#   bash experiments/vqgraph/sweep.sh cora 0,1,2,3,4,5,6,7,8,9 multirun/vqgraph
# SETTINGS=transductive,inductive and VARIANTS="vq" (defaults) narrow or widen a sweep;
# the ablation variants are codes-only (loss.weights.kd=0), k128 and k2048 (codebook.size).
# Then: python -m g2m.report OUT_DIR/DATASET --out OUT_DIR/DATASET/report
set -euo pipefail
ds=$1 seeds=$2 out=$3/$1
shift 3
common=(dataset=$ds teacher=sage setting=${SETTINGS:-transductive,inductive} seed=$seeds
        logger=none trainer.enable_progress_bar=false "$@")
python -m g2m.train -m "${common[@]}" loss=glnn hydra.sweep.dir=$out/glnn
teacher="$out/glnn/\${dataset.name}-\${teacher.name}-mlp-glnn-\${setting.name}-seed\${seed}/teacher.pt"
variant() {  # name, overrides...
  local name=$1
  shift
  python -m g2m.train -m "${common[@]}" loss=vq "teacher.artifact='$teacher'" \
    hydra.sweep.dir=$out/$name "$@"
}
for name in ${VARIANTS:-vq}; do
  case $name in
    vq) variant vq ;;
    codes-only) variant codes-only tag=codes-only loss.weights.kd=0 ;;
    k128) variant k128 tag=K128 codebook.size=128 ;;
    k2048) variant k2048 tag=K2048 codebook.size=2048 ;;
    *) echo "unknown variant '$name' (vq, codes-only, k128, k2048)" >&2; exit 2 ;;
  esac
done
