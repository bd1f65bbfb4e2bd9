#!/usr/bin/env bash
# Runs an experiment once per seed with command-line overrides, into runs/growth-share/LABEL-sSEED,
# for bench/scripts/growth-share.py to tabulate (test accuracy, widths, run and growth seconds).
#   bench/scripts/growth-share.sh LABEL "1 2 3" [tinygrow run options and --Section:Key=value overrides...]
# Example (the default experiment with statistics from the training batches):
#   bench/scripts/growth-share.sh training "1 2 3" --Growth:StatisticsFrom=training
# Runs one after another: growth share is a ratio within a run, but a quiet machine keeps it honest.
set -euo pipefail
label=$1; seeds=$2; shift 2
cd "$(dirname "$0")/../.."
for s in $seeds; do
  id="$label-s$s"
  rm -rf "runs/growth-share/$id"; mkdir -p runs/growth-share
  dotnet artifacts/tinygrow/tinygrow.dll run --Training:Seed="$s" --Output:Directory=runs/growth-share --Output:RunId="$id" \
    --Output:Progress=plain "$@" > "runs/growth-share/$id.log" 2>&1 || { echo "$id failed: see runs/growth-share/$id.log"; exit 1; }
  echo "$id done"
done
