#!/usr/bin/env bash
# Runs make targets one after another, prints each one's wall time, and exits non-zero if
# any failed (after running the rest: one failure does not hide another). `make test` runs
# its suites through this script; `.ci/run` prints the same table for its installs.
#   Tests/stages.sh test-swift test-c ...
set -uo pipefail
cd "$(dirname "$0")/.."
names=() seconds=() results=()
status=0
for stage in "$@"; do
    echo "=== $stage"
    start=$(date +%s)
    if "${MAKE:-make}" --no-print-directory "$stage"; then result=ok; else result=FAILED; status=1; fi
    names+=("$stage") seconds+=($(( $(date +%s) - start ))) results+=("$result")
    echo "=== $stage: $result in ${seconds[-1]} s"
done
total=0
echo
echo "| stage | wall time | result |"
echo "|---|---:|---|"
for i in "${!names[@]}"; do
    printf '| %s | %d min %02d s | %s |\n' "${names[$i]}" $(( seconds[i] / 60 )) $(( seconds[i] % 60 )) "${results[$i]}"
    total=$(( total + seconds[i] ))
done
printf '| all | %d min %02d s | %s |\n' $(( total / 60 )) $(( total % 60 )) "$([ $status = 0 ] && echo ok || echo FAILED)"
exit $status
