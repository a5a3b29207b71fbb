/* old_program.c -- a program written for the 0.2 API and compiled against the 0.2 header
 * (gpt_embedding_0_2.h next to this file: include/gpt_embedding.h as released in 0.2,
 * byte for byte), linked to the current library. Issue 12 promises that such binaries
 * keep working although gpt_embedding_config grew from 72 to 88 bytes and
 * gpt_embedding_open_options from 56 to 64:
 *
 *   - gpt_embedding_default_config() returns the 72-byte struct by value,
 *     gpt_embedding_preset_config and gpt_embedding_get_config fill 72 bytes, and
 *     gpt_embedding_open_options_init(&o, sizeof o) 56 bytes: every struct sits in a larger
 *     one (stack and heap) followed by canary bytes that must stay intact, and the ASan
 *     build (run.sh) also passes structs malloc'ed at exactly their old size;
 *   - the values are right (every field of the defaults, the presets, a layer's config);
 *   - create, forward (int32, int64, typed, explicit positions, layer norm), training
 *     forward, backward, gradients, save, open (a file, read and mapped, and Hugging Face
 *     folders) give the same bits as the same source rebuilt against the current header
 *     (-DNEW_HEADER): both print "digest <what> <hash>" lines that run.sh compares.
 *
 * Usage (from the repository root): old_program <scratch dir> */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#ifdef NEW_HEADER
#include "gpt_embedding.h"
#define BUILT "current header"
#else
#include "gpt_embedding_0_2.h"
#define BUILT "0.2 header"
#if GPT_EMBEDDING_VERSION_NUMBER != 200
#error "the old program must see the 0.2 header"
#endif
_Static_assert(sizeof(gpt_embedding_config) == 72, "the 0.2 config is 72 bytes");
_Static_assert(sizeof(gpt_embedding_open_options) == 56, "the 0.2 open options are 56 bytes");
#endif

#define CANARY 64
typedef struct { gpt_embedding_config c; unsigned char canary[CANARY]; } config_box;
typedef struct { gpt_embedding_open_options o; unsigned char canary[CANARY]; } options_box;
_Static_assert(offsetof(config_box, canary) == sizeof(gpt_embedding_config), "canary right after the config");
_Static_assert(offsetof(options_box, canary) == sizeof(gpt_embedding_open_options), "canary right after the options");

static void arm(unsigned char *canary) { memset(canary, 0xA5, CANARY); }
static int intact(const unsigned char *canary) {
    for (int i = 0; i < CANARY; i++) if (canary[i] != 0xA5) return 0;
    return 1;
}
static const char *last(void) { const char *m = gpt_embedding_last_error(); return m ? m : "(no message)"; }

/* FNV-1a, 64 bits, printed for run.sh to compare between the two builds. */
static void digest(const char *what, const void *data, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)data)[i]) * 0x100000001b3ull;
    printf("digest %s %016llx\n", what, (unsigned long long)h);
}

/* The 0.2 defaults, field by field. */
static int is_default(const gpt_embedding_config *c) {
    return c->struct_size == sizeof *c && c->position_encoding == GPT_EMBEDDING_POSITION_LEARNED
           && c->vocab_size == 50257 && c->embed_dim == 768 && c->max_seq_len == 1024 && c->padding_idx == -1
           && c->seed == 0 && c->dropout == 0.1f && c->layer_norm_eps == 1e-5f && c->init_std == 0.02f
           && c->scale_embeddings == 1 && c->num_threads == 0 && c->weight_dtype == GPT_EMBEDDING_DTYPE_F32
#ifdef NEW_HEADER
           && c->token_scale == 0.0f && c->layer_norm == 0 && c->position_offset == 0
#endif
        ;
}

