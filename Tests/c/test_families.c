/* Issue 12 through the C API: Hugging Face model families.
 *
 *   - every folder of Tests/fixtures/families with an expected.txt (and OPT's
 *     expected_padded.txt) opens with gpt_embedding_open, read and mapped, and
 *     gpt_embedding_forward_typed in the fixture's dtype (OPT: with its explicit
 *     positions) reproduces hidden_f32_bits bit for bit (BLOOM float32: within
 *     1e-6 |b| + 1e-6, its layer norm is a reduction);
 *   - opt_project_in and every case of bad/EXPECTED are refused with their status and
 *     message texts, *out NULL; an unknown model_type lists every supported type;
 *   - by_tensor_names = 1 opens gpt2 by its tensor names (and llamaX's Llama-named
 *     table as a plain lookup);
 *   - bare safetensors files (Tests/fixtures/bare_names, no config.json) open by any
 *     family's token-table name as a plain lookup, bit for bit; two candidates are
 *     refused naming both; options.family (0.6) applied to every fixture's safetensors
 *     copied without config.json reproduces its expected.txt; an unknown family is
 *     _INVALID_ARGUMENT; 0.4-sized options ignore the field, 0.2-sized keep 0.2's names;
 *   - gpt_embedding_get_config (the 0.3 macro) shows what the families set: BLOOM's
 *     layer_norm, OPT's position_offset, Gemma's token_scale rounded to the table dtype,
 *     the input dropout read from config.json;
 *   - flags: GPT_EMBEDDING_LAYER_NORM with GPT_EMBEDDING_NO_LAYER_NORM is refused,
 *     NO_LAYER_NORM switches BLOOM's norm off; OPT position -1 reads row 1 (offset 2),
 *     -2 row 0, -3 is out of range.
 *
 * Run from the repository root: test_families */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpt_embedding.h"

#define FAMILIES "Tests/fixtures/families"

static const char *last(void) { const char *m = gpt_embedding_last_error(); return m ? m : "(no message)"; }
static int contains(const char *msg, const char *text) { return msg && strstr(msg, text); }

/* ------------------------------------------------------------------------ */
/* The family-1 text format (Tests/fixtures/families/README.md)             */
/* ------------------------------------------------------------------------ */

typedef struct {
    char name[64], model_type[64], dtype[16];
    int64_t batch, seq, hidden;
    int64_t n_ids, n_positions, n_bits;
    int32_t *ids, *positions; /* positions NULL unless the file has them (OPT) */
    uint32_t *bits;
} fixture;

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static void copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void fixture_free(fixture *f) { free(f->ids); free(f->positions); free(f->bits); }

/* Parses path into *f; returns 1, or 0 if the file is absent, -1 if malformed. */
static int fixture_read(const char *path, fixture *f) {
    memset(f, 0, sizeof *f);
    char *text = read_text(path);
    if (!text) return 0;
    /* Comment lines out, then whitespace-separated tokens. */
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        if (*line == '#') memset(line, ' ', end ? (size_t)(end - line) : strlen(line));
        if (!end) break;
        line = end + 1;
    }
    char *save = NULL, *tok = strtok_r(text, " \t\r\n", &save);
    int ok = tok && !strcmp(tok, "format") && (tok = strtok_r(NULL, " \t\r\n", &save)) && !strcmp(tok, "family-1");
    while (ok && (tok = strtok_r(NULL, " \t\r\n", &save)) && strcmp(tok, "end")) {
        if (!strcmp(tok, "int") || !strcmp(tok, "float")) {
            int is_int = tok[0] == 'i';
            char *name = strtok_r(NULL, " \t\r\n", &save), *count = strtok_r(NULL, " \t\r\n", &save);
            if (!name || !count) { ok = 0; break; }
            long n = strtol(count, NULL, 10);
            int32_t *dst = NULL; /* ids or positions; bits for hidden_f32_bits; else skipped */
            uint32_t *bits = NULL;
            if (n < 0 || n > (1L << 24)) { ok = 0; break; }
            if (is_int && !strcmp(name, "ids") && !f->ids) { f->ids = malloc((size_t)n * 4); f->n_ids = n; dst = f->ids; }
            else if (is_int && !strcmp(name, "positions") && !f->positions) { f->positions = malloc((size_t)n * 4); f->n_positions = n; dst = f->positions; }
            else if (is_int && !strcmp(name, "hidden_f32_bits") && !f->bits) { f->bits = malloc((size_t)n * 4); f->n_bits = n; bits = f->bits; }
            for (long i = 0; i < n; i++) {
                char *v = strtok_r(NULL, " \t\r\n", &save);
                if (!v) { ok = 0; break; }
                if (bits) bits[i] = (uint32_t)strtoull(v, NULL, 10);
                else if (dst) dst[i] = (int32_t)strtol(v, NULL, 10);
            }
        } else {
            char *v = strtok_r(NULL, " \t\r\n", &save);
            if (!v) { ok = 0; break; }
            if (!strcmp(tok, "name")) copy(f->name, sizeof f->name, v);
            else if (!strcmp(tok, "model_type")) copy(f->model_type, sizeof f->model_type, v);
            else if (!strcmp(tok, "dtype")) copy(f->dtype, sizeof f->dtype, v);
            else if (!strcmp(tok, "batch")) f->batch = strtoll(v, NULL, 10);
            else if (!strcmp(tok, "seq")) f->seq = strtoll(v, NULL, 10);
            else if (!strcmp(tok, "hidden_size")) f->hidden = strtoll(v, NULL, 10);
        }
    }
    free(text);
    ok = ok && tok && f->ids && f->bits && f->n_ids == f->batch * f->seq && f->n_bits == f->n_ids * f->hidden
         && (!f->positions || f->n_positions == f->n_ids);
    return ok ? 1 : -1;
}

