#define _POSIX_C_SOURCE 200809L
#include "adamw_golden.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the next whitespace-separated token into buf; -1 at the end of the file. Tokens
 * longer than the buffer are an error (1). */
static int next_token(FILE *f, char *buf, size_t cap) {
    int c;
    do { c = fgetc(f); } while (c == ' ' || c == '\n' || c == '\t' || c == '\r');
    if (c == EOF) return -1;
    size_t n = 0;
    int too_long = 0;
    while (c != EOF && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
        if (n + 1 < cap) buf[n++] = (char)c; else too_long = 1;
        c = fgetc(f);
    }
    buf[n] = 0;
    return too_long;
}

static void skip_comments(FILE *f) {
    for (;;) {
        int c = fgetc(f);
        if (c != '#') { if (c != EOF) ungetc(c, f); return; }
        while (c != EOF && c != '\n') c = fgetc(f);
    }
}

static void free_entry(adamw_golden_entry *e) {
    free(e->key);
    free(e->values);
}

void adamw_golden_free(adamw_golden *g) {
    for (size_t i = 0; i < g->count; i++) free_entry(&g->entries[i]);
    free(g->entries);
    memset(g, 0, sizeof *g);
}

const adamw_golden_entry *adamw_golden_find(const adamw_golden *g, const char *key) {
    for (size_t i = 0; i < g->count; i++)
        if (!strcmp(g->entries[i].key, key)) return &g->entries[i];
    return NULL;
}

int adamw_golden_has(const adamw_golden *g, const char *key) { return adamw_golden_find(g, key) != NULL; }

static const void *typed(const adamw_golden *g, const char *key, adamw_golden_kind kind, size_t *count) {
    const adamw_golden_entry *e = adamw_golden_find(g, key);
    if (!e || e->kind != kind) { if (count) *count = 0; return NULL; }
    if (count) *count = e->count;
    return e->values;
}

const float *adamw_golden_floats(const adamw_golden *g, const char *key, size_t *count) {
    return typed(g, key, ADAMW_GOLDEN_FLOAT, count);
}
const int64_t *adamw_golden_ints(const adamw_golden *g, const char *key, size_t *count) {
    return typed(g, key, ADAMW_GOLDEN_INT, count);
}
const double *adamw_golden_doubles(const adamw_golden *g, const char *key, size_t *count) {
    return typed(g, key, ADAMW_GOLDEN_DOUBLE, count);
}
const char *adamw_golden_text(const adamw_golden *g, const char *key) {
    return typed(g, key, ADAMW_GOLDEN_TEXT, NULL);
}

double adamw_golden_scalar(const adamw_golden *g, const char *key) {
    const adamw_golden_entry *e = adamw_golden_find(g, key);
    if (!e || e->count != 1) return NAN;
    switch (e->kind) {
    case ADAMW_GOLDEN_INT: return (double)((const int64_t *)e->values)[0];
    case ADAMW_GOLDEN_FLOAT: return ((const float *)e->values)[0];
    case ADAMW_GOLDEN_DOUBLE: return ((const double *)e->values)[0];
    case ADAMW_GOLDEN_TEXT: {
        char *end;
        double v = strtod(e->values, &end);
        return *end || end == (char *)e->values ? NAN : v;
    }
    }
    return NAN;
}

static const char *step_key(char *buf, size_t cap, const char *key, int step) {
    int n = snprintf(buf, cap, "%s.%d", key, step);
    return n < 0 || (size_t)n >= cap ? "" : buf;
}

const float *adamw_golden_step_floats(const adamw_golden *g, const char *key, int step, size_t *count) {
    char buf[128];
    return adamw_golden_floats(g, step_key(buf, sizeof buf, key, step), count);
}
const int64_t *adamw_golden_step_ints(const adamw_golden *g, const char *key, int step, size_t *count) {
    char buf[128];
    return adamw_golden_ints(g, step_key(buf, sizeof buf, key, step), count);
}
double adamw_golden_step_scalar(const adamw_golden *g, const char *key, int step) {
    char buf[128];
    return adamw_golden_scalar(g, step_key(buf, sizeof buf, key, step));
}

