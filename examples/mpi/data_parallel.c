/* Data parallelism with MPI: every rank holds the whole layer (same seed), embeds its own
 * batch, and the ranks sum their gradients before the optimizer step -- only the token
 * rows some rank touched, not the whole table. Each rank lists its touched rows
 * (gpt_embedding_touched_rows), the lists are gathered into their sorted union, and those
 * rows' gradients (plus the small position and layer norm gradients) are summed with
 * MPI_Reduce to rank 0 and MPI_Bcast back (MPI_Allreduce does not promise the same
 * rounding on every rank); every rank then takes the same AdamW step and the replicas
 * stay identical.
 *
 *   mpicc -Iinclude examples/mpi/data_parallel.c -L.build/release -lgpt_embedding \
 *         -Wl,-rpath,"$PWD/.build/release" -o data_parallel && mpirun -n 2 ./data_parallel
 *
 * Tests/mpi/run.sh runs it with 2 and 3 ranks: it checks the summed gradient against a
 * sum computed in one process (in double) and that every rank ends with the same weights. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_embedding.h"

enum { V = 5000, D = 64, B = 2, T = 64, N = B * T * D };

static int cmp_i32(const void *a, const void *b) { return (*(const int32_t *)a > *(const int32_t *)b) - (*(const int32_t *)a < *(const int32_t *)b); }

static void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, gpt_embedding_last_error());
    MPI_Abort(MPI_COMM_WORLD, 2);
}

/* Rank r's batch and output gradient (a pure function of r, so any rank can rebuild it). */
static void batch_of(int r, int32_t *ids, float *dy) {
    uint64_t s = 1000 + (uint64_t)r;
    for (int i = 0; i < B * T; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; ids[i] = (int32_t)((s >> 33) % 300); }
    for (int i = 0; i < N; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; dy[i] = (float)((int64_t)(s >> 40) % 2001 - 1000) / 1000.0f; }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);

    gpt_embedding_config c;
    gpt_embedding_preset_config("gpt2", &c);
    c.vocab_size = V;
    c.embed_dim = D;
    c.max_seq_len = T;
    c.seed = 7;
    c.num_threads = 1;
    gpt_embedding *layer = NULL;
    if (gpt_embedding_create(&c, &layer) != 0) die("create");

    static int32_t ids[B * T];
    static float y[N], dy[N];
    batch_of(rank, ids, dy);
    if (gpt_embedding_forward(layer, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, y, N) != 0) die("forward");
    if (gpt_embedding_backward(layer, dy, B, T) != 0) die("backward");

    /* The union of the touched rows of every rank. */
    int64_t count = 0;
    gpt_embedding_touched_rows(layer, NULL, 0, &count);
    int32_t *mine = malloc((size_t)(count ? count : 1) * sizeof *mine);
    gpt_embedding_touched_rows(layer, mine, count, &count);
    int n = (int)count, *counts = malloc((size_t)world * sizeof *counts), *displs = malloc((size_t)world * sizeof *displs);
    MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < world; r++) { displs[r] = total; total += counts[r]; }
    int32_t *rows = malloc((size_t)total * sizeof *rows);
    MPI_Allgatherv(mine, n, MPI_INT32_T, rows, counts, displs, MPI_INT32_T, MPI_COMM_WORLD);
    qsort(rows, (size_t)total, sizeof *rows, cmp_i32);
    int unique = 0;
    for (int i = 0; i < total; i++) if (i == 0 || rows[i] != rows[i - 1]) rows[unique++] = rows[i];

    /* Pack those rows' gradients and the dense ones, sum them over the ranks, unpack. */
    float *wte_grad, *wpe_grad, *g_gamma, *g_beta;
    int64_t len;
    gpt_embedding_gradient_data(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &wte_grad, &len);
    gpt_embedding_gradient_data(layer, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, &wpe_grad, &len);
    gpt_embedding_gradient_data(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, &g_gamma, &len);
    gpt_embedding_gradient_data(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, &g_beta, &len);
    size_t packed = (size_t)unique * D + (size_t)T * D + 2 * D;
    float *buf = malloc(packed * sizeof *buf);
    for (int i = 0; i < unique; i++) memcpy(buf + (size_t)i * D, wte_grad + (size_t)rows[i] * D, D * sizeof *buf);
    memcpy(buf + (size_t)unique * D, wpe_grad, (size_t)T * D * sizeof *buf);  /* positions 0 .. T-1 */
    memcpy(buf + (size_t)(unique + T) * D, g_gamma, D * sizeof *buf);
    memcpy(buf + (size_t)(unique + T + 1) * D, g_beta, D * sizeof *buf);
    /* Reduce to rank 0, then broadcast: MPI_Allreduce does not promise the same rounding on
     * every rank (OpenMPI's algorithms for 3 ranks add in different orders on different
     * ranks), and replicas whose gradients differ in one bit drift apart. */
    MPI_Reduce(rank == 0 ? MPI_IN_PLACE : buf, rank == 0 ? buf : NULL, (int)packed, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(buf, (int)packed, MPI_FLOAT, 0, MPI_COMM_WORLD);
    for (int i = 0; i < unique; i++) memcpy(wte_grad + (size_t)rows[i] * D, buf + (size_t)i * D, D * sizeof *buf);
    memcpy(wpe_grad, buf + (size_t)unique * D, (size_t)T * D * sizeof *buf);
    memcpy(g_gamma, buf + (size_t)(unique + T) * D, D * sizeof *buf);
    memcpy(g_beta, buf + (size_t)(unique + T + 1) * D, D * sizeof *buf);

    /* Check: the summed token gradient against one process's sum of every rank's batch. */
    int bad = 0;
    double *sum = calloc((size_t)V * D, sizeof *sum);
    float *g = malloc((size_t)V * D * sizeof *g);
    for (int r = 0; r < world; r++) {
        /* A fresh replica per batch: rank r's was its first training forward (the dropout
         * masks follow each layer's count of training forwards). */
        gpt_embedding *ref = NULL;
        if (gpt_embedding_create(&c, &ref) != 0) die("create");
        batch_of(r, ids, dy);
        gpt_embedding_forward(ref, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, y, N);
        gpt_embedding_backward(ref, dy, B, T);
        gpt_embedding_get_gradient(ref, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, g, (int64_t)V * D);
        for (size_t i = 0; i < (size_t)V * D; i++) sum[i] += g[i];
        gpt_embedding_free(ref);
    }
    for (size_t i = 0; i < (size_t)V * D; i++)
        if (fabs(wte_grad[i] - sum[i]) > 1e-5 * (1 + fabs(sum[i]))) {
            fprintf(stderr, "rank %d: summed gradient element %zu is %g, expected %g\n", rank, i, wte_grad[i], sum[i]);
            bad++;
            break;
        }

    /* The same step on every rank keeps the replicas identical. */
    gpt_embedding_adamw_options o;
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.lr = 1e-2;
    if (gpt_embedding_adamw_step(layer, &o) != 0) die("adamw");
    gpt_embedding_get_parameter(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, g, (int64_t)V * D);
    uint64_t h = 1469598103934665603ull, lo, hi;
    for (size_t i = 0; i < (size_t)V * D * sizeof *g; i++) h = (h ^ ((unsigned char *)g)[i]) * 1099511628211ull;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        if (rank == 0) fprintf(stderr, "the replicas' weights differ after the step\n");
        bad++;
    }
    int bad_total = 0;
    MPI_Allreduce(&bad, &bad_total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("data parallel, %d ranks: %d touched rows summed (%.1f%% of the table), replicas %s\n", world, unique,
               100.0 * unique / V, bad_total ? "DIFFER" : "identical, gradients match");
    free(mine); free(counts); free(displs); free(rows); free(buf); free(sum); free(g);
    gpt_embedding_free(layer);
    MPI_Finalize();
    return bad_total ? 1 : 0;
}
