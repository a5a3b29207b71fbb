/* digest.c -- one number for everything the kernels compute, to compare CPU paths.
 *
 * Runs a fixed set of cases through the C API (init from a seed; eval and training
 * forwards with and without layer norm and dropout; learned, sinusoidal -- past the cached
 * rows -- and no positions; odd widths; an output large enough for the streaming stores;
 * backward, AdamW; quantized GGUF tables of every block type; 1 and 2 threads) and prints the kernel path and an FNV-1a hash of every byte
 * of every output, gradient and initialised table. The same binary run with
 * GPT_EMBEDDING_ISA=baseline and =x86-64-v3, natively and under qemu-x86_64 -cpu Nehalem /
 * Haswell, must print the same hash: the paths are bit-identical (Tests/isa/run.sh). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gpt_embedding.h"

static uint64_t hash = 1469598103934665603ull;
static void mix(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { hash ^= b[i]; hash *= 1099511628211ull; }
}

static uint64_t state = 12345;
static uint32_t next(void) { state = state * 6364136223846793005ull + 1442695040888963407ull; return (uint32_t)(state >> 33); }
static float uniform(void) { return (float)next() / 2147483648.0f - 0.5f; }

#define CHECK(call) do { int rc_ = (call); if (rc_ != GPT_EMBEDDING_OK) { \
    fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, gpt_embedding_last_error()); exit(1); } } while (0)

static void hash_param(gpt_embedding *layer, int param, int gradient) {
    int64_t rows, cols;
    if (gpt_embedding_parameter_shape(layer, param, &rows, &cols) != GPT_EMBEDDING_OK) return;  /* no such table */
    float *buf = malloc((size_t)(rows * cols) * sizeof(float));
    if (gradient) CHECK(gpt_embedding_get_gradient(layer, param, buf, rows * cols));
    else CHECK(gpt_embedding_get_parameter(layer, param, buf, rows * cols));
    mix(buf, (size_t)(rows * cols) * sizeof(float));
    free(buf);
}

static void run_case(int64_t vocab, int64_t dim, int32_t positions, float dropout, int scale,
                     int64_t batch, int64_t seq, int64_t start, uint32_t flags, int threads) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = vocab; c.embed_dim = dim; c.position_encoding = positions;
    c.max_seq_len = positions == GPT_EMBEDDING_POSITION_NONE ? 0 : 48;
    c.dropout = dropout; c.scale_embeddings = scale; c.num_threads = threads; c.seed = 7; c.init_std = 0.5f;
    gpt_embedding *layer = NULL;
    CHECK(gpt_embedding_create(&c, &layer));
    hash_param(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, 0);
    hash_param(layer, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, 0);
    /* A layer norm that is not the identity. */
    float *ln = malloc((size_t)dim * sizeof(float));
    for (int64_t i = 0; i < dim; i++) ln[i] = 1 + uniform();
    CHECK(gpt_embedding_set_parameter(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, ln, dim));
    for (int64_t i = 0; i < dim; i++) ln[i] = uniform();
    CHECK(gpt_embedding_set_parameter(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, ln, dim));
    free(ln);

    int64_t n = batch * seq;
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(next() % (uint32_t)vocab);
    if (n > 8) ids[n - 1] = ids[0];  /* a repeated id */
    float *out = malloc((size_t)(n * dim) * sizeof(float)), *dy = malloc((size_t)(n * dim) * sizeof(float));
    for (int step = 0; step < 2; step++) {
        CHECK(gpt_embedding_forward(layer, ids, batch, seq, NULL, start, flags, out, n * dim));
        mix(out, (size_t)(n * dim) * sizeof(float));
        if (flags & GPT_EMBEDDING_TRAINING) {
            for (int64_t i = 0; i < n * dim; i++) dy[i] = uniform();
            CHECK(gpt_embedding_backward(layer, dy, batch, seq));
            /* The optimizer's kernels: the norm, then a dense and a lazy AdamW step. */
            double norm2 = 0;
            CHECK(gpt_embedding_grad_norm_squared(layer, &norm2));
            mix(&norm2, sizeof norm2);
            gpt_embedding_adamw_options o;
            CHECK(gpt_embedding_adamw_options_init(&o, sizeof o));
            o.lr = 1e-2;
            o.lazy = step;
            CHECK(gpt_embedding_adamw_step(layer, &o));
        }
    }
    for (int p = 0; p < 4; p++) hash_param(layer, p, 1);
    free(ids); free(out); free(dy);
    gpt_embedding_free(layer);
}

