/*
 * bench_isa.c -- the CPU paths side by side, in one process, in alternating rounds:
 *
 *   dispatched  the shipped library (kernels picked at run time: x86-64-v3 here)
 *   v3-only     the same sources compiled for x86-64-v3 as a whole (what `make lib` built
 *               before run-time dispatch); absent in --smoke runs
 *   baseline    a copy of the shipped library told GPT_EMBEDDING_ISA=baseline
 *
 * Each library is loaded with dlopen from its own file, so each makes its own choice of
 * path. Prints JSON lines like bench.c; bench/run.py makes the table. Also times layer
 * creation (random init) of GPT-2 small and XL, and int64 ids and numpy-like 16-byte
 * aligned outputs on the dispatched library.
 *
 * Usage: bench_isa DISPATCHED.so BASELINE_COPY.so [V3ONLY.so] [--smoke] [--threads 1,2]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt_embedding.h"

typedef struct {
    const char *name;
    void *handle;
    const char *(*isa)(void);
    const char *(*last_error)(void);
    int (*preset_config)(const char *, gpt_embedding_config *);
    int (*create)(const gpt_embedding_config *, gpt_embedding **);
    void (*free)(gpt_embedding *);
    int (*forward)(gpt_embedding *, const int32_t *, int64_t, int64_t, const int32_t *, int64_t, uint32_t, float *, int64_t);
    int (*forward_i64)(gpt_embedding *, const int64_t *, int64_t, int64_t, const int64_t *, int64_t, uint32_t, float *, int64_t);
    int (*backward)(gpt_embedding *, const float *, int64_t, int64_t);
    int (*zero_grad)(gpt_embedding *);
} library;

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) { fprintf(stderr, "%s: %s\n", name, dlerror()); exit(2); }
    return p;
}

static library open_library(const char *name, const char *path, const char *isa) {
    library l = { .name = name };
    l.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l.handle) { fprintf(stderr, "%s\n", dlerror()); exit(2); }
    l.isa = sym(l.handle, "gpt_embedding_isa");
    l.last_error = sym(l.handle, "gpt_embedding_last_error");
    l.preset_config = sym(l.handle, "gpt_embedding_preset_config");
    l.create = sym(l.handle, "gpt_embedding_create");
    l.free = sym(l.handle, "gpt_embedding_free");
    l.forward = sym(l.handle, "gpt_embedding_forward");
    l.forward_i64 = sym(l.handle, "gpt_embedding_forward_i64");
    l.backward = sym(l.handle, "gpt_embedding_backward");
    l.zero_grad = sym(l.handle, "gpt_embedding_zero_grad");
    /* The choice is made at the first call that needs it, reading the environment then. */
    if (isa) setenv("GPT_EMBEDDING_ISA", isa, 1);
    const char *chosen = l.isa();
    if (isa) unsetenv("GPT_EMBEDDING_ISA");
    if (!chosen) { fprintf(stderr, "%s: %s\n", name, l.last_error()); exit(2); }
    fprintf(stderr, "%s: %s (%s)\n", name, path, chosen);
    return l;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void check(library *l, int rc, const char *what) {
    if (rc != GPT_EMBEDDING_OK) { fprintf(stderr, "%s %s: %s\n", l->name, what, l->last_error()); exit(3); }
}

static int smoke = 0;
static int32_t *ids32;
static int64_t *ids64;
static float *dout, *out_aligned, *out_16;

enum op { FORWARD_EVAL, FORWARD_EVAL_I64, FORWARD_EVAL_OUT16, FORWARD_TRAIN, BACKWARD, BACKWARD_LN, STEP_1xT, CREATE, NOPS };
static const char *op_names[NOPS] = {
    "forward_eval", "forward_eval_i64", "forward_eval_out16", "forward_train", "backward", "backward_ln_dropout",
    "step_1xT", "create",
};

typedef struct { library *lib; gpt_embedding *plain, *train; int64_t B, T, D; int threads; } side;

/* One timed call of `op` (its untimed preparation first). Returns ms. */
static double run_op(side *s, enum op op, const char *model) {
    library *l = s->lib;
    const int64_t B = s->B, T = s->T, D = s->D, N = B * T;
    double t0;
    switch (op) {
    case FORWARD_EVAL:
        t0 = now(); check(l, l->forward(s->plain, ids32, B, T, NULL, 0, 0, out_aligned, N * D), "forward"); break;
    case FORWARD_EVAL_I64:
        t0 = now(); check(l, l->forward_i64(s->plain, ids64, B, T, NULL, 0, 0, out_aligned, N * D), "forward_i64"); break;
    case FORWARD_EVAL_OUT16:
        t0 = now(); check(l, l->forward(s->plain, ids32, B, T, NULL, 0, 0, out_16, N * D), "forward"); break;
    case FORWARD_TRAIN:
        t0 = now();
        check(l, l->forward(s->train, ids32, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM,
                            out_aligned, N * D), "forward");
        break;
    case BACKWARD:
        check(l, l->forward(s->plain, ids32, B, T, NULL, 0, GPT_EMBEDDING_TRAINING, out_aligned, N * D), "forward");
        t0 = now(); check(l, l->backward(s->plain, dout, B, T), "backward"); break;
    case BACKWARD_LN:
        check(l, l->forward(s->train, ids32, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM,
                            out_aligned, N * D), "forward");
        t0 = now(); check(l, l->backward(s->train, dout, B, T), "backward"); break;
    case STEP_1xT:  /* zero_grad + training forward + backward of one sequence of T tokens */
        t0 = now();
        check(l, l->zero_grad(s->plain), "zero_grad");
        check(l, l->forward(s->plain, ids32, 1, T, NULL, 0, GPT_EMBEDDING_TRAINING, out_aligned, T * D), "forward");
        check(l, l->backward(s->plain, dout, 1, T), "backward");
        break;
    case CREATE: {
        gpt_embedding_config c;
        check(l, l->preset_config(model, &c), "preset");
        c.num_threads = s->threads;
        gpt_embedding *layer;
        t0 = now();
        check(l, l->create(&c, &layer), "create");
        double t = (now() - t0) * 1e3;
        l->free(layer);
        return t;
    }
    default: return 0;
    }
    return (now() - t0) * 1e3;
}

