/* Every error path of every exported function: the documented status, a message that
 * names the bad value, NULL after success, and nothing changed on failure (output buffer,
 * parameters and gradients checked bit for bit). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpt_embedding.h"

#define SENTINEL 12345.0f

/* FNV-1a over every parameter and gradient of the layer. */
static uint64_t checksum(const gpt_embedding *h) {
    uint64_t x = 1469598103934665603ull;
    for (int p = 0; p < 4; p++) {
        int64_t rows, cols;
        if (gpt_embedding_parameter_shape(h, p, &rows, &cols) != 0) continue;
        float *buf = malloc((size_t)(rows * cols) * sizeof *buf);
        for (int pass = 0; pass < 2; pass++) {
            int rc = pass == 0 ? gpt_embedding_get_parameter(h, p, buf, rows * cols)
                               : gpt_embedding_get_gradient(h, p, buf, rows * cols);
            if (rc != 0) { free(buf); return 0; }
            const unsigned char *b = (const unsigned char *)buf;
            for (size_t i = 0; i < (size_t)(rows * cols) * sizeof *buf; i++) x = (x ^ b[i]) * 1099511628211ull;
        }
        free(buf);
    }
    return x;
}

static int untouched(const float *buf, int64_t n) {
    for (int64_t i = 0; i < n; i++) if (buf[i] != SENTINEL) return 0;
    return 1;
}

static void fill(float *buf, int64_t n) { for (int64_t i = 0; i < n; i++) buf[i] = SENTINEL; }

/* The status is `code`, the message exists and contains `text` (if given). */
static int contains(const char *msg, const char *text) { return !text || (msg && strstr(msg, text)); }

