/*
 * bench.c -- times libgpt_embedding side by side with a plain C baseline (the same
 * loops written the obvious way, compiled -O3 -march=native with OpenMP) and with the
 * machine's memory bandwidth (STREAM-style add and memcpy), all in one run.
 *
 * Prints one JSON object per line; bench/run.py turns them into the table (and adds
 * PyTorch when it is installed). Usage: bench [--smoke] [--threads 1,2]
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, for the placement probe */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpt_embedding.h"
#include "placement.h"

static int smoke = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of `reps` timed runs after `warm` untimed ones. `prep` runs untimed before each. */
typedef void (*step_fn)(void *ctx);
static double median_ms(step_fn prep, step_fn run, void *ctx, int warm, int reps) {
    double t[256];
    if (reps > 256) reps = 256;
    for (int i = 0; i < warm; i++) { if (prep) prep(ctx); run(ctx); }
    for (int i = 0; i < reps; i++) {
        if (prep) prep(ctx);
        double t0 = now();
        run(ctx);
        t[i] = (now() - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    return t[reps / 2];
}

/* Medians of two implementations (b may be NULL) measured in alternating rounds, so that
 * the slow drift of a shared machine affects both alike. In each round a side runs `warm`
 * untimed and then reps/rounds timed calls in a row: its steady state, as a caller who
 * repeats the operation sees it. */
typedef struct { double min, med, max; } stats;

/* The bandwidth probe measured beside each case: after every round of median_pair, two
 * STREAM adds at the run's most threads (after one more that is not counted) (defined with the probe below). A case's floor in
 * bench/run.py is its bytes at the median of its own probes: this VM's bandwidth drifts
 * by a factor of two within minutes, and a floor taken once at the start of the run made
 * every later ratio move with it. */
static void probe_once(double *gbs);
static int probe_ready = 0;
static double case_probe_gbs = 0;  /* of the last median_pair; 0 when none ran */

/* The placement probe (placement.h), measured after every round too: run.py prints each
 * case's rounds on two dies next to its targets. */
static int case_far_rounds = -1;  /* rounds of the last median_pair on two dies; -1: not measured */

static stats stats_of(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    stats s = { t[0], t[n / 2], t[n - 1] };
    return s;
}

static void median_pair(step_fn prep_a, step_fn run_a, void *ctx_a, step_fn prep_b, step_fn run_b, void *ctx_b,
                        int warm, int reps, stats *ms_a, stats *ms_b) {
    enum { ROUNDS = 5 };
    double ta[256], tb[256], pb[2 * ROUNDS];
    int per = reps / ROUNDS < 1 ? 1 : reps / ROUNDS, na = 0, nb = 0, np = 0, far = 0, placed = 0;
    if (per * ROUNDS > 256) per = 256 / ROUNDS;
    for (int round = 0; round < ROUNDS; round++) {
        for (int side = 0; side < 2; side++) {
            step_fn prep = side ? prep_b : prep_a, run = side ? run_b : run_a;
            void *ctx = side ? ctx_b : ctx_a;
            if (!run) continue;
            for (int i = -warm; i < per; i++) {
                if (prep) prep(ctx);
                double t0 = now();
                run(ctx);
                double t = (now() - t0) * 1e3;
                if (i >= 0) { if (side) tb[nb++] = t; else ta[na++] = t; }
            }
        }
        if (probe_ready) {
            /* The first add after a round also writes back the round's dirty lines: not counted. */
            double first;
            probe_once(&first);
            probe_once(&pb[np++]);
            probe_once(&pb[np++]);
            double rt = roundtrip_ns();
            if (rt > 0) { placed++; far += rt > FAR_ROUNDTRIP_NS; }
        }
    }
    case_probe_gbs = np ? stats_of(pb, np).med : 0;
    case_far_rounds = placed ? far : -1;
    *ms_a = stats_of(ta, na);
    if (ms_b) { stats z = { 0, 0, 0 }; *ms_b = nb ? stats_of(tb, nb) : z; }
}

static void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(2); }
    memset(p, 0, n);
    return p;
}

static uint64_t rng_state = 0x12345678;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* Memory bandwidth                                                    */
/* ------------------------------------------------------------------ */

