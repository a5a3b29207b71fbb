/* Safetensors from C: save and load round trip (library and GPT-2 names), a file written
 * by the official safetensors package (F16, GPT-2 names), and rejected files that change
 * nothing. Usage: test_safetensors <dir with the seed corpus of Tests/fuzz/corpus/safetensors> */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpt_embedding.h"

static gpt_embedding *make(uint64_t seed) {
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = 8; c.embed_dim = 4; c.max_seq_len = 4; c.seed = seed;
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_create(&c, &h) == 0, "create");
    return h;
}

static void params(gpt_embedding *h, float *out) { /* 32 + 16 + 4 + 4 floats */
    gpt_embedding_get_parameter(h, 0, out, 32);
    gpt_embedding_get_parameter(h, 1, out + 32, 16);
    gpt_embedding_get_parameter(h, 2, out + 48, 4);
    gpt_embedding_get_parameter(h, 3, out + 52, 4);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]); return 2; }
    char path[512];
    snprintf(path, sizeof path, "/tmp/gpt_embedding_c_test_%d.safetensors", (int)getpid());
    float a[56], b[56];
    for (unsigned flags = 0; flags <= GPT_EMBEDDING_SAVE_GPT2_NAMES; flags++) {
        gpt_embedding *x = make(1), *y = make(2);
        CHECK(gpt_embedding_save_safetensors(x, path, flags) == 0, "save: %s", gpt_embedding_last_error());
        CHECK(gpt_embedding_load_safetensors(y, path) == 0, "load: %s", gpt_embedding_last_error());
        params(x, a); params(y, b);
        CHECK(!memcmp(a, b, sizeof a), "round trip with flags %u", flags);
        gpt_embedding_free(x); gpt_embedding_free(y);
    }
    unlink(path);

    gpt_embedding *h = make(3);
    char file[1024];
    snprintf(file, sizeof file, "%s/gpt2_f16", argv[1]);
    CHECK(gpt_embedding_load_safetensors(h, file) == 0, "GPT-2 names, F16, from the official package: %s", gpt_embedding_last_error());
    params(h, a);
    const char *bad[] = {"truncated", "bad_json"};
    for (int i = 0; i < 2; i++) {
        snprintf(file, sizeof file, "%s/%s", argv[1], bad[i]);
        int rc = gpt_embedding_load_safetensors(h, file);
        CHECK(rc == GPT_EMBEDDING_ERROR_BAD_FILE && gpt_embedding_last_error() != NULL, "%s rejected: %d", bad[i], rc);
        params(h, b);
        CHECK(!memcmp(a, b, sizeof a), "%s changed nothing", bad[i]);
    }
    CHECK(gpt_embedding_load_safetensors(h, "/nonexistent.safetensors") == GPT_EMBEDDING_ERROR_IO, "missing file");
    CHECK(strstr(gpt_embedding_last_error(), "cannot open /nonexistent.safetensors") != NULL, "message names the file");
    unsigned char junk[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    CHECK(gpt_embedding_load_safetensors_buffer(h, junk, 16) == GPT_EMBEDDING_ERROR_BAD_FILE, "empty header");
    CHECK(strstr(gpt_embedding_last_error(), "missing tensor token_embedding.weight") != NULL, "%s", gpt_embedding_last_error());
    CHECK(gpt_embedding_load_safetensors_buffer(h, NULL, 16) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL data");
    CHECK(gpt_embedding_load_safetensors_buffer(h, junk, -1) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "negative size");
    CHECK(gpt_embedding_load_safetensors(h, NULL) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL path");
    CHECK(gpt_embedding_save_safetensors(h, "/tmp/x.safetensors", 4) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "unknown flags");
    CHECK(gpt_embedding_save_safetensors(h, "/nonexistent/dir/x.safetensors", 0) == GPT_EMBEDDING_ERROR_IO, "unwritable path");
    params(h, b);
    CHECK(!memcmp(a, b, sizeof a), "failed calls changed nothing");
    gpt_embedding_free(h);

    /* Every rejection rule (Tests/fixtures/malformed/EXPECTED: file<TAB>text). */
    FILE *idx = fopen("Tests/fixtures/malformed/EXPECTED", "r");
    CHECK(idx != NULL, "Tests/fixtures/malformed/EXPECTED");
    int rules = 0;
    char entry[512];
    while (idx && fgets(entry, sizeof entry, idx)) {
        char *tab = strchr(entry, '\t'), *nl = strchr(entry, '\n');
        if (!tab) continue;
        *tab = 0;
        if (nl) *nl = 0;
        snprintf(file, sizeof file, "Tests/fixtures/malformed/%s", entry);
        gpt_embedding *m = make(4);
        params(m, a);
        int rc = gpt_embedding_load_safetensors(m, file);
        const char *msg = gpt_embedding_last_error();
        CHECK(rc == GPT_EMBEDDING_ERROR_BAD_FILE && msg && strstr(msg, tab + 1), "%s: %d %s (expected \"%s\")", entry, rc, msg ? msg : "", tab + 1);
        params(m, b);
        CHECK(!memcmp(a, b, sizeof a), "%s changed the layer", entry);
        gpt_embedding_free(m);
        rules++;
    }
    if (idx) fclose(idx);
    CHECK(rules >= 20, "%d malformed files", rules);

    /* A checkpoint written by Hugging Face transformers reproduces its wte(ids) + wpe(positions). */
    FILE *f = fopen("Tests/fixtures/gpt2_tiny_expected.txt", "r");
    CHECK(f != NULL, "Tests/fixtures/gpt2_tiny_expected.txt (run from the repository root)");
    if (f) {
        int64_t ids[12], pos[12];
        float expected[96], out[96];
        char word[64], line[256];
        if (!fgets(line, sizeof line, f)) line[0] = 0; /* the comment line */
        int ok = fscanf(f, "%63s", word) == 1;
        for (int i = 0; i < 12; i++) ok &= fscanf(f, "%lld", (long long *)&ids[i]) == 1;
        ok &= fscanf(f, "%63s", word) == 1;
        for (int i = 0; i < 12; i++) ok &= fscanf(f, "%lld", (long long *)&pos[i]) == 1;
        ok &= fscanf(f, "%63s", word) == 1;
        for (int i = 0; i < 96; i++) ok &= fscanf(f, "%f", &expected[i]) == 1;
        fclose(f);
        CHECK(ok, "read the expected output");
        const char *files[] = {"Tests/fixtures/gpt2_tiny.safetensors", "Tests/fixtures/gpt2_tiny_unprefixed.safetensors"};
        for (int k = 0; k < 2; k++) {
            gpt_embedding_config c;
            gpt_embedding_preset_config("gpt2", &c);
            c.vocab_size = 64; c.embed_dim = 8; c.max_seq_len = 16;
            gpt_embedding *g = NULL;
            gpt_embedding_create(&c, &g);
            CHECK(gpt_embedding_load_safetensors(g, files[k]) == 0, "%s: %s", files[k], gpt_embedding_last_error());
            CHECK(gpt_embedding_forward_i64(g, ids, 2, 6, pos, 0, 0, out, 96) == 0, "forward");
            int same = 1;
            for (int i = 0; i < 96; i++) same &= fabsf(out[i] - expected[i]) <= 1e-6f * fabsf(expected[i]) + 1e-7f;
            CHECK(same, "%s reproduces transformers' embedding output", files[k]);
            gpt_embedding_free(g);
        }
    }
    return check_summary();
}
