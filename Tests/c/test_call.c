/* Calls with explicit state through the C ABI (gpt_embedding_call, gpt_embedding_grads,
 * gpt_embedding_forward_call, gpt_embedding_backward_call): bit for bit against the
 * stateful forward and backward, token_rows against token_embedding, skipped gradients,
 * every error path with nothing written, and empty calls (batch or seq 0) everywhere. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpt_embedding.h"

enum { V = 37, D = 24, L = 16, B = 3, T = 5, R = B * T, N = R * D, PAD = 4 };
#define SEED 11u
#define SENTINEL 42.0f

static int same_bits(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof *a) == 0; }
static void fill(float *a, int64_t n, float v) { for (int64_t i = 0; i < n; i++) a[i] = v; }
static int all_equal(const float *a, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) if (a[i] != v) return 0;
    return 1;
}

static gpt_embedding *make(int position_encoding, int64_t shard_end) {
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    c.vocab_size = V;
    c.embed_dim = D;
    c.max_seq_len = L;
    c.dropout = 0.25f;
    c.seed = SEED;
    c.padding_idx = PAD;
    c.num_threads = 2;
    c.init_std = 0.5f;
    c.position_encoding = position_encoding;
    c.shard_end = shard_end;
    gpt_embedding *h = NULL;
    int rc = gpt_embedding_create(&c, &h);
    CHECK(rc == GPT_EMBEDDING_OK, "create: %s", gpt_embedding_last_error());
    return h;
}

/* Parameters and gradients of a layer, for "nothing changed" checks (caller frees). */
static float *snapshot(const gpt_embedding *h, int64_t *count) {
    int64_t total = 0, rows, cols;
    for (int p = 0; p < 4; p++)
        if (gpt_embedding_parameter_shape(h, p, &rows, &cols) == 0) total += 2 * rows * cols;
    float *s = malloc((size_t)total * sizeof *s), *at = s;
    for (int p = 0; p < 4; p++) {
        if (gpt_embedding_parameter_shape(h, p, &rows, &cols) != 0) continue;
        gpt_embedding_get_parameter(h, p, at, rows * cols);
        gpt_embedding_get_gradient(h, p, at + rows * cols, rows * cols);
        at += 2 * rows * cols;
    }
    *count = total;
    return s;
}

static int unchanged(const gpt_embedding *h, const float *before, int64_t count) {
    int64_t n;
    float *now = snapshot(h, &n);
    int same = n == count && same_bits(now, before, n);
    free(now);
    return same;
}