typedef struct { float *a, *b, *c; size_t n; } stream_ctx;
static void stream_add(void *p) {
    stream_ctx *s = p;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < s->n; i++) s->a[i] = s->b[i] + s->c[i];
}
static void stream_copy(void *p) {
    stream_ctx *s = p;
    #pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = s->n * t / nt, hi = s->n * (t + 1) / nt;
        memcpy(s->a + lo, s->b + lo, (hi - lo) * sizeof(float));
    }
}

/* ------------------------------------------------------------------ */
/* The plain C baseline: the obvious loops, OpenMP over rows or columns */
/* ------------------------------------------------------------------ */

typedef struct {
    int64_t V, D, T, B, N;
    int32_t *ids;
    float *wte, *wpe, *gamma, *beta, *out, *dout, *dwte, *dwpe, *dgamma, *dbeta, *mean, *rstd, *coef;
    float p_drop;
    uint64_t step;
} base_ctx;

static inline uint32_t mix32(uint32_t h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    return h;
}

static void base_forward_eval(void *p) {
    base_ctx *c = p;
    const int64_t D = c->D, T = c->T;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < c->N; r++) {
        const float *w = c->wte + (int64_t)c->ids[r] * D, *q = c->wpe + (r % T) * D;
        float *o = c->out + r * D;
        for (int64_t i = 0; i < D; i++) o[i] = w[i] + q[i];
    }
}

static void base_forward_train(void *p) {  /* layer norm + dropout, statistics kept */
    base_ctx *c = p;
    const int64_t D = c->D, T = c->T;
    const uint32_t thr = (uint32_t)(c->p_drop * 4294967296.0);
    const float keep = 1.0f / (1.0f - c->p_drop);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < c->N; r++) {
        const float *w = c->wte + (int64_t)c->ids[r] * D, *q = c->wpe + (r % T) * D;
        float *o = c->out + r * D;
        float s = 0, v = 0;
        for (int64_t i = 0; i < D; i++) { o[i] = w[i] + q[i]; s += o[i]; }
        float m = s / D;
        for (int64_t i = 0; i < D; i++) { float d = o[i] - m; v += d * d; }
        float rs = 1.0f / sqrtf(v / D + 1e-5f);
        uint32_t key = (uint32_t)(r * 0x9E3779B97F4A7C15ull >> 32) ^ (uint32_t)c->step;
        for (int64_t i = 0; i < D; i++) {
            float y = (o[i] - m) * rs * c->gamma[i] + c->beta[i];
            o[i] = mix32(key + (uint32_t)i * 0x9E3779B9u) >= thr ? y * keep : 0.0f;
        }
        c->mean[r] = m; c->rstd[r] = rs;
    }
}

static void base_backward(void *p) {  /* scatter-add; threads own column ranges: deterministic */
    base_ctx *c = p;
    const int64_t D = c->D, T = c->T;
    #pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t c0 = D * t / nt, c1 = D * (t + 1) / nt;
        for (int64_t r = 0; r < c->N; r++) {
            const float *g = c->dout + r * D;
            float *w = c->dwte + (int64_t)c->ids[r] * D, *q = c->dwpe + (r % T) * D;
            for (int64_t i = c0; i < c1; i++) { w[i] += g[i]; q[i] += g[i]; }
        }
    }
}

