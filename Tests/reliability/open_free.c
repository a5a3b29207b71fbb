/* Opens and frees a checkpoint 10,000 times, read and mapped mode alternating (a forward
 * on every tenth layer, a training step with a write through the zero-copy pointer on
 * every hundredth), and checks that resident memory after the loop is within a small
 * margin of what it was after the first 100 cycles, and that no file descriptor or
 * mapping survives: no leak per open, however small.
 * Usage: open_free [count] [checkpoint]   (default: 10000, the bf16 golden checkpoint) */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_embedding.h"

static long vm_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS:", 6)) kib = atol(line + 6);
    if (f) fclose(f);
    return kib;
}

static int open_descriptors(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d)) n++;
    if (d) closedir(d);
    return n;
}

static long mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 10000;
    const char *path = argc > 2 ? argv[2] : "Tests/golden/precision/bf16_learned.safetensors";
    const long warm_cycles = 100, margin_kib = 1024;
    if (count <= warm_cycles) { fprintf(stderr, "count must exceed %ld\n", warm_cycles); return 2; }
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint16_t out[8 * 4096], grad[8 * 4096];
    for (int i = 0; i < 8 * 4096; i++) grad[i] = 0x3c00; /* 1.0 in f16 */
    long warm = 0, fds = 0, maps = 0, mapped_tables = 0;
    for (long i = 0; i < count; i++) {
        gpt_embedding_open_options o;
        gpt_embedding_open_options_init(&o, sizeof o);
        o.mmap = (int32_t)(i & 1);
        o.num_threads = 1;
        gpt_embedding *h = NULL;
        if (gpt_embedding_open(path, &o, &h) != 0) { fprintf(stderr, "open %s: %s\n", path, gpt_embedding_last_error()); return 1; }
        int mapped = 0;
        gpt_embedding_parameter_mapped(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &mapped);
        mapped_tables += mapped;
        gpt_embedding_config c;
        gpt_embedding_get_config(h, &c);
        if (c.embed_dim > 4096) { fprintf(stderr, "%s: embed_dim %lld is too wide for this test\n", path, (long long)c.embed_dim); return 2; }
        int64_t n = 8 * c.embed_dim;
        if (i % 10 == 0) {
            for (int k = 0; k < 8; k++) ids[k] = (int32_t)((i + k) % c.vocab_size);
            uint32_t flags = i % 100 == 0 ? GPT_EMBEDDING_TRAINING : 0;
            if (gpt_embedding_forward_typed(h, ids, 2, 4, NULL, 0, flags, GPT_EMBEDDING_DTYPE_F16, out, n) != 0) {
                fprintf(stderr, "forward: %s\n", gpt_embedding_last_error());
                return 1;
            }
            if (flags) {
                void *data;
                int dtype;
                int64_t rows, cols;
                gpt_embedding_backward_typed(h, GPT_EMBEDDING_DTYPE_F16, grad, 2, 4);
                gpt_embedding_parameter_data_typed(h, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &data, &dtype, &rows, &cols);
                memset(data, 0, 2); /* a private page of a mapped table, or the layer's memory */
            }
            gpt_embedding_forward(h, ids, 2, 4, NULL, 1 << 30, 0, NULL, 0); /* an error, with its message */
        }
        gpt_embedding_free(h);
        if (i + 1 == warm_cycles) { warm = vm_rss_kib(); fds = open_descriptors(); maps = mappings(); }
    }
    long after = vm_rss_kib(), fds_after = open_descriptors(), maps_after = mappings();
    printf("%ld opens and frees of %s (%ld with the token table mapped): VmRSS after %ld: %ld KiB, after %ld: %ld KiB "
           "(%+ld KiB); descriptors %ld -> %ld; mappings %ld -> %ld\n",
           count, path, mapped_tables, warm_cycles, warm, count, after, after - warm, fds, fds_after, maps, maps_after);
    int failed = 0;
    if (after - warm > margin_kib) { printf("resident memory grew by more than %ld KiB\n", margin_kib); failed++; }
    if (fds_after != fds) { printf("file descriptors leaked\n"); failed++; }
    if (maps_after - maps > 4) { printf("mappings leaked\n"); failed++; }
    if (mapped_tables != count / 2) { printf("mapped mode did not map the token table\n"); failed++; }
    printf("%d passed, %d failed\n", 4 - failed, failed);
    return failed ? 1 : 0;
}
