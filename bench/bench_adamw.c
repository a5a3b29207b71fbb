/*
 * bench_adamw.c -- the training step (issue 13), GPT-2 small tables (39.4M parameters),
 * one 1x1024 batch, side by side in one process with alternating rounds:
 *
 *   step_lazy        zero_grad + training forward + backward + lazy AdamW step
 *   step_dense       zero_grad + training forward + backward + dense AdamW step
 *   adamw_dense      the dense AdamW step alone (28 bytes per parameter)
 *   adamw_lazy       the lazy AdamW step alone (the ~1,000 rows a batch touches)
 *   c_adamw_dense    the same dense update as a plain C loop (-O3 -march=native, OpenMP)
 *   stream           memory bandwidth, for the floor: a[i] = b[i] + c[i]; memcpy; and
 *                    a[i] *= s, b[i] *= s in place (read and written, like AdamW's p, m
 *                    and v, so no read-for-ownership: the fastest this machine moves data)
 *
 * Prints one JSON object per line; bench/bench_adamw.py makes the table.
 * Usage: bench_adamw [--smoke] [--threads N]
 */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "gpt_embedding.h"
#include "placement.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 2 MiB aligned, with transparent huge pages asked for, as the library allocates its
 * tables: on a VM a 4 KiB-page stream pays a nested page walk per page and measures a
 * bandwidth well below what the memory delivers (the floor would not be a floor). */
static void *xmalloc(size_t n) {
    void *p = NULL;
    const size_t huge = 2u << 20;
    if (posix_memalign(&p, huge, n ? n : 64) != 0) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(2); }
    madvise(p, n & ~(huge - 1), MADV_HUGEPAGE);
    memset(p, 0, n);
    return p;
}

static void ok(int status, const char *what) {
    if (status != GPT_EMBEDDING_OK) {
        fprintf(stderr, "%s: %s\n", what, gpt_embedding_last_error());
        exit(1);
    }
}

typedef struct {
    gpt_embedding *layer;
    int32_t *ids;
    float *out, *dy;
    int64_t B, T, D;
    gpt_embedding_adamw_options dense, lazy;
    /* The same layer with bf16 and f16 tables (float32 masters in the optimizer state). */
    gpt_embedding *layer16[2];
    /* The plain C baseline's arrays. */
    float *p, *g, *m, *v;
    size_t n;
    /* Bandwidth. */
    float *a, *b, *c;
    size_t sn, step_n;
    int step;
} ctx;

static void fwd_bwd(ctx *x) {
    ok(gpt_embedding_zero_grad(x->layer), "zero_grad");
    ok(gpt_embedding_forward(x->layer, x->ids, x->B, x->T, NULL, 0, GPT_EMBEDDING_TRAINING, x->out, x->B * x->T * x->D), "forward");
    ok(gpt_embedding_backward(x->layer, x->dy, x->B, x->T), "backward");
}
static void step_lazy(ctx *x) { fwd_bwd(x); ok(gpt_embedding_adamw_step(x->layer, &x->lazy), "step"); }
static void step_dense(ctx *x) { fwd_bwd(x); ok(gpt_embedding_adamw_step(x->layer, &x->dense), "step"); }
static void adamw_dense(ctx *x) { ok(gpt_embedding_adamw_step(x->layer, &x->dense), "step"); }
static void adamw_lazy(ctx *x) { ok(gpt_embedding_adamw_step(x->layer, &x->lazy), "step"); }
static void adamw_dense_bf16(ctx *x) { ok(gpt_embedding_adamw_step(x->layer16[0], &x->dense), "step bf16"); }
static void adamw_dense_f16(ctx *x) { ok(gpt_embedding_adamw_step(x->layer16[1], &x->dense), "step f16"); }