static void test_configs(void) {
    /* By value, into a struct followed by canaries: on the stack ... */
    config_box b;
    memset(&b.c, 0x5A, sizeof b.c);
    arm(b.canary);
    b.c = gpt_embedding_default_config();
    CHECK(intact(b.canary), "default_config wrote past the %zu-byte struct (stack)", sizeof b.c);
    CHECK(is_default(&b.c), "default_config: struct_size %u vocab %lld D %lld dropout %g", b.c.struct_size,
          (long long)b.c.vocab_size, (long long)b.c.embed_dim, (double)b.c.dropout);
    /* ... and on the heap. */
    config_box *hb = malloc(sizeof *hb);
    memset(&hb->c, 0x5A, sizeof hb->c);
    arm(hb->canary);
    hb->c = gpt_embedding_default_config();
    CHECK(intact(hb->canary) && is_default(&hb->c), "default_config (heap)");

    /* Presets: the GPT-2 family; an unknown name changes nothing. */
    static const struct { const char *name; int64_t dim; } presets[] = {
        {"gpt2", 768}, {"gpt2-small", 768}, {"gpt2-medium", 1024}, {"gpt2-large", 1280}, {"gpt2-xl", 1600}};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        memset(&hb->c, 0x5A, sizeof hb->c);
        arm(hb->canary);
        int rc = gpt_embedding_preset_config(presets[i].name, &hb->c);
        CHECK(rc == GPT_EMBEDDING_OK && intact(hb->canary), "preset %s: %d, canary %d", presets[i].name, rc, intact(hb->canary));
        const gpt_embedding_config *c = &hb->c;
        CHECK(c->struct_size == sizeof *c && c->embed_dim == presets[i].dim && c->vocab_size == 50257
              && c->max_seq_len == 1024 && c->scale_embeddings == 0 && c->dropout == 0.1f && c->padding_idx == -1
              && c->position_encoding == GPT_EMBEDDING_POSITION_LEARNED && c->layer_norm_eps == 1e-5f
              && c->init_std == 0.02f && c->num_threads == 0 && c->weight_dtype == 0,
              "preset %s: struct_size %u D %lld", presets[i].name, c->struct_size, (long long)c->embed_dim);
        digest(presets[i].name, &c->vocab_size, offsetof(gpt_embedding_config, weight_dtype) + 4 - offsetof(gpt_embedding_config, vocab_size));
    }
    config_box before = *hb;
    CHECK(gpt_embedding_preset_config("gpt5", &hb->c) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT
          && strstr(last(), "unknown preset \"gpt5\""), "unknown preset: %s", last());
    CHECK(gpt_embedding_preset_config(NULL, &hb->c) == GPT_EMBEDDING_ERROR_NULL_POINTER, "NULL name");
    CHECK(!memcmp(&before, hb, sizeof before), "refused presets changed nothing");
    free(hb);

    /* Exactly the old size on the heap (the ASan build catches a write past it). */
    gpt_embedding_config *exact = malloc(sizeof *exact);
    CHECK(gpt_embedding_preset_config("gpt2", exact) == 0 && exact->embed_dim == 768, "preset into an exact allocation");
    *exact = gpt_embedding_default_config();
    CHECK(gpt_embedding_config_validate(exact) == 0, "validate the defaults: %s", last());
    exact->vocab_size = 64; exact->embed_dim = 12; exact->max_seq_len = 16;
    int64_t count = 0;
    CHECK(gpt_embedding_config_num_parameters(exact, GPT_EMBEDDING_PARAM_ALL, &count) == 0 && count == 64 * 12 + 16 * 12 + 24,
          "num_parameters: %lld %s", (long long)count, last());
    exact->dropout = 1.5f;
    CHECK(gpt_embedding_config_validate(exact) == GPT_EMBEDDING_ERROR_INVALID_CONFIG && strstr(last(), "dropout"),
          "dropout 1.5: %s", last());
    exact->dropout = 0.1f;
    exact->struct_size = 80;
    CHECK(gpt_embedding_config_validate(exact) == GPT_EMBEDDING_ERROR_VERSION_MISMATCH, "struct_size 80: %s", last());
    free(exact);

    /* The library's struct is at least ours (an old program must not insist on equality). */
    printf("     built against the %s (%zu-byte config, %zu-byte options); library %s, config %zu bytes\n", BUILT,
           sizeof(gpt_embedding_config), sizeof(gpt_embedding_open_options), gpt_embedding_version_string(),
           gpt_embedding_config_size());
    CHECK(gpt_embedding_config_size() >= sizeof(gpt_embedding_config), "config_size %zu", gpt_embedding_config_size());
    CHECK(gpt_embedding_version_number() >= GPT_EMBEDDING_VERSION_NUMBER, "library %u, header %d",
          gpt_embedding_version_number(), GPT_EMBEDDING_VERSION_NUMBER);
}

