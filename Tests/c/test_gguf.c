/* GGUF files from C (issue 19, part one): every fixture of Tests/fixtures/gguf (written by
 * generate_gguf.py with the gguf package) opens with gpt_embedding_open, read and mapped,
 * and gpt_embedding_forward reproduces the float64 reference of llama.cpp's input stage
 * (<name>.expected.txt) bit for bit (BLOOM's layer norm within 1e-6 |b| + 1e-6); every
 * file of bad/expected.txt is refused with _BAD_FILE, its message text, *out NULL; a
 * refused architecture opens with by_tensor_names = 1. A quantized table (q4_k, gpt2's
 * q8_0) reports its block type, hands out its raw blocks, dequantizes in get_parameter
 * exactly as a table converted at open (options.dtype), and is frozen (_BAD_STATE for
 * its gradient, set_parameter and a step naming it; positions still train).
 *
 * Run from the repository root: test_gguf */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpt_embedding.h"

#define DIR_ "Tests/fixtures/gguf"

static const char *last(void) { const char *m = gpt_embedding_last_error(); return m ? m : "(no message)"; }

typedef struct {
    char file[256];
    int by_names, exact;
    int64_t seq;
    int32_t ids[64];
    int n_ids;
    uint32_t *out;
    int64_t n_out;
} fixture;

static int parse(const char *path, fixture *f) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    memset(f, 0, sizeof *f);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        char *save = NULL, *key = strtok_r(line, " \n", &save), *tok;
        if (!key) continue;
        if (!strcmp(key, "file")) { tok = strtok_r(NULL, " \n", &save); if (tok) snprintf(f->file, sizeof f->file, "%s", tok); }
        else if (!strcmp(key, "by_tensor_names")) { tok = strtok_r(NULL, " \n", &save); f->by_names = tok && atoi(tok); }
        else if (!strcmp(key, "exact")) { tok = strtok_r(NULL, " \n", &save); f->exact = tok && atoi(tok); }
        else if (!strcmp(key, "seq")) { tok = strtok_r(NULL, " \n", &save); f->seq = tok ? atoll(tok) : 0; }
        else if (!strcmp(key, "ids")) {
            while ((tok = strtok_r(NULL, " \n", &save)) && f->n_ids < 64) f->ids[f->n_ids++] = (int32_t)atol(tok);
        } else if (!strcmp(key, "out")) {
            int64_t n = 0, c = 1024;
            f->out = malloc((size_t)c * sizeof *f->out);
            while ((tok = strtok_r(NULL, " \n", &save))) {
                if (n == c) { c *= 2; f->out = realloc(f->out, (size_t)c * sizeof *f->out); }
                f->out[n++] = (uint32_t)strtoul(tok, NULL, 10);
            }
            f->n_out = n;
        }
    }
    free(line);
    fclose(fp);
    return f->file[0] != 0;
}

static void check_fixture(const fixture *f) {
    char path[1024];
    snprintf(path, sizeof path, DIR_ "/%s", f->file);
    for (int mmap = 0; mmap <= 1; mmap++) {
        gpt_embedding_open_options o;
        CHECK(gpt_embedding_open_options_init(&o, sizeof o) == 0, "options init");
        o.mmap = mmap;
        o.num_threads = 2;
        o.by_tensor_names = f->by_names;
        gpt_embedding *h = NULL;
        int rc = gpt_embedding_open(path, &o, &h);
        CHECK(rc == 0 && h != NULL, "%s (mmap %d) opens: %s", f->file, mmap, last());
        if (rc != 0) continue;
        float *out = calloc((size_t)f->n_out, sizeof *out);
        rc = gpt_embedding_forward(h, f->ids, 1, f->seq, NULL, 0, 0, out, f->n_out);
        CHECK(rc == 0, "%s forward: %s", f->file, last());
        int bad = 0;
        for (int64_t i = 0; i < f->n_out && !bad; i++) {
            float e;
            memcpy(&e, &f->out[i], 4);
            if (f->exact) {
                uint32_t g;
                memcpy(&g, &out[i], 4);
                bad = g != f->out[i];
            } else {
                bad = !(fabsf(out[i] - e) <= 1e-6f * fabsf(e) + 1e-6f);
            }
            CHECK(!bad, "%s (mmap %d) element %lld: %.9g vs %.9g", f->file, mmap, (long long)i, out[i], e);
        }
        free(out);
        gpt_embedding_free(h);
    }
}

