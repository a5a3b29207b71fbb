// The 0.1 spellings that the 0.3 header turns into macros (gpt_embedding_default_config,
// gpt_embedding_preset_config, gpt_embedding_get_config), used from C++ the ways 0.1/0.2
// programs used them: by value, into locals, members and heap objects, through
// references, inside expressions and templates. Built by Tests/c/run.sh with -std=c++11
// and -std=c++17.
#include <cstdio>
#include <cstring>
#include <memory>

#include "gpt_embedding.h"

static int failed = 0, passed = 0;
#define EXPECT(cond)                                                              \
    do {                                                                          \
        if (cond) passed++;                                                       \
        else { failed++; std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

struct Holder {
    gpt_embedding_config config = gpt_embedding_default_config();  // a default member initializer
};

template <typename Config> static int preset_into(const char *name, Config &c) {
    return gpt_embedding_preset_config(name, &c);
}

int main() {
    gpt_embedding_config c = gpt_embedding_default_config();
    EXPECT(c.struct_size == sizeof c && c.vocab_size == 50257 && c.embed_dim == 768 && c.token_scale == 0.0f);
    const gpt_embedding_config copy(gpt_embedding_default_config());
    EXPECT(std::memcmp(&copy, &c, sizeof c) == 0);
    Holder holder;
    EXPECT(holder.config.struct_size == sizeof(gpt_embedding_config));

    std::unique_ptr<gpt_embedding_config> heap(new gpt_embedding_config());
    EXPECT(gpt_embedding_preset_config("gpt2-medium", heap.get()) == GPT_EMBEDDING_OK && heap->embed_dim == 1024);
    gpt_embedding_config &ref = c;
    EXPECT(preset_into("gpt2-large", ref) == GPT_EMBEDDING_OK && c.embed_dim == 1280 && c.struct_size == sizeof c);
    EXPECT(gpt_embedding_preset_config("gpt5", &c) == GPT_EMBEDDING_ERROR_INVALID_ARGUMENT);
    EXPECT(gpt_embedding_preset_config("gpt2", static_cast<gpt_embedding_config *>(nullptr)) == GPT_EMBEDDING_ERROR_NULL_POINTER);

    c = gpt_embedding_default_config();
    c.vocab_size = 32; c.embed_dim = 8; c.max_seq_len = 4; c.layer_norm = 1;
    gpt_embedding *raw = nullptr;
    EXPECT(gpt_embedding_create(&c, &raw) == GPT_EMBEDDING_OK);
    std::unique_ptr<gpt_embedding, void (*)(gpt_embedding *)> layer(raw, gpt_embedding_free);
    gpt_embedding_config back[2];
    std::memset(back, 0x5A, sizeof back);
    EXPECT(gpt_embedding_get_config(layer.get(), &back[0]) == GPT_EMBEDDING_OK && back[0].layer_norm == 1 && back[0].vocab_size == 32);
    EXPECT(back[1].struct_size == 0x5A5A5A5Au);  // nothing past the struct
    EXPECT(gpt_embedding_get_config(layer.get(), static_cast<gpt_embedding_config *>(nullptr)) == GPT_EMBEDDING_ERROR_NULL_POINTER);
    // The sized functions these expand to can be taken by address (the macro names cannot).
    int (*get)(const gpt_embedding *, gpt_embedding_config *, size_t) = gpt_embedding_layer_config;
    EXPECT(get(layer.get(), &back[1], sizeof back[1]) == GPT_EMBEDDING_OK && back[1].embed_dim == 8);

    gpt_embedding_open_options o;
    EXPECT(gpt_embedding_open_options_init(&o, sizeof o) == GPT_EMBEDDING_OK && o.by_tensor_names == 0);
    std::printf("C++ (%ld): %d passed, %d failed\n", static_cast<long>(__cplusplus), passed, failed);
    return failed ? 1 : 0;
}
