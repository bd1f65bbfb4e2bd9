#!/usr/bin/env bash
# Runs every Expecto test project (console apps: `dotnet test` needs an adapter not served here)
# and ends with one line "N passed, N failed". A test runner that crashes counts as one failure.
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG="${CONFIG:-Release}"
passed=0; failed=0; status=0
failures="$(mktemp)"
for project in tests/*/*.fsproj; do
  name="$(basename "$project" .fsproj)"
  dll="$(dirname "$project")/bin/$CONFIG/net10.0/$name.dll"
  if [[ ! -f "$dll" ]]; then echo "missing $dll: build first (make build)"; failed=$((failed+1)); status=1; continue; fi
  echo "== $name"
  log="$(mktemp)"
  dotnet "$dll" --sequenced --no-spinner --colours 0 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # Failed and errored tests again at the end: a CI log shown by its tail still names them.
  grep -E ' (ERR|FTL)\] ' -A3 "$log" | grep -vE '^ +at ' | sed "s/^/[$name] /" >> "$failures"
  line="$(grep -E 'EXPECTO! [0-9]+ tests? run' "$log" | tail -1)"
  if [[ -z "$line" ]]; then
    echo "!! $name ended (exit $rc) without an Expecto summary"; failed=$((failed+1)); status=1
  else
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    e=$(sed -E 's/.* ([0-9]+) errored.*/\1/' <<<"$line")
    passed=$((passed+p)); failed=$((failed+f+e))
    [[ $rc -ne 0 ]] && status=1
  fi
  rm -f "$log"
done
if [[ -s "$failures" ]]; then echo; echo "== failures"; cut -c1-400 "$failures"; fi
rm -f "$failures"
printf "\n%d passed, %d failed\n" "$passed" "$failed"
exit $status
