#!/usr/bin/env bash
# The runs of sweep.sh as independent chains, JOBS at a time (sweep.sh runs them one by one):
# one chain per (teacher, setting, seed) trains the teacher in its glnn run, then distils each
# variant from that teacher.pt. Rerunning skips finished runs (their metrics.json exists).
#
# Usage: JOBS=2 bash experiments/ffg2m/chains.sh DATASET SPLIT SEEDS OUT_DIR [overrides...]
#   JOBS=2 bash experiments/ffg2m/chains.sh a-computer cpf 0,1,2,3,4,5,6,7,8,9 multirun/ffg2m \
#       trainer.accelerator=cpu
# TEACHERS (sage,gcn), SETTINGS (transductive,inductive) and VARIANTS ("ffg2m lfd hfd") narrow
# it as in sweep.sh. Runs land in OUT_DIR/DATASET-SPLIT/<teacher>-<setting>-seed<s>/<variant>;
# then: python -m g2m.report OUT_DIR/DATASET-SPLIT --out OUT_DIR/DATASET-SPLIT/report \
#         --by dataset teacher loss tag setting
set -euo pipefail

if [ "${1:-}" = "--chain" ]; then  # one chain: --chain TEACHER SETTING SEED
  teacher=$2 setting=$3 seed=$4
  dir=$CHAIN_OUT/$teacher-$setting-seed$seed
  mkdir -p "$dir"
  trap 'echo "FAILED $teacher $setting seed $seed: see $dir.log" >&2' ERR
  # shellcheck disable=SC2206  # CHAIN_EXTRA holds whitespace-free Hydra overrides
  common=(dataset=$CHAIN_DS dataset.split=$CHAIN_SPLIT teacher=$teacher setting=$setting
          seed=$seed logger=none trainer.enable_progress_bar=false $CHAIN_EXTRA)
  python -m g2m.train "${common[@]}" loss=glnn hydra.run.dir="$dir/glnn" >> "$dir.log" 2>&1
  for name in ${VARIANTS:-ffg2m lfd hfd}; do
    case $name in
      ffg2m) opts=() ;;
      lfd) opts=(tag=lfd-only loss.weights.high=0) ;;
      hfd) opts=(tag=hfd-only loss.weights.low=0) ;;
      *) echo "unknown variant '$name' (ffg2m, lfd, hfd)" >&2; exit 2 ;;
    esac
    python -m g2m.train "${common[@]}" loss=ffg2m "teacher.artifact=$dir/glnn/teacher.pt" \
      "${opts[@]}" hydra.run.dir="$dir/$name" >> "$dir.log" 2>&1
  done
  echo "done $teacher $setting seed $seed"
  exit 0
fi

export CHAIN_DS=$1 CHAIN_SPLIT=$2 CHAIN_OUT=$4/$1-$2
seeds=$3
shift 4
export CHAIN_EXTRA="$*"
teachers=${TEACHERS:-sage,gcn} settings=${SETTINGS:-transductive,inductive}
for teacher in ${teachers//,/ }; do
  for setting in ${settings//,/ }; do
    for seed in ${seeds//,/ }; do echo "$teacher $setting $seed"; done
  done
done | xargs -P "${JOBS:-2}" -n 3 bash "$0" --chain || {
  echo "some chains failed (FAILED lines above); rerun the same command to resume them" >&2
  exit 1
}
