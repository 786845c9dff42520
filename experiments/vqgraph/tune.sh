#!/usr/bin/env bash
# A validation grid for loss=vq on one dataset: per seed, one chain trains the SAGE teacher
# (in its glnn run) and the codebook (in the default vq run), then distils one student per
# grid point from that teacher.pt and codebook.pt, so grid points differ only in the student
# objective. Pick the point with the best mean *validation* accuracy; never look at test.
#
# Usage: JOBS=2 bash experiments/vqgraph/tune.sh DATASET SEEDS OUT_DIR [overrides...]
#   JOBS=2 bash experiments/vqgraph/tune.sh citeseer 0,1,2,3,4 multirun/vq-tune trainer.accelerator=cpu
# Grid (space-separated lists): WEIGHTS (loss.weights.code, default "0.3 1 3 10"), TAUS
# (loss.code_temperature, "0.1 0.3"), LAMBDAS (loss.label_weight, "0 0.1"), and KDS
# (loss.weights.kd, the soft-logit term; default 1; KDS=0 gives codes-only students).
# SETTINGS (default transductive). GRID=off runs only the glnn and default vq students (the
# results table's rows). KS (codebook sizes, e.g. "128 2048") adds one vq run per size, each
# with a codebook of that size (tag K<k>), beside the default size. TOKENIZER=on adds the
# released VQGraph design, where the tokenizer is the teacher: a codebook with a graph class
# head whose logits are the soft labels (tag tok), and the same without the code term, i.e.
# GLNN from that tokenizer (tag tok-w0). NOVAL=on reruns the glnn, vq (and tok) students
# with student.distill_val=false, from the same artifacts (tags noval, tok-noval). Runs land in
# OUT_DIR/DATASET/<setting>-seed<s>/<tag>, tag w<w>-tau<t>-lam<l> (with -kd<k> when KDS is
# set); then
#   python -m g2m.report OUT_DIR/DATASET --out OUT_DIR/DATASET/report --by dataset loss tag setting
# and read the "student val" column. A finished run (metrics.json) is not started again.
set -euo pipefail

if [ "${1:-}" = "--chain" ]; then  # one chain: --chain SETTING SEED
  setting=$2 seed=$3
  dir=$TUNE_OUT/$setting-seed$seed
  mkdir -p "$dir"
  trap 'echo "FAILED $setting seed $seed: see $dir.log" >&2' ERR
  # shellcheck disable=SC2206  # TUNE_EXTRA holds whitespace-free Hydra overrides
  common=(dataset=$TUNE_DS teacher=sage setting=$setting seed=$seed logger=none
          trainer.enable_progress_bar=false $TUNE_EXTRA)
  run() {  # run DIR OVERRIDES...
    local run_dir=$1
    shift
    [ -f "$run_dir/metrics.json" ] && return 0
    python -m g2m.train "${common[@]}" "$@" hydra.run.dir="$run_dir" >> "$dir.log" 2>&1
  }
  run "$dir/glnn" loss=glnn
  run "$dir/vq" loss=vq "teacher.artifact=$dir/glnn/teacher.pt"
  for k in ${KS:-}; do  # other codebook sizes: a codebook of their own each
    run "$dir/K$k" loss=vq "teacher.artifact=$dir/glnn/teacher.pt" "codebook.size=$k" "tag=K$k"
  done
  if [ "${TOKENIZER:-off}" = on ]; then  # the released design: the VQ-GNN is the teacher
    run "$dir/tok" loss=vq "teacher.artifact=$dir/glnn/teacher.pt" codebook.classifier=graph \
      codebook.soft_labels=tokenizer tag=tok
    run "$dir/tok-w0" loss=vq "teacher.artifact=$dir/glnn/teacher.pt" \
      "codebook.artifact=$dir/tok/codebook.pt" codebook.soft_labels=tokenizer \
      loss.weights.code=0 tag=tok-w0
  fi
  if [ "${NOVAL:-off}" = on ]; then  # the same students without the validation nodes' targets
    nv=(student.distill_val=false "teacher.artifact=$dir/glnn/teacher.pt")
    run "$dir/glnn-noval" loss=glnn "${nv[@]}" tag=noval
    run "$dir/vq-noval" loss=vq "${nv[@]}" "codebook.artifact=$dir/vq/codebook.pt" tag=noval
    if [ "${TOKENIZER:-off}" = on ]; then
      run "$dir/tok-noval" loss=vq "${nv[@]}" "codebook.artifact=$dir/tok/codebook.pt" \
        codebook.soft_labels=tokenizer tag=tok-noval
    fi
  fi
  [ "${GRID:-on}" = off ] && { echo "done $setting seed $seed"; exit 0; }
  for w in ${WEIGHTS:-0.3 1 3 10}; do
    for t in ${TAUS:-0.1 0.3}; do
      for l in ${LAMBDAS:-0 0.1}; do
        for k in ${KDS:-1}; do
          tag=w$w-tau$t-lam$l${KDS:+-kd$k}
          run "$dir/$tag" loss=vq "teacher.artifact=$dir/glnn/teacher.pt" \
            "codebook.artifact=$dir/vq/codebook.pt" "tag=$tag" "loss.weights.code=$w" \
            "loss.code_temperature=$t" "loss.label_weight=$l" "loss.weights.kd=$k"
        done
      done
    done
  done
  echo "done $setting seed $seed"
  exit 0
fi

export TUNE_DS=$1 TUNE_OUT=$3/$1
seeds=$2
shift 3
export TUNE_EXTRA="$*"
for setting in ${SETTINGS:-transductive}; do
  for seed in ${seeds//,/ }; do echo "$setting $seed"; done
done | xargs -P "${JOBS:-2}" -n 2 bash "$0" --chain || {
  echo "some chains failed (FAILED lines above); rerun the same command to resume them" >&2
  exit 1
}