static void base_backward_ln(void *p) {  /* layer norm + dropout backward, x recomputed */
    base_ctx *c = p;
    const int64_t D = c->D, T = c->T;
    const uint32_t thr = (uint32_t)(c->p_drop * 4294967296.0);
    const float keep = 1.0f / (1.0f - c->p_drop);
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < c->N; r++) {
        const float *w = c->wte + (int64_t)c->ids[r] * D, *q = c->wpe + (r % T) * D, *g = c->dout + r * D;
        uint32_t key = (uint32_t)(r * 0x9E3779B97F4A7C15ull >> 32) ^ (uint32_t)c->step;
        float a = 0, b = 0;
        for (int64_t i = 0; i < D; i++) {
            float xh = (w[i] + q[i] - c->mean[r]) * c->rstd[r];
            float dy = mix32(key + (uint32_t)i * 0x9E3779B9u) >= thr ? g[i] * keep : 0.0f;
            a += c->gamma[i] * dy; b += c->gamma[i] * dy * xh;
        }
        c->coef[2 * r] = a / D; c->coef[2 * r + 1] = b / D;
    }
    #pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t c0 = D * t / nt, c1 = D * (t + 1) / nt;
        for (int64_t r = 0; r < c->N; r++) {
            const float *w = c->wte + (int64_t)c->ids[r] * D, *q = c->wpe + (r % T) * D, *g = c->dout + r * D;
            float *dw = c->dwte + (int64_t)c->ids[r] * D, *dq = c->dwpe + (r % T) * D;
            uint32_t key = (uint32_t)(r * 0x9E3779B97F4A7C15ull >> 32) ^ (uint32_t)c->step;
            float m = c->mean[r], rs = c->rstd[r], k1 = c->coef[2 * r], k2 = c->coef[2 * r + 1];
            for (int64_t i = c0; i < c1; i++) {
                float xh = (w[i] + q[i] - m) * rs;
                float dy = mix32(key + (uint32_t)i * 0x9E3779B9u) >= thr ? g[i] * keep : 0.0f;
                c->dgamma[i] += dy * xh; c->dbeta[i] += dy;
                float dx = (c->gamma[i] * dy - k1 - xh * k2) * rs;
                dw[i] += dx; dq[i] += dx;
            }
        }
    }
}

static void base_zero_grad(void *p) {
    base_ctx *c = p;
    memset(c->dwte, 0, (size_t)(c->V * c->D) * sizeof(float));
    memset(c->dwpe, 0, (size_t)(c->T * c->D) * sizeof(float));
    memset(c->dgamma, 0, (size_t)c->D * sizeof(float));
    memset(c->dbeta, 0, (size_t)c->D * sizeof(float));
}

/* ------------------------------------------------------------------ */
/* The library, through its C ABI                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    gpt_embedding *layer;
    int64_t B, T, N, D;
    int32_t *ids;
    float *out, *dout;
    uint32_t flags;
    int out_dtype;  /* for lib_forward_typed */
} lib_ctx;

static void check(int rc, const char *what) {
    if (rc != GPT_EMBEDDING_OK) { fprintf(stderr, "%s: %s\n", what, gpt_embedding_last_error()); exit(3); }
}
static void lib_forward(void *p) {
    lib_ctx *c = p;
    check(gpt_embedding_forward(c->layer, c->ids, c->B, c->T, NULL, 0, c->flags, c->out, c->N * c->D), "forward");
}
static void lib_forward_typed(void *p) {
    lib_ctx *c = p;
    check(gpt_embedding_forward_typed(c->layer, c->ids, c->B, c->T, NULL, 0, c->flags, c->out_dtype, c->out, c->N * c->D),
          "forward_typed");
}
static void lib_backward(void *p) {
    lib_ctx *c = p;
    check(gpt_embedding_backward(c->layer, c->dout, c->B, c->T), "backward");
}
static void lib_zero_grad(void *p) { check(gpt_embedding_zero_grad(((lib_ctx *)p)->layer), "zero_grad"); }
static void lib_prep_backward(void *p) {  /* a training forward for the backward to use */
    lib_ctx *c = p;
    check(gpt_embedding_forward(c->layer, c->ids, c->B, c->T, NULL, 0, c->flags, c->out, c->N * c->D), "forward");
}
static void lib_prep_zero(void *p) { lib_prep_backward(p); lib_backward(p); }
/* The two-phase (vocabulary-parallel) forward: phase one writes the token part into out,
 * untimed (the all-reduce would come next); phase two, timed, adds the positions and
 * applies the layer norm and dropout in place. */
static void lib_prep_finish(void *p) {
    lib_ctx *c = p;
    check(gpt_embedding_forward_partial(c->layer, c->ids, c->B, c->T, NULL, 0, c->flags, c->out, c->N * c->D),
          "forward_partial");
}
static void lib_finish(void *p) {
    lib_ctx *c = p;
    check(gpt_embedding_forward_finish(c->layer, c->B, c->T, c->out, c->N * c->D), "forward_finish");
}
static void base_prep_zero(void *p) { base_backward(p); }

/* ------------------------------------------------------------------ */

