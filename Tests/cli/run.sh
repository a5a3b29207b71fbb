#!/usr/bin/env bash
# The CLI's convert (issue 19 item 6): gpt-embedding convert IN OUT [--type T]; inspect and
# demo --checkpoint on a quantized GGUF file and on OPT.
# A safetensors checkpoint converted to GGUF Q8_0 by the CLI is the file save_gguf writes
# (byte for byte), opens with the quantized rows, converts back to safetensors, and bad
# arguments exit non-zero with a message and leave no file.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${1:-$root/.build/release}"
cli="$bin/gpt-embedding"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export PYTHONPATH="$root/bindings/python" GPT_EMBEDDING_LIB="$bin/libgpt_embedding.so"
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

src="$root/Tests/fixtures/families/gpt_neo_bf16"
"$cli" convert "$src" "$tmp/neo.gguf" --type q8_0 > "$tmp/out.txt"
check "convert prints what it wrote" "grep -q 'q8_0' '$tmp/out.txt'"
python3 - "$src" "$tmp" <<'PY'
import sys, numpy as np
from gpt_embedding import GPTEmbedding
src, tmp = sys.argv[1], sys.argv[2]
GPTEmbedding.from_pretrained(src).save_gguf(f"{tmp}/lib.gguf", table_type="q8_0")
PY
check "the CLI's GGUF is save_gguf's, byte for byte" "cmp -s '$tmp/neo.gguf' '$tmp/lib.gguf'"
"$cli" inspect "$tmp/neo.gguf" > "$tmp/inspect.txt"
check "inspect shows the q8_0 table and gpt2" "grep -q 'q8_0' '$tmp/inspect.txt' && grep -q 'gpt2' '$tmp/inspect.txt'"
"$cli" convert "$tmp/neo.gguf" "$tmp/back.safetensors" > /dev/null
check "GGUF back to safetensors: the dequantized rows" "python3 -c \"
import numpy as np
from gpt_embedding import GPTEmbedding
a = GPTEmbedding.from_pretrained('$tmp/neo.gguf').get_parameter('token_embedding.weight')
b = GPTEmbedding.from_pretrained('$tmp/back.safetensors').get_parameter('token_embedding.weight')
assert np.array_equal(a, b)
\""
check "--type with safetensors output is refused" "! '$cli' convert '$src' '$tmp/x.safetensors' --type q4_0 2> '$tmp/err.txt' && grep -q 'GGUF output only' '$tmp/err.txt' && [ ! -e '$tmp/x.safetensors' ]"
check "an unknown type is refused" "! '$cli' convert '$src' '$tmp/y.gguf' --type q4_k 2> '$tmp/err.txt' && grep -q 'q4_k' '$tmp/err.txt' && [ ! -e '$tmp/y.gguf' ]"
check "a layer no architecture describes is refused" "! '$cli' convert '$root/Tests/fixtures/families/opt' '$tmp/z.gguf' 2> '$tmp/err.txt' && grep -q 'no GGUF architecture' '$tmp/err.txt' && [ ! -e '$tmp/z.gguf' ]"
# inspect and demo on what the library opens (found while writing docs/cli.md).
"$cli" inspect "$root/Tests/fixtures/gguf/llama_q4_k.gguf" > "$tmp/q4k.txt"
check "inspect's config line names a quantized table's block type" "grep -q 'opens as a layer: config: .*weight_dtype q4_k' '$tmp/q4k.txt'"
check "demo --checkpoint runs on OPT (learned positions with an offset of 2)" \
    "'$cli' demo --checkpoint '$root/Tests/fixtures/families/opt' > '$tmp/demo.txt' 2>&1 && grep -q 'ms, .* GB/s moved' '$tmp/demo.txt'"
echo "cli: $fails failed"
[ "$fails" -eq 0 ]
