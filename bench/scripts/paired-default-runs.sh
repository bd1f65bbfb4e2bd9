#!/usr/bin/env bash
# Paired cold runs of the default experiment from two or more copies of the app, interleaved: for each
# repetition and seed, one run per app in the order given, each with a fresh empty input statistics cache
# folder, one at a time. Prints one line per run: wall, run and growth seconds (the `final` line), the
# growth share, and the log's "computed ahead … in … s … waited … s" (InputCovariancesAhead) or "inline".
#   bench/scripts/paired-default-runs.sh OUT REPS "SEEDS" APP_FOLDER...
# Example (the app before and after a change, each a copy of artifacts/tinygrow):
#   bench/scripts/paired-default-runs.sh /tmp/paired 2 "1 2 3" /tmp/app-before /tmp/app-after
# Pairs, not a table of separate runs: on a shared machine a run's growth moves by ±0.1–0.25 s between
# repetitions, more than most changes to it.
set -euo pipefail
out=$1; reps=$2; seeds=$3; shift 3
root="$(cd "$(dirname "$0")/../.." && pwd)"
data=${TINYGROW_DATA:-/usr/share/datasets}
mkdir -p "$out"
for rep in $(seq 1 "$reps"); do for s in $seeds; do for app in "$@"; do
  id=$(basename "$app")-s$s-r$rep
  rm -rf "$out/$id" "$out/cache-$id"; mkdir -p "$out/cache-$id"
  t0=$(date +%s.%N)
  OMP_NUM_THREADS=1 dotnet "$app/tinygrow.dll" run --Dataset:Root="$data" --Training:Seed="$s" --Training:Threads=1 \
    --Output:Directory="$out" --Output:RunId="$id" --Output:CacheDirectory="$out/cache-$id" > "$out/$id.log" 2>&1
  t1=$(date +%s.%N)
  python3 "$root/bench/scripts/paired-default-runs.py" "$out/$id" "$t0" "$t1" "$out/$id.log"
done; done; done
