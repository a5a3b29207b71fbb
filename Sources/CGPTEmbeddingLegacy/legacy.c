/*
 * legacy.c -- the 0.1 entry points that return or fill a gpt_embedding_config, kept with
 * their 0.1 meaning for programs built against the 0.1 and 0.2 headers: they write the
 * 0.1 struct (72 bytes, struct_size 72) and nothing past it. A function that returns a
 * struct by value writes the callee's size into the caller's buffer, so it cannot grow
 * with the struct; programs built against later headers call gpt_embedding_config_init,
 * gpt_embedding_preset and gpt_embedding_layer_config (the header maps the old names to
 * them), which take the caller's size.
 *
 * This file must not include gpt_embedding.h, whose macros give these names to the new
 * functions; it declares what it needs itself. Linked into libgpt_embedding.so only.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct gpt_embedding gpt_embedding;

/* The 0.1 / 0.2 layout of gpt_embedding_config (72 bytes). */
typedef struct config_0_2 {
    uint32_t struct_size;
    int32_t position_encoding;
    int64_t vocab_size, embed_dim, max_seq_len, padding_idx;
    uint64_t seed;
    float dropout, layer_norm_eps, init_std;
    int32_t scale_embeddings, num_threads, weight_dtype;
} config_0_2;

_Static_assert(sizeof(config_0_2) == 72, "the 0.1 config is 72 bytes");

int gpt_embedding_config_init(void *out, size_t size);
int gpt_embedding_preset(const char *name, void *out, size_t size);
int gpt_embedding_layer_config(const gpt_embedding *layer, void *out, size_t size);

config_0_2 gpt_embedding_default_config(void);
int gpt_embedding_preset_config(const char *name, config_0_2 *out);
int gpt_embedding_get_config(const gpt_embedding *layer, config_0_2 *out);

config_0_2 gpt_embedding_default_config(void) {
    config_0_2 c = {0};
    gpt_embedding_config_init(&c, sizeof c);
    return c;
}

int gpt_embedding_preset_config(const char *name, config_0_2 *out) {
    return gpt_embedding_preset(name, out, sizeof *out);
}

int gpt_embedding_get_config(const gpt_embedding *layer, config_0_2 *out) {
    return gpt_embedding_layer_config(layer, out, sizeof *out);
}
