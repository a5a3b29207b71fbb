// The C API from C++: the header has extern "C" guards; RAII keeps the handle safe.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "gpt_embedding.h"

namespace {
struct LayerDeleter {
    void operator()(gpt_embedding *layer) const { gpt_embedding_free(layer); }
};
using Layer = std::unique_ptr<gpt_embedding, LayerDeleter>;

void check(int status) {
    if (status != GPT_EMBEDDING_OK) throw std::runtime_error(gpt_embedding_last_error());
}
}  // namespace

int main() {
    gpt_embedding_config config = gpt_embedding_default_config();
    config.vocab_size = 1000;
    config.embed_dim = 64;
    config.max_seq_len = 128;
    gpt_embedding *raw = nullptr;
    check(gpt_embedding_create(&config, &raw));
    Layer layer(raw);

    std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6};
    std::vector<float> out(ids.size() * 64);
    check(gpt_embedding_forward_i64(layer.get(), ids.data(), 2, 3, nullptr, 0,
                                    GPT_EMBEDDING_LAYER_NORM, out.data(), static_cast<int64_t>(out.size())));
    std::printf("C++: out[0] = %f, library %s\n", out[0], gpt_embedding_version_string());
    try {
        ids[0] = 5000;
        check(gpt_embedding_forward_i64(layer.get(), ids.data(), 2, 3, nullptr, 0, 0, out.data(),
                                        static_cast<int64_t>(out.size())));
    } catch (const std::exception &e) {
        std::printf("caught: %s\n", e.what());
    }
    return 0;
}