static int dtype_of(const char *name) {
    if (!strcmp(name, "bfloat16")) return GPT_EMBEDDING_DTYPE_BF16;
    if (!strcmp(name, "float16")) return GPT_EMBEDDING_DTYPE_F16;
    return GPT_EMBEDDING_DTYPE_F32;
}

/* IEEE half to float32 bits, exactly (subnormals, infinities, NaN). */
static uint32_t half_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return sign | 0x7f800000u | (man << 13);
    if (exp) return sign | ((exp + 112) << 23) | (man << 13);
    if (!man) return sign;
    uint32_t e = 113;
    while (!(man & 0x400)) { man <<= 1; e--; }
    return sign | (e << 23) | ((man & 0x3ff) << 13);
}

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* out (n elements of dtype) widened to float32 bit patterns. */
static void widen(const void *out, int dtype, int64_t n, uint32_t *bits) {
    for (int64_t i = 0; i < n; i++) {
        if (dtype == GPT_EMBEDDING_DTYPE_F32) memcpy(&bits[i], (const char *)out + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, (const char *)out + 2 * i, 2);
            bits[i] = dtype == GPT_EMBEDDING_DTYPE_BF16 ? (uint32_t)h << 16 : half_bits(h);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

static gpt_embedding *open_folder(const char *folder, int mmap, int by_tensor_names, int *status) {
    gpt_embedding_open_options o;
    CHECK(gpt_embedding_open_options_init(&o, sizeof o) == GPT_EMBEDDING_OK && o.struct_size == sizeof o
          && o.by_tensor_names == 0 && o.dropout == -1.0f && o.layer_norm_eps == -1.0f, "options_init: %s", last());
    o.mmap = mmap;
    o.num_threads = 2;
    o.by_tensor_names = by_tensor_names;
    gpt_embedding *h = (gpt_embedding *)&o; /* must be overwritten with NULL on failure */
    int rc = gpt_embedding_open(folder, &o, &h);
    if (status) *status = rc;
    if (rc != GPT_EMBEDDING_OK) CHECK(h == NULL, "%s: *out is NULL after a failure", folder);
    return rc == GPT_EMBEDDING_OK ? h : NULL;
}

/* Forward of f through h in f's dtype; compares with hidden_f32_bits. */
static void check_fixture(gpt_embedding *h, const fixture *f, const char *label, const int32_t *positions) {
    int dtype = dtype_of(f->dtype);
    int64_t n = f->n_bits;
    size_t esize = dtype == GPT_EMBEDDING_DTYPE_F32 ? 4 : 2;
    void *out = calloc((size_t)n, esize);
    uint32_t *got = malloc((size_t)n * 4);
    int rc = gpt_embedding_forward_typed(h, f->ids, f->batch, f->seq, positions, 0, 0, dtype, out, n);
    CHECK(rc == GPT_EMBEDDING_OK, "%s: forward_typed: %d %s", label, rc, last());
    widen(out, dtype, n, got);
    int tolerance = !strcmp(f->model_type, "bloom") && dtype == GPT_EMBEDDING_DTYPE_F32;
    int64_t bad = -1;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (tolerance) {
            float a = from_bits(got[i]), b = from_bits(f->bits[i]);
            double r = fabs((double)a - (double)b) / (1e-6 * fabs((double)b) + 1e-6);
            if (!(r <= worst)) worst = r;
            if (!(r <= 1) && bad < 0) bad = i;
        } else if (got[i] != f->bits[i] && bad < 0) {
            bad = i;
        }
    }
    CHECK(bad < 0, "%s: element %lld [%lld, %lld, %lld]: got %.9g (0x%08x), transformers %.9g (0x%08x)", label,
          (long long)bad, bad < 0 ? 0LL : (long long)(bad / (f->seq * f->hidden)),
          bad < 0 ? 0LL : (long long)(bad / f->hidden % f->seq), bad < 0 ? 0LL : (long long)(bad % f->hidden),
          bad < 0 ? 0.0 : (double)from_bits(got[bad]), bad < 0 ? 0u : got[bad],
          bad < 0 ? 0.0 : (double)from_bits(f->bits[bad]), bad < 0 ? 0u : f->bits[bad]);
    if (tolerance) printf("     %s: worst difference %.3f of the allowance 1e-6 |b| + 1e-6\n", label, worst);
    free(out);
    free(got);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The model_types of the fixtures (for the unknown model_type message). */
static char model_types[32][64];
static int n_model_types = 0;

static void note_model_type(const char *t) {
    for (int i = 0; i < n_model_types; i++) if (!strcmp(model_types[i], t)) return;
    if (n_model_types < 32) copy(model_types[n_model_types++], sizeof model_types[0], t);
}

/* Every fixture, read and mapped. Returns how many expected files were checked. */
static int test_fixtures(void) {
    DIR *d = opendir(FAMILIES);
    CHECK(d != NULL, "cannot open " FAMILIES " (run from the repository root)");
    if (!d) return 0;
    char *names[64];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 64) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "bad") || !strcmp(e->d_name, "README.md")) continue;
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], by_name);
    int checked = 0;
    for (int i = 0; i < count; i++) {
        char folder[512], path[600];
        snprintf(folder, sizeof folder, FAMILIES "/%s", names[i]);
        const char *files[] = {"expected.txt", "expected_padded.txt"};
        int any = 0;
        for (int k = 0; k < 2; k++) {
            fixture f;
            snprintf(path, sizeof path, "%s/%s", folder, files[k]);
            int r = fixture_read(path, &f);
            if (r == 0) continue;
            CHECK(r == 1, "%s is malformed", path);
            if (r != 1) { fixture_free(&f); continue; }
            any = 1;
            note_model_type(f.model_type);
            for (int mmap = 0; mmap <= 1; mmap++) {
                int rc;
                gpt_embedding *h = open_folder(folder, mmap, 0, &rc);
                CHECK(h != NULL, "open %s (mmap %d): %d %s", folder, mmap, rc, last());
                if (!h) continue;
                gpt_embedding_config c;
                CHECK(gpt_embedding_get_config(h, &c) == GPT_EMBEDDING_OK && c.struct_size == sizeof c
                      && c.embed_dim == f.hidden && c.weight_dtype == dtype_of(f.dtype),
                      "%s: config D %lld dtype %d, fixture D %lld %s", folder, (long long)c.embed_dim, c.weight_dtype,
                      (long long)f.hidden, f.dtype);
                char label[700];
                snprintf(label, sizeof label, "%s (%s, %s)", folder, files[k], mmap ? "mapped" : "read");
                check_fixture(h, &f, label, f.positions);
                /* OPT without padding: positions 0..S-1 are also what NULL gives. */
                int plain = f.positions != NULL;
                for (int64_t j = 0; plain && j < f.n_positions; j++) plain = f.positions[j] == (int32_t)(j % f.seq);
                if (plain) {
                    snprintf(label, sizeof label, "%s (%s, %s, positions NULL)", folder, files[k], mmap ? "mapped" : "read");
                    check_fixture(h, &f, label, NULL);
                }
                gpt_embedding_free(h);
            }
            checked++;
            fixture_free(&f);
        }
        /* Only opt_project_in has no expected output (it must be refused). */
        CHECK(any || !strcmp(names[i], "opt_project_in"), "%s has no expected.txt", folder);
        free(names[i]);
    }
    return checked;
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                 */
/* ------------------------------------------------------------------------ */