static void inits(void) {
    gpt_embedding_call c;
    memset(&c, 0x5a, sizeof c);
    CHECK(gpt_embedding_call_init(&c, sizeof c) == GPT_EMBEDDING_OK, "call_init: %s", gpt_embedding_last_error());
    CHECK(c.struct_size == sizeof c && c.flags == 0 && c.index_dtype == GPT_EMBEDDING_INDEX_I32 && c.reserved == 0
          && c.ids == NULL && c.positions == NULL && c.batch == 0 && c.seq == 0 && c.start_position == 0
          && c.dropout_seed == 0 && c.dropout_offset == 0 && c.mean == NULL && c.rstd == NULL, "call defaults");
    CHECK(gpt_embedding_call_init(NULL, sizeof c) == GPT_EMBEDDING_ERROR_NULL_POINTER, "call_init NULL");
    gpt_embedding_call c2;
    memset(&c2, 0x5a, sizeof c2);
    CHECK(gpt_embedding_call_init(&c2, sizeof c2 - 8) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH
          && strstr(gpt_embedding_last_error(), "size = "), "call_init size: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_call_init(&c2, sizeof c2 + 8) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "call_init larger size");
    CHECK(((unsigned char *)&c2)[0] == 0x5a, "a failed call_init wrote");

    gpt_embedding_grads g;
    memset(&g, 0x5a, sizeof g);
    CHECK(gpt_embedding_grads_init(&g, sizeof g) == GPT_EMBEDDING_OK, "grads_init");
    CHECK(g.struct_size == sizeof g && g.reserved == 0 && g.token_embedding == NULL && g.token_embedding_len == 0
          && g.position_embedding == NULL && g.layer_norm_weight == NULL && g.layer_norm_bias == NULL
          && g.token_rows == NULL && g.token_rows_len == 0, "grads defaults");
    CHECK(gpt_embedding_grads_init(NULL, sizeof g) == GPT_EMBEDDING_ERROR_NULL_POINTER, "grads_init NULL");
    CHECK(gpt_embedding_grads_init(&g, 3) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "grads_init size");
}

/* Ids of step `step` (repeats and the padding row), int32 and int64. */
static void ids_of(int step, int32_t *ids32, int64_t *ids64) {
    for (int r = 0; r < R; r++) {
        int32_t v = (r % 4 == 1) ? PAD : (int32_t)((r * 7 + step * 3) % 12);
        ids32[r] = v;
        ids64[r] = v;
    }
}

static void gradient_of(int step, float *dy) {
    for (int i = 0; i < N; i++) dy[i] = (float)((i * 37 + step * 11) % 29) / 7.0f - 2.0f;
}

/* Three training steps of a stateful layer against the same steps as explicit calls (seed
 * SEED, offset n, int32 and int64 ids, explicit positions in one step), gradients into
 * caller buffers and into a third layer's own: outputs and gradients bit for bit. */
static void stateful_equals_explicit(uint32_t norm) {
    gpt_embedding *a = make(GPT_EMBEDDING_POSITION_LEARNED, 0), *b = make(GPT_EMBEDDING_POSITION_LEARNED, 0),
                  *own = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    static float ya[N], yb[N], dy[N], mean[R], rstd[R];
    static float dwte[V * D], dwpe[L * D], dg[D], dbt[D], ref[V * D];
    fill(dwte, V * D, 0); fill(dwpe, L * D, 0); fill(dg, D, 0); fill(dbt, D, 0);
    int32_t ids32[R], pos32[R];
    int64_t ids64[R], pos64[R];
    for (int step = 0; step < 3; step++) {
        ids_of(step, ids32, ids64);
        for (int r = 0; r < R; r++) { pos32[r] = (r * 5 + step) % L; pos64[r] = pos32[r]; }
        int wide = step == 1, explicit_positions = step == 2;
        uint32_t flags = GPT_EMBEDDING_TRAINING | norm;
        int rc = wide ? gpt_embedding_forward_i64(a, ids64, B, T, NULL, 2, flags, ya, N)
                      : gpt_embedding_forward(a, ids32, B, T, explicit_positions ? pos32 : NULL, 2, flags, ya, N);
        CHECK(rc == 0, "stateful forward: %s", gpt_embedding_last_error());
        gradient_of(step, dy);
        CHECK(gpt_embedding_backward(a, dy, B, T) == 0, "stateful backward");

        gpt_embedding_call c;
        gpt_embedding_call_init(&c, sizeof c);
        c.flags = flags;
        c.index_dtype = wide ? GPT_EMBEDDING_INDEX_I64 : GPT_EMBEDDING_INDEX_I32;
        c.ids = wide ? (const void *)ids64 : (const void *)ids32;
        c.positions = explicit_positions ? (const void *)pos32 : NULL;
        c.batch = B;
        c.seq = T;
        c.start_position = 2;
        c.dropout_seed = SEED;
        c.dropout_offset = (uint64_t)step;
        c.mean = mean;
        c.rstd = rstd;
        fill(yb, N, SENTINEL);
        CHECK(gpt_embedding_forward_call(b, &c, GPT_EMBEDDING_DTYPE_F32, yb, N) == 0, "forward_call: %s", gpt_embedding_last_error());
        CHECK(same_bits(ya, yb, N), "forward_call differs from the stateful forward, step %d norm %u", step, norm);
        (void)pos64;

        gpt_embedding_grads g;
        gpt_embedding_grads_init(&g, sizeof g);
        g.token_embedding = dwte; g.token_embedding_len = V * D;
        g.position_embedding = dwpe; g.position_embedding_len = L * D;
        g.layer_norm_weight = dg; g.layer_norm_weight_len = D;
        g.layer_norm_bias = dbt; g.layer_norm_bias_len = D;
        CHECK(gpt_embedding_backward_call(b, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, &g) == 0, "backward_call: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward_call(own, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, NULL) == 0, "backward_call into the layer: %s",
              gpt_embedding_last_error());
    }
    gpt_embedding_get_gradient(a, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, ref, V * D);
    CHECK(same_bits(dwte, ref, V * D), "token gradient, norm %u", norm);
    gpt_embedding_get_gradient(a, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, ref, L * D);
    CHECK(same_bits(dwpe, ref, L * D), "position gradient, norm %u", norm);
    gpt_embedding_get_gradient(a, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, ref, D);
    CHECK(same_bits(dg, ref, D), "layer norm weight gradient, norm %u", norm);
    gpt_embedding_get_gradient(a, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, ref, D);
    CHECK(same_bits(dbt, ref, D), "layer norm bias gradient, norm %u", norm);
    /* grads NULL: the layer's own gradients and touched rows, exactly the stateful backward's. */
    int64_t ca, cb;
    float *sa = snapshot(a, &ca);
    CHECK(unchanged(own, sa, ca), "backward_call into the layer differs from backward");
    int32_t ra[V], rb[V];
    int64_t na = 0, nb = 0;
    gpt_embedding_touched_rows(a, ra, V, &na);
    gpt_embedding_touched_rows(own, rb, V, &nb);
    CHECK(na == nb && na > 0 && memcmp(ra, rb, (size_t)na * sizeof *ra) == 0, "touched rows");
    /* The layer that ran only calls into buffers has no gradient and no touched row. */
    gpt_embedding_touched_rows(b, rb, V, &nb);
    CHECK(nb == 0, "backward_call into buffers recorded rows");
    float *sb = snapshot(b, &cb);
    int zero = 1;
    for (int64_t i = V * D; i < 2 * V * D; i++) zero &= sb[i] == 0;
    CHECK(zero, "backward_call into buffers wrote the layer's gradient");
    /* A step with the layer's own gradients works after backward_call (grads NULL). */
    CHECK(gpt_embedding_adamw_step(own, NULL) == 0, "adamw_step after backward_call: %s", gpt_embedding_last_error());
    free(sa);
    free(sb);
    gpt_embedding_free(a);
    gpt_embedding_free(b);
    gpt_embedding_free(own);
}

/* bf16 output and grad_output: forward_call against forward_typed, backward_call against
 * backward_typed. */
static void typed(void) {
    gpt_embedding *a = make(GPT_EMBEDDING_POSITION_SINUSOIDAL, 0), *b = make(GPT_EMBEDDING_POSITION_SINUSOIDAL, 0);
    int32_t ids[R];
    int64_t ids64[R];
    ids_of(0, ids, ids64);
    static uint16_t ya[N], yb[N], dy[N];
    static float ra[V * D], rb[V * D], mean[R], rstd[R];
    for (int i = 0; i < N; i++) dy[i] = (uint16_t)(0x3f00 + (i % 200));
    uint32_t flags = GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM;
    CHECK(gpt_embedding_forward_typed(a, ids, B, T, NULL, 0, flags, GPT_EMBEDDING_DTYPE_BF16, ya, N) == 0, "forward_typed");
    CHECK(gpt_embedding_backward_typed(a, GPT_EMBEDDING_DTYPE_BF16, dy, B, T) == 0, "backward_typed");
    gpt_embedding_call c;
    gpt_embedding_call_init(&c, sizeof c);
    c.flags = flags; c.ids = ids; c.batch = B; c.seq = T; c.dropout_seed = SEED; c.mean = mean; c.rstd = rstd;
    CHECK(gpt_embedding_forward_call(b, &c, GPT_EMBEDDING_DTYPE_BF16, yb, N) == 0, "forward_call bf16: %s", gpt_embedding_last_error());
    CHECK(memcmp(ya, yb, sizeof ya) == 0, "bf16 forward_call differs");
    gpt_embedding_grads g;
    gpt_embedding_grads_init(&g, sizeof g);
    fill(rb, V * D, 0);
    g.token_embedding = rb; g.token_embedding_len = V * D;
    CHECK(gpt_embedding_backward_call(b, &c, GPT_EMBEDDING_DTYPE_BF16, dy, N, &g) == 0, "backward_call bf16: %s", gpt_embedding_last_error());
    gpt_embedding_get_gradient(a, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, ra, V * D);
    CHECK(same_bits(ra, rb, V * D), "bf16 backward_call differs");
    gpt_embedding_free(a);
    gpt_embedding_free(b);
}

/* token_rows summed into a zero table gives token_embedding bit for bit; padding tokens
 * get zero rows; requesting only some gradients gives the same values for those and
 * leaves the rest alone; nothing requested does nothing. */
static void token_rows_and_skipping(void) {
    gpt_embedding *h = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    static float y[N], dy[N], mean[R], rstd[R], rows[N], dwte[V * D], dwpe[L * D], table[V * D], alone[L * D], rows2[N];
    int32_t distinct[R], ids[R];
    int64_t ids64[R];
    for (int r = 0; r < R; r++) distinct[r] = r == 3 ? PAD : r + 5;
    ids_of(2, ids, ids64);
    const int32_t *lists[2] = {distinct, ids};
    for (int which = 0; which < 2; which++) {
        gpt_embedding_call c;
        gpt_embedding_call_init(&c, sizeof c);
        c.flags = GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM;
        c.ids = lists[which]; c.batch = B; c.seq = T; c.dropout_seed = 3; c.dropout_offset = 9; c.mean = mean; c.rstd = rstd;
        CHECK(gpt_embedding_forward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, y, N) == 0, "forward_call");
        gradient_of(which, dy);
        fill(rows, N, SENTINEL); fill(dwte, V * D, 0); fill(dwpe, L * D, 0);
        gpt_embedding_grads g;
        gpt_embedding_grads_init(&g, sizeof g);
        g.token_embedding = dwte; g.token_embedding_len = V * D;
        g.position_embedding = dwpe; g.position_embedding_len = L * D;
        g.token_rows = rows; g.token_rows_len = N;
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, &g) == 0, "backward_call: %s", gpt_embedding_last_error());
        fill(table, V * D, 0);
        for (int r = 0; r < R; r++)
            for (int k = 0; k < D; k++) table[lists[which][r] * D + k] += rows[r * D + k];
        CHECK(same_bits(table, dwte, V * D), "token_rows summed differ from token_embedding (list %d)", which);
        int pad_zero = 1, some = 0;
        for (int r = 0; r < R; r++)
            for (int k = 0; k < D; k++) {
                if (lists[which][r] == PAD) pad_zero &= rows[r * D + k] == 0;
                some |= rows[r * D + k] != 0;
            }
        CHECK(pad_zero && some, "padding tokens' rows are zero, the others not");
        /* Only the position gradient; only token rows: the same values. */
        gpt_embedding_grads only;
        gpt_embedding_grads_init(&only, sizeof only);
        fill(alone, L * D, 0);
        only.position_embedding = alone; only.position_embedding_len = L * D;
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, &only) == 0, "position only");
        CHECK(same_bits(alone, dwpe, L * D), "position gradient alone differs");
        gpt_embedding_grads_init(&only, sizeof only);
        fill(rows2, N, -1);
        only.token_rows = rows2; only.token_rows_len = N + 5;
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, &only) == 0, "rows only");
        CHECK(same_bits(rows2, rows, N), "token rows alone differ");
        /* Nothing wanted: OK, nothing happens. */
        gpt_embedding_grads_init(&only, sizeof only);
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, dy, N, &only) == 0, "nothing wanted");
    }
    int64_t count = 0;
    gpt_embedding_touched_rows(h, NULL, 0, &count);
    CHECK(count == 0, "the layer recorded rows");
    gpt_embedding_free(h);
}