/* A quantized GGUF table (Tests/fixtures/gguf, run from the repository root): rows
 * dequantized by the kernels in an eval forward into float32 and bf16, a training forward
 * with layer norm and its backward (which decodes the rows again), and get_parameter. */
static void run_gguf(const char *type, int threads) {
    char path[256];
    snprintf(path, sizeof path, "Tests/fixtures/gguf/llama_%s.gguf", type);
    gpt_embedding_open_options o;
    CHECK(gpt_embedding_open_options_init(&o, sizeof o));
    o.num_threads = threads;
    gpt_embedding *layer = NULL;
    CHECK(gpt_embedding_open(path, &o, &layer));
    gpt_embedding_config c;
    CHECK(gpt_embedding_get_config(layer, &c));
    enum { N = 64 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(next() % (uint32_t)c.vocab_size);
    float *out = malloc((size_t)(N * c.embed_dim) * sizeof(float)), *dy = malloc((size_t)(N * c.embed_dim) * sizeof(float));
    for (int64_t i = 0; i < N * c.embed_dim; i++) dy[i] = uniform();
    CHECK(gpt_embedding_forward(layer, ids, 4, 16, NULL, 0, 0, out, N * c.embed_dim));
    mix(out, (size_t)(N * c.embed_dim) * sizeof(float));
    CHECK(gpt_embedding_forward_typed(layer, ids, 4, 16, NULL, 0, 0, GPT_EMBEDDING_DTYPE_BF16, out, N * c.embed_dim));
    mix(out, (size_t)(N * c.embed_dim) * 2);
    CHECK(gpt_embedding_forward(layer, ids, 4, 16, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, out, N * c.embed_dim));
    mix(out, (size_t)(N * c.embed_dim) * sizeof(float));
    CHECK(gpt_embedding_backward(layer, dy, 4, 16));
    hash_param(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, 1);
    hash_param(layer, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, 1);
    hash_param(layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, 0);
    free(out); free(dy);
    gpt_embedding_free(layer);
}

int main(void) {
    const char *isa = gpt_embedding_isa();
    if (!isa) { fprintf(stderr, "%s\n", gpt_embedding_last_error()); return 1; }
    const uint32_t train = GPT_EMBEDDING_TRAINING, ln = GPT_EMBEDDING_LAYER_NORM;
    for (int threads = 1; threads <= 2; threads++) {
        run_case(1000, 768, GPT_EMBEDDING_POSITION_LEARNED, 0.1f, 0, 3, 40, 0, train | ln, threads);
        run_case(1000, 768, GPT_EMBEDDING_POSITION_LEARNED, 0.0f, 0, 3, 40, 5, 0, threads);
        run_case(97, 37, GPT_EMBEDDING_POSITION_SINUSOIDAL, 0.3f, 1, 2, 30, 40, train | ln, threads);
        run_case(97, 37, GPT_EMBEDDING_POSITION_SINUSOIDAL, 0.3f, 1, 2, 30, 40, train, threads);
        run_case(200, 64, GPT_EMBEDDING_POSITION_NONE, 0.5f, 1, 4, 33, 0, train, threads);
        run_case(200, 100, GPT_EMBEDDING_POSITION_LEARNED, 0.0f, 0, 2, 48, 0, train | ln, threads);
        /* 4 x 700 x 768 = 2.15M floats: the streaming-store path. */
        run_case(5000, 768, GPT_EMBEDDING_POSITION_SINUSOIDAL, 0.1f, 0, 4, 700, 0, train | ln, threads);
        run_case(5000, 768, GPT_EMBEDDING_POSITION_NONE, 0.0f, 0, 4, 700, 0, 0, threads);
        static const char *types[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
                                      "iq4_nl", "iq4_xs"};
        for (size_t k = 0; k < sizeof types / sizeof *types; k++) run_gguf(types[k], threads);
    }
    printf("isa %s digest %016" PRIx64 "\n", isa, hash);
    return 0;
}