/* Appends an entry; takes ownership of key and values (frees them on failure). */
static int add(adamw_golden *g, size_t *cap, char *key, adamw_golden_kind kind, size_t count, void *values) {
    if (!key || adamw_golden_find(g, key)) { free(key); free(values); return -1; }
    if (g->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        adamw_golden_entry *e = realloc(g->entries, ncap * sizeof *e);
        if (!e) { free(key); free(values); return -1; }
        g->entries = e;
        *cap = ncap;
    }
    g->entries[g->count++] = (adamw_golden_entry){key, kind, count, values};
    return 0;
}

static int parse_array(FILE *f, adamw_golden_kind kind, size_t n, void **out) {
    size_t size = kind == ADAMW_GOLDEN_INT ? sizeof(int64_t) : kind == ADAMW_GOLDEN_FLOAT ? sizeof(float) : sizeof(double);
    char *v = malloc((n ? n : 1) * size);
    if (!v) return -1;
    char tok[64];
    for (size_t i = 0; i < n; i++) {
        char *end;
        if (next_token(f, tok, sizeof tok)) { free(v); return -1; }
        errno = 0;
        if (kind == ADAMW_GOLDEN_INT) ((int64_t *)(void *)v)[i] = strtoll(tok, &end, 10);
        else if (kind == ADAMW_GOLDEN_FLOAT) ((float *)(void *)v)[i] = strtof(tok, &end);
        else ((double *)(void *)v)[i] = strtod(tok, &end);
        /* ERANGE is fine for floats (subnormals), not for ints */
        if (*end || end == tok || (kind == ADAMW_GOLDEN_INT && errno == ERANGE)) { free(v); return -1; }
    }
    *out = v;
    return 0;
}

static int64_t header_int(const adamw_golden *g, const char *key, int *ok) {
    const char *t = adamw_golden_text(g, key);
    char *end;
    if (!t) { *ok = 0; return 0; }
    long long v = strtoll(t, &end, 10);
    if (*end || end == t) *ok = 0;
    return v;
}

static int decode_header(adamw_golden *g, const char *path) {
    static const char *texts[] = {"name", "position_encoding", "weight_dtype", "layer_norm_eps"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!adamw_golden_text(g, texts[i])) { fprintf(stderr, "%s: no header %s\n", path, texts[i]); return -1; }
    snprintf(g->name, sizeof g->name, "%s", adamw_golden_text(g, "name"));
    snprintf(g->position_encoding, sizeof g->position_encoding, "%s", adamw_golden_text(g, "position_encoding"));
    snprintf(g->weight_dtype, sizeof g->weight_dtype, "%s", adamw_golden_text(g, "weight_dtype"));
    g->layer_norm_eps = strtof(adamw_golden_text(g, "layer_norm_eps"), NULL);
    int ok = 1;
    g->vocab_size = header_int(g, "vocab_size", &ok);
    g->embed_dim = header_int(g, "embed_dim", &ok);
    g->max_seq_len = header_int(g, "max_seq_len", &ok);
    g->padding_idx = header_int(g, "padding_idx", &ok);
    g->batch = header_int(g, "batch", &ok);
    g->seq = header_int(g, "seq", &ok);
    g->steps = header_int(g, "steps", &ok);
    g->layer_norm = (int)header_int(g, "layer_norm", &ok);
    if (!ok) { fprintf(stderr, "%s: missing or malformed integer header\n", path); return -1; }
    return 0;
}