enum { V = 64, D = 12, S = 16, B = 2, T = 5, N = B * T * D };

/* Every parameter and gradient, digested. */
static void digest_layer(gpt_embedding *h, const char *what, int gradients) {
    static float buf[V * D];
    int64_t sizes[4] = {V * D, S * D, D, D};
    char name[64];
    for (int p = 0; p < 4; p++) {
        int rc = gradients ? gpt_embedding_get_gradient(h, p, buf, sizes[p]) : gpt_embedding_get_parameter(h, p, buf, sizes[p]);
        CHECK(rc == 0, "%s %d: %s", what, p, last());
        snprintf(name, sizeof name, "%s-%s-%d", what, gradients ? "grad" : "param", p);
        digest(name, buf, (size_t)sizes[p] * 4);
    }
}

/* A layer's config through get_config, into a struct followed by canaries. */
static gpt_embedding_config config_of(gpt_embedding *h, const char *what) {
    config_box b;
    memset(&b.c, 0x5A, sizeof b.c);
    arm(b.canary);
    int rc = gpt_embedding_get_config(h, &b.c);
    CHECK(rc == 0 && b.c.struct_size == sizeof b.c, "%s: get_config %d, struct_size %u", what, rc, b.c.struct_size);
    CHECK(intact(b.canary), "%s: get_config wrote past the %zu-byte struct", what, sizeof b.c);
    return b.c;
}

static gpt_embedding *test_layer(float *eval_out) {
    gpt_embedding_config *c = malloc(sizeof *c); /* exactly the old size */
    *c = gpt_embedding_default_config();
    c->vocab_size = V; c->embed_dim = D; c->max_seq_len = S; c->seed = 7; c->dropout = 0.25f; c->padding_idx = 3;
    c->num_threads = 2;
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_create(c, &h) == 0 && h, "create: %s", last());
    if (!h) { free(c); return NULL; }
    gpt_embedding_config back = config_of(h, "created layer");
    CHECK(!memcmp(&back, c, sizeof back), "get_config gives back the config the layer was created with");
    free(c);
    digest_layer(h, "init", 0);

    int32_t ids[B * T] = {0, 5, 63, 5, 3, 9, 9, 1, 62, 3};
    int64_t ids64[B * T];
    int32_t positions[B * T] = {0, 1, 2, 3, 4, 15, 14, 0, 7, 7};
    for (int i = 0; i < B * T; i++) ids64[i] = ids[i];
    float out[N], grad[N];
    uint16_t half[N];
    CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 3, 0, eval_out, N) == 0, "forward: %s", last());
    digest("forward", eval_out, sizeof out);
    CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 3, GPT_EMBEDDING_LAYER_NORM, out, N) == 0, "forward LN: %s", last());
    digest("forward-ln", out, sizeof out);
    CHECK(gpt_embedding_forward_i64(h, ids64, B, T, NULL, 3, 0, out, N) == 0 && !memcmp(out, eval_out, sizeof out),
          "forward_i64 equals forward: %s", last());
    CHECK(gpt_embedding_forward(h, ids, B, T, positions, 0, 0, out, N) == 0, "forward with positions: %s", last());
    digest("forward-positions", out, sizeof out);
    CHECK(gpt_embedding_forward_typed(h, ids, B, T, NULL, 3, 0, GPT_EMBEDDING_DTYPE_BF16, half, N) == 0, "typed: %s", last());
    digest("forward-bf16", half, sizeof half);
    int32_t bad[B * T];
    memcpy(bad, ids, sizeof bad);
    bad[6] = V;
    memcpy(out, eval_out, sizeof out);
    CHECK(gpt_embedding_forward(h, bad, B, T, NULL, 0, 0, out, N) == GPT_EMBEDDING_ERROR_OUT_OF_RANGE
          && strstr(last(), "token id 64 at [1, 1] is out of range [0, 64)") && !memcmp(out, eval_out, sizeof out),
          "bad id: %s", last());

    /* Training: dropout, layer norm, backward, gradients. */
    CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, out, N) == 0,
          "training forward: %s", last());
    digest("train-forward", out, sizeof out);
    for (int i = 0; i < N; i++) grad[i] = (float)((i * 7) % 13 - 6) / 8.0f;
    CHECK(gpt_embedding_backward(h, grad, B, T) == 0, "backward: %s", last());
    digest_layer(h, "train", 1);
    int32_t rows[V];
    int64_t touched = 0;
    CHECK(gpt_embedding_touched_rows(h, rows, V, &touched) == 0 && touched == 6, "touched rows: %lld", (long long)touched);
    digest("touched", rows, (size_t)touched * 4);
    CHECK(gpt_embedding_zero_grad(h) == 0, "zero_grad");
    CHECK(gpt_embedding_backward(h, grad, B, T + 1) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT, "backward shape");
    return h;
}