/* A quantized table through the C API, against the same file opened with dtype F32. */
static void check_quantized(void) {
    gpt_embedding_open_options o;
    gpt_embedding_open_options_init(&o, sizeof o);
    gpt_embedding *q = NULL, *f = NULL;
    CHECK(gpt_embedding_open(DIR_ "/gpt2_q8_0.gguf", NULL, &q) == GPT_EMBEDDING_OK, "open q8_0: %s", last());
    o.dtype = GPT_EMBEDDING_DTYPE_F32;
    CHECK(gpt_embedding_open(DIR_ "/gpt2_q8_0.gguf", &o, &f) == GPT_EMBEDDING_OK, "open as f32: %s", last());
    if (!q || !f) return;
    gpt_embedding_config c;
    CHECK(gpt_embedding_get_config(q, &c) == GPT_EMBEDDING_OK, "config");
    CHECK(c.weight_dtype == GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q8_0, "weight_dtype %d", c.weight_dtype);
    CHECK(!strcmp(gpt_embedding_dtype_name(c.weight_dtype), "q8_0"), "name");
    CHECK(!strcmp(gpt_embedding_dtype_name(GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_IQ4_XS), "iq4_xs"), "iq4_xs");
    CHECK(!strcmp(gpt_embedding_dtype_name(GPT_EMBEDDING_DTYPE_BF16), "bfloat16"), "bfloat16");
    CHECK(gpt_embedding_dtype_name(3) == NULL && gpt_embedding_dtype_name(GPT_EMBEDDING_DTYPE_GGML + 16) == NULL &&
          gpt_embedding_dtype_name(-1) == NULL, "unknown dtype names are NULL");
    int dt = -1;
    CHECK(gpt_embedding_parameter_dtype(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &dt) == GPT_EMBEDDING_OK &&
          dt == GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q8_0, "parameter_dtype %d", dt);
    CHECK(gpt_embedding_parameter_dtype(q, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, &dt) == GPT_EMBEDDING_OK &&
          dt == GPT_EMBEDDING_DTYPE_F32, "positions are float32 (dequantized at open): %d", dt);
    void *raw = NULL;
    int64_t rows = 0, cols = 0;
    CHECK(gpt_embedding_parameter_data_typed(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &raw, &dt, &rows, &cols) == GPT_EMBEDDING_OK &&
          raw != NULL && dt == GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q8_0 && rows == c.vocab_size && cols == c.embed_dim,
          "raw blocks %d %lld %lld", dt, (long long)rows, (long long)cols);
    float *fp = (float *)(uintptr_t)16;
    int64_t len = 0;
    CHECK(gpt_embedding_parameter_data(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &fp, &len) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT &&
          fp == NULL && strstr(last(), "q8_0"), "no float view: %s", last());
    int64_t n = c.vocab_size * c.embed_dim;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    CHECK(gpt_embedding_get_parameter(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, a, n) == GPT_EMBEDDING_OK, "get_parameter: %s", last());
    CHECK(gpt_embedding_get_parameter(f, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, b, n) == GPT_EMBEDDING_OK, "get_parameter f32");
    CHECK(!memcmp(a, b, (size_t)n * sizeof *a), "dequantized values equal the table converted at open");
    /* Frozen. */
    CHECK(gpt_embedding_set_parameter(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, a, n) == GPT_EMBEDDING_ERROR_BAD_STATE &&
          strstr(last(), "dtype"), "set_parameter: %s", last());
    float *g = NULL;
    CHECK(gpt_embedding_gradient_data(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &g, &len) == GPT_EMBEDDING_ERROR_BAD_STATE &&
          strstr(last(), "q8_0") && strstr(last(), "dtype"), "gradient_data: %s", last());
    CHECK(gpt_embedding_get_gradient(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, b, n) == GPT_EMBEDDING_ERROR_BAD_STATE, "get_gradient");
    int32_t ids[4] = {36, 0, 7, 7};
    int64_t d = c.embed_dim;
    float *out = malloc((size_t)(4 * d) * sizeof *out), *out2 = malloc((size_t)(4 * d) * sizeof *out2), *dout = malloc((size_t)(4 * d) * sizeof *dout);
    for (int64_t i = 0; i < 4 * d; i++) dout[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    CHECK(gpt_embedding_forward(q, ids, 1, 4, NULL, 0, GPT_EMBEDDING_TRAINING, out, 4 * d) == GPT_EMBEDDING_OK, "forward q");
    CHECK(gpt_embedding_forward(f, ids, 1, 4, NULL, 0, GPT_EMBEDDING_TRAINING, out2, 4 * d) == GPT_EMBEDDING_OK, "forward f");
    CHECK(!memcmp(out, out2, (size_t)(4 * d) * sizeof *out), "training forward equals the converted table's");
    CHECK(gpt_embedding_backward(q, dout, 1, 4) == GPT_EMBEDDING_OK, "backward q: %s", last());
    CHECK(gpt_embedding_backward(f, dout, 1, 4) == GPT_EMBEDDING_OK, "backward f");
    int64_t pn = c.max_seq_len * d;
    float *pa = malloc((size_t)pn * sizeof *pa), *pb = malloc((size_t)pn * sizeof *pb);
    CHECK(gpt_embedding_get_gradient(q, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, pa, pn) == GPT_EMBEDDING_OK &&
          gpt_embedding_get_gradient(f, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, pb, pn) == GPT_EMBEDDING_OK &&
          !memcmp(pa, pb, (size_t)pn * sizeof *pa), "position gradients equal");
    gpt_embedding_adamw_options ao;
    gpt_embedding_adamw_options_init(&ao, sizeof ao);
    ao.params = GPT_EMBEDDING_PARAM_BIT(GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING) | GPT_EMBEDDING_PARAM_BIT(GPT_EMBEDDING_PARAM_POSITION_EMBEDDING);
    CHECK(gpt_embedding_adamw_step(q, &ao) == GPT_EMBEDDING_ERROR_BAD_STATE && strstr(last(), "optimizer step"), "step naming the table: %s", last());
    gpt_embedding_adamw_options_init(&ao, sizeof ao);
    CHECK(gpt_embedding_adamw_step(q, &ao) == GPT_EMBEDDING_OK, "step over all skips the table: %s", last());
    CHECK(gpt_embedding_get_parameter(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, b, n) == GPT_EMBEDDING_OK && !memcmp(a, b, (size_t)n * sizeof *a),
          "the table did not move");
    free(a); free(b); free(out); free(out2); free(dout); free(pa); free(pb);
    gpt_embedding_free(q);
    gpt_embedding_free(f);
    /* Mapped q4_k: maps at any offset, bf16 output equals the f32 conversion's bf16 output. */
    gpt_embedding_open_options_init(&o, sizeof o);
    o.mmap = 1;
    CHECK(gpt_embedding_open(DIR_ "/llama_q4_k.gguf", &o, &q) == GPT_EMBEDDING_OK, "open q4_k mapped: %s", last());
    int mapped = 0;
    if (q) {
        CHECK(gpt_embedding_parameter_mapped(q, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &mapped) == GPT_EMBEDDING_OK && mapped == 1, "mapped");
        gpt_embedding_free(q);
    }
}

/* Writing GGUF (issue 19 item 6): source.gguf saved with each table type holds the gguf
 * package's quantize bytes (write/<type>.bin) and reopens with its dequantized rows
 * (write/<type>.rows.bin). */
static unsigned char *slurp(const char *path, long *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*size + 1);
    if (b && fread(b, 1, (size_t)*size, fp) != (size_t)*size) { free(b); b = NULL; }
    fclose(fp);
    return b;
}