static int status_code(const char *name) {
    static const struct { const char *name; int code; } codes[] = {
        {"NULL_POINTER", 1}, {"INVALID_ARGUMENT", 2}, {"INVALID_CONFIG", 3}, {"OUT_OF_RANGE", 4},
        {"SIZE_OVERFLOW", 5}, {"BUFFER_TOO_SMALL", 6}, {"BAD_STATE", 7}, {"OUT_OF_MEMORY", 8},
        {"INVALID_HANDLE", 9}, {"VERSION_MISMATCH", 10}, {"IO", 11}, {"BAD_FILE", 12}, {"UNSUPPORTED_CPU", 13}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) if (!strcmp(codes[i].name, name)) return codes[i].code;
    return -1;
}

/* Opens folder in both modes expecting status and every text in texts[0..n). */
static void expect_refusal(const char *folder, int status, const char *const *texts, int n) {
    for (int mmap = 0; mmap <= 1; mmap++) {
        int rc;
        gpt_embedding *h = open_folder(folder, mmap, 0, &rc);
        const char *msg = gpt_embedding_last_error();
        char copy_of[2048];
        copy(copy_of, sizeof copy_of, msg ? msg : "(no message)");
        CHECK(h == NULL && rc == status, "%s (mmap %d): status %d, expected %d: %s", folder, mmap, rc, status, copy_of);
        for (int i = 0; i < n; i++)
            CHECK(contains(copy_of, texts[i]), "%s: the message lacks \"%s\": %s", folder, texts[i], copy_of);
        if (mmap == 0) printf("     %s: %s\n", folder, copy_of);
        gpt_embedding_free(h);
    }
}

