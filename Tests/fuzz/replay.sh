#!/usr/bin/env bash
# Replays the committed fuzz corpora (seeds and every past finding) through the fuzz
# targets built normally: the findings stay fixed. Part of `make test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
status=0
for dir in Tests/fuzz/corpus/*/; do
    t=$(basename "$dir")
    swift build --product "fuzz-$t" 2>&1 | grep -E "error" && exit 1
    bin=$(swift build --show-bin-path)
    "$bin/fuzz-$t" "$dir" || status=1
done
exit $status
