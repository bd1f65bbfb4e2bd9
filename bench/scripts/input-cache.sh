#!/usr/bin/env bash
# Issue 23's rows: one experiment before the input statistics cache (TODAY_APP, a build of the commit
# before it), cold (an empty cache folder per seed) and warm (the folder the cold run of the first seed
# filled: entries do not depend on the seed), through bench/scripts/growth-share.sh, into
# runs/growth-share/LABEL-{today,cold,warm}-sSEED; then the table (bench/scripts/growth-share.py).
#   TODAY_APP=/path/to/old/artifacts/tinygrow bench/scripts/input-cache.sh LABEL "1 2" [run options...]
# Example (CIFAR-dense on generated files, cut to its 5 growth epochs):
#   bench/scripts/input-cache.sh cifar-bench "1 2" --experiment experiments/cifar10-dense.json \
#     --Dataset:Root=/tmp/cifar-bench --Training:Epochs=5
# Cache folders go under CACHE_ROOT (default /tmp/tinygrow-input-cache-bench).
set -euo pipefail
label=$1; seeds=$2; shift 2
cd "$(dirname "$0")/../.."
cache_root=${CACHE_ROOT:-/tmp/tinygrow-input-cache-bench}
first=${seeds%% *}
if [ -n "${TODAY_APP:-}" ]; then
  TINYGROW_APP="$TODAY_APP" bench/scripts/growth-share.sh "$label-today" "$seeds" "$@"
fi
for s in $seeds; do
  rm -rf "$cache_root/$label-s$s"
  bench/scripts/growth-share.sh "$label-cold" "$s" "$@" --Output:CacheDirectory="$cache_root/$label-s$s"
done
bench/scripts/growth-share.sh "$label-warm" "$seeds" "$@" --Output:CacheDirectory="$cache_root/$label-s$first"
labels=("$label-cold" "$label-warm")
[ -n "${TODAY_APP:-}" ] && labels=("$label-today" "${labels[@]}")
bench/scripts/growth-share.py "${labels[@]}"