/* The 0.2 options: defaults, in a struct followed by canaries. */
static void init_options(options_box *b) {
    memset(&b->o, 0x5A, sizeof b->o);
    arm(b->canary);
    int rc = gpt_embedding_open_options_init(&b->o, sizeof b->o);
    const gpt_embedding_open_options *o = &b->o;
    CHECK(rc == 0 && intact(b->canary), "open_options_init(%zu): %d %s, canary %d", sizeof b->o, rc, last(), intact(b->canary));
    CHECK(o->struct_size == sizeof *o && o->dtype == GPT_EMBEDDING_DTYPE_KEEP && o->mmap == 0 && o->num_threads == 0
          && o->seed == 0 && o->scale_embeddings == 0 && o->position_encoding == GPT_EMBEDDING_POSITION_FROM_FILE
          && o->max_seq_len == 1024 && o->padding_idx == -1,
          "open options defaults: struct_size %u dtype %d max_seq_len %lld", o->struct_size, o->dtype, (long long)o->max_seq_len);
    /* 0.2's header documents dropout 0 and eps 1e-5; 0.3 writes -1 (= from config.json,
     * else 0 and 1e-5): the same layer for a file, see test_open. */
    CHECK((o->dropout == 0.0f || o->dropout == -1.0f) && (o->layer_norm_eps == 1e-5f || o->layer_norm_eps == -1.0f),
          "open options dropout %g eps %g", (double)o->dropout, (double)o->layer_norm_eps);
}