static void check_write(void) {
    static const struct { const char *name; int32_t type; int dtype; } types[] = {
        { "q8_0", GPT_EMBEDDING_GGML_Q8_0, GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q8_0 },
        { "q4_0", GPT_EMBEDDING_GGML_Q4_0, GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q4_0 },
        { "q4_1", GPT_EMBEDDING_GGML_Q4_1, GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q4_1 },
        { "q5_0", GPT_EMBEDDING_GGML_Q5_0, GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q5_0 },
        { "q5_1", GPT_EMBEDDING_GGML_Q5_1, GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q5_1 },
        { "f16", GPT_EMBEDDING_GGML_F16, GPT_EMBEDDING_DTYPE_F16 },
        { "bf16", GPT_EMBEDDING_GGML_BF16, GPT_EMBEDDING_DTYPE_BF16 },
    };
    gpt_embedding *src = NULL;
    CHECK(gpt_embedding_open(DIR_ "/write/source.gguf", NULL, &src) == GPT_EMBEDDING_OK, "open source: %s", last());
    if (!src) return;
    char out[256];
    snprintf(out, sizeof out, "/tmp/gpte-c-write-%d.gguf", (int)getpid());
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        CHECK(gpt_embedding_save_gguf(src, out, types[k].type, 0) == GPT_EMBEDDING_OK, "save %s: %s", types[k].name, last());
        gpt_embedding *back = NULL;
        CHECK(gpt_embedding_open(out, NULL, &back) == GPT_EMBEDDING_OK, "reopen %s: %s", types[k].name, last());
        if (!back) continue;
        char path[256];
        long nb = 0, nr = 0;
        snprintf(path, sizeof path, DIR_ "/write/%s.bin", types[k].name);
        unsigned char *golden = slurp(path, &nb);
        snprintf(path, sizeof path, DIR_ "/write/%s.rows.bin", types[k].name);
        unsigned char *rows = slurp(path, &nr);
        void *raw = NULL;
        int dt = -1;
        int64_t r = 0, c = 0;
        CHECK(golden && rows, "goldens of %s", types[k].name);
        CHECK(gpt_embedding_parameter_data_typed(back, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &raw, &dt, &r, &c) == GPT_EMBEDDING_OK &&
              dt == types[k].dtype, "%s: dtype %d", types[k].name, dt);
        CHECK(golden && raw && !memcmp(raw, golden, (size_t)nb), "%s: the written table is gguf.quants.quantize's bytes", types[k].name);
        float *vals = malloc((size_t)nr);
        CHECK(vals && gpt_embedding_get_parameter(back, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, vals, nr / 4) == GPT_EMBEDDING_OK &&
              rows && !memcmp(vals, rows, (size_t)nr), "%s: rows read back are gguf.quants.dequantize's", types[k].name);
        free(vals); free(golden); free(rows);
        gpt_embedding_free(back);
    }
    /* Refusals leave no file; the caller gets a status and a message. */
    remove(out);
    CHECK(gpt_embedding_save_gguf(src, out, GPT_EMBEDDING_GGML_Q4_K, 0) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT &&
          strstr(last(), "table_type"), "q4_k is not writable: %s", last());
    CHECK(gpt_embedding_save_gguf(src, out, GPT_EMBEDDING_GGUF_KEEP, 4) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "flags");
    CHECK(gpt_embedding_save_gguf(src, NULL, GPT_EMBEDDING_GGUF_KEEP, 0) == GPT_EMBEDDING_ERROR_NULL_POINTER, "null path");
    CHECK(gpt_embedding_save_gguf(NULL, out, GPT_EMBEDDING_GGUF_KEEP, 0) != GPT_EMBEDDING_OK, "null layer");
    CHECK(access(out, F_OK) != 0, "no file after refusals");
    CHECK(gpt_embedding_save_gguf(src, "/nonexistent-dir/x.gguf", GPT_EMBEDDING_GGUF_KEEP, 0) == GPT_EMBEDDING_ERROR_IO, "io: %s", last());
    gpt_embedding_free(src);
}

