/* A reader for the golden-vector files of Tests/golden (format: Tests/golden/README.md). */
#ifndef GOLDEN_H
#define GOLDEN_H
#include <stdint.h>

typedef struct {
    char name[64];
    int64_t vocab_size, embed_dim, max_seq_len, padding_idx, batch, seq, start_position;
    char position_encoding[64];
    int scale_embeddings, layer_norm, explicit_positions;
    float layer_norm_eps;
    /* Tensors: NULL when the file has none of that name. */
    int64_t *ids, *positions;
    float *wte, *wpe, *pos_table, *ln_weight, *ln_bias, *grad_output, *out;
    float *grad_wte, *grad_wpe, *grad_ln_weight, *grad_ln_bias;
    int64_t n_pos_table; /* floats in pos_table */
} golden;

/* Reads a file; returns 0 on success, prints the problem and returns -1 otherwise. */
int golden_read(const char *path, golden *g);
void golden_free(golden *g);

#endif