/* Borrowed tables: a layer with other weights computes, from another layer's tables given
 * in the call, exactly what that layer computes with its own; the borrowed memory is only
 * read; wrong lengths, misaligned tables and a position table without learned positions
 * are refused with nothing written. */
static void borrowed_tables(void) {
    gpt_embedding *owner = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    gpt_embedding_config c;
    gpt_embedding_layer_config(owner, &c, sizeof c);
    c.seed = 99;
    gpt_embedding *borrower = NULL;
    CHECK(gpt_embedding_create(&c, &borrower) == 0, "create");
    static float wte[V * D], wpe[L * D], lnw[D], lnb[D], copy[V * D];
    static float y1[N], y2[N], dy[N], mean[R], rstd[R], g1[V * D], g2[V * D], r1[N], r2[N];
    for (int k = 0; k < D; k++) { lnw[k] = 1.0f + (float)k / 16; lnb[k] = (float)k / 32 - 0.25f; }
    gpt_embedding_set_parameter(owner, GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT, lnw, D);
    gpt_embedding_set_parameter(owner, GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS, lnb, D);
    gpt_embedding_get_parameter(owner, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, wte, V * D);
    gpt_embedding_get_parameter(owner, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, wpe, L * D);
    memcpy(copy, wte, sizeof wte);
    int32_t ids[R];
    int64_t ids64[R];
    ids_of(1, ids, ids64);
    gradient_of(1, dy);
    gpt_embedding_call call;
    gpt_embedding_call_init(&call, sizeof call);
    call.flags = GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM;
    call.ids = ids; call.batch = B; call.seq = T; call.dropout_seed = 5; call.dropout_offset = 2; call.mean = mean; call.rstd = rstd;
    gpt_embedding_grads g;
    gpt_embedding_grads_init(&g, sizeof g);
    g.token_embedding = g1; g.token_embedding_len = V * D; g.token_rows = r1; g.token_rows_len = N;
    fill(g1, V * D, 0);
    CHECK(gpt_embedding_forward_call(owner, &call, 0, y1, N) == 0, "owner forward_call");
    CHECK(gpt_embedding_backward_call(owner, &call, 0, dy, N, &g) == 0, "owner backward_call");
    gpt_embedding_call b = call;
    b.token_embedding = wte; b.token_embedding_len = V * D;
    b.position_embedding = wpe; b.position_embedding_len = L * D;
    b.layer_norm_weight = lnw; b.layer_norm_weight_len = D;
    b.layer_norm_bias = lnb; b.layer_norm_bias_len = D;
    g.token_embedding = g2; g.token_rows = r2;
    fill(g2, V * D, 0);
    CHECK(gpt_embedding_forward_call(borrower, &b, 0, y2, N) == 0, "borrower forward_call: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_backward_call(borrower, &b, 0, dy, N, &g) == 0, "borrower backward_call: %s", gpt_embedding_last_error());
    CHECK(same_bits(y1, y2, N), "forward with borrowed tables differs");
    CHECK(same_bits(g1, g2, V * D) && same_bits(r1, r2, N), "backward with borrowed tables differs");
    CHECK(same_bits(copy, wte, V * D), "a borrowed table was written");
    CHECK(gpt_embedding_forward_call(borrower, &call, 0, y2, N) == 0 && !same_bits(y1, y2, N), "the borrower's own tables differ");

    /* Refusals: nothing written. */
    const char *texts[] = {"the borrowed token_embedding has 887 elements", "call->position_embedding_len = -1",
                           "the borrowed layer_norm_weight has 25 elements", "is not aligned", "no learned position table"};
    for (int i = 0; i < 5; i++) {
        gpt_embedding_call bad = b;
        gpt_embedding *h = borrower;
        if (i == 0) bad.token_embedding_len = V * D - 1;
        if (i == 1) bad.position_embedding_len = -1;
        if (i == 2) bad.layer_norm_weight_len = D + 1;
        if (i == 3) bad.layer_norm_bias = (const float *)((const char *)lnb + 1);
        gpt_embedding *sin = NULL;
        if (i == 4) { sin = make(GPT_EMBEDDING_POSITION_SINUSOIDAL, 0); h = sin; }
        fill(y2, N, SENTINEL); fill(g2, V * D, SENTINEL);
        int rc = gpt_embedding_forward_call(h, &bad, 0, y2, N);
        CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), texts[i]), "forward %d: %s", i,
              gpt_embedding_last_error());
        rc = gpt_embedding_backward_call(h, &bad, 0, dy, N, &g);
        CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && strstr(gpt_embedding_last_error(), texts[i]), "backward %d: %s", i,
              gpt_embedding_last_error());
        CHECK(all_equal(y2, N, SENTINEL) && all_equal(g2, V * D, SENTINEL), "refused call %d wrote", i);
        if (sin) gpt_embedding_free(sin);
    }
    gpt_embedding_free(owner);
    gpt_embedding_free(borrower);
}