static void emit(const char *impl, const char *model, int64_t B, int64_t T, int64_t D, int threads, const char *op, double ms) {
    printf("{\"impl\": \"%s\", \"model\": \"%s\", \"B\": %lld, \"T\": %lld, \"D\": %lld, \"threads\": %d, "
           "\"op\": \"%s\", \"ms\": %.6f, \"bytes\": 0, \"all_same\": 0}\n",
           impl, model, (long long)B, (long long)T, (long long)D, threads, op, ms);
    fflush(stdout);
}

/* Medians of `op` on every library, in alternating rounds. */
static void measure(side *sides, int n, enum op op, const char *model, int rounds, int per_round) {
    double t[4][512];
    int count = 0;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < n; k++) {
            run_op(&sides[k], op, model);  /* warm */
            for (int i = 0; i < per_round; i++) t[k][count + i] = run_op(&sides[k], op, model);
        }
        count += per_round;
    }
    for (int k = 0; k < n; k++) {
        qsort(t[k], (size_t)count, sizeof(double), cmp_double);
        emit(sides[k].lib->name, model, sides[k].B, sides[k].T, sides[k].D, sides[k].threads, op_names[op], t[k][count / 2]);
    }
}

int main(int argc, char **argv) {
    const char *paths[3] = {0};
    int npaths = 0, threads[4] = {1, 2}, nthreads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) smoke = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = 0;
            for (char *t = strtok(argv[++i], ","); t && nthreads < 4; t = strtok(NULL, ",")) threads[nthreads++] = atoi(t);
        } else if (npaths < 3) paths[npaths++] = argv[i];
    }
    if (npaths < 2) { fprintf(stderr, "usage: bench_isa DISPATCHED.so BASELINE_COPY.so [V3ONLY.so] [--smoke] [--threads 1,2]\n"); return 2; }
    library libs[3];
    int nlibs = 0;
    libs[nlibs++] = open_library("dispatched", paths[0], NULL);
    if (npaths > 2) libs[nlibs++] = open_library("v3-only", paths[2], NULL);
    libs[nlibs++] = open_library("baseline", paths[1], "baseline");

    const int64_t V = smoke ? 1000 : 50257, D = smoke ? 64 : 768, B = smoke ? 2 : 8, T = smoke ? 64 : 1024, N = B * T;
    ids32 = malloc((size_t)N * sizeof(int32_t));
    ids64 = malloc((size_t)N * sizeof(int64_t));
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < N; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ids32[i] = (int32_t)(x % (uint64_t)V); ids64[i] = ids32[i]; }
    void *raw = NULL;
    if (posix_memalign(&raw, 64, (size_t)(N * D) * sizeof(float) + 64)) return 2;
    out_aligned = raw;
    out_16 = (float *)((char *)raw + 16);  /* what numpy guarantees: 16-byte, not 32-byte aligned */
    dout = malloc((size_t)(N * D) * sizeof(float));
    for (int64_t i = 0; i < N * D; i++) dout[i] = (float)(i % 2001 - 1000) * 1e-3f;

    for (int ti = 0; ti < nthreads; ti++) {
        side sides[3];
        for (int k = 0; k < nlibs; k++) {
            library *l = &libs[k];
            gpt_embedding_config c;
            check(l, l->preset_config("gpt2", &c), "preset");
            c.vocab_size = V; c.embed_dim = D; c.num_threads = threads[ti]; c.dropout = 0;
            sides[k] = (side){ .lib = l, .B = B, .T = T, .D = D, .threads = threads[ti] };
            check(l, l->create(&c, &sides[k].plain), "create");
            c.dropout = 0.1f;
            check(l, l->create(&c, &sides[k].train), "create");
        }
        const int rounds = smoke ? 1 : 5, per = smoke ? 2 : 6;
        for (enum op op = FORWARD_EVAL; op < CREATE; op++) measure(sides, nlibs, op, smoke ? "tiny" : "gpt2-small", rounds, per);
        if (!smoke) {
            for (int k = 0; k < nlibs; k++) { libs[k].free(sides[k].plain); libs[k].free(sides[k].train); }
            measure(sides, nlibs, CREATE, "gpt2", 3, 2);
            measure(sides, nlibs, CREATE, "gpt2-xl", 3, 1);
        } else {
            for (int k = 0; k < nlibs; k++) { libs[k].free(sides[k].plain); libs[k].free(sides[k].train); }
        }
    }
    return 0;
}