/* torch.optim.AdamW's update written the obvious way. */
static void c_adamw_dense(ctx *x) {
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    x->step++;
    const float bc1 = 1.0f - powf(b1, (float)x->step), bc2 = sqrtf(1.0f - powf(b2, (float)x->step));
    float *p = x->p, *g = x->g, *m = x->m, *v = x->v;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < x->n; i++) {
        p[i] *= 1.0f - lr * wd;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrtf(v[i]) / bc2 + eps);
    }
}

static void stream_add(ctx *x) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < x->sn; i++) x->a[i] = x->b[i] + x->c[i];
}
static void stream_copy(ctx *x) {
    #pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = x->sn * t / nt, hi = x->sn * (t + 1) / nt;
        memcpy(x->a + lo, x->b + lo, (hi - lo) * sizeof(float));
    }
}

static void stream_rw(ctx *x) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < x->sn; i++) { x->a[i] *= 1.0001f; x->b[i] *= 0.9999f; }
}

/* The same loop over as many bytes as the lazy full step's parts move (~75 MB): a plain C
 * op of the same length, whose slowest round shows the machine's own tail. */
static void stream_rw_step(ctx *x) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < x->step_n; i++) { x->a[i] *= 1.0001f; x->b[i] *= 0.9999f; }
}

typedef void (*op_fn)(ctx *);
typedef struct { const char *name; op_fn run; double bytes; double t[64]; int n; } op;