/* Every error: its code, a message naming the problem, and nothing written. */
static void errors(void) {
    gpt_embedding *h = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    static float out[N], dy[N], mean[R], rstd[R], dwte[V * D], dwpe[L * D], dg[D], dbt[D], rows[N];
    int32_t ids[R], bad[R];
    int64_t ids64[R], bad64[R], pos64[R];
    ids_of(0, ids, ids64);
    memcpy(bad, ids, sizeof ids);
    memcpy(bad64, ids64, sizeof ids64);
    bad[7] = V;
    bad64[7] = -1;
    for (int r = 0; r < R; r++) pos64[r] = r == 4 ? L : r % L;
    gradient_of(0, dy);
    /* The layer has gradients already, so "unchanged" also covers them. */
    CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, out, N) == 0, "forward");
    CHECK(gpt_embedding_backward(h, dy, B, T) == 0, "backward");
    int64_t count;
    float *before = snapshot(h, &count);

    gpt_embedding_call good;
    gpt_embedding_call_init(&good, sizeof good);
    good.flags = GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM;
    good.ids = ids; good.batch = B; good.seq = T; good.mean = mean; good.rstd = rstd;
    gpt_embedding_grads all;
    gpt_embedding_grads_init(&all, sizeof all);
    all.token_embedding = dwte; all.token_embedding_len = V * D;
    all.position_embedding = dwpe; all.position_embedding_len = L * D;
    all.layer_norm_weight = dg; all.layer_norm_weight_len = D;
    all.layer_norm_bias = dbt; all.layer_norm_bias_len = D;
    all.token_rows = rows; all.token_rows_len = N;