static int test_bad(void) {
    /* opt_project_in: project_in is a Linear the layer does not compute. */
    const char *project_in[] = {"word_embed_proj_dim", "16", "hidden_size", "32", "project_in"};
    expect_refusal(FAMILIES "/opt_project_in", GPT_EMBEDDING_ERROR_BAD_FILE, project_in, 5);

    FILE *idx = fopen(FAMILIES "/bad/EXPECTED", "r");
    CHECK(idx != NULL, FAMILIES "/bad/EXPECTED");
    int cases = 0;
    char line[1024];
    while (idx && fgets(line, sizeof line, idx)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = 0;
        const char *fields[16];
        int n = 0;
        for (char *save = NULL, *t = strtok_r(line, "\t", &save); t && n < 16; t = strtok_r(NULL, "\t", &save)) fields[n++] = t;
        CHECK(n >= 2 && status_code(fields[1]) > 0, "bad/EXPECTED: malformed line");
        if (n < 2) continue;
        char folder[512];
        snprintf(folder, sizeof folder, FAMILIES "/bad/%s", fields[0]);
        expect_refusal(folder, status_code(fields[1]), fields + 2, n - 2);
        cases++;
    }
    if (idx) fclose(idx);
    CHECK(cases == 4, "bad/EXPECTED lists %d cases, expected 4", cases);

    /* An unknown model_type names every supported one. */
    int rc;
    gpt_embedding *h = open_folder(FAMILIES "/bad/unknown_model_type", 0, 0, &rc);
    char msg[2048];
    copy(msg, sizeof msg, last());
    CHECK(h == NULL && rc == GPT_EMBEDDING_ERROR_BAD_FILE, "unknown_model_type: %d", rc);
    CHECK(n_model_types >= 16, "fixtures cover %d model_types", n_model_types);
    /* As whole words ("gemma" must not be found inside "gemma2"). */
    char words[2048];
    copy(words, sizeof words, msg);
    int found[32] = {0};
    for (char *save = NULL, *w = strtok_r(words, " ,;:()[]\"'\n", &save); w; w = strtok_r(NULL, " ,;:()[]\"'\n", &save))
        for (int i = 0; i < n_model_types; i++) found[i] |= !strcmp(w, model_types[i]);
    for (int i = 0; i < n_model_types; i++)
        CHECK(found[i], "the unknown model_type message lacks the supported type %s: %s", model_types[i], msg);
    return cases;
}

/* ------------------------------------------------------------------------ */
/* by_tensor_names, configs, flags, OPT positions                           */
/* ------------------------------------------------------------------------ */

