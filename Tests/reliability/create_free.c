/* Creates and frees 100,000 layers (and runs a forward and backward on every tenth) and
 * checks that resident memory stays flat: no leak per layer, however small.
 * Usage: create_free [count] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "gpt_embedding.h"

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) { if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0; fclose(f); }
    return resident * 4;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 100000;
    gpt_embedding_config c = gpt_embedding_default_config();
    c.vocab_size = 64; c.embed_dim = 32; c.max_seq_len = 16; c.num_threads = 1;
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float out[8 * 32], grad[8 * 32];
    for (int i = 0; i < 8 * 32; i++) grad[i] = 1;
    long warm = 0, peak = 0;
    for (long i = 0; i < count; i++) {
        gpt_embedding *h = NULL;
        if (gpt_embedding_create(&c, &h) != 0) { fprintf(stderr, "create: %s\n", gpt_embedding_last_error()); return 1; }
        if (i % 10 == 0) {
            gpt_embedding_forward(h, ids, 2, 4, NULL, 0, GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM, out, 256);
            gpt_embedding_backward(h, grad, 2, 4);
            gpt_embedding_forward(h, ids, 2, 4, NULL, 99, 0, out, 256); /* an error, with its message */
        }
        gpt_embedding_free(h);
        if (i == count / 10) warm = rss_kib();
        if (i > count / 10 && rss_kib() > peak) peak = rss_kib();
    }
    long growth = peak - warm;
    printf("%ld layers created and freed; resident memory after %ld: %ld KiB, peak after: %ld KiB (growth %ld KiB)\n",
           count, count / 10, warm, peak, growth);
    int ok = growth < 1024;
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
