#!/usr/bin/env bash
# The whole leaderboard, from scratch and resumable: per dataset, tune every method on the
# transductive setting (seeds 100-104), then report its chosen point on seeds 0-9 in both
# settings, then the tables. A finished run is read again, not rerun, so an interrupted call
# resumes where it stopped. Protocol: experiments/leaderboard/README.md.
#
# Usage: bash experiments/leaderboard/run.sh OUT [DATASET ...]   (default: the four CPF sets)
#   LEADERBOARD_JOBS (default 2) runs at a time; LEADERBOARD_EXTRA: g2m overrides for every
#   run (e.g. "trainer=gpu"); LEADERBOARD_METHODS: only these methods (default: grids.yaml's)
set -euo pipefail
out=${1:?usage: run.sh OUT [DATASET ...]}
shift
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(cora citeseer a-photo a-computer)
here=$(dirname "$0")
python=${PYTHON:-python}
jobs=(--jobs "${LEADERBOARD_JOBS:-2}")
methods=()
[ -z "${LEADERBOARD_METHODS:-}" ] || methods=(--methods $LEADERBOARD_METHODS)
extra=(${LEADERBOARD_EXTRA:-})
for ds in "${datasets[@]}"; do
  chosen=$out/tune-$ds/chosen.yaml
  $python "$here/run.py" tune --dataset "$ds" "${methods[@]}" "${jobs[@]}" --out "$out/tune-$ds" \
    -- "${extra[@]}"
  $python "$here/run.py" report --dataset "$ds" "${methods[@]}" "${jobs[@]}" --chosen "$chosen" \
    --out "$out/report" -- "${extra[@]}"
  $python "$here/run.py" report --dataset "$ds" "${methods[@]}" "${jobs[@]}" --chosen "$chosen" \
    --out "$out/report-inductive" -- setting=inductive "${extra[@]}"
done
$python -m g2m.report.leaderboard "$out/report" "$out/report-inductive" --out "$out/table" \
  --published "$here/published.yaml"
