/* The API's promises: versions, defaults and presets, parameter counts, initialisation,
 * zero-copy pointers, gradient accumulation and tying, zero_grad and touched rows,
 * dropout statistics and masks, and the thread contract (one handle read by many
 * threads; independent handles trained in parallel; per-thread error messages). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpt_embedding.h"

static gpt_embedding *make(int64_t V, int64_t D, int64_t T, float dropout, int threads, uint64_t seed) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = V; c.embed_dim = D; c.max_seq_len = T; c.dropout = dropout; c.num_threads = threads; c.seed = seed;
    c.scale_embeddings = 0;
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_create(&c, &h) == 0, "create: %s", gpt_embedding_last_error());
    return h;
}

static void versions_and_config(void) {
    CHECK(gpt_embedding_version_number() == GPT_EMBEDDING_VERSION_NUMBER, "version number matches the header");
    CHECK(!strcmp(gpt_embedding_version_string(), GPT_EMBEDDING_VERSION_STRING), "version string matches the header");
    CHECK(gpt_embedding_config_size() == sizeof(gpt_embedding_config), "config size matches the header");
    gpt_embedding_config c = gpt_embedding_default_config();
    CHECK(c.struct_size == sizeof c && c.vocab_size == 50257 && c.embed_dim == 768 && c.max_seq_len == 1024, "defaults");
    CHECK(c.dropout == 0.1f && c.position_encoding == GPT_EMBEDDING_POSITION_LEARNED && c.scale_embeddings == 1, "seed defaults");
    CHECK(c.layer_norm_eps == 1e-5f && c.init_std == 0.02f && c.padding_idx == -1 && c.num_threads == 0, "library defaults");
    static const struct { const char *name; int64_t d, tables; } presets[] = {
        {"gpt2", 768, 39383808}, {"gpt2-small", 768, 39383808}, {"gpt2-medium", 1024, 52511744},
        {"gpt2-large", 1280, 65639680}, {"gpt2-xl", 1600, 82049600}};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        gpt_embedding_config p;
        CHECK(gpt_embedding_preset_config(presets[i].name, &p) == 0, "%s", presets[i].name);
        CHECK(p.embed_dim == presets[i].d && p.scale_embeddings == 0 && p.position_encoding == GPT_EMBEDDING_POSITION_LEARNED
              && p.dropout == 0.1f && p.vocab_size == 50257 && p.max_seq_len == 1024, "%s is HF GPT-2", presets[i].name);
        int64_t tok, pos, lnw, lnb, all;
        gpt_embedding_config_num_parameters(&p, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &tok);
        gpt_embedding_config_num_parameters(&p, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, &pos);
        gpt_embedding_config_num_parameters(&p, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, &lnw);
        gpt_embedding_config_num_parameters(&p, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, &lnb);
        gpt_embedding_config_num_parameters(&p, GPT_EMBEDDING_PARAM_ALL, &all);
        CHECK(tok == 50257 * presets[i].d && pos == 1024 * presets[i].d && lnw == presets[i].d && lnb == presets[i].d, "%s counts", presets[i].name);
        CHECK(tok + pos == presets[i].tables && all == presets[i].tables + 2 * presets[i].d, "%s total %lld", presets[i].name, (long long)all);
    }
    c.position_encoding = GPT_EMBEDDING_POSITION_SINUSOIDAL;
    int64_t pos;
    gpt_embedding_config_num_parameters(&c, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, &pos);
    CHECK(pos == 0, "sinusoidal positions have no parameters");
}

/* Tables large enough that two threads fill them in two parts (at least 2^18 elements a
 * part): the same bits as one thread. */
static void init_split_across_threads(void) {
    gpt_embedding *one = make(10000, 64, 8192, 0, 1, 5), *two = make(10000, 64, 8192, 0, 2, 5);
    for (int param = 0; param < 2; param++) {
        float *a, *b;
        int64_t na, nb;
        gpt_embedding_parameter_data(one, param, &a, &na);
        gpt_embedding_parameter_data(two, param, &b, &nb);
        CHECK(na == nb && na >= 524288 && !memcmp(a, b, (size_t)na * sizeof(float)),
              "parameter %d: the same bits at 1 and 2 threads", param);
    }
    gpt_embedding_free(one);
    gpt_embedding_free(two);
}

