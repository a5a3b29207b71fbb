/* The C API against the PyTorch golden vectors: forward (int32 and int64 ids, training
 * with dropout 0 and eval), backward and every gradient, the sinusoidal table; at 1 and 2
 * threads, whose results must be bit-identical. Usage: test_golden <golden dir> */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpt_embedding.h"
#include "golden.h"

static int close_to(const float *a, const float *b, int64_t n, const char *what, const char *file) {
    for (int64_t i = 0; i < n; i++) {
        if (!(fabsf(a[i] - b[i]) <= 1e-5f * fabsf(b[i]) + 1e-6f)) {
            fprintf(stderr, "%s %s: element %lld is %.9g, PyTorch %.9g\n", file, what, (long long)i, a[i], b[i]);
            return 0;
        }
    }
    return 1;
}

/* Runs one file at `threads`; fills out/grads (caller frees) for the cross-thread check. */
static float *run(const golden *g, int threads, int64_t *n_result) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = g->vocab_size;
    c.embed_dim = g->embed_dim;
    c.max_seq_len = g->max_seq_len;
    c.position_encoding = !strcmp(g->position_encoding, "learned") ? GPT_EMBEDDING_POSITION_LEARNED
                        : !strcmp(g->position_encoding, "sinusoidal") ? GPT_EMBEDDING_POSITION_SINUSOIDAL
                        : GPT_EMBEDDING_POSITION_NONE;
    c.scale_embeddings = g->scale_embeddings;
    c.padding_idx = g->padding_idx;
    c.layer_norm_eps = g->layer_norm_eps;
    c.dropout = 0;
    c.num_threads = threads;
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_create(&c, &h) == GPT_EMBEDDING_OK, "%s: create: %s", g->name, gpt_embedding_last_error());
    if (!h) return NULL;
    const int64_t V = g->vocab_size, D = g->embed_dim, T = g->max_seq_len, N = g->batch * g->seq;
    const int learned = !strcmp(g->position_encoding, "learned");
    CHECK(gpt_embedding_set_parameter(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, g->wte, V * D) == 0, "%s", g->name);
    if (learned) CHECK(gpt_embedding_set_parameter(h, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, g->wpe, T * D) == 0, "%s", g->name);
    CHECK(gpt_embedding_set_parameter(h, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, g->ln_weight, D) == 0, "%s", g->name);
    CHECK(gpt_embedding_set_parameter(h, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, g->ln_bias, D) == 0, "%s", g->name);

    int32_t *ids32 = malloc((size_t)N * sizeof *ids32), *pos32 = malloc((size_t)N * sizeof *pos32);
    for (int64_t i = 0; i < N; i++) { ids32[i] = (int32_t)g->ids[i]; pos32[i] = (int32_t)g->positions[i]; }
    const uint32_t ln = g->layer_norm ? GPT_EMBEDDING_LAYER_NORM : 0;
    float *out = malloc((size_t)(N * D) * sizeof *out), *eval = malloc((size_t)(N * D) * sizeof *eval);
    int rc = gpt_embedding_forward_i64(h, g->ids, g->batch, g->seq, g->explicit_positions ? g->positions : NULL,
                                       g->start_position, ln, eval, N * D);
    CHECK(rc == 0, "%s: eval forward: %s", g->name, gpt_embedding_last_error());
    CHECK(close_to(eval, g->out, N * D, "eval out", g->name), "%s eval forward matches PyTorch", g->name);
    rc = gpt_embedding_forward(h, ids32, g->batch, g->seq, g->explicit_positions ? pos32 : NULL,
                               g->start_position, ln | GPT_EMBEDDING_TRAINING, out, N * D);
    CHECK(rc == 0, "%s: training forward: %s", g->name, gpt_embedding_last_error());
    CHECK(close_to(out, g->out, N * D, "out", g->name), "%s training forward matches PyTorch", g->name);
    CHECK(!memcmp(out, eval, (size_t)(N * D) * sizeof *out), "%s: int32 training == int64 eval with dropout 0", g->name);

    rc = gpt_embedding_backward(h, g->grad_output, g->batch, g->seq);
    CHECK(rc == 0, "%s: backward: %s", g->name, gpt_embedding_last_error());
    int64_t total = N * D + V * D + (learned ? T * D : 0) + 2 * D;
    float *result = malloc((size_t)total * sizeof *result), *p = result;
    memcpy(p, out, (size_t)(N * D) * sizeof *p); p += N * D;
    CHECK(gpt_embedding_get_gradient(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, p, V * D) == 0, "%s", g->name);
    CHECK(close_to(p, g->grad_wte, V * D, "grad_wte", g->name), "%s grad_wte", g->name); p += V * D;
    if (learned) {
        CHECK(gpt_embedding_get_gradient(h, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, p, T * D) == 0, "%s", g->name);
        CHECK(close_to(p, g->grad_wpe, T * D, "grad_wpe", g->name), "%s grad_wpe", g->name); p += T * D;
    }
    CHECK(gpt_embedding_get_gradient(h, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, p, D) == 0, "%s", g->name);
    CHECK(close_to(p, g->grad_ln_weight, D, "grad_ln_weight", g->name), "%s grad_ln_weight", g->name); p += D;
    CHECK(gpt_embedding_get_gradient(h, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, p, D) == 0, "%s", g->name);
    CHECK(close_to(p, g->grad_ln_bias, D, "grad_ln_bias", g->name), "%s grad_ln_bias", g->name);

    if (g->pos_table) {
        float *table = malloc((size_t)g->n_pos_table * sizeof *table);
        CHECK(gpt_embedding_sinusoidal_table(0, g->n_pos_table / D, D, table, g->n_pos_table) == 0, "%s", g->name);
        CHECK(close_to(table, g->pos_table, g->n_pos_table, "pos_table", g->name), "%s sinusoidal table", g->name);
        free(table);
    }
    gpt_embedding_free(h);
    free(ids32); free(pos32); free(out); free(eval);
    *n_result = total;
    return result;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s <golden dir>\n", argv[0]); return 2; }
    DIR *dir = opendir(argv[1]);
    if (!dir) { fprintf(stderr, "cannot open %s\n", argv[1]); return 2; }
    int files = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        golden g;
        CHECK(golden_read(path, &g) == 0, "read %s", path);
        if (!g.ids) continue;
        int64_t n1 = 0, n2 = 0;
        float *r1 = run(&g, 1, &n1), *r2 = run(&g, 2, &n2);
        CHECK(r1 && r2 && n1 == n2 && !memcmp(r1, r2, (size_t)n1 * sizeof *r1), "%s: 1 and 2 threads bit-identical", g.name);
        printf("%-32s checked\n", g.name);
        free(r1); free(r2);
        golden_free(&g);
        files++;
    }
    closedir(dir);
    CHECK(files >= 10, "expected the golden files in %s, found %d", argv[1], files);
    return check_summary();
}