static void emit_stats(const char *impl, const char *name, int64_t B, int64_t T, int64_t D, int threads,
                       const char *op, stats ms, double bytes, int all_same) {
    printf("{\"impl\": \"%s\", \"model\": \"%s\", \"B\": %lld, \"T\": %lld, \"D\": %lld, \"threads\": %d, "
           "\"op\": \"%s\", \"ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, \"bytes\": %.0f, \"all_same\": %d, "
           "\"probe_gbs\": %.3f, \"far_rounds\": %d}\n",
           impl, name, (long long)B, (long long)T, (long long)D, threads, op, ms.med, ms.min, ms.max, bytes, all_same,
           case_probe_gbs, case_far_rounds);
    fflush(stdout);
}

static void emit(const char *impl, const char *name, int64_t B, int64_t T, int64_t D, int threads,
                 const char *op, double ms, double bytes, int all_same) {
    stats s = { ms, ms, ms };
    emit_stats(impl, name, B, T, D, threads, op, s, bytes, all_same);
}

static int reps_for(double bytes) {
    if (smoke) return 5;
    int r = (int)(2e9 / (bytes + 1e6));  /* about 2 GB of traffic per case */
    return r < 15 ? 15 : r > 100 ? 100 : r;
}

/* Unique values of x[0..n) with x in [0, range). */
static int64_t count_unique(const int32_t *x, int64_t n, int64_t range) {
    unsigned char *seen = calloc((size_t)range, 1);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++) if (!seen[x[i]]) { seen[x[i]] = 1; u++; }
    free(seen);
    return u;
}