static void test_open(gpt_embedding *created, const float *eval_out, const char *scratch) {
    char path[512];
    snprintf(path, sizeof path, "%s/old_program_%d.safetensors", scratch, (int)getpid());
    CHECK(gpt_embedding_save_safetensors(created, path, 0) == 0, "save: %s", last());
    options_box ob;
    init_options(&ob);
    printf("     open options defaults as this program sees them: dropout %g, layer_norm_eps %g\n",
           (double)ob.o.dropout, (double)ob.o.layer_norm_eps);
    for (int mmap = 0; mmap <= 1; mmap++) {
        /* Exactly the old size on the heap. */
        gpt_embedding_open_options *o = malloc(sizeof *o);
        memcpy(o, &ob.o, sizeof *o);
        o->mmap = mmap;
        o->scale_embeddings = 1; /* the created layer's default_config scales token rows */
        o->num_threads = 1;
        gpt_embedding *h = NULL;
        CHECK(gpt_embedding_open(path, o, &h) == 0 && h, "open (mmap %d): %s", mmap, last());
        free(o);
        if (!h) continue;
        gpt_embedding_config c = config_of(h, "opened file");
        CHECK(c.vocab_size == V && c.embed_dim == D && c.max_seq_len == S && c.position_encoding == GPT_EMBEDDING_POSITION_LEARNED
              && c.dropout == 0.0f && c.layer_norm_eps == 1e-5f && c.scale_embeddings == 1 && c.padding_idx == -1,
              "opened file config: vocab %lld D %lld rows %lld dropout %g eps %g", (long long)c.vocab_size,
              (long long)c.embed_dim, (long long)c.max_seq_len, (double)c.dropout, (double)c.layer_norm_eps);
        int32_t ids[B * T] = {0, 5, 63, 5, 3, 9, 9, 1, 62, 3};
        float out[N];
        CHECK(gpt_embedding_forward(h, ids, B, T, NULL, 3, 0, out, N) == 0 && !memcmp(out, eval_out, sizeof out),
              "opened file (mmap %d) forwards like the layer it was saved from: %s", mmap, last());
        gpt_embedding_free(h);
    }
    unlink(path);
    gpt_embedding *h = NULL;
    CHECK(gpt_embedding_open("/nonexistent.safetensors", &ob.o, &h) == GPT_EMBEDDING_ERROR_IO && h == NULL, "missing file");

    /* Hugging Face folders. A program built against the 0.2 header passes the 56-byte
     * options, which keep 0.2's meaning: tensor names only, config.json is not read -- so
     * GPT-2 names open (as in 0.2) and the other families are refused as 0.2 refused them.
     * Built against the current header, config.json selects the family. */
#if GPT_EMBEDDING_VERSION_MINOR < 3
    const int families_open = 0;
#else
    const int families_open = 1;
#endif
    static const struct { const char *folder; int64_t vocab, dim, rows; } folders[] = {
        {"Tests/fixtures/families/gpt2", 192, 27, 32},
        {"Tests/fixtures/families/opt", 208, 35, 34},
        {"Tests/fixtures/families/bloom", 168, 45, 0},
        {"Tests/fixtures/families/gemma_bf16", 160, 48, 0},
    };
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
        gpt_embedding_open_options *o = malloc(sizeof *o);
        memcpy(o, &ob.o, sizeof *o);
        h = NULL;
        int rc = gpt_embedding_open(folders[i].folder, o, &h);
        free(o);
        if (i > 0 && !families_open) {
            CHECK(rc == GPT_EMBEDDING_ERROR_BAD_FILE && h == NULL && strstr(last(), "no token table"),
                  "%s with 0.2 options is refused as 0.2 refused it: %d %s", folders[i].folder, rc, last());
            continue;
        }
        CHECK(rc == 0 && h, "open %s: %s", folders[i].folder, last());
        if (!h) continue;
        gpt_embedding_config c = config_of(h, folders[i].folder);
        CHECK(c.vocab_size == folders[i].vocab && c.embed_dim == folders[i].dim && c.max_seq_len == folders[i].rows,
              "%s: vocab %lld D %lld rows %lld", folders[i].folder, (long long)c.vocab_size, (long long)c.embed_dim,
              (long long)c.max_seq_len);
        printf("     %s: dropout %g (config.json), weight_dtype %d\n", folders[i].folder, (double)c.dropout, c.weight_dtype);
        int32_t ids[6] = {0, 1, 2, 3, 4, 5};
        float out[6 * 48];
        int64_t n = 6 * c.embed_dim;
        CHECK(gpt_embedding_forward(h, ids, 2, 3, NULL, 0, 0, out, n) == 0, "%s forward: %s", folders[i].folder, last());
        if (i == 0) digest(strrchr(folders[i].folder, '/') + 1, out, (size_t)n * 4);  /* opens in both builds */
        gpt_embedding_free(h);
    }
    /* NULL options: the defaults. */
    h = NULL;
    CHECK(gpt_embedding_open("Tests/fixtures/families/llama_bf16", NULL, &h) == 0 && h, "open with NULL options: %s", last());
    gpt_embedding_free(h);
}

int main(int argc, char **argv) {
    const char *scratch = argc > 1 ? argv[1] : "/tmp";
    test_configs();
    float eval_out[N];
    gpt_embedding *h = test_layer(eval_out);
    if (h) test_open(h, eval_out, scratch);
    gpt_embedding_free(h);
    printf("old program (%s): ", BUILT);
    return check_summary();
}
