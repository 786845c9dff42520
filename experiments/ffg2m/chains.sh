#!/usr/bin/env bash
# The runs of sweep.sh as independent chains, JOBS at a time (sweep.sh runs them one by one):
# one chain per (dataset, split, teacher, setting, seed) trains the teacher in its glnn run,
# then distils each variant from that teacher.pt. Rerunning skips finished runs (their
# metrics.json exists) and resumes interrupted ones.
#
# Usage:
#   JOBS=2 bash experiments/ffg2m/chains.sh DATASET SPLIT SEEDS OUT_DIR [overrides...]
#   JOBS=2 bash experiments/ffg2m/chains.sh a-computer cpf 0,1,2,3,4,5,6,7,8,9 multirun/ffg2m \
#       trainer.accelerator=cpu
#   JOBS=14 bash experiments/ffg2m/chains.sh --list CHAINS_FILE OUT_DIR [overrides...]
#     CHAINS_FILE: one chain per line, "DATASET SPLIT TEACHER SETTING SEED" (several datasets
#     and protocols in one pool of JOBS workers; lines starting with # are skipped).
# TEACHERS (sage,gcn), SETTINGS (transductive,inductive) narrow the first form; VARIANTS
# ("ffg2m lfd hfd") narrows both. Runs land in
# OUT_DIR/DATASET-SPLIT/<teacher>-<setting>-seed<s>/<variant>; then:
#   python -m g2m.report OUT_DIR/DATASET-SPLIT --out OUT_DIR/DATASET-SPLIT/report \
#       --by dataset teacher loss tag setting
set -euo pipefail

if [ "${1:-}" = "--chain" ]; then  # one chain: --chain DATASET SPLIT TEACHER SETTING SEED
  ds=$2 split=$3 teacher=$4 setting=$5 seed=$6
  dir=$CHAIN_OUT/$ds-$split/$teacher-$setting-seed$seed
  mkdir -p "$dir"
  trap 'echo "FAILED $ds $split $teacher $setting seed $seed: see $dir.log" >&2' ERR
  # shellcheck disable=SC2206  # CHAIN_EXTRA holds whitespace-free Hydra overrides
  common=(dataset=$ds split=$split teacher=$teacher setting=$setting
          seed=$seed logger=none trainer.enable_progress_bar=false $CHAIN_EXTRA)
  run() {  # run DIR OVERRIDES...: a finished run (metrics.json written) is not started again
    local run_dir=$1
    shift
    [ -f "$run_dir/metrics.json" ] && return 0
    python -m g2m.train "${common[@]}" "$@" hydra.run.dir="$run_dir" >> "$dir.log" 2>&1
  }
  run "$dir/glnn" loss=glnn
  for name in ${VARIANTS:-ffg2m lfd hfd}; do
    case $name in
      ffg2m) opts=() ;;
      lfd) opts=(tag=lfd-only loss.weights.high=0) ;;
      hfd) opts=(tag=hfd-only loss.weights.low=0) ;;
      *) echo "unknown variant '$name' (ffg2m, lfd, hfd)" >&2; exit 2 ;;
    esac
    run "$dir/$name" loss=ffg2m "teacher.artifact=$dir/glnn/teacher.pt" "${opts[@]}"
  done
  echo "done $ds $split $teacher $setting seed $seed"
  exit 0
fi

if [ "${1:-}" = "--list" ]; then
  chains=$2 out=$3
  shift 3
  [ -r "$chains" ] || { echo "chains file '$chains' not found" >&2; exit 2; }
  list() { grep -v '^[[:space:]]*\(#\|$\)' "$chains"; }
else
  ds=$1 split=$2 seeds=$3 out=$4
  shift 4
  teachers=${TEACHERS:-sage,gcn} settings=${SETTINGS:-transductive,inductive}
  list() {
    for teacher in ${teachers//,/ }; do
      for setting in ${settings//,/ }; do
        for seed in ${seeds//,/ }; do echo "$ds $split $teacher $setting $seed"; done
      done
    done
  }
fi
export CHAIN_OUT=$out CHAIN_EXTRA="$*"
list | xargs -P "${JOBS:-2}" -n 5 bash "$0" --chain || {
  echo "some chains failed (FAILED lines above); rerun the same command to resume them" >&2
  exit 1
}
