#!/usr/bin/env bash
# Builds ggml's CPU backend from the llama.cpp sources that the llama-cpp-python sdist on
# PyPI carries, for bench/bench_gguf.py's comparison with ggml's own get_rows (issue 19):
#
#   bench/build_ggml.sh            -> .build/ggml/{include,lib}; then
#   python3 bench/bench_gguf.py --ggml .build/ggml   (make bench does this when it exists)
#
# Needs network access, a C/C++ compiler, and cmake + ninja (pip install cmake ninja).
# -march=native and OpenMP, as a user building llama.cpp on this machine gets by default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/.build/ggml-src"
dest="$root/.build/ggml"
mkdir -p "$work" "$dest"
cd "$work"
if [ ! -d src ]; then
    url=$(python3 - <<'PY'
import json, urllib.parse, urllib.request
base = "https://pypi.org/pypi/llama-cpp-python/json"
info = json.load(urllib.request.urlopen(base))
sdist = next(u for u in info["urls"] if u["packagetype"] == "sdist")
print(urllib.parse.urljoin(base, sdist["url"]))
PY
)
    echo "downloading $url"
    curl -sSL -o sdist.tar.gz "$url"
    mkdir -p src && tar xzf sdist.tar.gz -C src --strip-components=1
fi
ggml="$work/src/vendor/llama.cpp/ggml"
# The sdist leaves out ggml.pc.in (a pkg-config template), which ggml's CMakeLists configures.
[ -f "$ggml/ggml.pc.in" ] || touch "$ggml/ggml.pc.in"
cmake -S "$ggml" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
      -DGGML_OPENMP=ON -DGGML_BACKEND_DL=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF > "$work/cmake.log"
cmake --build "$work/build" -j"$(nproc)" > "$work/build.log"
ln -sfn "$ggml/include" "$dest/include"
ln -sfn "$work/build/src" "$dest/lib"
echo "ggml built: $dest (include/, lib/)"