int main(int argc, char **argv) {
    int smoke = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) smoke = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    }
    omp_set_num_threads(threads);
    ctx x = {0};
    gpt_embedding_config cfg;
    ok(gpt_embedding_preset("gpt2", &cfg, sizeof cfg), "preset");
    if (smoke) { cfg.vocab_size = 1000; cfg.embed_dim = 64; cfg.max_seq_len = 128; }
    cfg.num_threads = threads;
    ok(gpt_embedding_create(&cfg, &x.layer), "create");
    x.B = 1;
    x.T = smoke ? 128 : 1024;
    x.D = cfg.embed_dim;
    x.ids = xmalloc((size_t)(x.B * x.T) * sizeof(int32_t));
    x.out = xmalloc((size_t)(x.B * x.T * x.D) * sizeof(float));
    x.dy = xmalloc((size_t)(x.B * x.T * x.D) * sizeof(float));
    uint64_t s = 42;
    for (int64_t i = 0; i < x.B * x.T; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; x.ids[i] = (int32_t)((s >> 33) % (uint64_t)cfg.vocab_size); }
    for (int64_t i = 0; i < x.B * x.T * x.D; i++) x.dy[i] = (float)((i * 7919) % 2001 - 1000) * 1e-5f;
    ok(gpt_embedding_adamw_options_init(&x.dense, sizeof x.dense), "options");
    x.lazy = x.dense;
    x.lazy.lazy = 1;
    int64_t nparams;
    ok(gpt_embedding_num_parameters(x.layer, &nparams), "num_parameters");
    x.n = (size_t)nparams;
    x.p = xmalloc(x.n * 4); x.g = xmalloc(x.n * 4); x.m = xmalloc(x.n * 4); x.v = xmalloc(x.n * 4);
    for (size_t i = 0; i < x.n; i++) { x.p[i] = 0.01f * (float)(i % 97); x.g[i] = 1e-3f * (float)(i % 13) - 6e-3f; }
    x.sn = smoke ? (1u << 20) : (64u << 20) / 4 * 4;  /* 4 x 64 MiB arrays */
    x.a = xmalloc(x.sn * 4); x.b = xmalloc(x.sn * 4); x.c = xmalloc(x.sn * 4);
    fwd_bwd(&x);
    ok(gpt_embedding_adamw_step(x.layer, &x.dense), "first step");  /* allocates the state */
    /* 16-bit tables: one forward + backward, then a first step that allocates the state. */
    for (int k = 0; k < 2; k++) {
        gpt_embedding_config c16 = cfg;
        c16.weight_dtype = k == 0 ? GPT_EMBEDDING_DTYPE_BF16 : GPT_EMBEDDING_DTYPE_F16;
        ok(gpt_embedding_create(&c16, &x.layer16[k]), "create 16-bit");
        gpt_embedding *keep = x.layer;
        x.layer = x.layer16[k];
        fwd_bwd(&x);
        x.layer = keep;
        ok(gpt_embedding_adamw_step(x.layer16[k], &x.dense), "first 16-bit step");
    }
    int64_t touched = 0;
    ok(gpt_embedding_touched_rows(x.layer, NULL, 0, &touched), "touched_rows");
    /* zero_grad, forward, backward and the lazy step move (4 + 8 + 28) bytes per touched
     * row element and 12 + 4 per output element (see bench_adamw.py); 16 bytes per i here. */
    x.step_n = (size_t)((40.0 * (double)(touched + x.T) * (double)x.D + 16.0 * (double)(x.B * x.T * x.D)) / 16.0);
    if (x.step_n > x.sn) x.step_n = x.sn;

    op ops[] = {
        {"step_lazy", step_lazy, 0, {0}, 0},
        {"step_dense", step_dense, 28.0 * (double)nparams, {0}, 0},
        {"adamw_dense", adamw_dense, 28.0 * (double)nparams, {0}, 0},
        {"adamw_lazy", adamw_lazy, 28.0 * (double)(touched + x.T) * (double)x.D, {0}, 0},
        /* Master, m and v read and written, the gradient read, the 16-bit table written. */
        {"adamw_dense_bf16", adamw_dense_bf16, 30.0 * (double)nparams, {0}, 0},
        {"adamw_dense_f16", adamw_dense_f16, 30.0 * (double)nparams, {0}, 0},
        {"c_adamw_dense", c_adamw_dense, 28.0 * (double)nparams, {0}, 0},
        {"stream_add", stream_add, 12.0 * (double)x.sn, {0}, 0},
        {"stream_copy", stream_copy, 8.0 * (double)x.sn, {0}, 0},
        {"stream_rw", stream_rw, 16.0 * (double)x.sn, {0}, 0},
        {"stream_rw_step", stream_rw_step, 16.0 * (double)x.step_n, {0}, 0},
    };
    const int nops = (int)(sizeof ops / sizeof ops[0]);
    const int rounds = smoke ? 1 : 7, per = smoke ? 1 : 5;
    int far_rounds = 0, placed = 0;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < nops; k++) {
            ops[k].run(&x);  /* warm */
            for (int i = 0; i < per && ops[k].n < 64; i++) {
                double t0 = now();
                ops[k].run(&x);
                ops[k].t[ops[k].n++] = (now() - t0) * 1e3;
            }
        }
        double rt = roundtrip_ns();
        if (rt > 0) { placed++; far_rounds += rt > FAR_ROUNDTRIP_NS; }
    }
    printf("{\"impl\": \"probe\", \"op\": \"placement\", \"far_rounds\": %d, \"rounds\": %d}\n", far_rounds, placed);
    for (int k = 0; k < nops; k++) {
        qsort(ops[k].t, (size_t)ops[k].n, sizeof(double), cmp_double);
        printf("{\"impl\": \"%s\", \"op\": \"%s\", \"threads\": %d, \"ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, "
               "\"bytes\": %.0f, \"params\": %lld, \"touched\": %lld, \"T\": %lld, \"D\": %lld}\n",
               ops[k].name[0] == 'c' && ops[k].name[1] == '_' ? "c" : ops[k].name[0] == 's' && ops[k].name[1] == 't' && ops[k].name[2] == 'r' ? "stream" : "lib",
               ops[k].name, threads, ops[k].t[ops[k].n / 2], ops[k].t[0], ops[k].t[ops[k].n - 1], ops[k].bytes,
               (long long)nparams, (long long)touched, (long long)x.T, (long long)x.D);
    }
    gpt_embedding_free(x.layer);
    gpt_embedding_free(x.layer16[0]);
    gpt_embedding_free(x.layer16[1]);
    return 0;
}
