#!/usr/bin/env bash
# The .so exports exactly the header's functions, has the versioned SONAME and carries
# its Swift runtime (no libswift* dependency). Usage: check_exports.sh <lib.so> <header>
set -euo pipefail
so="$1" header="$2"
# The header's functions (not its static inline helpers, which end in "_sized_"), plus
# the 0.1 entry points the library keeps for programs built against older headers, which
# the header now spells as macros over the sized functions.
legacy="gpt_embedding_default_config gpt_embedding_preset_config gpt_embedding_get_config"
declared=$( (gcc -E -P "$header" | grep -oE '\bgpt_embedding_[A-Za-z0-9_]+[[:space:]]*\(' | tr -d ' (' | grep -v '_sized_$'; \
            printf '%s\n' $legacy) | sort -u)
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u)
if [ "$declared" != "$exported" ]; then
    echo "FAIL header and exports differ (< header only, > exports only):"
    diff <(echo "$declared") <(echo "$exported") || true
    exit 1
fi
echo "ok   the library exports exactly the $(echo "$declared" | wc -l) functions of the header"
major=$(sed -n 's/^#define GPT_EMBEDDING_VERSION_MAJOR \([0-9]*\).*/\1/p' "$header")
readelf -d "$so" | grep -q "SONAME.*\[libgpt_embedding.so.$major\]" || { echo "FAIL SONAME is not libgpt_embedding.so.$major"; exit 1; }
echo "ok   SONAME libgpt_embedding.so.$major"
if ldd "$so" | grep -q libswift; then echo "FAIL the library needs a Swift runtime:"; ldd "$so"; exit 1; fi
echo "ok   no libswift* dependency"
