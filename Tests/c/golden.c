#define _POSIX_C_SOURCE 200809L
#include "golden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int next_token(FILE *f, char *buf, size_t cap) {
    int c;
    do { c = fgetc(f); } while (c == ' ' || c == '\n' || c == '\t' || c == '\r');
    if (c == EOF) return -1;
    size_t n = 0;
    while (c != EOF && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
        if (n + 1 < cap) buf[n++] = (char)c;
        c = fgetc(f);
    }
    buf[n] = 0;
    return 0;
}

static void skip_comments(FILE *f) {
    for (;;) {
        int c = fgetc(f);
        if (c != '#') { if (c != EOF) ungetc(c, f); return; }
        while (c != EOF && c != '\n') c = fgetc(f);
    }
}

int golden_read(const char *path, golden *g) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return -1; }
    skip_comments(f);
    static const char *keys[] = {"format", "name", "vocab_size", "embed_dim", "max_seq_len", "position_encoding",
                                 "scale_embeddings", "padding_idx", "layer_norm", "layer_norm_eps", "batch", "seq",
                                 "start_position", "explicit_positions"};
    char key[64], val[64];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (next_token(f, key, sizeof key) || strcmp(key, keys[i]) || next_token(f, val, sizeof val)) {
            fprintf(stderr, "%s: expected %s\n", path, keys[i]);
            fclose(f);
            return -1;
        }
        switch (i) {
        case 1: snprintf(g->name, sizeof g->name, "%s", val); break;
        case 2: g->vocab_size = atoll(val); break;
        case 3: g->embed_dim = atoll(val); break;
        case 4: g->max_seq_len = atoll(val); break;
        case 5: snprintf(g->position_encoding, sizeof g->position_encoding, "%s", val); break;
        case 6: g->scale_embeddings = atoi(val); break;
        case 7: g->padding_idx = atoll(val); break;
        case 8: g->layer_norm = atoi(val); break;
        case 9: g->layer_norm_eps = strtof(val, NULL); break;
        case 10: g->batch = atoll(val); break;
        case 11: g->seq = atoll(val); break;
        case 12: g->start_position = atoll(val); break;
        case 13: g->explicit_positions = atoi(val); break;
        default: break;
        }
    }
    char kind[16], name[64], count[32], tok[64];
    while (!next_token(f, kind, sizeof kind) && strcmp(kind, "end")) {
        if (next_token(f, name, sizeof name) || next_token(f, count, sizeof count)) goto bad;
        long n = atol(count);
        if (n < 0 || n > 100000000) goto bad;
        if (!strcmp(kind, "int")) {
            int64_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
            for (long i = 0; i < n; i++) { if (next_token(f, tok, sizeof tok)) { free(v); goto bad; } v[i] = atoll(tok); }
            if (!strcmp(name, "ids")) g->ids = v;
            else if (!strcmp(name, "positions")) g->positions = v;
            else free(v);
        } else if (!strcmp(kind, "float")) {
            float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
            for (long i = 0; i < n; i++) { if (next_token(f, tok, sizeof tok)) { free(v); goto bad; } v[i] = strtof(tok, NULL); }
            float **slot = !strcmp(name, "wte") ? &g->wte : !strcmp(name, "wpe") ? &g->wpe
                : !strcmp(name, "pos_table") ? &g->pos_table : !strcmp(name, "ln_weight") ? &g->ln_weight
                : !strcmp(name, "ln_bias") ? &g->ln_bias : !strcmp(name, "grad_output") ? &g->grad_output
                : !strcmp(name, "out") ? &g->out : !strcmp(name, "grad_wte") ? &g->grad_wte
                : !strcmp(name, "grad_wpe") ? &g->grad_wpe : !strcmp(name, "grad_ln_weight") ? &g->grad_ln_weight
                : !strcmp(name, "grad_ln_bias") ? &g->grad_ln_bias : NULL;
            if (slot) { *slot = v; if (slot == &g->pos_table) g->n_pos_table = n; } else free(v);
        } else goto bad;
    }
    fclose(f);
    if (!g->ids || !g->positions || !g->wte || !g->ln_weight || !g->ln_bias || !g->grad_output || !g->out
        || !g->grad_wte || !g->grad_ln_weight || !g->grad_ln_bias) {
        fprintf(stderr, "%s: missing tensors\n", path);
        golden_free(g);
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "%s: malformed tensor section\n", path);
    fclose(f);
    golden_free(g);
    return -1;
}

void golden_free(golden *g) {
    free(g->ids); free(g->positions); free(g->wte); free(g->wpe); free(g->pos_table); free(g->ln_weight);
    free(g->ln_bias); free(g->grad_output); free(g->out); free(g->grad_wte); free(g->grad_wpe);
    free(g->grad_ln_weight); free(g->grad_ln_bias);
    memset(g, 0, sizeof *g);
}