int main(void) {
    DIR *d = opendir(DIR_);
    CHECK(d != NULL, "%s", DIR_);
    int fixtures = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 13 || strcmp(e->d_name + n - 13, ".expected.txt")) continue;
        char path[1024];
        snprintf(path, sizeof path, DIR_ "/%s", e->d_name);
        fixture f;
        CHECK(parse(path, &f), "parse %s", path);
        check_fixture(&f);
        free(f.out);
        fixtures++;
    }
    if (d) closedir(d);
    CHECK(fixtures >= 12, "%d fixtures", fixtures);

    /* Bad files. */
    FILE *idx = fopen(DIR_ "/bad/expected.txt", "r");
    CHECK(idx != NULL, "bad/expected.txt");
    int bads = 0;
    char entry[512];
    while (idx && fgets(entry, sizeof entry, idx)) {
        char *tab = strchr(entry, '\t'), *nl = strchr(entry, '\n');
        if (!tab) continue;
        *tab = 0;
        if (nl) *nl = 0;
        char path[1024];
        snprintf(path, sizeof path, DIR_ "/bad/%s.gguf", entry);
        gpt_embedding *h = (gpt_embedding *)(uintptr_t)16;
        int rc = gpt_embedding_open(path, NULL, &h);
        CHECK(rc == GPT_EMBEDDING_ERROR_BAD_FILE && h == NULL, "%s refused: %d %s", entry, rc, last());
        CHECK(strstr(last(), tab + 1) != NULL, "%s: message \"%s\" lacks \"%s\"", entry, last(), tab + 1);
        bads++;
    }
    if (idx) fclose(idx);
    CHECK(bads >= 20, "%d bad files", bads);

    /* A refused architecture, and the same file by tensor names. */
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_open(DIR_ "/bert_f32.gguf", NULL, &h) == GPT_EMBEDDING_ERROR_BAD_FILE && h == NULL, "bert refused");
    CHECK(strstr(last(), "by_tensor_names") != NULL, "%s", last());
    check_quantized();
    check_write();
    return check_summary();
}