int adamw_golden_read(const char *path, adamw_golden *g) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return -1; }
    skip_comments(f);
    size_t cap = 0;
    char tok[256], key[256], count[32];
    const char *problem = NULL;
    if (next_token(f, tok, sizeof tok) || strcmp(tok, "format") || next_token(f, tok, sizeof tok)
        || strcmp(tok, "adamw-1")) {
        problem = "not format adamw-1";
        goto bad;
    }
    for (;;) {
        int r = next_token(f, tok, sizeof tok);
        if (r < 0) { problem = "no end token"; goto bad; }
        if (r > 0) { problem = "token too long"; goto bad; }
        if (!strcmp(tok, "end")) break;
        adamw_golden_kind kind = !strcmp(tok, "int") ? ADAMW_GOLDEN_INT : !strcmp(tok, "float") ? ADAMW_GOLDEN_FLOAT
            : !strcmp(tok, "double") ? ADAMW_GOLDEN_DOUBLE : ADAMW_GOLDEN_TEXT;
        if (kind == ADAMW_GOLDEN_TEXT) { /* header scalar: tok is the key */
            if (next_token(f, key, sizeof key)) { problem = "header scalar without a value"; goto bad; }
            if (add(g, &cap, strdup(tok), kind, 1, strdup(key))) { problem = "duplicate key or out of memory"; goto bad; }
            continue;
        }
        if (next_token(f, key, sizeof key) || next_token(f, count, sizeof count)) { problem = "truncated entry"; goto bad; }
        char *end;
        long long n = strtoll(count, &end, 10);
        if (*end || end == count || n < 0 || n > 100000000) { problem = "bad count"; goto bad; }
        void *values = NULL;
        if (parse_array(f, kind, (size_t)n, &values)) {
            fprintf(stderr, "%s: entry %s: bad or missing values\n", path, key);
            fclose(f);
            adamw_golden_free(g);
            return -1;
        }
        if (add(g, &cap, strdup(key), kind, (size_t)n, values)) { problem = "duplicate key or out of memory"; goto bad; }
    }
    if (next_token(f, tok, sizeof tok) != -1) { problem = "tokens after end"; goto bad; }
    fclose(f);
    if (decode_header(g, path)) { adamw_golden_free(g); return -1; }
    return 0;
bad:
    fprintf(stderr, "%s: %s\n", path, problem);
    fclose(f);
    adamw_golden_free(g);
    return -1;
}

static int need(const adamw_golden *g, const char *key, adamw_golden_kind kind, size_t count) {
    const adamw_golden_entry *e = adamw_golden_find(g, key);
    if (e && e->kind == kind && e->count == count) return 0;
    fprintf(stderr, "%s: %s %s (expected %zu values, found %zu)\n", g->name, e ? "bad entry" : "missing", key, count,
            e ? e->count : 0);
    return -1;
}