static void test_by_tensor_names(void) {
    int rc;
    gpt_embedding *h = open_folder(FAMILIES "/gpt2", 0, 1, &rc);
    CHECK(h != NULL, "gpt2 by tensor names: %d %s", rc, last());
    if (h) {
        gpt_embedding_config c;
        CHECK(gpt_embedding_get_config(h, &c) == 0 && c.position_encoding == GPT_EMBEDDING_POSITION_LEARNED
              && c.vocab_size == 192 && c.embed_dim == 27 && c.max_seq_len == 32 && c.position_offset == 0
              && c.layer_norm == 0 && c.token_scale == 0.0f,
              "gpt2 by tensor names: learned %d vocab %lld D %lld rows %lld", c.position_encoding,
              (long long)c.vocab_size, (long long)c.embed_dim, (long long)c.max_seq_len);
        /* No config.json read: dropout is the options' fallback 0, not embd_pdrop 0.1. */
        CHECK(c.dropout == 0.0f, "gpt2 by tensor names: dropout %g", (double)c.dropout);
        fixture f;
        if (fixture_read(FAMILIES "/gpt2/expected.txt", &f) == 1) check_fixture(h, &f, "gpt2 by tensor names", NULL);
        fixture_free(&f);
        gpt_embedding_free(h);
    }
    /* llamaX's token table has Llama's name: by tensor names, a plain lookup of it. */
    h = open_folder(FAMILIES "/bad/unknown_model_type", 0, 1, &rc);
    CHECK(h != NULL, "unknown_model_type by tensor names: %d %s", rc, last());
    gpt_embedding_free(h);
    gpt_embedding_open_options o;
    gpt_embedding_open_options_init(&o, sizeof o);
    o.by_tensor_names = 2;
    h = (gpt_embedding *)&o;
    CHECK(gpt_embedding_open(FAMILIES "/gpt2", &o, &h) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && h == NULL
          && contains(last(), "by_tensor_names"), "by_tensor_names = 2: %s", last());
}

static gpt_embedding *open_or_fail(const char *folder) {
    int rc;
    gpt_embedding *h = open_folder(folder, 0, 0, &rc);
    CHECK(h != NULL, "open %s: %d %s", folder, rc, last());
    return h;
}

static void test_configs(void) {
    gpt_embedding_config c;
    gpt_embedding *h = open_or_fail(FAMILIES "/bloom");
    memset(&c, 0xA5, sizeof c);
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.struct_size == sizeof c && c.layer_norm == 1
          && c.position_encoding == GPT_EMBEDDING_POSITION_NONE && c.position_offset == 0 && c.token_scale == 0.0f,
          "bloom: layer_norm %d position_encoding %d", c.layer_norm, c.position_encoding);
    if (h) {
        /* Flags 0 apply BLOOM's norm, like LAYER_NORM; NO_LAYER_NORM switches it off. */
        int32_t ids[3] = {1, 2, 3};
        int64_t D = c.embed_dim, n = 3 * D;
        float *dflt = calloc((size_t)n, 4), *on = calloc((size_t)n, 4), *off = calloc((size_t)n, 4), *keep = malloc((size_t)n * 4);
        CHECK(gpt_embedding_forward(h, ids, 1, 3, NULL, 0, 0, dflt, n) == 0, "bloom forward: %s", last());
        CHECK(gpt_embedding_forward(h, ids, 1, 3, NULL, 0, GPT_EMBEDDING_LAYER_NORM, on, n) == 0, "bloom LN: %s", last());
        CHECK(gpt_embedding_forward(h, ids, 1, 3, NULL, 0, GPT_EMBEDDING_NO_LAYER_NORM, off, n) == 0, "bloom no LN: %s", last());
        CHECK(!memcmp(dflt, on, (size_t)n * 4), "bloom: flags 0 apply the layer norm");
        CHECK(memcmp(dflt, off, (size_t)n * 4) != 0, "bloom: NO_LAYER_NORM skips it");
        /* NO_LAYER_NORM is the plain token rows. */
        float *table = malloc((size_t)(c.vocab_size * D) * 4);
        CHECK(gpt_embedding_get_parameter(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, table, c.vocab_size * D) == 0, "%s", last());
        CHECK(!memcmp(off, table + 1 * D, (size_t)n * 4), "bloom with NO_LAYER_NORM: token rows 1, 2, 3");
        free(table);
        memcpy(keep, on, (size_t)n * 4);
        int rc = gpt_embedding_forward(h, ids, 1, 3, NULL, 0, GPT_EMBEDDING_LAYER_NORM | GPT_EMBEDDING_NO_LAYER_NORM, on, n);
        CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && contains(last(), "GPT_EMBEDDING_NO_LAYER_NORM"),
              "LAYER_NORM | NO_LAYER_NORM: %d %s", rc, last());
        rc = gpt_embedding_forward_typed(h, ids, 1, 3, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM | GPT_EMBEDDING_NO_LAYER_NORM,
                                         GPT_EMBEDDING_DTYPE_F32, on, n);
        CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "TRAINING | LAYER_NORM | NO_LAYER_NORM (typed): %d", rc);
        CHECK(!memcmp(keep, on, (size_t)n * 4), "a refused forward wrote nothing");
        CHECK(gpt_embedding_forward(h, ids, 1, 3, NULL, 0, 8u, on, n) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "flag 8 is unknown");
        free(dflt); free(on); free(off); free(keep);
        gpt_embedding_free(h);
    }

    h = open_or_fail(FAMILIES "/gemma_bf16");
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.token_scale == 6.9375f && c.weight_dtype == GPT_EMBEDDING_DTYPE_BF16,
          "gemma_bf16: token_scale %.9g", (double)c.token_scale);
    gpt_embedding_free(h);
    h = open_or_fail(FAMILIES "/gemma_f32");
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.token_scale == (float)sqrt(50.0), "gemma_f32: token_scale %.9g",
          (double)c.token_scale);
    gpt_embedding_free(h);
    h = open_or_fail(FAMILIES "/gemma2_f16");
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.token_scale == 6.32421875f, "gemma2_f16: token_scale %.9g",
          (double)c.token_scale);
    gpt_embedding_free(h);

    /* The input dropout comes from config.json (gpt2: embd_pdrop 0.1; llama has none);
     * an explicit option wins. */
    h = open_or_fail(FAMILIES "/gpt2");
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.dropout == 0.1f && c.layer_norm_eps == 1e-5f,
          "gpt2: dropout %g eps %g from config.json", (double)c.dropout, (double)c.layer_norm_eps);
    gpt_embedding_free(h);
    h = open_or_fail(FAMILIES "/llama_bf16");
    CHECK(h && gpt_embedding_get_config(h, &c) == 0 && c.dropout == 0.0f, "llama: dropout %g", (double)c.dropout);
    gpt_embedding_free(h);
    gpt_embedding_open_options o;
    gpt_embedding_open_options_init(&o, sizeof o);
    o.dropout = 0.25f;
    h = NULL;
    CHECK(gpt_embedding_open(FAMILIES "/gpt2", &o, &h) == 0 && gpt_embedding_get_config(h, &c) == 0 && c.dropout == 0.25f,
          "gpt2 with options.dropout 0.25: %g", (double)c.dropout);
    gpt_embedding_free(h);
}

