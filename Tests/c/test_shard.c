/* Vocabulary-parallel shards through the C ABI, in one process (the all-reduce is a sum
 * of the shards' partials here; Tests/mpi runs the same with a real MPI): the split rule,
 * the two phases against the single call of a whole layer bit for bit, opening a shard
 * of a checkpoint, and every error path with nothing changed. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpt_embedding.h"

enum { V = 37, D = 24, B = 3, T = 9, N = B * T * D };

static int same_bits(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof *a) == 0; }

static gpt_embedding *make(int64_t start, int64_t end, int position_encoding) {
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    c.vocab_size = V;
    c.embed_dim = D;
    c.max_seq_len = 16;
    c.dropout = 0.25f;
    c.seed = 11;
    c.padding_idx = 4;
    c.num_threads = 2;
    c.position_encoding = position_encoding;
    c.shard_start = start;
    c.shard_end = end;
    gpt_embedding *h = NULL;
    int rc = gpt_embedding_create(&c, &h);
    CHECK(rc == GPT_EMBEDDING_OK, "create [%lld, %lld): %s", (long long)start, (long long)end, gpt_embedding_last_error());
    return h;
}

static void split_rule(void) {
    int64_t s = -1, e = -1, next = 0;
    for (int r = 0; r < 3; r++) {
        CHECK(gpt_embedding_shard_range(V, r, 3, GPT_EMBEDDING_SHARD_BALANCED, &s, &e) == 0, "range");
        CHECK(s == next && (e - s == 12 || e - s == 13), "rank %d: [%lld, %lld)", r, (long long)s, (long long)e);
        next = e;
    }
    CHECK(next == V, "tiles");
    CHECK(gpt_embedding_shard_range(51200, 7, 8, GPT_EMBEDDING_SHARD_MEGATRON, &s, &e) == 0 && s == 44800 && e == 51200, "megatron");
    s = e = -7;
    CHECK(gpt_embedding_shard_range(V, 0, 2, GPT_EMBEDDING_SHARD_MEGATRON, &s, &e) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT
          && strstr(gpt_embedding_last_error(), "37 % 2 = 1") && s == -7 && e == -7, "megatron indivisible: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_shard_range(V, 3, 3, 0, &s, &e) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), "rank = 3"), "rank");
    CHECK(gpt_embedding_shard_range(3, 0, 4, 0, &s, &e) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), "world = 4"), "world");
    CHECK(gpt_embedding_shard_range(V, 0, 1, 9, &s, &e) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), "rule = 9"), "rule");
    CHECK(gpt_embedding_shard_range(V, 0, 1, 0, NULL, &e) == GPT_EMBEDDING_ERROR_NULL_POINTER, "null");
}

static void bad_configs(void) {
    const int64_t bad[][2] = {{5, 5}, {6, 2}, {-1, 3}, {30, 38}, {3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gpt_embedding_config c;
        gpt_embedding_config_init(&c, sizeof c);
        c.vocab_size = V;
        c.shard_start = bad[i][0];
        c.shard_end = bad[i][1];
        gpt_embedding *h = (gpt_embedding *)&c;
        int rc = gpt_embedding_create(&c, &h);
        CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_CONFIG && h == NULL, "shard [%lld, %lld) gave %d", (long long)bad[i][0], (long long)bad[i][1], rc);
        CHECK(strstr(gpt_embedding_last_error(), "shard") != NULL, "%s", gpt_embedding_last_error());
    }
    /* A 0.3 caller's struct (88 bytes, no shard fields) means the whole vocabulary. */
    gpt_embedding_config c;
    memset(&c, 0x7f, sizeof c);  /* garbage past the 0.3 size must not be read */
    CHECK(gpt_embedding_config_init(&c, GPT_EMBEDDING_CONFIG_SIZE_0_3) == 0, "init 0.3");
    c.vocab_size = V;
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_create(&c, &h) == 0, "0.3 config: %s", gpt_embedding_last_error());
    int64_t rows = 0, cols = 0;
    gpt_embedding_parameter_shape(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &rows, &cols);
    CHECK(rows == V, "whole table, %lld rows", (long long)rows);
    gpt_embedding_free(h);
}

