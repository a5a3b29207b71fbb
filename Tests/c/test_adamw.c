/* The AdamW step from C (issue 13): every bad input gives a clear error and changes
 * nothing; the state is reachable, saved and restored so training resumes bit for bit;
 * 1 and 2 threads give the same bits. With a folder argument, also every PyTorch golden
 * file in it (Tests/golden/adamw, read by adamw_golden.c). */
#include "gpt_embedding.h"
#include "check.h"
#include "adamw_golden.h"
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define V 64
#define D 20
#define T 8

static gpt_embedding *make(int threads, uint64_t seed, int dtype) {
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    c.vocab_size = V;
    c.embed_dim = D;
    c.max_seq_len = T;
    c.dropout = 0.1f;
    c.init_std = 0.5f;
    c.scale_embeddings = 0;
    c.num_threads = threads;
    c.seed = seed;
    c.weight_dtype = dtype;
    gpt_embedding *l = NULL;
    int s = gpt_embedding_create(&c, &l);
    CHECK(s == GPT_EMBEDDING_OK, "create: %s", gpt_embedding_last_error());
    return l;
}

/* zero_grad, a training forward with layer norm and a backward on a batch from `seed`. */
static void batch(gpt_embedding *l, unsigned seed) {
    int32_t ids[2 * T];
    float out[2 * T * D], dy[2 * T * D];
    srand(seed);
    for (int i = 0; i < 2 * T; i++) ids[i] = rand() % (V / 2);  /* rows V/2.. never touched */
    for (int i = 0; i < 2 * T * D; i++) dy[i] = (float)rand() / RAND_MAX - 0.5f;
    CHECK(gpt_embedding_zero_grad(l) == GPT_EMBEDDING_OK, "zero_grad");
    CHECK(gpt_embedding_forward(l, ids, 2, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM,
                                out, 2 * T * D) == GPT_EMBEDDING_OK, "forward: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_backward(l, dy, 2, T) == GPT_EMBEDDING_OK, "backward: %s", gpt_embedding_last_error());
}

/* Every parameter (as float32) and every state tensor, concatenated; caller frees. */
static float *snapshot(gpt_embedding *l, int64_t *n) {
    int64_t total = 0;
    float *all = NULL;
    for (int p = 0; p < 4; p++) {
        int64_t rows, cols;
        gpt_embedding_parameter_shape(l, p, &rows, &cols);
        int64_t count = rows * cols;
        all = realloc(all, (size_t)(total + 4 * count + 1) * sizeof(float));
        gpt_embedding_get_parameter(l, p, all + total, count);
        total += count;
        int64_t step = -1;
        gpt_embedding_optimizer_get_step(l, p, &step);
        all[total++] = (float)step;
        if (step > 0) {
            for (int k = 0; k < 3; k++) {
                float *data;
                int64_t len;
                if (gpt_embedding_optimizer_state_data(l, p, k, &data, &len) != GPT_EMBEDDING_OK) continue;
                memcpy(all + total, data, (size_t)len * sizeof(float));
                total += len;
            }
        }
    }
    *n = total;
    return all;
}

static int same(gpt_embedding *a, gpt_embedding *b) {
    int64_t na, nb;
    float *x = snapshot(a, &na), *y = snapshot(b, &nb);
    int eq = na == nb && memcmp(x, y, (size_t)na * sizeof(float)) == 0;
    free(x);
    free(y);
    return eq;
}

static void test_bad_input(void) {
    gpt_embedding *l = make(1, 1, GPT_EMBEDDING_DTYPE_F32);
    gpt_embedding_adamw_options o;
    CHECK(gpt_embedding_adamw_options_init(&o, sizeof o) == GPT_EMBEDDING_OK, "init");
    CHECK(o.struct_size == sizeof o && o.lr == 1e-3 && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8 &&
          o.weight_decay == 0.01 && o.grad_scale == 1 && o.params == GPT_EMBEDDING_PARAMS_ALL &&
          o.decay_params == GPT_EMBEDDING_PARAMS_ALL && o.lazy == 0, "torch.optim.AdamW's defaults");
    CHECK(gpt_embedding_adamw_options_init(&o, sizeof o - 8) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "short size");
    CHECK(gpt_embedding_adamw_options_init(NULL, sizeof o) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL");

    /* A step before any backward. */
    CHECK(gpt_embedding_adamw_step(l, NULL) == GPT_EMBEDDING_ERROR_BAD_STATE, "step before backward");
    CHECK(strstr(gpt_embedding_last_error(), "backward") != NULL, "message: %s", gpt_embedding_last_error());
    int64_t step = -1;
    CHECK(gpt_embedding_optimizer_get_step(l, 0, &step) == GPT_EMBEDDING_OK && step == 0, "no state: %lld", (long long)step);

    batch(l, 1);
    CHECK(gpt_embedding_adamw_step(l, NULL) == GPT_EMBEDDING_OK, "a first step: %s", gpt_embedding_last_error());
    int64_t n0;
    float *before = snapshot(l, &n0);

    struct { const char *field; double value; const char *named; } bad[] = {
        {"lr", -1e-3, "lr"}, {"lr", NAN, "lr"}, {"lr", INFINITY, "lr"},
        {"beta1", 1.0, "beta1"}, {"beta1", -0.5, "beta1"}, {"beta1", NAN, "beta1"},
        {"beta2", 1.0, "beta2"}, {"beta2", 2.0, "beta2"},
        {"eps", 0.0, "eps"}, {"eps", -1.0, "eps"}, {"eps", INFINITY, "eps"},
        {"weight_decay", -0.01, "weight_decay"}, {"weight_decay", NAN, "weight_decay"},
        {"grad_scale", -1.0, "grad_scale"}, {"grad_scale", NAN, "grad_scale"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gpt_embedding_adamw_options_init(&o, sizeof o);
        double *f = !strcmp(bad[i].field, "lr") ? &o.lr : !strcmp(bad[i].field, "beta1") ? &o.beta1
                  : !strcmp(bad[i].field, "beta2") ? &o.beta2 : !strcmp(bad[i].field, "eps") ? &o.eps
                  : !strcmp(bad[i].field, "weight_decay") ? &o.weight_decay : &o.grad_scale;
        *f = bad[i].value;
        int s = gpt_embedding_adamw_step(l, &o);
        CHECK(s == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "%s = %g: status %d", bad[i].field, bad[i].value, s);
        CHECK(strstr(gpt_embedding_last_error(), bad[i].named) != NULL, "message names %s: %s", bad[i].named,
              gpt_embedding_last_error());
    }
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.params = 0x10;
    CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown params bit");
    CHECK(strstr(gpt_embedding_last_error(), "params") != NULL, "%s", gpt_embedding_last_error());
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.decay_params = 0x80000000u;
    CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown decay_params bit");
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.lazy = 2;
    CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "lazy 2");
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.struct_size = 48;
    CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "struct of an unknown size");
    CHECK(strstr(gpt_embedding_last_error(), "struct_size = 48") != NULL, "%s", gpt_embedding_last_error());
    o.struct_size = 4096;
    CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "a larger struct");
    CHECK(gpt_embedding_adamw_step(NULL, NULL) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL layer");

    /* State accessors. */
    float *data = (float *)1;
    int64_t len = 0;
    CHECK(gpt_embedding_optimizer_state_data(l, 0, GPT_EMBEDDING_STATE_MASTER, &data, &len) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && data == NULL,
          "float32 tables have no master");
    CHECK(gpt_embedding_optimizer_state_data(l, 0, 7, &data, &len) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "kind 7");
    CHECK(gpt_embedding_optimizer_state_data(l, 9, 0, &data, &len) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "param 9");
    CHECK(gpt_embedding_optimizer_state_data(l, 0, 0, NULL, &len) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL out");
    CHECK(gpt_embedding_optimizer_set_step(l, 0, -1) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "negative step");
    CHECK(gpt_embedding_save_safetensors(l, "/nonexistent-dir/x.safetensors", 4) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown save flag");

    int64_t n1;
    float *after = snapshot(l, &n1);
    CHECK(n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) == 0, "nothing changed by the bad calls");
    free(before);
    free(after);

    /* After zero_grad there is nothing to apply. */
    gpt_embedding_zero_grad(l);
    CHECK(gpt_embedding_adamw_step(l, NULL) == GPT_EMBEDDING_ERROR_BAD_STATE, "step after zero_grad");
    double norm = -1;
    CHECK(gpt_embedding_grad_norm_squared(l, &norm) == GPT_EMBEDDING_OK && norm == 0, "norm after zero_grad %g", norm);
    CHECK(gpt_embedding_grad_norm_squared(l, NULL) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL norm");
    gpt_embedding_free(l);
}

/* Train a for 3 steps, save with the state, load into b (same config, its own history), continue both. */
static void test_resume(int dtype) {
    gpt_embedding_adamw_options o;
    gpt_embedding_adamw_options_init(&o, sizeof o);
    o.lr = 0.01;
    o.weight_decay = 0.1;
    o.decay_params = GPT_EMBEDDING_PARAMS_TABLES;
    o.lazy = 1;
    gpt_embedding *a = make(2, 1, dtype), *b = make(2, 1, dtype);
    batch(b, 99);  /* b's weights and dropout stream differ until the load */
    CHECK(gpt_embedding_adamw_step(b, &o) == GPT_EMBEDDING_OK, "b's own step");
    for (unsigned s = 0; s < 3; s++) {
        batch(a, s);
        CHECK(gpt_embedding_adamw_step(a, &o) == GPT_EMBEDDING_OK, "step: %s", gpt_embedding_last_error());
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/gpte-adamw-%d-%d.safetensors", (int)getpid(), dtype);
    CHECK(gpt_embedding_save_safetensors(a, path, GPT_EMBEDDING_SAVE_OPTIMIZER) == GPT_EMBEDDING_OK, "save: %s", gpt_embedding_last_error());
    CHECK(gpt_embedding_load_safetensors(b, path) == GPT_EMBEDDING_OK, "load: %s", gpt_embedding_last_error());
    unlink(path);
    CHECK(same(a, b), "restored exactly (dtype %d)", dtype);
    for (unsigned s = 3; s < 6; s++) {
        batch(a, s);
        batch(b, s);
        gpt_embedding_adamw_step(a, &o);
        gpt_embedding_adamw_step(b, &o);
    }
    CHECK(same(a, b), "resumed training equals uninterrupted training (dtype %d)", dtype);
    int64_t step = 0;
    gpt_embedding_optimizer_get_step(b, 0, &step);
    CHECK(step == 6, "step count %lld", (long long)step);
    if (dtype != GPT_EMBEDDING_DTYPE_F32) {
        float *master;
        int64_t len;
        CHECK(gpt_embedding_optimizer_state_data(b, 0, GPT_EMBEDDING_STATE_MASTER, &master, &len) == GPT_EMBEDDING_OK && len == V * D,
              "16-bit tables have float32 master weights");
    }
    gpt_embedding_free(a);
    gpt_embedding_free(b);
}

static void test_threads(void) {
    gpt_embedding *a = make(1, 3, GPT_EMBEDDING_DTYPE_F32), *b = make(2, 3, GPT_EMBEDDING_DTYPE_F32);
    gpt_embedding_adamw_options o;
    gpt_embedding_adamw_options_init(&o, sizeof o);
    for (unsigned s = 0; s < 3; s++) {
        o.lazy = s % 2;
        batch(a, s);
        batch(b, s);
        gpt_embedding_adamw_step(a, &o);
        gpt_embedding_adamw_step(b, &o);
    }
    CHECK(same(a, b), "1 and 2 threads give the same bits");
    gpt_embedding_free(a);
    gpt_embedding_free(b);
}

/* |a - b| <= rel |b| + abs for every element; the worst error / allowance goes to *worst. */
static int close_to(const float *a, const float *b, size_t n, double rel, double abs_, double *worst) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)a[i] - (double)b[i]), allowed = rel * fabs((double)b[i]) + abs_;
        if (err / allowed > *worst) *worst = err / allowed;
        if (!(err <= allowed)) ok = 0;
    }
    return ok;
}

