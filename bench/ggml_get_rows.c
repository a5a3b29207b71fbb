/*
 * ggml_get_rows.c -- ggml's own CPU get_rows on a GGUF file's token table, the reference
 * the quantized forward is measured against (bench/bench_gguf.py, issue 19). Built against
 * a ggml built from the llama.cpp sources that the llama-cpp-python sdist carries.
 *
 *   ggml_get_rows FILE TYPE VOCAB DIM B T
 *
 * Loads token_embd.weight with gguf_init_from_file, builds get_rows(table, ids) for B x T
 * random ids (the same generator as bench_open.c) into float32, and computes the graph
 * with 2 threads in rounds; prints one JSON line (median, best, max ms).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml.h"
#include "ggml-cpu.h"
#include "gguf.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: ggml_get_rows FILE TYPE VOCAB DIM B T\n"); return 2; }
    const char *path = argv[1];
    int64_t V = atoll(argv[3]), D = atoll(argv[4]), N = atoll(argv[5]) * atoll(argv[6]);
    struct ggml_context *data = NULL;
    struct gguf_init_params gp = {.no_alloc = false, .ctx = &data};
    struct gguf_context *g = gguf_init_from_file(path, gp);
    if (!g || !data) { fprintf(stderr, "cannot read %s\n", path); return 3; }
    struct ggml_tensor *wte = ggml_get_tensor(data, "token_embd.weight");
    if (!wte || wte->ne[0] != D || wte->ne[1] != V || (int)wte->type != atoi(argv[2])) {
        fprintf(stderr, "token_embd.weight missing or not [%lld, %lld] of type %s\n", (long long)D, (long long)V, argv[2]);
        return 3;
    }
    size_t need = (size_t)N * (size_t)D * 4 + (size_t)N * 4 + ggml_graph_overhead() + 4 * ggml_tensor_overhead() + (1 << 20);
    struct ggml_init_params ip = {.mem_size = need, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
    int32_t *id = (int32_t *)ids->data;
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < N; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; id[i] = (int32_t)(x % (uint64_t)V); }
    struct ggml_tensor *out = ggml_get_rows(ctx, wte, ids);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    enum { ROUNDS = 35 };
    double t[ROUNDS];
    for (int r = -3; r < ROUNDS; r++) {
        double t0 = now();
        if (ggml_graph_compute_with_ctx(ctx, gf, 2) != GGML_STATUS_SUCCESS) { fprintf(stderr, "compute failed\n"); return 4; }
        if (r >= 0) t[r] = (now() - t0) * 1e3;
    }
    qsort(t, ROUNDS, sizeof(double), cmp_double);
    printf("{\"op\": \"ggml_get_rows\", \"ms\": %.4f, \"best_ms\": %.4f, \"max_ms\": %.4f, \"check\": %.6g}\n",
           t[ROUNDS / 2], t[0], t[ROUNDS - 1], (double)((float *)out->data)[0]);
    ggml_free(ctx);
    ggml_free(data);
    gguf_free(g);
    return 0;
}
