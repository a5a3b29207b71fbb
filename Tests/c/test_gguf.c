/* GGUF files from C (issue 19, part one): every fixture of Tests/fixtures/gguf (written by
 * generate_gguf.py with the gguf package) opens with gpt_embedding_open, read and mapped,
 * and gpt_embedding_forward reproduces the float64 reference of llama.cpp's input stage
 * (<name>.expected.txt) bit for bit (BLOOM's layer norm within 1e-6 |b| + 1e-6); every
 * file of bad/expected.txt is refused with _BAD_FILE, its message text, *out NULL; a
 * refused architecture opens with by_tensor_names = 1; a quantized table is refused
 * naming its type.
 *
 * Run from the repository root: test_gguf */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    CHECK(gpt_embedding_open(DIR_ "/llama_q8_0.gguf", NULL, &h) == GPT_EMBEDDING_ERROR_BAD_FILE, "q8_0 refused");
    CHECK(strstr(last(), "token_embd.weight is q8_0: quantized token tables are not supported by this build yet") != NULL, "%s", last());
    return check_summary();
}
