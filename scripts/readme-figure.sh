#!/usr/bin/env bash
# The README's picture: the default experiment (what `make run` runs) grown in a temporary folder, then
# its hidden widths and test accuracy over training drawn into docs/images/grown-run.png by the same
# code as a run's report (RunReport.WriteWidthsAndAccuracy, through the bench's readme-figure mode).
#   scripts/readme-figure.sh              a fresh run of the default experiment (about 10 s of training)
#   scripts/readme-figure.sh RUN-FOLDER   the picture of a finished run folder instead
# `make readme-figure` builds first. The README quotes the run's final line beside the picture: update
# it with the figures this run printed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/images/grown-run.png
if [ $# -ge 1 ]; then
  run=$1
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  dotnet artifacts/tinygrow/tinygrow.dll run --Output:Directory="$tmp" --Output:RunId=readme --Output:Progress=plain
  run=$tmp/readme
fi
mkdir -p "$(dirname "$out")"
dotnet "bench/TinyGrow.Bench/bin/${CONFIG:-Release}/net10.0/TinyGrow.Bench.dll" readme-figure "$run" "$out"