static void test_opt_positions(void) {
    gpt_embedding *h = open_or_fail(FAMILIES "/opt");
    if (!h) return;
    gpt_embedding_config c;
    CHECK(gpt_embedding_get_config(h, &c) == 0 && c.position_offset == 2 && c.position_encoding == GPT_EMBEDDING_POSITION_LEARNED
          && c.max_seq_len == 34, "opt: position_offset %lld, rows %lld", (long long)c.position_offset, (long long)c.max_seq_len);
    int64_t D = c.embed_dim;
    float *tok = malloc((size_t)(c.vocab_size * D) * 4), *pos = malloc((size_t)(c.max_seq_len * D) * 4);
    float out[3 * 64] = {0}, want[3 * 64] = {0};
    CHECK(D <= 64, "opt D %lld", (long long)D);
    gpt_embedding_get_parameter(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, tok, c.vocab_size * D);
    gpt_embedding_get_parameter(h, GPT_EMBEDDING_PARAM_POSITION_EMBEDDING, pos, c.max_seq_len * D);
    /* Positions -1, -2 and 31 (the last: 31 + 2 = 33) read rows 1, 0 and 33. */
    int32_t ids[3] = {5, 6, 7}, positions[3] = {-1, -2, 31};
    int64_t rows[3] = {1, 0, 33};
    for (int t = 0; t < 3; t++)
        for (int64_t k = 0; k < D; k++) want[t * D + k] = tok[ids[t] * D + k] + pos[rows[t] * D + k];
    CHECK(gpt_embedding_forward(h, ids, 1, 3, positions, 0, 0, out, 3 * D) == 0, "opt positions -1, -2, 31: %s", last());
    CHECK(!memcmp(out, want, (size_t)(3 * D) * 4), "opt: position p reads row p + 2");
    int64_t ids64[1] = {5}, pos64[1] = {-1};
    CHECK(gpt_embedding_forward_i64(h, ids64, 1, 1, pos64, 0, 0, out, D) == 0 && !memcmp(out, want, (size_t)D * 4),
          "opt: int64 position -1 reads row 1: %s", last());
    /* Out of range on both sides; nothing written. */
    memcpy(want, out, sizeof out);
    int32_t low[1] = {-3}, high[1] = {32};
    int rc = gpt_embedding_forward(h, ids, 1, 1, low, 0, 0, out, D);
    CHECK(rc == GPT_EMBEDDING_ERROR_OUT_OF_RANGE && contains(last(), "-3"), "opt position -3: %d %s", rc, last());
    printf("     opt position -3: %s\n", last());
    rc = gpt_embedding_forward(h, ids, 1, 1, high, 0, 0, out, D);
    CHECK(rc == GPT_EMBEDDING_ERROR_OUT_OF_RANGE, "opt position 32: %d %s", rc, last());
    CHECK(!memcmp(out, want, sizeof out), "refused forwards wrote nothing");
    /* start_position stays >= 0 (negative positions only come explicitly). */
    rc = gpt_embedding_forward(h, ids, 1, 1, NULL, -1, 0, out, D);
    CHECK(rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "opt start_position -1: %d %s", rc, last());
    free(tok);
    free(pos);
    gpt_embedding_free(h);
}