/* Forward, backward and a second step of 1, 2 and 3 shards equal the whole layer. */
static void equal_to_whole(int position_encoding, uint32_t flags) {
    static float ref[N], sum[N], part[N], x[N], dy[N];
    int32_t ids[B * T];
    uint64_t r = 99;
    for (int world = 1; world <= 3; world++) {
        gpt_embedding *whole = make(0, 0, position_encoding), *shard[3];
        for (int k = 0; k < world; k++) {
            int64_t s, e;
            gpt_embedding_shard_range(V, k, world, 0, &s, &e);
            shard[k] = make(s, e, position_encoding);
        }
        for (int step = 0; step < 2; step++) {
            for (int i = 0; i < B * T; i++) { r = r * 6364136223846793005ull + 1442695040888963407ull; ids[i] = (int32_t)((r >> 33) % V); }
            ids[0] = 4;  /* the padding row */
            for (int i = 0; i < N; i++) { r = r * 6364136223846793005ull + 1; dy[i] = (float)((int64_t)(r >> 40) - (1 << 23)) / (1 << 23); }
            CHECK(gpt_embedding_forward(whole, ids, B, T, NULL, step, flags | GPT_EMBEDDING_TRAINING, ref, N) == 0, "whole");
            for (int i = 0; i < N; i++) sum[i] = -0.0f;
            for (int k = 0; k < world; k++) {
                CHECK(gpt_embedding_forward_partial(shard[k], ids, B, T, NULL, step, flags | GPT_EMBEDDING_TRAINING, part, N) == 0,
                      "partial: %s", gpt_embedding_last_error());
                for (int i = 0; i < N; i++) sum[i] += part[i];
            }
            gpt_embedding_zero_grad(whole);
            gpt_embedding_backward(whole, dy, B, T);
            for (int k = 0; k < world; k++) {
                memcpy(x, sum, sizeof x);
                CHECK(gpt_embedding_forward_finish(shard[k], B, T, x, N) == 0, "finish: %s", gpt_embedding_last_error());
                CHECK(same_bits(x, ref, N), "world %d rank %d step %d flags %u positions %d: output differs", world, k, step, flags, position_encoding);
                gpt_embedding_zero_grad(shard[k]);
                CHECK(gpt_embedding_backward(shard[k], dy, B, T) == 0, "backward");
                for (int p = 0; p < 4; p++) {
                    int64_t rows, cols, wrows, wcols;
                    if (gpt_embedding_parameter_shape(shard[k], p, &rows, &cols) != 0) continue;
                    gpt_embedding_parameter_shape(whole, p, &wrows, &wcols);
                    float *g = malloc((size_t)(rows * cols) * 4), *w = malloc((size_t)(wrows * wcols) * 4);
                    gpt_embedding_get_gradient(shard[k], p, g, rows * cols);
                    gpt_embedding_get_gradient(whole, p, w, wrows * wcols);
                    int64_t first = 0, dummy;
                    if (p == GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING) gpt_embedding_shard_range(V, k, world, 0, &first, &dummy);
                    CHECK(same_bits(g, w + first * D, rows * cols), "gradient %d of rank %d of %d", p, k, world);
                    free(g);
                    free(w);
                }
            }
        }
        gpt_embedding_free(whole);
        for (int k = 0; k < world; k++) gpt_embedding_free(shard[k]);
    }
}