int adamw_golden_validate(const adamw_golden *g) {
    size_t V = (size_t)g->vocab_size, D = (size_t)g->embed_dim, T = (size_t)g->max_seq_len;
    size_t BT = (size_t)(g->batch * g->seq);
    int learned = !strcmp(g->position_encoding, "learned"), bf16 = !strcmp(g->weight_dtype, "bf16");
    if (g->vocab_size <= 0 || g->embed_dim <= 0 || g->batch <= 0 || g->seq <= 0 || g->steps <= 0
        || (learned ? g->max_seq_len < g->seq : strcmp(g->position_encoding, "none"))
        || (!bf16 && strcmp(g->weight_dtype, "f32"))) {
        fprintf(stderr, "%s: inconsistent header\n", g->name);
        return -1;
    }
    const char *params[] = {"wte", "wpe", "ln_weight", "ln_bias"};
    size_t sizes[] = {V * D, T * D, D, D};
    int bad = 0;
    for (int p = 0; p < 4; p++) {
        if (p == 1 && !learned) { bad |= adamw_golden_has(g, "wpe"); continue; }
        bad |= need(g, params[p], ADAMW_GOLDEN_FLOAT, sizes[p]);
    }
    char k[128];
    for (int s = 1; s <= g->steps; s++) {
        static const char *doubles[] = {"lr", "beta1", "beta2", "eps", "weight_decay", "grad_scale", "grad_norm_sq"};
        for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
            bad |= need(g, step_key(k, sizeof k, doubles[i], s), ADAMW_GOLDEN_DOUBLE, 1);
        bad |= need(g, step_key(k, sizeof k, "decay_mask", s), ADAMW_GOLDEN_INT, 1);
        bad |= need(g, step_key(k, sizeof k, "lazy", s), ADAMW_GOLDEN_INT, 1);
        bad |= need(g, step_key(k, sizeof k, "ids", s), ADAMW_GOLDEN_INT, BT);
        bad |= need(g, step_key(k, sizeof k, "grad_output", s), ADAMW_GOLDEN_FLOAT, BT * D);
        int lazy = adamw_golden_step_scalar(g, "lazy", s) == 1;
        for (int p = 0; p < 4; p++) {
            if (p == 1 && !learned) continue;
            static const char *prefixes[] = {"grad.", "", "exp_avg.", "exp_avg_sq."};
            for (int j = 0; j < 4; j++) {
                char base[64];
                snprintf(base, sizeof base, "%s%s", prefixes[j], params[p]);
                bad |= need(g, step_key(k, sizeof k, base, s), ADAMW_GOLDEN_FLOAT, sizes[p]);
            }
            if (p < 2) {
                char base[64];
                snprintf(base, sizeof base, "master.%s", params[p]);
                if (bf16) bad |= need(g, step_key(k, sizeof k, base, s), ADAMW_GOLDEN_FLOAT, sizes[p]);
                else bad |= adamw_golden_has(g, step_key(k, sizeof k, base, s));
                snprintf(base, sizeof base, "touched.%s", params[p]);
                const adamw_golden_entry *t = adamw_golden_find(g, step_key(k, sizeof k, base, s));
                if (lazy ? !t || t->kind != ADAMW_GOLDEN_INT : t != NULL) bad = 1;
                for (size_t i = 0; t && t->kind == ADAMW_GOLDEN_INT && i < t->count; i++) {
                    int64_t row = ((const int64_t *)t->values)[i];
                    if (row < 0 || (size_t)row >= sizes[p] / D) bad = 1;
                }
            }
        }
        if (bad) { fprintf(stderr, "%s: step %d is inconsistent\n", g->name, s); return -1; }
    }
    return bad ? -1 : 0;
}

#ifdef ADAMW_GOLDEN_MAIN
/* Self-check of the reader (not part of Tests/c/run.sh):
 *   cc -std=c11 -Wall -Wextra -Werror -DADAMW_GOLDEN_MAIN -ITests/c Tests/c/adamw_golden.c -lm -o adamw_golden_check
 *   ./adamw_golden_check Tests/golden/adamw
 * reads and validates every .txt file of the folder. */
#include <dirent.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "Tests/golden/adamw";
    DIR *d = opendir(dir);
    if (!d) { fprintf(stderr, "cannot open %s\n", dir); return 1; }
    struct dirent *e;
    int files = 0, failed = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        adamw_golden g;
        files++;
        if (adamw_golden_read(path, &g)) { failed++; continue; }
        if (adamw_golden_validate(&g)) { failed++; adamw_golden_free(&g); continue; }
        size_t n, m;
        const float *w = adamw_golden_step_floats(&g, "wte", (int)g.steps, &n);
        const int64_t *ids = adamw_golden_step_ints(&g, "ids", 1, &m);
        printf("ok   %-20s %3zu entries  V=%lld D=%lld steps=%lld %s lr.1=%.17g wte.%lld[0]=%.9g ids.1[0]=%lld%s\n",
               g.name, g.count, (long long)g.vocab_size, (long long)g.embed_dim, (long long)g.steps, g.weight_dtype,
               adamw_golden_step_scalar(&g, "lr", 1), (long long)g.steps, w[0], (long long)ids[0],
               adamw_golden_has(&g, "master.wte.1") ? " (masters)" : "");
        if (adamw_golden_floats(&g, "no.such.key", &n) || n != 0 || !isnan(adamw_golden_scalar(&g, "nope"))
            || adamw_golden_ints(&g, "wte", &n) || adamw_golden_scalar(&g, "vocab_size") != (double)g.vocab_size) {
            printf("FAIL %s: lookups\n", g.name);
            failed++;
        }
        adamw_golden_free(&g);
    }
    closedir(d);
    printf("%d files, %d failed\n", files, failed);
    return failed || !files;
}
#endif
