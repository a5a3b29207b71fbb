/* A reader for the AdamW golden files of Tests/golden/adamw (format adamw-1:
 * Tests/golden/adamw/README.md). The file becomes a list of entries, key -> typed array;
 * header scalars (name, vocab_size, ...) are text entries, also decoded into the struct.
 *
 *     adamw_golden g;
 *     if (adamw_golden_read("Tests/golden/adamw/lazy.txt", &g)) return 1;
 *     size_t n;
 *     const float *wte3 = adamw_golden_step_floats(&g, "wte", 3, &n);        // key "wte.3"
 *     double lr3 = adamw_golden_step_scalar(&g, "lr", 3);                   // key "lr.3"
 *     int bf16 = adamw_golden_has(&g, "master.wte.1");
 *     adamw_golden_free(&g);
 */
#ifndef ADAMW_GOLDEN_H
#define ADAMW_GOLDEN_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ADAMW_GOLDEN_TEXT,   /* header scalar `key value`: values is the char * value, count 1 */
    ADAMW_GOLDEN_INT,    /* int64_t values */
    ADAMW_GOLDEN_FLOAT,  /* float values */
    ADAMW_GOLDEN_DOUBLE, /* double values */
} adamw_golden_kind;

typedef struct {
    char *key;
    adamw_golden_kind kind;
    size_t count;
    void *values;
} adamw_golden_entry;

typedef struct {
    adamw_golden_entry *entries; /* in file order */
    size_t count;
    /* The header, decoded. */
    char name[64], position_encoding[16], weight_dtype[8];
    int64_t vocab_size, embed_dim, max_seq_len, padding_idx, batch, seq, steps;
    int layer_norm;
    float layer_norm_eps;
} adamw_golden;

/* Reads a file: 0 on success; -1 with a message on stderr (and *g emptied) otherwise. */
int adamw_golden_read(const char *path, adamw_golden *g);
void adamw_golden_free(adamw_golden *g);

/* Lookups by key; NULL (count 0) when there is no entry of that key and kind. */
const adamw_golden_entry *adamw_golden_find(const adamw_golden *g, const char *key);
int adamw_golden_has(const adamw_golden *g, const char *key);
const float *adamw_golden_floats(const adamw_golden *g, const char *key, size_t *count);
const int64_t *adamw_golden_ints(const adamw_golden *g, const char *key, size_t *count);
const double *adamw_golden_doubles(const adamw_golden *g, const char *key, size_t *count);
const char *adamw_golden_text(const adamw_golden *g, const char *key);
/* A one-value int/float/double entry, or a numeric header scalar; NAN when absent. */
double adamw_golden_scalar(const adamw_golden *g, const char *key);

/* The same for the key "<key>.<step>" (steps are 1-based). */
const float *adamw_golden_step_floats(const adamw_golden *g, const char *key, int step, size_t *count);
const int64_t *adamw_golden_step_ints(const adamw_golden *g, const char *key, int step, size_t *count);
double adamw_golden_step_scalar(const adamw_golden *g, const char *key, int step);

/* Checks that every entry the format requires is there with its size: 0, or -1 with a
 * message on stderr. */
int adamw_golden_validate(const adamw_golden *g);

#endif