static void phase_errors(void) {
    static float x[N], keep[N];
    int32_t ids[B * T] = {0};
    gpt_embedding *h = make(0, 12, GPT_EMBEDDING_POSITION_LEARNED);
    for (int i = 0; i < N; i++) x[i] = 7.0f;
    memcpy(keep, x, sizeof x);
    CHECK(gpt_embedding_forward_finish(h, B, T, x, N) == GPT_EMBEDDING_ERROR_BAD_STATE && same_bits(x, keep, N),
          "finish without phase one: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 0, 0, x, N) == GPT_EMBEDDING_ERROR_BAD_STATE
          && strstr(gpt_embedding_last_error(), "[0, 12) of a vocabulary of 37") && same_bits(x, keep, N),
          "single call on a shard: %s", gpt_embedding_last_error());
    ids[5] = V;
    CHECK(gpt_embedding_forward_partial(h, ids, B, T, NULL, 0, 0, x, N) == GPT_EMBEDDING_ERROR_OUT_OF_RANGE
          && strstr(gpt_embedding_last_error(), "token id 37 at [0, 5]") && same_bits(x, keep, N), "bad id: %s", gpt_embedding_last_error());
    ids[5] = 30;  /* global ids outside the shard are fine */
    CHECK(gpt_embedding_forward_partial(h, ids, B, T, NULL, 0, 99, x, N) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "flags");
    CHECK(gpt_embedding_forward_partial(h, ids, B, T, NULL, 0, 0, x, N - 1) == GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "short");
    CHECK(gpt_embedding_forward_partial(h, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING, x, N) == 0, "partial");
    CHECK(x[5 * D] == 0.0f && ((union { float f; uint32_t u; }){x[5 * D]}).u == 0x80000000u, "a foreign token's partial is -0.0");
    memcpy(keep, x, sizeof x);
    CHECK(gpt_embedding_forward_finish(h, T, B, x, N) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT
          && strstr(gpt_embedding_last_error(), "differs from phase one's [3, 9, 24]") && same_bits(x, keep, N),
          "other shape: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_forward_finish(h, B, T, x, N - 1) == GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL && same_bits(x, keep, N), "short x");
    CHECK(gpt_embedding_forward_finish(h, B, T, NULL, N) == GPT_EMBEDDING_ERROR_NULL_POINTER, "null x");
    CHECK(gpt_embedding_backward(h, x, B, T) == GPT_EMBEDDING_ERROR_BAD_STATE, "backward before phase two");
    CHECK(gpt_embedding_forward_finish(h, B, T, x, N) == 0, "the pending phase one survived the errors: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_forward_finish(h, B, T, x, N) == GPT_EMBEDDING_ERROR_BAD_STATE, "one finish per phase one");
    CHECK(gpt_embedding_backward(h, x, B, T) == 0, "backward after phase two");
    int64_t n = -1;
    int32_t rows[64];
    CHECK(gpt_embedding_touched_rows(h, rows, 64, &n) == 0 && n >= 1, "touched");
    for (int64_t i = 0; i < n; i++) CHECK(rows[i] >= 0 && rows[i] < 12, "touched row %d is a shard row", rows[i]);
    gpt_embedding_free(h);
}

static void open_shard(void) {
    char path[] = "/tmp/gpte_shard_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    gpt_embedding *whole = make(0, 0, GPT_EMBEDDING_POSITION_LEARNED);
    CHECK(gpt_embedding_save_safetensors(whole, path, 0) == 0, "save");
    static float all[V * D], mine[V * D];
    gpt_embedding_get_parameter(whole, 0, all, V * D);
    for (int mmap = 0; mmap < 2; mmap++) {
        for (int rank = 0; rank < 3; rank++) {
            gpt_embedding_open_options o;
            gpt_embedding_open_options_init(&o, sizeof o);
            o.mmap = mmap;
            o.shard_rank = rank;
            o.shard_world = 3;
            gpt_embedding *h = NULL;
            CHECK(gpt_embedding_open(path, &o, &h) == 0, "open rank %d: %s", rank, gpt_embedding_last_error());
            gpt_embedding_config c;
            gpt_embedding_layer_config(h, &c, sizeof c);
            int64_t s, e;
            gpt_embedding_shard_range(V, rank, 3, 0, &s, &e);
            CHECK(c.vocab_size == V && c.shard_start == s && c.shard_end == e, "config [%lld, %lld)", (long long)c.shard_start, (long long)c.shard_end);
            CHECK(gpt_embedding_get_parameter(h, 0, mine, V * D) == 0 && same_bits(mine, all + s * D, (e - s) * D), "rows of rank %d", rank);
            int mapped = -1;
            gpt_embedding_parameter_mapped(h, 0, &mapped);
            CHECK(mapped == mmap, "mapped %d", mapped);
            gpt_embedding_free(h);
        }
    }
    gpt_embedding_open_options o;
    gpt_embedding_open_options_init(&o, sizeof o);
    o.shard_rank = 3;
    o.shard_world = 3;
    gpt_embedding *h = (gpt_embedding *)&o;
    CHECK(gpt_embedding_open(path, &o, &h) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && h == NULL
          && strstr(gpt_embedding_last_error(), "37 rows"), "rank 3 of 3: %s", gpt_embedding_last_error());
    o.shard_rank = 0;
    o.shard_world = 38;
    CHECK(gpt_embedding_open(path, &o, &h) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "world 38: %s", gpt_embedding_last_error());
    o.shard_world = 2;
    o.shard_rule = GPT_EMBEDDING_SHARD_MEGATRON;
    CHECK(gpt_embedding_open(path, &o, &h) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "megatron 37 / 2: %s", gpt_embedding_last_error());
    o.shard_rule = 5;
    CHECK(gpt_embedding_open(path, &o, &h) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), "shard_rule = 5"), "rule 5");
    /* A 0.3 options struct (64 bytes) opens the whole table. */
    memset(&o, 0x7f, sizeof o);
    CHECK(gpt_embedding_open_options_init(&o, GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_3) == 0, "init 0.3 options");
    CHECK(gpt_embedding_open(path, &o, &h) == 0, "0.3 options: %s", gpt_embedding_last_error());
    int64_t rows = 0, cols = 0;
    gpt_embedding_parameter_shape(h, 0, &rows, &cols);
    CHECK(rows == V, "0.3 options open the whole table (%lld rows)", (long long)rows);
    gpt_embedding_free(h);
    gpt_embedding_free(whole);
    unlink(path);
}

int main(void) {
    split_rule();
    bad_configs();
    for (int pe = 0; pe < 3; pe++) {
        equal_to_whole(pe, 0);
        equal_to_whole(pe, GPT_EMBEDDING_LAYER_NORM);
    }
    phase_errors();
    open_shard();
    return check_summary();
}
