#!/usr/bin/env bash
# One device call of the products-scale measurements, everything it prints packed into one
# archive (the device tool returns at most 8 files): the wheels the image lacks installed,
# the GPU's name, then each step in order, the archive rewritten after every step so that a
# call cut off at its limit still returns what finished.
#
# Usage (on the GPU machine, repo root, .whl carried):
#   bash experiments/gpu_scale/device_call.sh OUT_ARCHIVE STEP [STEP ...]
# Steps:
#   gputests          the GPU tests of the student loop and the reordered SAGE
#   floor             teacher_floor.py (PyG's SAGE and the reordered one against the floor)
#   pipeline:S        the whole vq and glnn runs of seed S (pipeline_call.sh, SKIP_OLD=1)
#   pipeline-glnn:S   the glnn run of seed S only
#   pipeline-vq:S     the vq run of seed S only
#   calibrated:S      the calibrated products graph, seed S: teacher + GLNN student + the
#                     label-only MLP (calibrate_call.sh at its YAML's settings)
set -uo pipefail
archive=$1
shift
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
work=/tmp/device-call
mkdir -p $work
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $work/gpu.txt 2>&1
git rev-parse HEAD > $work/commit.txt 2>/dev/null || true
pack() { tar czf "$archive" -C $work . ; }
for step in "$@"; do
  started=$(date +%s)
  case $step in
    gputests)
      python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_student_steps.py \
        tests/test_sage_reordered.py tests/test_aggregation.py tests/test_gpu.py > $work/gputests.log 2>&1 ;;
    floor)
      python3 experiments/gpu_scale/teacher_floor.py > $work/teacher_floor.txt 2>&1 ;;
    pipeline:*)
      SKIP_OLD=1 bash experiments/gpu_scale/pipeline_call.sh $work "${step#*:}" \
        > $work/pipeline-seed${step#*:}.md 2>&1 ;;
    pipeline-glnn:*)
      SKIP_OLD=1 SKIP_VQ=1 bash experiments/gpu_scale/pipeline_call.sh $work "${step#*:}" \
        > $work/pipeline-glnn-seed${step#*:}.md 2>&1 ;;
    pipeline-vq:*)
      SKIP_OLD=1 SKIP_GLNN=1 bash experiments/gpu_scale/pipeline_call.sh $work "${step#*:}" \
        > $work/pipeline-vq-seed${step#*:}.md 2>&1 ;;
    calibrated:*)
      mkdir -p $work/calibrated
      bash experiments/gpu_scale/calibrate_call.sh $work/calibrated full 2.6 0.15 "${step#*:}" \
        > $work/calibrated-seed${step#*:}.md 2>&1 ;;
    *) echo "unknown step $step" >> $work/steps.txt ;;
  esac
  echo "$step $(( $(date +%s) - started )) s" >> $work/steps.txt
  pack
done
cat $work/steps.txt
