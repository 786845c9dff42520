#!/usr/bin/env bash
# Issue 21 on the CPU: every teacher g2m has and its GLNN student, then the student of the
# ensemble of all of them (mean soft labels), on one CPF dataset, transductive and held-out
# nodes, report seeds 0-9. Teachers come from the artifact store, so each is trained once
# and the ensemble's members are the very teachers of the rows above it. Resumable: a
# finished run is skipped. Then GLNN's wider students (MLPw4, MLPw8) of WIDE_TEACHER (default
# gcnii, the first teacher by validation accuracy in the earlier H200 table), from the same
# stored teachers: rows named TEACHER+mlpw4, TEACHER+mlpw8. Then the table (summarise.py).
#
# Usage: G2M_DATA_DIR=<raw files> bash experiments/teachers/cpu_table.sh OUT [DATASET] [SEEDS]
set -uo pipefail
out=${1:?usage: cpu_table.sh OUT [DATASET] [SEEDS]}
ds=${2:-cora}
seeds=${3:-"0 1 2 3 4 5 6 7 8 9"}
python=${PYTHON:-python}
teachers="sage gcn gat appnp sgc gcnii cands"
wide_teacher=${WIDE_TEACHER:-gcnii}
one() {  # RUN_DIR OVERRIDES...
  local dir=$1
  shift
  [ -f "$dir/metrics.json" ] && return 0
  $python -m g2m.train dataset=$ds loss=glnn "$@" threads=1 logger=none \
    trainer.enable_progress_bar=false hydra.run.dir="$dir" > "$dir.log" 2>&1 ||
    echo "failed: $dir (see $dir.log)" >&2
}
for setting in transductive inductive; do
  for seed in $seeds; do
    members=()
    for t in $teachers; do
      dir=$out/$ds/$setting/$t/seed$seed
      mkdir -p "$(dirname "$dir")"
      one "$dir" teacher=$t seed=$seed setting=$setting
      members+=("$dir/teacher.pt")
    done
    list=$(IFS=,; echo "${members[*]}")
    dir=$out/$ds/$setting/ensemble/seed$seed
    mkdir -p "$(dirname "$dir")"
    one "$dir" teacher=ensemble "teacher.members=[$list]" seed=$seed setting=$setting
    echo "$setting seed $seed done"
  done
done
for student in mlpw4 mlpw8; do
  for setting in transductive inductive; do
    for seed in $seeds; do
      dir=$out/$ds/$setting/$wide_teacher+$student/seed$seed
      mkdir -p "$(dirname "$dir")"
      one "$dir" teacher=$wide_teacher student=$student seed=$seed setting=$setting
    done
    echo "$setting: $wide_teacher+$student done"
  done
done
$python "$(dirname "$0")/summarise.py" "$out/$ds"
