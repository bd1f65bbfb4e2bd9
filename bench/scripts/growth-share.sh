#!/usr/bin/env bash
# Runs an experiment once per seed with command-line overrides, into runs/growth-share/LABEL-sSEED,
# for bench/scripts/growth-share.py to tabulate (test accuracy, widths, run and growth seconds).
#   bench/scripts/growth-share.sh LABEL "1 2 3" [tinygrow run options and --Section:Key=value overrides...]
# Example (the default experiment with statistics from a separate pass, as before issue 10):
#   bench/scripts/growth-share.sh pass "1 2 3" --Growth:StatisticsFrom=pass
# Runs one after another: growth share is a ratio within a run, but a quiet machine keeps it honest.
# The application is copied first (TINYGROW_APP, default artifacts/tinygrow), so that a build while
# the runs go on changes none of them.
set -euo pipefail
label=$1; seeds=$2; shift 2
cd "$(dirname "$0")/../.."
app=$(mktemp -d)
trap 'rm -rf "$app"' EXIT
cp -r "${TINYGROW_APP:-artifacts/tinygrow}/." "$app/"
# TINYGROW_* variables are the application's configuration (strict: an unknown key is an error).
unset TINYGROW_APP
mkdir -p runs/growth-share
for s in $seeds; do
  id="$label-s$s"
  rm -rf "runs/growth-share/$id" "runs/growth-share/$id.partial"
  dotnet "$app/tinygrow.dll" run --Training:Seed="$s" --Output:Directory=runs/growth-share --Output:RunId="$id" \
    --Output:Progress=plain "$@" > "runs/growth-share/$id.log" 2>&1 || { echo "$id failed: see runs/growth-share/$id.log"; exit 1; }
  echo "$id done"
done
