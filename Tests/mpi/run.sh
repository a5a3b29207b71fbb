#!/usr/bin/env bash
# The MPI suite (issue 14): vocabulary-parallel shards with a real engine (OpenMPI).
# Builds the C programs with mpicc and runs them, and the mpi4py program, with
# `mpirun -n 2` and `mpirun -n 3 --oversubscribe` (more ranks than this machine's cores),
# each under a timeout so that a rank that fails or hangs cannot hang the test suite.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
bin="$root/.build/release"
out="$root/.build/mpi-tests"
mkdir -p "$out"
[ -f "$bin/libgpt_embedding.so" ] || { echo "build the library first: make lib"; exit 1; }
command -v mpicc >/dev/null && command -v mpirun >/dev/null || {
    echo "mpicc and mpirun are needed (Debian: apt-get install openmpi-bin libopenmpi-dev)"; exit 1; }
PYTHON="${PYTHON:-python3}"
TIMEOUT="${MPI_TIMEOUT:-180}"

# OpenMPI refuses to run as root unless told; CI containers run as root.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# One machine: shared memory between the ranks, no network transports to probe.
mpirun_=(mpirun --mca btl self,vader --mca btl_vader_single_copy_mechanism none --bind-to none)

failed=0
run() {  # name, command...
    local name="$1"; shift
    echo "== $name"
    if ! "$@"; then echo "FAIL $name"; failed=$((failed + 1)); fi
}

cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -Iinclude)
link=(-L"$bin" -lgpt_embedding -Wl,-rpath,"$bin" -lm)
run "build test_shard_mpi" mpicc "${cflags[@]}" Tests/mpi/test_shard_mpi.c -o "$out/test_shard_mpi" "${link[@]}"
run "build examples/mpi/data_parallel" mpicc "${cflags[@]}" examples/mpi/data_parallel.c -o "$out/data_parallel" "${link[@]}"

export PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
for n in 2 3; do
    extra=()
    [ "$n" -gt 2 ] && extra=(--oversubscribe)
    run "test_shard_mpi -n $n" timeout "$TIMEOUT" "${mpirun_[@]}" -n "$n" "${extra[@]}" "$out/test_shard_mpi"
    run "test_shard_mpi.py -n $n" timeout "$TIMEOUT" "${mpirun_[@]}" -n "$n" "${extra[@]}" "$PYTHON" Tests/mpi/test_shard_mpi.py
    run "data_parallel -n $n" timeout "$TIMEOUT" "${mpirun_[@]}" -n "$n" "${extra[@]}" "$out/data_parallel"
done

if [ "$failed" -ne 0 ]; then echo "MPI tests: $failed failed"; exit 1; fi
echo "MPI tests: all passed"