#define EXPECT(call, code, text)                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        const char *msg_ = gpt_embedding_last_error();                                             \
        CHECK(rc_ == (code), "%s returned %d (%s), expected %d", #call, rc_, msg_ ? msg_ : "no message", (int)(code)); \
        CHECK(msg_ != NULL, "%s: no message", #call);                                              \
        CHECK(contains(msg_, (text)), "%s: message \"%s\" lacks \"%s\"", #call, msg_ ? msg_ : "", (text) ? (const char *)(text) : ""); \
    } while (0)

#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == 0, "%s failed: %s", #call, gpt_embedding_last_error());                       \
        CHECK(gpt_embedding_last_error() == NULL, "%s: message after success", #call);            \
    } while (0)

static gpt_embedding *small_layer(int positions) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = 10; c.embed_dim = 8; c.max_seq_len = 4; c.position_encoding = positions; c.dropout = 0.25f;
    gpt_embedding *h = NULL;
    OK(gpt_embedding_create(&c, &h));
    return h;
}

static void config_errors(void) {
    gpt_embedding *h = (gpt_embedding *)0x1;
    EXPECT(gpt_embedding_create(NULL, &h), GPT_EMBEDDING_ERROR_NULL_POINTER, "config is NULL");
    CHECK(h == NULL, "failed create sets *out to NULL");
    gpt_embedding_config c = gpt_embedding_default_config();
    EXPECT(gpt_embedding_create(&c, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    EXPECT(gpt_embedding_config_validate(NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, NULL);
#define BAD(stmt, code, text) do { gpt_embedding_config b = gpt_embedding_default_config(); stmt; \
        gpt_embedding *hh = (gpt_embedding *)0x1; \
        EXPECT(gpt_embedding_create(&b, &hh), code, text); CHECK(hh == NULL, "%s", text); \
        EXPECT(gpt_embedding_config_validate(&b), code, text); } while (0)
    BAD(b.struct_size = 8, GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "struct_size = 8");
    BAD(b.vocab_size = 0, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "vocab_size = 0");
    BAD(b.vocab_size = -5, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "vocab_size = -5");
    BAD(b.embed_dim = -1, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "embed_dim = -1");
    BAD(b.max_seq_len = 0, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "max_seq_len = 0");
    BAD(b.dropout = -0.1f, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "dropout = -0.1");
    BAD(b.dropout = 1.5f, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "dropout = 1.5");
    BAD(b.dropout = NAN, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "dropout = nan");
    BAD(b.layer_norm_eps = 0, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "layer_norm_eps = 0");
    BAD(b.layer_norm_eps = NAN, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "layer_norm_eps = nan");
    BAD(b.init_std = -1, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "init_std = -1");
    BAD(b.padding_idx = 50257, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "padding_idx = 50257");
    BAD(b.padding_idx = -2, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "padding_idx = -2");
    BAD(b.num_threads = -1, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "num_threads = -1");
    BAD(b.position_encoding = 7, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "position_encoding = 7");
    BAD(b.scale_embeddings = 2, GPT_EMBEDDING_ERROR_INVALID_CONFIG, "scale_embeddings = 2");
    BAD((b.vocab_size = (int64_t)1 << 31, b.embed_dim = (int64_t)1 << 31), GPT_EMBEDDING_ERROR_INVALID_CONFIG, "vocab_size");
    BAD((b.vocab_size = INT32_MAX, b.embed_dim = INT32_MAX), GPT_EMBEDDING_ERROR_SIZE_OVERFLOW, "overflows");
    /* Valid arithmetic, 16 TiB: create refuses it (validate does not look at the machine). */
    gpt_embedding_config big = gpt_embedding_default_config();
    big.vocab_size = (int64_t)1 << 30;
    big.embed_dim = 4096;
    OK(gpt_embedding_config_validate(&big));
    h = (gpt_embedding *)0x1;
    EXPECT(gpt_embedding_create(&big, &h), GPT_EMBEDDING_ERROR_OUT_OF_MEMORY, "bytes");
    CHECK(h == NULL, "failed create sets *out to NULL");

    gpt_embedding_config p;
    EXPECT(gpt_embedding_preset_config("gpt5", &p), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown preset \"gpt5\"");
    EXPECT(gpt_embedding_preset_config(NULL, &p), GPT_EMBEDDING_ERROR_NULL_POINTER, "name is NULL");
    EXPECT(gpt_embedding_preset_config("gpt2", (gpt_embedding_config *)NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    int64_t n;
    EXPECT(gpt_embedding_config_num_parameters(&c, 9, &n), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "selector 9");
    EXPECT(gpt_embedding_config_num_parameters(&c, -1, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_count");
    EXPECT(gpt_embedding_config_num_parameters(NULL, -1, &n), GPT_EMBEDDING_ERROR_NULL_POINTER, "config");
}

static void forward_errors(void) {
    gpt_embedding *h = small_layer(GPT_EMBEDDING_POSITION_LEARNED);
    int32_t ids[6] = {1, 2, 3, 4, 5, 6};
    int64_t ids64[6] = {1, 2, 3, 4, 5, 6};
    float grad[48];
    for (int i = 0; i < 48; i++) grad[i] = 1;
    float out[64];
    OK(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, GPT_EMBEDDING_TRAINING, out, 48));
    OK(gpt_embedding_backward(h, grad, 2, 3));
    const uint64_t sum = checksum(h);

#define FWD_ERR(call, code, text) do { fill(out, 64); EXPECT(call, code, text); \
        CHECK(untouched(out, 64), "%s wrote its output", #call); CHECK(checksum(h) == sum, "%s changed the layer", #call); } while (0)
    FWD_ERR(gpt_embedding_forward(NULL, ids, 2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_NULL_POINTER, "layer is NULL");
    FWD_ERR(gpt_embedding_forward(h, NULL, 2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_NULL_POINTER, "ids is NULL");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, NULL, 48), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    FWD_ERR(gpt_embedding_forward(h, ids, -2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "batch must be >= 0, got -2");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, -1, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "seq must be >= 0, got -1");
    FWD_ERR(gpt_embedding_forward(h, NULL, 0, -1, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_NULL_POINTER, "ids is NULL");
    /* Empty calls (batch or seq 0) are valid and write nothing (test_call.c covers them). */
    fill(out, 64);
    OK(gpt_embedding_forward(h, ids, 0, 3, NULL, 0, 0, out, 48));
    OK(gpt_embedding_forward(h, NULL, 2, 0, NULL, 0, 0, NULL, 0));
    CHECK(untouched(out, 64) && checksum(h) == sum, "an empty forward wrote something");
    FWD_ERR(gpt_embedding_forward(h, ids, (int64_t)1 << 40, (int64_t)1 << 40, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_SIZE_OVERFLOW, "overflows");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, out, 47), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "holds 47 floats, needs 48");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, out, -1), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 48");
    /* A batch * seq larger than the ids array, caught by out_len before any id is read
     * (found by fuzz-api: reading 2^30 ids from a 6-element array crashed). */
    FWD_ERR(gpt_embedding_forward(h, ids, (int64_t)1 << 30, 1, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 8589934592");
    FWD_ERR(gpt_embedding_forward(h, ids, (int64_t)1 << 30, 1, ids, 0, 0, out, 48), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "holds 48 floats");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 8, out, 48), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown flags 0x8");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, -1, 0, out, 48), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "start_position must be >= 0, got -1");
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 2, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE,
            "position 4 at [0, 2] (start_position 2 + 2) is out of range [0, 4)");
    ids[4] = 10;
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE,
            "token id 10 at [1, 1] is out of range [0, 10)");
    ids[4] = -3;
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, GPT_EMBEDDING_TRAINING, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id -3 at [1, 1]");
    ids[4] = 5;
    ids64[5] = (int64_t)1 << 40;
    FWD_ERR(gpt_embedding_forward_i64(h, ids64, 2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id 1099511627776 at [1, 2]");
    ids64[5] = INT64_MIN;
    FWD_ERR(gpt_embedding_forward_i64(h, ids64, 2, 3, NULL, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "at [1, 2]");
    ids64[5] = 6;
    int32_t pos[6] = {0, 1, 2, 0, 4, 1};
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, pos, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 4 at [1, 1] is out of range [0, 4)");
    pos[4] = -1;
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, pos, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position -1 at [1, 1]");
    int64_t pos64[6] = {0, 1, 2, 0, 1, (int64_t)1 << 33};
    FWD_ERR(gpt_embedding_forward_i64(h, ids64, 2, 3, pos64, 0, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 8589934592 at [1, 2]");

    /* Backward with a different shape, and grad_output NULL. */
    EXPECT(gpt_embedding_backward(h, grad, 3, 2), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "differs from the training forward's [2, 3, 8]");
    EXPECT(gpt_embedding_backward(h, NULL, 2, 3), GPT_EMBEDDING_ERROR_NULL_POINTER, "grad_output is NULL");
    EXPECT(gpt_embedding_backward(NULL, grad, 2, 3), GPT_EMBEDDING_ERROR_NULL_POINTER, "layer is NULL");
    CHECK(checksum(h) == sum, "failed backward changed the layer");

    /* A successful call clears the message. */
    fill(out, 64);
    OK(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, out, 64));
    CHECK(untouched(out + 48, 16), "forward wrote past batch * seq * D");
    gpt_embedding_free(h);

    /* Sinusoidal positions may pass max_seq_len; 32-bit positions may not overflow. */
    h = small_layer(GPT_EMBEDDING_POSITION_SINUSOIDAL);
    OK(gpt_embedding_forward(h, ids, 2, 3, NULL, 1000, 0, out, 48));
    const uint64_t sum2 = checksum(h);
#undef FWD_ERR
#define FWD_ERR(call, code, text) do { fill(out, 64); EXPECT(call, code, text); \
        CHECK(untouched(out, 64), "%s wrote its output", #call); CHECK(checksum(h) == sum2, "%s changed the layer", #call); } while (0)
    FWD_ERR(gpt_embedding_forward(h, ids, 2, 3, NULL, INT64_MAX - 1, 0, out, 48), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "sinusoidal positions");
    gpt_embedding_free(h);
}

static void state_errors(void) {
    gpt_embedding *h = small_layer(GPT_EMBEDDING_POSITION_LEARNED);
    float grad[8] = {1, 1, 1, 1, 1, 1, 1, 1}, out[8];
    int32_t id = 1;
    EXPECT(gpt_embedding_backward(h, grad, 1, 1), GPT_EMBEDDING_ERROR_BAD_STATE, "no training forward");
    OK(gpt_embedding_forward(h, &id, 1, 1, NULL, 0, 0, out, 8));
    EXPECT(gpt_embedding_backward(h, grad, 1, 1), GPT_EMBEDDING_ERROR_BAD_STATE, "an eval forward keeps nothing");
    const uint64_t sum = checksum(h);

    /* Parameter calls. */
    float buf[128];
    int64_t rows, cols, n;
    float *data;
    EXPECT(gpt_embedding_get_parameter(h, 4, buf, 128), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown parameter selector 4");
    EXPECT(gpt_embedding_get_parameter(h, -1, buf, 128), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "selector -1");
    EXPECT(gpt_embedding_get_parameter(h, 0, buf, 79), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "holds 79 floats, needs 80");
    EXPECT(gpt_embedding_get_parameter(h, 0, buf, -1), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "dst_len = -1");
    EXPECT(gpt_embedding_get_parameter(h, 0, NULL, 80), GPT_EMBEDDING_ERROR_NULL_POINTER, "dst is NULL");
    EXPECT(gpt_embedding_set_parameter(h, 0, buf, 81), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "has 80 elements");
    EXPECT(gpt_embedding_set_parameter(h, 2, NULL, 8), GPT_EMBEDDING_ERROR_NULL_POINTER, "src is NULL");
    EXPECT(gpt_embedding_get_gradient(h, 3, buf, 7), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 8");
    EXPECT(gpt_embedding_parameter_shape(h, 9, &rows, &cols), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, NULL);
    EXPECT(gpt_embedding_parameter_shape(h, 0, NULL, &cols), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_rows");
    EXPECT(gpt_embedding_parameter_data(h, 0, NULL, &n), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_data");
    EXPECT(gpt_embedding_gradient_data(h, 5, &data, &n), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, NULL);
    EXPECT(gpt_embedding_num_parameters(h, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_count");
    EXPECT(gpt_embedding_sizeof(h, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_bytes");
    EXPECT(gpt_embedding_get_config(h, (gpt_embedding_config *)NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    EXPECT(gpt_embedding_touched_rows(h, NULL, 5, &n), GPT_EMBEDDING_ERROR_NULL_POINTER, "rows is NULL");
    EXPECT(gpt_embedding_touched_rows(h, NULL, 0, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "out_count");
    EXPECT(gpt_embedding_touched_rows(h, (int32_t *)buf, -1, &n), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "capacity = -1");
    CHECK(checksum(h) == sum, "failed parameter calls changed the layer");
    gpt_embedding_free(h);

    h = small_layer(GPT_EMBEDDING_POSITION_SINUSOIDAL);
    EXPECT(gpt_embedding_get_parameter(h, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, buf, 128), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT,
           "no learned position table");
    gpt_embedding_free(h);

    /* Sinusoidal helper. */
    EXPECT(gpt_embedding_sinusoidal_table(0, 2, 4, NULL, 8), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    EXPECT(gpt_embedding_sinusoidal_table(0, 0, 4, buf, 8), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "num_positions");
    EXPECT(gpt_embedding_sinusoidal_table(0, 2, -4, buf, 8), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "embed_dim");
    EXPECT(gpt_embedding_sinusoidal_table(-1, 2, 4, buf, 8), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "start_position");
    EXPECT(gpt_embedding_sinusoidal_table(0, 2, 4, buf, 7), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 8");
    EXPECT(gpt_embedding_sinusoidal_table(0, INT64_MAX, INT64_MAX, buf, 8), GPT_EMBEDDING_ERROR_SIZE_OVERFLOW, "overflows");
    EXPECT(gpt_embedding_sinusoidal_table(INT64_MAX, 1, 4, buf, 8), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "largest position");
    OK(gpt_embedding_sinusoidal_table(INT32_MAX, 1, 4, buf, 8)); /* the largest position, 2^31 - 1 */
    EXPECT(gpt_embedding_sinusoidal_table(INT32_MAX, 2, 4, buf, 8), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "2147483647");
}

static void handle_errors(void) {
    gpt_embedding *h = small_layer(GPT_EMBEDDING_POSITION_LEARNED);
    gpt_embedding_free(h);
    gpt_embedding_free(h); /* double free: a no-op */
    gpt_embedding_free(NULL);
    float out[8];
    int32_t id = 1;
    int64_t n;
    EXPECT(gpt_embedding_forward(h, &id, 1, 1, NULL, 0, 0, out, 8), GPT_EMBEDDING_ERROR_INVALID_HANDLE, "not a live handle");
    EXPECT(gpt_embedding_num_parameters(h, &n), GPT_EMBEDDING_ERROR_INVALID_HANDLE, NULL);
    EXPECT(gpt_embedding_zero_grad((gpt_embedding *)(uintptr_t)0x1234), GPT_EMBEDDING_ERROR_INVALID_HANDLE, NULL);
    EXPECT(gpt_embedding_zero_grad(NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "layer is NULL");
}

static void status_strings(void) {
    for (int s = 0; s <= 12; s++) {
        const char *t = gpt_embedding_status_string(s);
        CHECK(t != NULL && strncmp(t, "GPT_EMBEDDING_", 14) == 0, "status %d has a name", s);
    }
    CHECK(strstr(gpt_embedding_status_string(4), "OUT_OF_RANGE") != NULL, "status 4 is OUT_OF_RANGE");
    CHECK(gpt_embedding_status_string(-7) != NULL && gpt_embedding_status_string(999) != NULL, "unknown codes have text");
}

int main(void) {
    config_errors();
    forward_errors();
    state_errors();
    handle_errors();
    status_strings();
    return check_summary();
}