static void init_and_parameters(void) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = 1000; c.embed_dim = 64; c.max_seq_len = 32; c.padding_idx = 3; c.seed = 7;
    gpt_embedding *a = NULL, *b = NULL, *other = NULL;
    gpt_embedding_create(&c, &a);
    c.num_threads = 1;
    gpt_embedding_create(&c, &b);
    c.seed = 8;
    gpt_embedding_create(&c, &other);
    float *wa, *wb, *wo, *ln;
    int64_t n, n2;
    CHECK(gpt_embedding_parameter_data(a, 0, &wa, &n) == 0 && n == 64000, "token table pointer");
    gpt_embedding_parameter_data(b, 0, &wb, &n2);
    gpt_embedding_parameter_data(other, 0, &wo, &n2);
    CHECK(!memcmp(wa, wb, 64000 * sizeof(float)), "same seed, same weights at any thread count");
    CHECK(memcmp(wa, wo, 64000 * sizeof(float)), "another seed, other weights");
    double s = 0, s2 = 0;
    for (int i = 0; i < 64000; i++) { s += wa[i]; s2 += (double)wa[i] * wa[i]; }
    double mean = s / 64000, sd = sqrt(s2 / 64000 - mean * mean);
    CHECK(fabs(mean) < 0.001 && fabs(sd - 0.02) < 0.0005, "N(0, 0.02): mean %g std %g", mean, sd);
    int pad_zero = 1;
    for (int i = 0; i < 64; i++) pad_zero &= wa[3 * 64 + i] == 0;
    CHECK(pad_zero, "the padding row starts at zero");
    gpt_embedding_parameter_data(a, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, &ln, &n);
    CHECK(n == 64 && ln[0] == 1 && ln[63] == 1, "layer norm weight starts at 1");
    int64_t rows, cols, total, bytes;
    CHECK(gpt_embedding_parameter_shape(a, 1, &rows, &cols) == 0 && rows == 32 && cols == 64, "wpe shape");
    CHECK(gpt_embedding_num_parameters(a, &total) == 0 && total == 64000 + 2048 + 128, "num_parameters %lld", (long long)total);
    CHECK(gpt_embedding_sizeof(a, &bytes) == 0 && bytes >= total * 4, "sizeof %lld", (long long)bytes);
    gpt_embedding_config back;
    CHECK(gpt_embedding_get_config(a, &back) == 0 && back.padding_idx == 3 && back.vocab_size == 1000, "get_config");

    /* Writing through the pointer changes the forward; the address stays put. */
    int32_t id = 5;
    float out[64];
    wa[5 * 64] = 42;
    gpt_embedding_forward(a, &id, 1, 1, NULL, 0, 0, out, 64);
    float *wpe;
    gpt_embedding_parameter_data(a, 1, &wpe, &n);
    CHECK(out[0] == 42 * 8 + wpe[0], "forward reads the table written through the pointer (scaled by sqrt(64))");
    float *again;
    gpt_embedding_parameter_data(a, 0, &again, &n);
    CHECK(again == wa, "the pointer is stable");

    /* Tied head: backward adds onto what was written into the gradient. */
    float *g;
    CHECK(gpt_embedding_gradient_data(a, 0, &g, &n) == 0 && n == 64000, "gradient pointer");
    g[5 * 64 + 1] = 100;
    float dy[64];
    for (int i = 0; i < 64; i++) dy[i] = 1;
    gpt_embedding_forward(a, &id, 1, 1, NULL, 0, GPT_EMBEDDING_TRAINING, out, 64);
    /* dropout 0.1 is on: the gradient of kept elements is 8 * (1 / 0.9), of dropped ones 0 */
    gpt_embedding_backward(a, dy, 1, 1);
    CHECK(g[5 * 64 + 1] == 100 + (out[1] != 0 ? 8 / 0.9f : 0) || fabsf(g[5 * 64 + 1] - 100 - (out[1] != 0 ? 8 / 0.9f : 0)) < 1e-4f,
          "backward adds onto the tied gradient: %f", g[5 * 64 + 1]);
    int32_t rowsTouched[4];
    int64_t count;
    CHECK(gpt_embedding_touched_rows(a, rowsTouched, 4, &count) == 0 && count == 1 && rowsTouched[0] == 5, "touched rows");
    CHECK(gpt_embedding_touched_rows(a, NULL, 0, &count) == 0 && count == 1, "touched rows size query");
    CHECK(gpt_embedding_zero_grad(a) == 0, "zero_grad");
    int all_zero = 1;
    for (int i = 0; i < 64000; i++) all_zero &= g[i] == 0;
    CHECK(all_zero, "zero_grad clears the whole tied gradient");
    CHECK(gpt_embedding_touched_rows(a, NULL, 0, &count) == 0 && count == 0, "no touched rows after zero_grad");
    gpt_embedding_free(a); gpt_embedding_free(b); gpt_embedding_free(other);
}

