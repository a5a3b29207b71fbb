/* Vocabulary parallelism with a real MPI (run by Tests/mpi/run.sh under mpirun -n 2 and
 * -n 3): every rank holds one shard of the token table (the balanced split of a
 * vocabulary that no world divides) and, as the independent reference, a layer holding
 * the whole table built from the same seed. Forward (phase one, MPI_Allreduce, phase
 * two), backward and three AdamW steps (lazy and dense) of the shard must equal the whole
 * layer bit for bit, with learned, sinusoidal and no positions, with and without the
 * layer norm, with dropout. Each token's sum has exactly one non-zero partial (the
 * others are -0.0), so the all-reduce is exact in any order.
 *
 * A failed check is counted, not fatal: the counts are summed over the ranks at the
 * end, so every rank finishes and prints; an MPI error aborts the job (MPI's default
 * handler), and run.sh runs everything under a timeout. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_embedding.h"

enum { V = 1001, D = 64, B = 4, T = 32, N = B * T * D };

static int rank_, world_, failed, passed;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (cond) { passed++; } else {                                               \
            failed++;                                                                \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", rank_, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

static int same_bits(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof *a) == 0; }

static uint64_t lcg(uint64_t *s) { *s = *s * 6364136223846793005ull + 1442695040888963407ull; return *s >> 33; }

static gpt_embedding *make(int position_encoding, int64_t start, int64_t end) {
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    c.vocab_size = V;
    c.embed_dim = D;
    c.max_seq_len = 64;
    c.dropout = 0.1f;
    c.seed = 1234;
    c.padding_idx = 3;
    c.num_threads = 1;  /* ranks share this machine's cores */
    c.position_encoding = position_encoding;
    c.shard_start = start;
    c.shard_end = end;
    gpt_embedding *h = NULL;
    if (gpt_embedding_create(&c, &h) != GPT_EMBEDDING_OK) {
        fprintf(stderr, "rank %d: create: %s\n", rank_, gpt_embedding_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return h;
}

/* Parameter p of the shard equals its rows of the whole layer's (gradients too). */
static void compare(gpt_embedding *shard, gpt_embedding *whole, int64_t first, const char *what, int step) {
    for (int p = 0; p < 4; p++) {
        int64_t rows, cols, wrows, wcols;
        if (gpt_embedding_parameter_shape(shard, p, &rows, &cols) != 0) continue;
        gpt_embedding_parameter_shape(whole, p, &wrows, &wcols);
        int64_t off = p == GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING ? first * cols : 0;
        float *a = malloc((size_t)(rows * cols) * 4), *b = malloc((size_t)(wrows * wcols) * 4);
        gpt_embedding_get_gradient(shard, p, a, rows * cols);
        gpt_embedding_get_gradient(whole, p, b, wrows * wcols);
        CHECK(same_bits(a, b + off, rows * cols), "%s step %d: gradient of parameter %d", what, step, p);
        gpt_embedding_get_parameter(shard, p, a, rows * cols);
        gpt_embedding_get_parameter(whole, p, b, wrows * wcols);
        CHECK(same_bits(a, b + off, rows * cols), "%s step %d: parameter %d", what, step, p);
        free(a);
        free(b);
    }
}

static void run_case(int position_encoding, uint32_t norm, int lazy) {
    char what[96];
    snprintf(what, sizeof what, "positions %d, %s, %s AdamW", position_encoding, norm ? "layer norm" : "no layer norm",
             lazy ? "lazy" : "dense");
    int64_t start, end;
    if (gpt_embedding_shard_range(V, rank_, world_, GPT_EMBEDDING_SHARD_BALANCED, &start, &end) != 0) {
        fprintf(stderr, "rank %d: shard_range: %s\n", rank_, gpt_embedding_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    gpt_embedding *whole = make(position_encoding, 0, 0), *shard = make(position_encoding, start, end);
    gpt_embedding_adamw_options o;
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.lr = 1e-2;
    o.lazy = lazy;
    static float ref[N], x[N], dy[N];
    static int32_t ids[B * T];
    uint64_t seed = 42;  /* the same batch on every rank */
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(lcg(&seed) % V);
        ids[1] = 3;                /* the padding row */
        ids[2] = ids[3] = ids[4];  /* a repeated id */
        for (int i = 0; i < N; i++) dy[i] = (float)((int64_t)lcg(&seed) % 2001 - 1000) / 1000.0f;
        uint32_t flags = GPT_EMBEDDING_TRAINING | norm;
        CHECK(gpt_embedding_forward(whole, ids, B, T, NULL, step, flags, ref, N) == 0, "%s", gpt_embedding_last_error());
        CHECK(gpt_embedding_forward_partial(shard, ids, B, T, NULL, step, flags, x, N) == 0, "%s", gpt_embedding_last_error());
        MPI_Allreduce(MPI_IN_PLACE, x, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(gpt_embedding_forward_finish(shard, B, T, x, N) == 0, "%s", gpt_embedding_last_error());
        CHECK(same_bits(x, ref, N), "%s step %d: the output differs from the whole layer's", what, step);
        gpt_embedding_zero_grad(whole);
        gpt_embedding_zero_grad(shard);
        CHECK(gpt_embedding_backward(whole, dy, B, T) == 0, "%s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward(shard, dy, B, T) == 0, "%s", gpt_embedding_last_error());
        compare(shard, whole, start, what, step);
        CHECK(gpt_embedding_adamw_step(whole, &o) == 0, "%s", gpt_embedding_last_error());
        CHECK(gpt_embedding_adamw_step(shard, &o) == 0, "%s", gpt_embedding_last_error());
        compare(shard, whole, start, what, step);
    }
    /* The replicated parameters are identical on every rank (a checksum's min and max). */
    float ln[D];
    gpt_embedding_get_parameter(shard, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, ln, D);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof ln; i++) h = (h ^ ((unsigned char *)ln)[i]) * 1099511628211ull;
    uint64_t lo, hi;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    CHECK(lo == hi, "%s: the layer norm bias differs between ranks", what);
    gpt_embedding_free(whole);
    gpt_embedding_free(shard);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    for (int pe = 0; pe < 3; pe++)
        for (int ln = 0; ln < 2; ln++)
            run_case(pe, ln ? GPT_EMBEDDING_LAYER_NORM : 0, (pe + ln) % 2);
    int totals[2] = {passed, failed}, sums[2];
    MPI_Allreduce(totals, sums, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_ == 0) printf("test_shard_mpi, %d ranks: %d passed, %d failed\n", world_, sums[0], sums[1]);
    MPI_Finalize();
    return sums[1] ? 1 : 0;
}
