#!/usr/bin/env bash
# FF-G2M against GLNN from the same teachers (SAGE and GCN), transductive and inductive,
# with the LFD-only and HFD-only ablations. Each teacher is trained once (in the glnn run)
# and reused by the three FF-G2M variants through teacher.artifact.
#
# Usage: bash experiments/ffg2m/sweep.sh DATASET SPLIT SEEDS OUT_DIR [extra overrides...]
#   CPF protocol, 10 seeds:  bash experiments/ffg2m/sweep.sh cora cpf 0,1,2,3,4,5,6,7,8,9 multirun/ffg2m
#   paper protocol, 5 seeds: bash experiments/ffg2m/sweep.sh cora-planetoid public 0,1,2,3,4 multirun/ffg2m
#                            bash experiments/ffg2m/sweep.sh amazon-photo random 0,1,2,3,4 multirun/ffg2m
# (G2M_DATA_DIR=../shared/datasets to work offline). TEACHERS=sage,gcn,
# SETTINGS=transductive,inductive and VARIANTS="ffg2m lfd hfd" (the defaults) narrow a
# sweep, e.g. to run its parts in parallel. Then:
#   python -m g2m.report OUT_DIR/DATASET-SPLIT --out OUT_DIR/DATASET-SPLIT/report \
#     --by dataset teacher loss tag setting
set -euo pipefail
ds=$1 split=$2 seeds=$3 out=$4/$1-$2
shift 4
common=(dataset=$ds split=$split teacher=${TEACHERS:-sage,gcn} setting=${SETTINGS:-transductive,inductive}
        seed=$seeds logger=none trainer.enable_progress_bar=false "$@")
python -m g2m.train -m "${common[@]}" loss=glnn hydra.sweep.dir=$out/glnn
teacher="$out/glnn/\${dataset.name}-\${teacher.name}-mlp-glnn-\${setting.name}-seed\${seed}/teacher.pt"
variant() {  # name, overrides...
  local name=$1
  shift
  python -m g2m.train -m "${common[@]}" loss=ffg2m "teacher.artifact='$teacher'" \
    hydra.sweep.dir=$out/$name "$@"
}
for name in ${VARIANTS:-ffg2m lfd hfd}; do
  case $name in
    ffg2m) variant ffg2m ;;
    lfd) variant lfd tag=lfd-only loss.weights.high=0 ;;
    hfd) variant hfd tag=hfd-only loss.weights.low=0 ;;
    *) echo "unknown variant '$name' (ffg2m, lfd, hfd)" >&2; exit 2 ;;
  esac
done