static void dropout_and_accumulation(void) {
    const int64_t V = 500, D = 128, B = 4, T = 64, N = B * T;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)((i * 37) % V);
    float *eval = malloc((size_t)(N * D) * sizeof(float)), *train = malloc((size_t)(N * D) * sizeof(float));
    float ps[2] = {0.1f, 0.5f};
    for (int k = 0; k < 2; k++) {
        gpt_embedding *h = make(V, D, T, ps[k], 2, 1);
        gpt_embedding_forward(h, ids, B, T, NULL, 0, 0, eval, N * D);
        gpt_embedding_forward(h, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING, train, N * D);
        int64_t kept = 0;
        int exact = 1;
        for (int64_t i = 0; i < N * D; i++) {
            if (train[i] != 0) { kept++; exact &= train[i] == eval[i] * (1 / (1 - ps[k])); }
        }
        double expected = (double)(N * D) * (1 - ps[k]), sigma = sqrt((double)(N * D) * ps[k] * (1 - ps[k]));
        CHECK(fabs((double)kept - expected) < 5 * sigma, "p=%g: kept %lld, expected %.0f", ps[k], (long long)kept, expected);
        CHECK(exact, "p=%g: kept values are y / (1 - p)", ps[k]);
        gpt_embedding_free(h);
    }
    /* Backward uses the forward's mask: unique ids, no layer norm, grad 1 -> dwte = mask / (1 - p). */
    gpt_embedding *h = make(V, D, T, 0.5f, 2, 2);
    int32_t uniq[64];
    for (int i = 0; i < 64; i++) uniq[i] = i;
    float *dy = malloc((size_t)(64 * D) * sizeof(float)), *dwte = malloc((size_t)(V * D) * sizeof(float));
    for (int64_t i = 0; i < 64 * D; i++) dy[i] = 1;
    gpt_embedding_forward(h, uniq, 1, 64, NULL, 0, GPT_EMBEDDING_TRAINING, train, 64 * D);
    gpt_embedding_backward(h, dy, 1, 64);
    gpt_embedding_get_gradient(h, 0, dwte, V * D);
    int same_mask = 1;
    for (int64_t i = 0; i < 64 * D; i++) same_mask &= (train[i] == 0) == (dwte[i] == 0) && (dwte[i] == 0 || dwte[i] == 2.0f);
    CHECK(same_mask, "backward applies exactly the forward's dropout mask");
    /* Gradients accumulate across calls until zeroed. */
    gpt_embedding_backward(h, dy, 1, 64);
    float *twice = malloc((size_t)(V * D) * sizeof(float));
    gpt_embedding_get_gradient(h, 0, twice, V * D);
    int doubled = 1;
    for (int64_t i = 0; i < V * D; i++) doubled &= twice[i] == 2 * dwte[i];
    CHECK(doubled, "a second backward adds the same gradient again");
    gpt_embedding_zero_grad(h);
    gpt_embedding_get_gradient(h, 0, twice, V * D);
    int zero = 1;
    for (int64_t i = 0; i < V * D; i++) zero &= twice[i] == 0;
    CHECK(zero, "zero_grad");
    gpt_embedding_free(h);
    free(ids); free(eval); free(train); free(dy); free(dwte); free(twice);
}

/* ---- threads ---- */

typedef struct { gpt_embedding *h; const int32_t *ids; int64_t B, T, D; float *out; int rounds; int ok; } job;

static void *eval_job(void *p) {
    job *j = p;
    j->ok = 1;
    for (int r = 0; r < j->rounds; r++)
        j->ok &= gpt_embedding_forward(j->h, j->ids, j->B, j->T, NULL, 0, GPT_EMBEDDING_LAYER_NORM, j->out, j->B * j->T * j->D) == 0;
    return NULL;
}