#define RESET() do { fill(out, N, SENTINEL); fill(mean, R, SENTINEL); fill(rstd, R, SENTINEL); fill(dwte, V * D, SENTINEL); \
        fill(dwpe, L * D, SENTINEL); fill(dg, D, SENTINEL); fill(dbt, D, SENTINEL); fill(rows, N, SENTINEL); } while (0)
#define UNTOUCHED() (all_equal(out, N, SENTINEL) && all_equal(mean, R, SENTINEL) && all_equal(rstd, R, SENTINEL) \
        && all_equal(dwte, V * D, SENTINEL) && all_equal(dwpe, L * D, SENTINEL) && all_equal(dg, D, SENTINEL) \
        && all_equal(dbt, D, SENTINEL) && all_equal(rows, N, SENTINEL))
#define FAILS(expr, code, text) do { RESET(); int rc_ = (expr); const char *m_ = gpt_embedding_last_error(); \
        CHECK(rc_ == (code), "%s returned %d (%s), expected %d", #expr, rc_, m_ ? m_ : "no message", (int)(code)); \
        CHECK(m_ && strstr(m_, (text)), "%s: message \"%s\" lacks \"%s\"", #expr, m_ ? m_ : "", (text)); \
        CHECK(UNTOUCHED(), "%s wrote a buffer", #expr); CHECK(unchanged(h, before, count), "%s changed the layer", #expr); } while (0)
#define FWD(c) gpt_embedding_forward_call(h, &(c), GPT_EMBEDDING_DTYPE_F32, out, N)
#define BWD(c, g) gpt_embedding_backward_call(h, &(c), GPT_EMBEDDING_DTYPE_F32, dy, N, (g))

    gpt_embedding_call c = good;
    FAILS(gpt_embedding_forward_call(NULL, &c, 0, out, N), GPT_EMBEDDING_ERROR_NULL_POINTER, "layer is NULL");
    FAILS(gpt_embedding_forward_call(h, NULL, 0, out, N), GPT_EMBEDDING_ERROR_NULL_POINTER, "call is NULL");
    FAILS(gpt_embedding_forward_call(h, &c, 0, NULL, N), GPT_EMBEDDING_ERROR_NULL_POINTER, "out is NULL");
    FAILS(gpt_embedding_forward_call(h, &c, 5, out, N), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "out_dtype = 5");
    FAILS(gpt_embedding_forward_call(h, &c, 0, out, N - 1), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 360");
    FAILS(gpt_embedding_forward_call(h, &c, 0, out, -1), GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL, "needs 360");
    FAILS(gpt_embedding_backward_call(NULL, &c, 0, dy, N, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "layer is NULL");
    FAILS(gpt_embedding_backward_call(h, NULL, 0, dy, N, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "call is NULL");
    FAILS(gpt_embedding_backward_call(h, &c, 0, NULL, N, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "grad_output is NULL");
    FAILS(gpt_embedding_backward_call(h, &c, 0, NULL, N, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "grad_output is NULL");
    FAILS(gpt_embedding_backward_call(h, &c, 9, dy, N, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grad_dtype = 9");
    FAILS(gpt_embedding_backward_call(h, &c, 0, dy, N - 1, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grad_output has 359 elements");
    FAILS(gpt_embedding_backward_call(h, &c, 0, dy, N + 1, NULL), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grad_output has 361 elements");
    FAILS(gpt_embedding_backward_call(h, &c, 0, dy, -5, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grad_len = -5");

    /* The call struct. */
    c = good; c.struct_size = 8;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "call->struct_size = 8");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "call->struct_size = 8");
    c = good; c.struct_size += 8;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "call->struct_size");
    c = good; c.reserved = 1;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "call->reserved = 1");
    FAILS(BWD(c, NULL), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "call->reserved = 1");
    c = good; c.index_dtype = 2;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "call->index_dtype = 2");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "call->index_dtype = 2");
    c = good; c.flags = 8;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown call->flags 0x8");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown call->flags 0x8");
    c = good; c.flags = GPT_EMBEDDING_LAYER_NORM | GPT_EMBEDDING_NO_LAYER_NORM;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "call->flags: GPT_EMBEDDING_LAYER_NORM and GPT_EMBEDDING_NO_LAYER_NORM");
    c = good; c.ids = NULL;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_NULL_POINTER, "call->ids is NULL");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "call->ids is NULL");
    c = good; c.batch = -1;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "batch must be >= 0, got -1");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "batch must be >= 0, got -1");
    c = good; c.seq = -3;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "seq must be >= 0, got -3");
    c = good; c.batch = (int64_t)1 << 40; c.seq = (int64_t)1 << 40;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_SIZE_OVERFLOW, "overflows");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_SIZE_OVERFLOW, "overflows");
    c = good; c.ids = bad;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id 37 at [1, 2] is out of range [0, 37)");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id 37 at [1, 2]");
    FAILS(BWD(c, NULL), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id 37 at [1, 2]");
    c = good; c.index_dtype = GPT_EMBEDDING_INDEX_I64; c.ids = bad64;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id -1 at [1, 2]");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "token id -1 at [1, 2]");
    c = good; c.index_dtype = GPT_EMBEDDING_INDEX_I64; c.ids = ids64; c.positions = pos64;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 16 at [0, 4]");
    FAILS(BWD(c, NULL), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 16 at [0, 4]");
    c = good; c.start_position = -1;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "start_position must be >= 0, got -1");
    c = good; c.start_position = L - 2;
    FAILS(FWD(c), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 16 at [0, 2]");
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "position 16 at [0, 2]");
    c = good; c.mean = NULL;
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "call->mean is NULL");
    FAILS(BWD(c, NULL), GPT_EMBEDDING_ERROR_NULL_POINTER, "call->mean is NULL");
    c = good; c.rstd = NULL;
    FAILS(BWD(c, &all), GPT_EMBEDDING_ERROR_NULL_POINTER, "call->rstd is NULL");

    /* The grads struct. */
    c = good;
    gpt_embedding_grads g = all;
    g.struct_size = 4;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "grads->struct_size = 4");
    g = all; g.reserved = 2;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grads->reserved = 2");
    g = all; g.token_embedding_len = V * D - 1;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "token_embedding gradient buffer holds 887 floats, needs 888");
    g = all; g.token_embedding_len = -1;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grads->token_embedding_len = -1");
    g = all; g.position_embedding_len = 0;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "position_embedding gradient buffer holds 0 floats");
    g = all; g.layer_norm_weight_len = D - 1;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "layer_norm_weight gradient buffer");
    g = all; g.layer_norm_bias_len = 1;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "layer_norm_bias gradient buffer");
    g = all; g.token_rows_len = N - 1;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "token_rows gradient buffer holds 359 floats, needs 360");
    g = all; g.token_rows_len = INT64_MIN;
    FAILS(BWD(c, &g), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "grads->token_rows_len");

    /* A freed handle; a position buffer without learned positions; a shard. */
    gpt_embedding *gone = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    gpt_embedding_free(gone);
    FAILS(gpt_embedding_forward_call(gone, &good, 0, out, N), GPT_EMBEDDING_ERROR_INVALID_HANDLE, "not a live handle");
    FAILS(gpt_embedding_backward_call(gone, &good, 0, dy, N, &all), GPT_EMBEDDING_ERROR_INVALID_HANDLE, "not a live handle");
    gpt_embedding *sin = make(GPT_EMBEDDING_POSITION_SINUSOIDAL, 0);
    FAILS(gpt_embedding_backward_call(sin, &good, 0, dy, N, &all), GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "no learned position table");
    gpt_embedding_free(sin);
    gpt_embedding *shard = make(GPT_EMBEDDING_POSITION_LEARNED, 20);
    FAILS(gpt_embedding_forward_call(shard, &good, 0, out, N), GPT_EMBEDDING_ERROR_BAD_STATE, "holds rows [0, 20)");
    FAILS(gpt_embedding_backward_call(shard, &good, 0, dy, N, &all), GPT_EMBEDDING_ERROR_BAD_STATE, "holds rows [0, 20)");
    FAILS(gpt_embedding_backward_call(shard, &good, 0, dy, N, NULL), GPT_EMBEDDING_ERROR_BAD_STATE, "holds rows [0, 20)");
    gpt_embedding_free(shard);
    free(before);
    gpt_embedding_free(h);
}