static void run_case(const char *name, int64_t V, int64_t D, int64_t B, int64_t T, int threads, int all_same, int ops_mask) {
    const int64_t N = B * T, maxT = 1024;
    omp_set_num_threads(threads);
    rng_state = 0xC0FFEE + (uint64_t)(N * 31 + D);

    int32_t *ids = xmalloc((size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) ids[i] = all_same ? 4242 : (int32_t)(next_u64() % (uint64_t)V);
    float *dout = xmalloc((size_t)(N * D) * sizeof(float));
    for (int64_t i = 0; i < N * D; i++) dout[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 1e-3f;

    const double f = sizeof(float);
    const double utok = (double)count_unique(ids, N, V), upos = (double)T;
    const double fwd_bytes = 4.0 * N + N * D * f + upos * D * f + N * D * f;
    const double fwd_train_bytes = fwd_bytes + 8.0 * N;
    const double bwd_bytes = 4.0 * N + N * D * f + 2 * utok * D * f + 2 * upos * D * f;
    const double bwd_ln_bytes = bwd_bytes + N * D * f + 8.0 * N;  /* x is recomputed from the token rows */
    const double zero_bytes = (utok + upos) * D * f;
    /* Phase two (training, layer norm) reads the summed token part and the position rows,
     * writes the output in place, and keeps a copy of the summed part for the backward
     * (a shard cannot rebuild it from its rows) and 8 bytes of statistics per token. */
    const double finish_bytes = 3 * N * D * f + upos * D * f + 8.0 * N;

    /* The library: one layer without dropout (eval forward, plain backward, zero_grad) and
     * one with dropout 0.1 (training forward and backward with layer norm + dropout). */
    gpt_embedding_config cfg;
    gpt_embedding_preset_config("gpt2", &cfg);
    cfg.vocab_size = V; cfg.embed_dim = D; cfg.max_seq_len = maxT; cfg.num_threads = threads;
    cfg.dropout = 0;
    gpt_embedding *plain = NULL, *train = NULL;
    check(gpt_embedding_create(&cfg, &plain), "create");
    cfg.dropout = 0.1f;
    check(gpt_embedding_create(&cfg, &train), "create");
    lib_ctx L = { .B = B, .T = T, .N = N, .D = D, .ids = ids, .dout = dout };
    L.out = xmalloc((size_t)(N * D) * sizeof(float));

    /* The plain C baseline, on its own copies of the tables and its own output. */
    base_ctx C = { .V = V, .D = D, .T = T, .B = B, .N = N, .ids = ids, .dout = dout, .p_drop = 0.1f };
    base_ctx *c = NULL;
    if (!all_same) {
        c = &C;
        C.wte = xmalloc((size_t)(V * D) * sizeof(float));
        C.wpe = xmalloc((size_t)(maxT * D) * sizeof(float));
        for (int64_t i = 0; i < V * D; i++) C.wte[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 2e-5f;
        for (int64_t i = 0; i < maxT * D; i++) C.wpe[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 2e-5f;
        C.gamma = xmalloc((size_t)D * sizeof(float)); C.beta = xmalloc((size_t)D * sizeof(float));
        for (int64_t i = 0; i < D; i++) C.gamma[i] = 1;
        C.out = xmalloc((size_t)(N * D) * sizeof(float));
        C.dwte = xmalloc((size_t)(V * D) * sizeof(float)); C.dwpe = xmalloc((size_t)(maxT * D) * sizeof(float));
        C.dgamma = xmalloc((size_t)D * sizeof(float)); C.dbeta = xmalloc((size_t)D * sizeof(float));
        C.mean = xmalloc((size_t)N * sizeof(float)); C.rstd = xmalloc((size_t)N * sizeof(float));
        C.coef = xmalloc((size_t)(2 * N) * sizeof(float));
        base_forward_train(&C);
    }

    /* Each operation: the library and the baseline in alternating rounds. A backward follows
     * its forward (untimed) on both sides, so both start from the same cache state. */
    stats lib_ms, c_ms;
#define MEASURE(bit, op, lay, fl, lprep, lrun, cprep, crun, warm, reps, bytes)                          \
    if (ops_mask & (bit)) {                                                                          \
        step_fn crun_ = c ? (step_fn)(crun) : NULL;                                                  \
        L.layer = (lay); L.flags = (fl);                                                             \
        median_pair(lprep, lrun, &L, cprep, crun_, c, warm, reps, &lib_ms, &c_ms);                   \
        emit_stats("lib", name, B, T, D, threads, op, lib_ms, bytes, all_same);                      \
        if (crun_) emit_stats("c", name, B, T, D, threads, op, c_ms, bytes, 0);                      \
    }
    const uint32_t TR = GPT_EMBEDDING_TRAINING, LN = GPT_EMBEDDING_LAYER_NORM;
    MEASURE(1, "forward_eval", plain, 0, NULL, lib_forward, NULL, base_forward_eval, 2, reps_for(fwd_bytes), fwd_bytes)
    MEASURE(2, "forward_train", train, TR | LN, NULL, lib_forward, NULL, base_forward_train, 2, reps_for(fwd_train_bytes), fwd_train_bytes)
    MEASURE(4, "backward", plain, TR, lib_prep_backward, lib_backward, base_forward_eval, base_backward, 2, reps_for(bwd_bytes), bwd_bytes)
    /* The dropout backward alone: the mask is recomputed (hash), nothing more is read. */
    MEASURE(32, "backward_dropout", train, TR, lib_prep_backward, lib_backward, NULL, NULL, 2, reps_for(bwd_bytes), bwd_bytes)
    MEASURE(8, "backward_ln_dropout", train, TR | LN, lib_prep_backward, lib_backward, base_forward_train, base_backward_ln, 2, reps_for(bwd_ln_bytes), bwd_ln_bytes)
    MEASURE(16, "zero_grad", plain, TR, lib_prep_zero, lib_zero_grad, base_prep_zero, base_zero_grad, 1, smoke ? 5 : 15, zero_bytes)
    /* The sharded forward's phase two with the training forward beside it, in the same rounds:
     * its target is the ratio of the two, and measured apart they could fall on different
     * placements (run AG missed a ratio target that way). */
    if (ops_mask & 256) {
        lib_ctx P = L;
        L.layer = P.layer = train; L.flags = P.flags = TR | LN;
        median_pair(lib_prep_finish, lib_finish, &L, NULL, lib_forward, &P, 2, reps_for(finish_bytes), &lib_ms, &c_ms);
        emit_stats("lib", name, B, T, D, threads, "forward_finish", lib_ms, finish_bytes, all_same);
        emit_stats("lib", name, B, T, D, threads, "forward_train_beside_finish", c_ms, fwd_train_bytes, all_same);
    }
    if (ops_mask & (64 | 128)) {
        /* 16-bit tables: an eval forward bf16 -> bf16 (rows, positions and output of 2 bytes),
         * and the layer norm + dropout backward, which rereads the 16-bit rows. */
        const double h = 2.0;
        const double fwd16_bytes = 4.0 * N + N * D * h + upos * D * h + N * D * h;
        const double bwd_ln16_bytes = bwd_bytes + N * D * h + upos * D * h + 8.0 * N;
        static const struct { int dtype; const char *name; } kinds[] = {
            { GPT_EMBEDDING_DTYPE_BF16, "bf16" }, { GPT_EMBEDDING_DTYPE_F16, "f16" } };
        for (int k = 0; k < 2; k++) {
            gpt_embedding_config c16;
            gpt_embedding_preset_config("gpt2", &c16);
            c16.vocab_size = V; c16.embed_dim = D; c16.max_seq_len = maxT; c16.num_threads = threads;
            c16.weight_dtype = kinds[k].dtype;
            c16.dropout = 0;
            gpt_embedding *p16 = NULL, *t16 = NULL;
            check(gpt_embedding_create(&c16, &p16), "create 16-bit");
            c16.dropout = 0.1f;
            check(gpt_embedding_create(&c16, &t16), "create 16-bit");
            char op[64];
            L.out_dtype = kinds[k].dtype;
            snprintf(op, sizeof op, "forward_eval_%s", kinds[k].name);
            if (ops_mask & 64) {
                L.layer = p16; L.flags = 0;
                median_pair(NULL, lib_forward_typed, &L, NULL, NULL, NULL, 2, reps_for(fwd16_bytes), &lib_ms, NULL);
                emit_stats("lib", name, B, T, D, threads, op, lib_ms, fwd16_bytes, all_same);
            }
            snprintf(op, sizeof op, "backward_ln_dropout_%s", kinds[k].name);
            if (ops_mask & 128) {
                /* With the float32 backward beside it, in the same rounds, for the ratio target. */
                lib_ctx P = L;
                P.layer = train; P.flags = TR | LN;
                L.layer = t16; L.flags = TR | LN;
                median_pair(lib_prep_backward, lib_backward, &L, lib_prep_backward, lib_backward, &P, 2,
                            reps_for(bwd_ln16_bytes), &lib_ms, &c_ms);
                emit_stats("lib", name, B, T, D, threads, op, lib_ms, bwd_ln16_bytes, all_same);
                snprintf(op, sizeof op, "backward_ln_dropout_beside_%s", kinds[k].name);
                emit_stats("lib", name, B, T, D, threads, op, c_ms, bwd_ln_bytes, all_same);
            }
            gpt_embedding_free(p16);
            gpt_embedding_free(t16);
        }
    }
#undef MEASURE
    gpt_embedding_free(plain);
    gpt_embedding_free(train);
    if (c) {
        free(C.wte); free(C.wpe); free(C.gamma); free(C.beta); free(C.out); free(C.dwte); free(C.dwpe);
        free(C.dgamma); free(C.dbeta); free(C.mean); free(C.rstd); free(C.coef);
    }
    free(L.out); free(ids); free(dout);
}

/* A 1x1 decode step: many calls per sample, so the median is per call. */
typedef struct { gpt_embedding *layer; int32_t id; float *out; int64_t D; int pos; } decode_ctx;
static void decode_run(void *p) {
    decode_ctx *c = p;
    for (int i = 0; i < 1000; i++) {
        c->id = (c->id * 1103515245 + 12345) & 0x7fff;
        check(gpt_embedding_forward(c->layer, &c->id, 1, 1, NULL, i & 1023, 0, c->out, c->D), "decode");
    }
}

static void run_decode(int threads) {
    gpt_embedding_config cfg;
    gpt_embedding_preset_config("gpt2", &cfg);
    cfg.num_threads = threads;
    decode_ctx c = { .id = 1, .D = 768 };
    c.out = xmalloc(768 * sizeof(float));
    check(gpt_embedding_create(&cfg, &c.layer), "create");
    double ms = median_ms(NULL, decode_run, &c, 3, smoke ? 3 : 31);
    emit("lib", "gpt2-small", 1, 1, 768, threads, "decode_call", ms / 1000.0, 4.0 + 3 * 768 * 4.0, 0);
    gpt_embedding_free(c.layer);
    free(c.out);
}

/* The probe's arrays (allocated by main) and its thread count (the run's most). */
static stream_ctx probe;
static int probe_threads = 1;

static void probe_once(double *gbs) {
    int before = omp_get_max_threads();
    omp_set_num_threads(probe_threads);
    double t0 = now();
    stream_add(&probe);
    *gbs = 3.0 * (double)probe.n * sizeof(float) / (now() - t0) / 1e9;
    omp_set_num_threads(before);
}

static void run_bandwidth(int threads) {
    omp_set_num_threads(threads);
    stream_ctx s;
    s.n = smoke ? (size_t)1 << 22 : (size_t)1 << 25;  /* 128 MiB per array */
    s.a = xmalloc(s.n * sizeof(float)); s.b = xmalloc(s.n * sizeof(float)); s.c = xmalloc(s.n * sizeof(float));
    for (size_t i = 0; i < s.n; i++) { s.b[i] = 1; s.c[i] = 2; }
    double add = median_ms(NULL, stream_add, &s, 2, smoke ? 3 : 15);
    double copy = median_ms(NULL, stream_copy, &s, 2, smoke ? 3 : 15);
    emit("stream", "add", 0, 0, 0, threads, "bandwidth", add, 3.0 * s.n * sizeof(float), 0);
    emit("stream", "memcpy", 0, 0, 0, threads, "bandwidth", copy, 2.0 * s.n * sizeof(float), 0);
    free(s.a); free(s.b); free(s.c);
}

int main(int argc, char **argv) {
    int thread_list[8] = {1, 2}, nthreads = 2;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) smoke = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = 0;
            for (char *t = strtok(argv[++i], ","); t && nthreads < 8; t = strtok(NULL, ",")) thread_list[nthreads++] = atoi(t);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else { fprintf(stderr, "usage: bench [--smoke] [--threads 1,2] [--only main|scaling|quick]\n"); return 2; }
    }
    const int64_t V = 50257;
    probe.n = smoke ? (size_t)1 << 22 : (size_t)1 << 25;  /* 128 MiB per array, as run_bandwidth's */
    probe.a = xmalloc(probe.n * sizeof(float)); probe.b = xmalloc(probe.n * sizeof(float)); probe.c = xmalloc(probe.n * sizeof(float));
    for (size_t i = 0; i < probe.n; i++) { probe.b[i] = 1; probe.c[i] = 2; }
    for (int ti = 0; ti < nthreads; ti++) if (thread_list[ti] > probe_threads) probe_threads = thread_list[ti];
    probe_ready = 1;
    for (int ti = 0; ti < nthreads; ti++) {
        int th = thread_list[ti];
        run_bandwidth(th);
        if (smoke) {
            run_case("gpt2-small", 1000, 64, 2, 16, th, 0, 511);
            run_decode(th);
            continue;
        }
        if (only && !strcmp(only, "quick")) {
            run_decode(th);
            run_case("gpt2-small", V, 768, 1, 1024, th, 0, 31);
            run_case("gpt2-small", V, 768, 8, 1024, th, 0, 511);
            continue;
        }
        if (!only || !strcmp(only, "main")) {
            run_decode(th);
            run_case("gpt2-small", V, 768, 1, 1, th, 0, 31);
            run_case("gpt2-small", V, 768, 1, 1024, th, 0, 31);
            run_case("gpt2-small", V, 768, 8, 1024, th, 0, 511);
            run_case("gpt2-small", V, 768, 8, 1024, th, 1, 63);  /* every token the same */
            run_case("gpt2-small", V, 768, 64, 128, th, 0, 63 | 256);
            run_case("gpt2-xl", V, 1600, 4, 1024, th, 0, 31);
        }
        if ((!only || !strcmp(only, "scaling")) && th == thread_list[nthreads - 1]) {
            static const int64_t bt[][2] = {{1, 256}, {1, 1024}, {4, 1024}, {16, 1024}};
            for (int k = 0; k < 4; k++) run_case("scale-BT", V, 768, bt[k][0], bt[k][1], th, 0, 1 | 4);
            static const int64_t dims[] = {256, 512, 1024, 1600};
            for (int k = 0; k < 4; k++) run_case("scale-D", V, dims[k], 8, 1024, th, 0, 1 | 4);
        }
    }
    return 0;
}
