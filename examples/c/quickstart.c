#include <stdio.h>
#include "gpt_embedding.h"

int main(void) {
    /* GPT-2 small exactly: learned positions, no scaling, dropout 0.1. */
    gpt_embedding_config config;
    gpt_embedding_preset_config("gpt2", &config);
    config.seed = 42;

    gpt_embedding *layer = NULL;
    if (gpt_embedding_create(&config, &layer) != GPT_EMBEDDING_OK) {
        fprintf(stderr, "%s\n", gpt_embedding_last_error());
        return 1;
    }

    /* A batch of 2 sequences of 3 tokens; out is [2, 3, 768]. */
    int32_t ids[2 * 3] = {15496, 11, 995, 40, 1101, 257};
    static float out[2 * 3 * 768], grad[2 * 3 * 768];
    int rc = gpt_embedding_forward(layer, ids, 2, 3, NULL, 0, GPT_EMBEDDING_TRAINING,
                                   out, 2 * 3 * 768);
    if (rc != GPT_EMBEDDING_OK) {
        fprintf(stderr, "%s\n", gpt_embedding_last_error());
        return 1;
    }
    printf("out[0][0][0..3] = %f %f %f\n", out[0], out[1], out[2]);  // -> out[0][0][0..3] = ...

    /* Backward: gradients accumulate into the layer (read them with
     * gpt_embedding_get_gradient or gpt_embedding_gradient_data). */
    for (int i = 0; i < 2 * 3 * 768; i++) grad[i] = 1.0f;
    gpt_embedding_backward(layer, grad, 2, 3);

    /* Errors never crash: a bad id is reported with its place. */
    ids[4] = 50300;
    rc = gpt_embedding_forward(layer, ids, 2, 3, NULL, 0, 0, out, 2 * 3 * 768);
    printf("status %d: %s\n", rc, gpt_embedding_last_error());
    // -> status 4: gpt_embedding_forward: token id 50300 at [1, 1] is out of range [0, 50257)

    gpt_embedding_free(layer);
    return 0;
}
