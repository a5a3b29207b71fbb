#!/usr/bin/env bash
# Replays the committed fuzz corpora (seeds and every past finding) through the fuzz
# targets built normally: the findings stay fixed. Part of `make test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
status=0
for dir in Tests/fuzz/corpus/*/; do
    t=$(basename "$dir")
    # Built with AddressSanitizer, as `make test-swift` builds the suite: the two share the
    # debug build (a plain build would recompile every module), and a finding that only
    # corrupts memory still fails here.
    swift build --sanitize=address --product "fuzz-$t" 2>&1 | grep -E "error" && exit 1
    bin=$(swift build --sanitize=address --show-bin-path)
    ASAN_OPTIONS=allocator_may_return_null=1 LSAN_OPTIONS=suppressions="$root/Tests/reliability/lsan.supp" \
        "$bin/fuzz-$t" "$dir" || status=1
done
exit $status