/* One PyTorch golden run replayed end to end: the layer's forward, backward and step on
 * the file's inputs. Parameters and master weights to float rounding (1e-6 relative); the
 * moments, fed by this library's gradients (its layer norm sums in another order), within
 * 1e-5 relative + 1e-6 (the Swift test checks them to 1e-6 with PyTorch's gradients). */
static void test_golden_file(const char *path) {
    adamw_golden g;
    if (adamw_golden_read(path, &g) != 0 || adamw_golden_validate(&g) != 0) {
        CHECK(0, "cannot read %s", path);
        return;
    }
    const int learned = !strcmp(g.position_encoding, "learned"), bf16 = !strcmp(g.weight_dtype, "bf16");
    const char *names[4] = {"wte", "wpe", "ln_weight", "ln_bias"};
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    c.vocab_size = g.vocab_size;
    c.embed_dim = g.embed_dim;
    c.max_seq_len = learned ? g.max_seq_len : 0;
    c.position_encoding = learned ? GPT_EMBEDDING_POSITION_LEARNED : GPT_EMBEDDING_POSITION_NONE;
    c.padding_idx = g.padding_idx;
    c.dropout = 0;
    c.scale_embeddings = 0;
    c.layer_norm_eps = g.layer_norm_eps;
    c.weight_dtype = bf16 ? GPT_EMBEDDING_DTYPE_BF16 : GPT_EMBEDDING_DTYPE_F32;
    c.num_threads = 2;
    gpt_embedding *l = NULL;
    CHECK(gpt_embedding_create(&c, &l) == GPT_EMBEDDING_OK, "%s: create: %s", g.name, gpt_embedding_last_error());
    if (!l) { adamw_golden_free(&g); return; }
    for (int p = 0; p < 4; p++) {
        size_t n;
        const float *v = adamw_golden_floats(&g, names[p], &n);
        if (v) CHECK(gpt_embedding_set_parameter(l, p, v, (int64_t)n) == GPT_EMBEDDING_OK, "set %s", names[p]);
    }
    const int64_t BT = g.batch * g.seq, W = g.embed_dim;
    int32_t *ids = malloc((size_t)BT * sizeof *ids);
    float *out = malloc((size_t)(BT * W) * sizeof *out), *mine = malloc((size_t)(g.vocab_size + g.max_seq_len + 2) * (size_t)W * sizeof *mine);
    double worst_p = 0, worst_m = 0;
    for (int k = 1; k <= g.steps; k++) {
        size_t n;
        const int64_t *ids64 = adamw_golden_step_ints(&g, "ids", k, &n);
        for (int64_t i = 0; i < BT; i++) ids[i] = (int32_t)ids64[i];
        const float *dy = adamw_golden_step_floats(&g, "grad_output", k, &n);
        gpt_embedding_zero_grad(l);
        CHECK(gpt_embedding_forward(l, ids, g.batch, g.seq, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM,
                                    out, BT * W) == GPT_EMBEDDING_OK, "forward");
        CHECK(gpt_embedding_backward(l, dy, g.batch, g.seq) == GPT_EMBEDDING_OK, "backward");
        double norm = 0, expected = adamw_golden_step_scalar(&g, "grad_norm_sq", k);
        gpt_embedding_grad_norm_squared(l, &norm);
        CHECK(fabs(norm - expected) <= 1e-6 * expected, "%s step %d: grad norm² %.17g vs %.17g", g.name, k, norm, expected);
        gpt_embedding_adamw_options o;
        gpt_embedding_adamw_options_init(&o, sizeof o);
        o.lr = adamw_golden_step_scalar(&g, "lr", k);
        o.beta1 = adamw_golden_step_scalar(&g, "beta1", k);
        o.beta2 = adamw_golden_step_scalar(&g, "beta2", k);
        o.eps = adamw_golden_step_scalar(&g, "eps", k);
        o.weight_decay = adamw_golden_step_scalar(&g, "weight_decay", k);
        o.grad_scale = adamw_golden_step_scalar(&g, "grad_scale", k);
        o.decay_params = (uint32_t)adamw_golden_step_scalar(&g, "decay_mask", k);
        o.lazy = (int32_t)adamw_golden_step_scalar(&g, "lazy", k);
        CHECK(gpt_embedding_adamw_step(l, &o) == GPT_EMBEDDING_OK, "%s step %d: %s", g.name, k, gpt_embedding_last_error());
        for (int p = 0; p < 4; p++) {
            if (p == 1 && !learned) continue;
            char key[64];
            snprintf(key, sizeof key, "%s.%d", names[p], k);
            const float *want = adamw_golden_floats(&g, key, &n);
            gpt_embedding_get_parameter(l, p, mine, (int64_t)n);
            CHECK(close_to(mine, want, n, 1e-6, 1e-7, &worst_p), "%s %s", g.name, key);
            const char *kinds[3] = {"exp_avg", "exp_avg_sq", "master"};
            for (int kind = 0; kind < 3; kind++) {
                snprintf(key, sizeof key, "%s.%s.%d", kinds[kind], names[p], k);
                want = adamw_golden_floats(&g, key, &n);
                if (!want) continue;
                float *state = NULL;
                int64_t len = 0;
                CHECK(gpt_embedding_optimizer_state_data(l, p, kind, &state, &len) == GPT_EMBEDDING_OK && len == (int64_t)n,
                      "%s: state %s", g.name, key);
                if (!state) continue;
                if (kind == 2) CHECK(close_to(state, want, n, 1e-6, 1e-7, &worst_p), "%s %s", g.name, key);
                else CHECK(close_to(state, want, n, 1e-5, 1e-6, &worst_m), "%s %s", g.name, key);
            }
        }
    }
    printf("golden %s: worst error %.3f x (1e-6|x| + 1e-7) in parameters and masters, %.3f x (1e-5|x| + 1e-6) in moments\n",
           g.name, worst_p, worst_m);
    free(ids);
    free(out);
    free(mine);
    gpt_embedding_free(l);
    adamw_golden_free(&g);
}

static void test_golden(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        test_golden_file(path);
        files++;
    }
    closedir(d);
    CHECK(files >= 6, "%d golden files in %s", files, dir);
}

int main(int argc, char **argv) {
    test_bad_input();
    test_resume(GPT_EMBEDDING_DTYPE_F32);
    test_resume(GPT_EMBEDDING_DTYPE_BF16);
    test_resume(GPT_EMBEDDING_DTYPE_F16);
    test_threads();
    if (argc > 1) test_golden(argv[1]);
    return check_summary();
}