/* ------------------------------------------------------------------------ */
/* Bare safetensors files and options.family (issue 19 item 7)              */
/* ------------------------------------------------------------------------ */

#define BARE "Tests/fixtures/bare_names"

static gpt_embedding *open_with(const char *path, size_t size, int mmap, const char *family, int *status) {
    gpt_embedding_open_options o;
    memset(&o, 0x7f, sizeof o); /* past a short size: garbage the library must not read */
    CHECK(gpt_embedding_open_options_init(&o, size) == GPT_EMBEDDING_OK, "options_init(%zu): %s", size, last());
    o.mmap = mmap;
    o.num_threads = 2;
    if (size >= sizeof o) o.family = family;
    gpt_embedding *h = (gpt_embedding *)&o;
    int rc = gpt_embedding_open(path, &o, &h);
    if (status) *status = rc;
    if (rc != GPT_EMBEDDING_OK) CHECK(h == NULL, "%s: *out is NULL after a failure", path);
    return rc == GPT_EMBEDDING_OK ? h : NULL;
}

/* Copies src to dst; returns 1 on success. */
static int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

/* A fresh folder under /tmp holding folder's safetensors files, without config.json. */
static int without_config(const char *folder, char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/gpt_embedding_bare_XXXXXX");
    if (!mkdtemp(dir)) return 0;
    DIR *d = opendir(folder);
    struct dirent *e;
    int ok = d != NULL;
    while (ok && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (!((n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) || !strcmp(e->d_name, "model.safetensors.index.json")))
            continue;
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", folder, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dir, e->d_name);
        ok = copy_file(src, dst);
    }
    if (d) closedir(d);
    return ok;
}