static void *train_job(void *p) {
    job *j = p;
    float *dy = malloc((size_t)(j->B * j->T * j->D) * sizeof(float));
    for (int64_t i = 0; i < j->B * j->T * j->D; i++) dy[i] = (float)(i % 13) - 6;
    j->ok = 1;
    for (int r = 0; r < j->rounds; r++) {
        j->ok &= gpt_embedding_forward(j->h, j->ids, j->B, j->T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM,
                                       j->out, j->B * j->T * j->D) == 0;
        j->ok &= gpt_embedding_backward(j->h, dy, j->B, j->T) == 0;
    }
    free(dy);
    return NULL;
}

typedef struct { int fail; int ok; } err_job;
static void *error_job(void *p) {
    err_job *j = p;
    gpt_embedding_config c = gpt_embedding_default_config();
    if (j->fail) c.dropout = 3;
    j->ok = 1;
    for (int i = 0; i < 2000; i++) {
        int rc = gpt_embedding_config_validate(&c);
        const char *m = gpt_embedding_last_error();
        j->ok &= j->fail ? (rc == GPT_EMBEDDING_ERROR_INVALID_CONFIG && m && strstr(m, "dropout = 3.0")) : (rc == 0 && m == NULL);
    }
    return NULL;
}

static void threads(void) {
    const int64_t V = 2000, D = 96, B = 4, T = 128, N = B * T;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)((i * 7919) % V);
    /* Eval forwards on one handle from 4 threads give identical results. */
    gpt_embedding *shared = make(V, D, T, 0.1f, 2, 3);
    job jobs[4];
    pthread_t tid[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){shared, ids, B, T, D, malloc((size_t)(N * D) * sizeof(float)), 50, 0};
        pthread_create(&tid[i], NULL, eval_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(tid[i], NULL);
    int same = 1;
    for (int i = 0; i < 4; i++) { same &= jobs[i].ok && !memcmp(jobs[i].out, jobs[0].out, (size_t)(N * D) * sizeof(float)); }
    CHECK(same, "eval forwards on one handle from 4 threads agree");
    for (int i = 0; i < 4; i++) free(jobs[i].out);
    gpt_embedding_free(shared);

    /* Two handles train in parallel and end exactly where sequential runs end. */
    gpt_embedding *p[2] = {make(V, D, T, 0.1f, 1, 11), make(V, D, T, 0.1f, 1, 12)};
    gpt_embedding *q[2] = {make(V, D, T, 0.1f, 1, 11), make(V, D, T, 0.1f, 1, 12)};
    for (int i = 0; i < 2; i++) {
        jobs[i] = (job){p[i], ids, B, T, D, malloc((size_t)(N * D) * sizeof(float)), 5, 0};
        pthread_create(&tid[i], NULL, train_job, &jobs[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < 2; i++) { jobs[2 + i] = (job){q[i], ids, B, T, D, malloc((size_t)(N * D) * sizeof(float)), 5, 0}; train_job(&jobs[2 + i]); }
    float *ga = malloc((size_t)(V * D) * sizeof(float)), *gb = malloc((size_t)(V * D) * sizeof(float));
    for (int i = 0; i < 2; i++) {
        gpt_embedding_get_gradient(p[i], 0, ga, V * D);
        gpt_embedding_get_gradient(q[i], 0, gb, V * D);
        CHECK(jobs[i].ok && jobs[2 + i].ok && !memcmp(ga, gb, (size_t)(V * D) * sizeof(float)), "parallel training of handle %d equals sequential", i);
        free(jobs[i].out); free(jobs[2 + i].out);
        gpt_embedding_free(p[i]); gpt_embedding_free(q[i]);
    }
    free(ga); free(gb); free(ids);

    /* The last-error message is per thread. */
    err_job e[2] = {{1, 0}, {0, 0}};
    for (int i = 0; i < 2; i++) pthread_create(&tid[i], NULL, error_job, &e[i]);
    for (int i = 0; i < 2; i++) pthread_join(tid[i], NULL);
    CHECK(e[0].ok && e[1].ok, "each thread sees only its own error message");
}

int main(void) {
    versions_and_config();
    init_and_parameters();
    init_split_across_threads();
    dropout_and_accumulation();
    threads();
    return check_summary();
}