/* Empty calls: batch or seq 0 is OK, writes nothing, and its pointers may be NULL. */
static void empty_calls(void) {
    gpt_embedding *h = make(GPT_EMBEDDING_POSITION_LEARNED, 0);
    static float out[8], grad[8];
    int32_t ids[2] = {1, 2};
    int64_t count;
    float *before = snapshot(h, &count);
    const int64_t shapes[3][2] = {{0, 3}, {2, 0}, {0, 0}};
    for (int s = 0; s < 3; s++) {
        int64_t b = shapes[s][0], t = shapes[s][1];
        const uint32_t train = GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM;
        fill(out, 8, SENTINEL);
        CHECK(gpt_embedding_forward(h, NULL, b, t, NULL, 0, 0, NULL, 0) == 0, "forward: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_forward_i64(h, NULL, b, t, NULL, 99999, train, NULL, 0) == 0, "forward_i64: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward(h, NULL, b, t) == 0, "backward of an empty forward: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward_typed(h, GPT_EMBEDDING_DTYPE_BF16, NULL, b, t) == 0, "backward_typed: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_forward_typed(h, ids, b, t, NULL, 0, train, GPT_EMBEDDING_DTYPE_F16, out, 8) == 0, "forward_typed");
        CHECK(gpt_embedding_forward_typed_i64(h, NULL, b, t, NULL, 0, 0, GPT_EMBEDDING_DTYPE_BF16, NULL, 0) == 0, "forward_typed_i64");
        CHECK(gpt_embedding_forward_partial(h, NULL, b, t, NULL, 0, train, NULL, 0) == 0, "forward_partial: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_forward_finish(h, b, t, NULL, 0) == 0, "forward_finish: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward(h, grad, b, t) == 0, "backward after an empty two-phase forward");
        CHECK(gpt_embedding_forward_partial_i64(h, NULL, b, t, NULL, 0, 0, out, 8) == 0, "forward_partial_i64");
        CHECK(gpt_embedding_forward_finish(h, b, t, out, 8) == 0, "forward_finish");
        gpt_embedding_call c;
        gpt_embedding_call_init(&c, sizeof c);
        c.flags = train; c.batch = b; c.seq = t;
        gpt_embedding_grads g;
        gpt_embedding_grads_init(&g, sizeof g);
        CHECK(gpt_embedding_forward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, NULL, 0) == 0, "forward_call: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, NULL, 0, NULL) == 0, "backward_call: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_backward_call(h, &c, GPT_EMBEDDING_DTYPE_F32, NULL, 0, &g) == 0, "backward_call grads: %s", gpt_embedding_last_error());
        CHECK(all_equal(out, 8, SENTINEL), "an empty call wrote its output");
    }
    /* The backward of an empty forward must still match its shape; negative sizes stay errors. */
    CHECK(gpt_embedding_forward(h, NULL, 0, 4, NULL, 0, GPT_EMBEDDING_TRAINING, NULL, 0) == 0, "forward");
    CHECK(gpt_embedding_backward(h, NULL, 4, 0) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "backward of another shape");
    CHECK(gpt_embedding_forward(h, ids, -1, 0, NULL, 0, 0, out, 8) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "negative batch");
    CHECK(gpt_embedding_forward(h, NULL, 0, -1, NULL, 0, 0, out, 8) == GPT_EMBEDDING_ERROR_NULL_POINTER, "negative seq, NULL ids");
    gpt_embedding_call c;
    gpt_embedding_call_init(&c, sizeof c);
    c.batch = 0; c.seq = -2;
    CHECK(gpt_embedding_forward_call(h, &c, 0, out, 8) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL ids, not empty");
    c.ids = ids;
    CHECK(gpt_embedding_forward_call(h, &c, 0, out, 8) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "negative seq");
    /* Validation of the scalars still applies to empty calls. */
    c.seq = 0; c.flags = 64;
    CHECK(gpt_embedding_forward_call(h, &c, 0, NULL, 0) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "flags of an empty call");
    c.flags = 0;
    CHECK(gpt_embedding_forward_call(h, &c, 7, NULL, 0) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "out_dtype of an empty call");
    CHECK(unchanged(h, before, count), "empty calls changed the layer");
    int64_t touched = -1;
    gpt_embedding_touched_rows(h, NULL, 0, &touched);
    CHECK(touched == 0, "empty calls touched rows");
    free(before);
    gpt_embedding_free(h);
}

int main(void) {
    inits();
    stateful_equals_explicit(0);
    stateful_equals_explicit(GPT_EMBEDDING_LAYER_NORM);
    typed();
    token_rows_and_skipping();
    borrowed_tables();
    errors();
    empty_calls();
    return check_summary();
}