static void remove_folder(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int test_bare_files(void) {
    DIR *d = opendir(BARE);
    CHECK(d != NULL, "cannot open " BARE);
    if (!d) return 0;
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 13 || strcmp(e->d_name + n - 13, ".expected.txt")) continue;
        char expected[600], path[600];
        snprintf(expected, sizeof expected, BARE "/%s", e->d_name);
        snprintf(path, sizeof path, BARE "/%.*s.safetensors", (int)(n - 13), e->d_name);
        fixture f;
        CHECK(fixture_read(expected, &f) == 1, "%s is malformed", expected);
        for (int mmap = 0; mmap <= 1; mmap++) {
            int rc;
            gpt_embedding *h = open_with(path, sizeof(gpt_embedding_open_options), mmap, NULL, &rc);
            CHECK(h != NULL, "open %s: %d %s", path, rc, last());
            if (!h) continue;
            gpt_embedding_config c;
            CHECK(gpt_embedding_get_config(h, &c) == GPT_EMBEDDING_OK && c.position_encoding == GPT_EMBEDDING_POSITION_NONE
                  && c.layer_norm == 0 && c.token_scale == 0.0f && c.position_offset == 0 && c.vocab_size == f.n_ids
                  && c.embed_dim == f.hidden, "%s: a plain lookup (pe %d, ln %d, scale %g)", path, c.position_encoding,
                  c.layer_norm, (double)c.token_scale);
            char label[700];
            snprintf(label, sizeof label, "%s (plain lookup, %s)", path, mmap ? "mapped" : "read");
            check_fixture(h, &f, label, NULL);
            gpt_embedding_free(h);
        }
        /* A 0.4-sized struct (no family field) opens it the same way; a 0.2-sized one
         * keeps 0.2's names (the library's and GPT-2's), so a family's name is not found. */
        int rc;
        gpt_embedding *h = open_with(path, GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_4, 0, NULL, &rc);
        CHECK(h != NULL, "%s with 0.4 options: %d %s", path, rc, last());
        gpt_embedding_free(h);
        h = open_with(path, GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_2, 0, NULL, &rc);
        CHECK(h == NULL && rc == GPT_EMBEDDING_ERROR_BAD_FILE && contains(last(), "no token table"),
              "%s with 0.2 options: %d %s", path, rc, last());
        fixture_free(&f);
        checked++;
    }
    closedir(d);

    /* Two candidate token tables: refused, naming both (BARE/EXPECTED). */
    FILE *idx = fopen(BARE "/EXPECTED", "r");
    CHECK(idx != NULL, BARE "/EXPECTED");
    int refused = 0;
    char line[1024];
    while (idx && fgets(line, sizeof line, idx)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = 0;
        const char *fields[16];
        int n = 0;
        for (char *save = NULL, *t = strtok_r(line, "\t", &save); t && n < 16; t = strtok_r(NULL, "\t", &save)) fields[n++] = t;
        if (n < 2) continue;
        char path[600];
        snprintf(path, sizeof path, BARE "/%s", fields[0]);
        expect_refusal(path, status_code(fields[1]), fields + 2, n - 2);
        refused++;
    }
    if (idx) fclose(idx);
    CHECK(refused >= 2, "%d refusals in " BARE "/EXPECTED", refused);
    /* family chooses between them. */
    int rc;
    gpt_embedding *h = open_with(BARE "/two_candidates.safetensors", sizeof(gpt_embedding_open_options), 0, "llama", &rc);
    CHECK(h != NULL, "two_candidates with family llama: %d %s", rc, last());
    gpt_embedding_free(h);

    /* An unknown family: _INVALID_ARGUMENT naming it and listing the supported ones. */
    const char *unknown[] = {"llamaX", "", "Llama"};
    for (int i = 0; i < 3; i++) {
        h = open_with(BARE "/llama.safetensors", sizeof(gpt_embedding_open_options), 0, unknown[i], &rc);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", unknown[i]);
        CHECK(h == NULL && rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && contains(last(), quoted)
              && contains(last(), "gemma3_text") && contains(last(), "gpt_neox"), "family \"%s\": %d %s", unknown[i], rc, last());
    }
    char longer[100];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    h = open_with(BARE "/llama.safetensors", sizeof(gpt_embedding_open_options), 0, longer, &rc);
    CHECK(h == NULL && rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && contains(last(), "64"), "a 99-byte family: %s", last());
    h = open_with("Tests/fixtures/gguf/bloom_f32.gguf", sizeof(gpt_embedding_open_options), 0, "bloom", &rc);
    CHECK(h == NULL && rc == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT && contains(last(), "general.architecture"),
          "family on a GGUF file: %d %s", rc, last());
    return checked;
}

/* Every family fixture's safetensors without config.json, opened with options.family =
 * its model_type: the same bits as the folder (transformers' block-0 input). */
static int test_family_option(void) {
    DIR *d = opendir(FAMILIES);
    if (!d) return 0;
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "bad") || !strcmp(e->d_name, "README.md")) continue;
        char folder[512], path[600], dir[64];
        snprintf(folder, sizeof folder, FAMILIES "/%s", e->d_name);
        const char *files[] = {"expected.txt", "expected_padded.txt"};
        for (int k = 0; k < 2; k++) {
            fixture f;
            snprintf(path, sizeof path, "%s/%s", folder, files[k]);
            if (fixture_read(path, &f) != 1) continue;
            CHECK(without_config(folder, dir, sizeof dir), "copy %s: %s", folder, strerror(errno));
            for (int mmap = 0; mmap <= 1; mmap++) {
                int rc;
                gpt_embedding *h = open_with(dir, sizeof(gpt_embedding_open_options), mmap, f.model_type, &rc);
                CHECK(h != NULL, "%s without config.json, family %s: %d %s", folder, f.model_type, rc, last());
                if (!h) continue;
                char label[700];
                snprintf(label, sizeof label, "%s (%s, family %s without config.json, %s)", folder, files[k], f.model_type,
                         mmap ? "mapped" : "read");
                check_fixture(h, &f, label, f.positions);
                gpt_embedding_free(h);
            }
            remove_folder(dir);
            fixture_free(&f);
            checked++;
        }
    }
    closedir(d);
    return checked;
}

int main(void) {
    int bare = test_bare_files();
    CHECK(bare >= 7, "%d bare fixtures checked", bare);
    int by_family = test_family_option();
    CHECK(by_family == 19, "%d expected files checked with options.family, 19 expected", by_family);
    int checked = test_fixtures();
    CHECK(checked == 19, "%d expected files checked, 19 expected (18 folders + OPT padded)", checked);
    int bad = test_bad();
    test_by_tensor_names();
    test_configs();
    test_opt_positions();
    printf("families: %d expected files (read and mapped), %d bad cases + opt_project_in; %d bare files, %d with options.family\n",
           checked, bad, bare, by_family);
    return check_summary();
}
