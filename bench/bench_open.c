/*
 * bench_open.c -- a real checkpoint at its own precision: opening a bf16 table file and
 * embedding from it (issue 11). Prints JSON lines; bench/run.py makes the table.
 *
 *   bench_open open FILE read|mmap     one open in this (fresh) process: the time, and the
 *                                      resident memory before and after and at its peak
 *   bench_open forward FILE B T        opens FILE (read mode, 2 threads), then in alternating
 *                                      rounds: eval forwards of B x T random ids into float32
 *                                      and into bf16, and a 2-thread memcpy probe for the floor
 */
#define _GNU_SOURCE
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt_embedding.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void check(int rc, const char *what) {
    if (rc != GPT_EMBEDDING_OK) { fprintf(stderr, "%s: %s\n", what, gpt_embedding_last_error()); exit(3); }
}

/* A /proc/self/status field in kB. */
static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, n) && line[n] == ':') { v = atol(line + n + 1); break; }
    }
    if (f) fclose(f);
    return v;
}

static int open_once(const char *path, const char *mode) {
    gpt_embedding_open_options o;
    check(gpt_embedding_open_options_init(&o, sizeof o), "options");
    o.mmap = !strcmp(mode, "mmap");
    o.num_threads = 2;
    long rss0 = status_kb("VmRSS");
    double t0 = now();
    gpt_embedding *layer = NULL;
    check(gpt_embedding_open(path, &o, &layer), "open");
    double ms = (now() - t0) * 1e3;
    long rss1 = status_kb("VmRSS"), hwm = status_kb("VmHWM");
    int mapped = 0;
    check(gpt_embedding_parameter_mapped(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &mapped), "mapped");
    printf("{\"op\": \"open\", \"mode\": \"%s\", \"ms\": %.3f, \"rss_before_kb\": %ld, \"rss_after_kb\": %ld, "
           "\"hwm_kb\": %ld, \"mapped\": %d}\n", mode, ms, rss0, rss1, hwm, mapped);
    gpt_embedding_free(layer);
    return 0;
}

static int forward(const char *path, int64_t B, int64_t T) {
    gpt_embedding_open_options o;
    check(gpt_embedding_open_options_init(&o, sizeof o), "options");
    o.num_threads = 2;
    gpt_embedding *layer = NULL;
    check(gpt_embedding_open(path, &o, &layer), "open");
    int64_t V, D;
    check(gpt_embedding_parameter_shape(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &V, &D), "shape");
    int dtype = 0;
    check(gpt_embedding_parameter_dtype(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &dtype), "dtype");
    const int64_t N = B * T;
    int32_t *ids = malloc((size_t)N * sizeof(int32_t));
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < N; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ids[i] = (int32_t)(x % (uint64_t)V); }
    void *out = NULL, *a = NULL, *b = NULL;
    if (posix_memalign(&out, 64, (size_t)(N * D) * 4)) return 2;
    /* The bandwidth probe: a copy as large as the float32 output. */
    size_t probe = (size_t)(N * D) * 4;
    if (posix_memalign(&a, 64, probe) || posix_memalign(&b, 64, probe)) return 2;
    memset(a, 1, probe);
    memset(b, 2, probe);
    enum { ROUNDS = 7, PER = 5 };
    double t[3][ROUNDS * PER];
    int n = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 3; k++) {
            for (int i = -1; i < PER; i++) {
                double t0 = now();
                if (k == 0) check(gpt_embedding_forward_typed(layer, ids, B, T, NULL, 0, 0, GPT_EMBEDDING_DTYPE_F32, out, N * D), "f32");
                if (k == 1) check(gpt_embedding_forward_typed(layer, ids, B, T, NULL, 0, 0, GPT_EMBEDDING_DTYPE_BF16, out, N * D), "bf16");
                if (k == 2) {  /* the bandwidth probe, on as many threads as the layer */
                    #pragma omp parallel num_threads(2)
                    {
                        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
                        size_t lo = probe * t / nt, hi = probe * (t + 1) / nt;
                        memcpy((char *)a + lo, (char *)b + lo, hi - lo);
                    }
                }
                double ms = (now() - t0) * 1e3;
                if (i >= 0) t[k][n + i] = ms;
            }
        }
        n += PER;
    }
    const char *names[3] = {"forward_f32", "forward_bf16", "memcpy"};
    double bytes[3] = {(double)N * D * 2 + (double)N * D * 4, (double)N * D * 2 + (double)N * D * 2, 2.0 * probe};
    for (int k = 0; k < 3; k++) {
        qsort(t[k], (size_t)n, sizeof(double), cmp_double);
        printf("{\"op\": \"%s\", \"B\": %lld, \"T\": %lld, \"V\": %lld, \"D\": %lld, \"table_dtype\": %d, \"ms\": %.4f, "
               "\"best_ms\": %.4f, \"max_ms\": %.4f, \"bytes\": %.0f}\n", names[k], (long long)B, (long long)T, (long long)V,
               (long long)D, dtype, t[k][n / 2], t[k][0], t[k][n - 1], bytes[k]);
    }
    gpt_embedding_free(layer);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "open")) return open_once(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "forward")) return forward(argv[2], atoll(argv[3]), atoll(argv[4]));
    fprintf(stderr, "usage: bench_open open FILE read|mmap | bench_open forward FILE B T\n");
    return 2;
}
