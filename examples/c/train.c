/*
 * train.c -- a tiny character-level language model, trained with the library's AdamW.
 *
 * The model is the embedding layer with an output head tied to its token table:
 *
 *     h      = dropout(LayerNorm(wte[x] + wpe[t]))      [B, T, D]  the library
 *     logits = h . wte^T                                [B, T, V]  this file
 *     loss   = mean cross-entropy(logits, next char)               this file
 *
 * Only the embedding layer's maths lives in the library; the head and the loss are
 * this program's, and so is their backward:
 *
 *     dlogits = (softmax(logits) - onehot(target)) / (B * T)
 *     dh      = dlogits . wte       -> gpt_embedding_backward (adds into dwte, dwpe, dln)
 *     dwte   += dlogits^T . h       the head's share, added through the zero-copy pointer
 *                                   of gpt_embedding_gradient_data
 *
 * then one gpt_embedding_adamw_step updates every parameter. Without attention the model
 * sees one character (and its position), so it can learn at best which character tends to
 * follow which: the loss falls from about ln(V) = 4.06 to about 2.5.
 *
 * Build and run from the repository root (after `make lib`):
 *     cc -std=c11 -O2 -Iinclude examples/c/train.c -L.build/release -lgpt_embedding \
 *        -Wl,-rpath,.build/release -lm -o train && ./train [path/to/text]
 * Exits 1 if the validation loss did not fall below 0.8 times its starting value.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt_embedding.h"

/* ----------------------------------------------------------------------------------- */
/* Hyperparameters                                                                     */

enum {
    B = 16,           /* sequences per batch */
    T = 64,           /* characters per sequence (and rows of the position table) */
    D = 64,           /* embedding width */
    STEPS = 300,      /* optimizer steps */
    PRINT_EVERY = 25, /* print the training loss every so many steps */
    SAMPLE_CHARS = 200
};
static const float DROPOUT = 0.1f;
static const double LR = 3e-2, WEIGHT_DECAY = 0.01;
static const uint64_t SEED = 1337;

/* ----------------------------------------------------------------------------------- */
/* Errors                                                                              */

/* Every library call goes through CHECK: on failure, print the library's message. */
#define CHECK(call)                                                                    \
    do {                                                                               \
        int status_ = (call);                                                          \
        if (status_ != GPT_EMBEDDING_OK) {                                             \
            const char *msg_ = gpt_embedding_last_error();                             \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,       \
                    msg_ ? msg_ : gpt_embedding_status_string(status_));               \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    if (p == NULL) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

/* ----------------------------------------------------------------------------------- */
/* Data: characters to token ids                                                       */

/* Reads a whole file; *len receives its size. */
static char *read_text(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc((size_t)*len + 1);
    if (fread(text, 1, (size_t)*len, f) != (size_t)*len) { perror(path); exit(1); }
    fclose(f);
    text[*len] = '\0';
    return text;
}

/* The vocabulary is the set of bytes in the text, in ascending order: chars[V], and
 * index[byte] its token id. Returns V. */
static int build_vocab(const char *text, long len, char chars[256], int index[256]) {
    int present[256] = {0};
    for (long i = 0; i < len; i++) present[(unsigned char)text[i]] = 1;
    int V = 0;
    for (int c = 0; c < 256; c++) {
        index[c] = present[c] ? V : -1;
        if (present[c]) chars[V++] = (char)c;
    }
    return V;
}

/* ----------------------------------------------------------------------------------- */
/* Random numbers: xorshift64* (the Python twin draws the same numbers)                */

static uint64_t random_u64(uint64_t *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

static float random_f32(uint64_t *state) { /* uniform in [0, 1) */
    return (float)(random_u64(state) >> 40) / 16777216.0f;
}

/* A batch of B windows of T + 1 characters from tokens[0, n): inputs are the first T,
 * targets the last T (the next character of each input). */
static void get_batch(const int32_t *tokens, long n, uint64_t *rng,
                      int32_t *inputs, int32_t *targets) {
    for (int b = 0; b < B; b++) {
        long start = (long)(random_u64(rng) % (uint64_t)(n - T - 1));
        for (int t = 0; t < T; t++) {
            inputs[b * T + t] = tokens[start + t];
            targets[b * T + t] = tokens[start + t + 1];
        }
    }
}

/* ----------------------------------------------------------------------------------- */
/* The head and the loss, forward and backward                                         */

/* logits[N, V] = h[N, D] . wte[V, D]^T */
static void head_forward(float *logits, const float *h, const float *wte, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *hn = h + n * D;
        for (int v = 0; v < V; v++) {
            const float *wv = wte + v * D;
            float sum = 0.0f;
            for (int d = 0; d < D; d++) sum += hn[d] * wv[d];
            logits[n * V + v] = sum;
        }
    }
}

/* row[V] becomes softmax(row), in place. */
static void softmax(float *row, int V) {
    float max = row[0];
    for (int v = 1; v < V; v++) if (row[v] > max) max = row[v];
    float sum = 0.0f;
    for (int v = 0; v < V; v++) { row[v] = expf(row[v] - max); sum += row[v]; }
    for (int v = 0; v < V; v++) row[v] /= sum;
}

/* Softmax in place (logits[N, V] become probabilities); returns the mean of
 * -log p[n, targets[n]]. */
static double softmax_cross_entropy(float *logits, const int32_t *targets, int N, int V) {
    double loss = 0.0;
    for (int n = 0; n < N; n++) {
        float *row = logits + n * V;
        softmax(row, V);
        loss -= log((double)row[targets[n]]);
    }
    return loss / N;
}

/* probs[N, V] become dlogits = (probs - onehot(targets)) / N, in place. */
static void softmax_cross_entropy_backward(float *probs, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        float *row = probs + n * V;
        row[targets[n]] -= 1.0f;
        for (int v = 0; v < V; v++) row[v] /= (float)N;
    }
}

/* dh[N, D] = dlogits[N, V] . wte[V, D];  dwte[V, D] += dlogits^T . h[N, D] */
static void head_backward(float *dh, float *dwte, const float *dlogits, const float *h,
                          const float *wte, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *g = dlogits + n * V;
        const float *hn = h + n * D;
        float *dhn = dh + n * D;
        for (int d = 0; d < D; d++) dhn[d] = 0.0f;
        for (int v = 0; v < V; v++) {
            const float *wv = wte + v * D;
            float *dwv = dwte + v * D;
            for (int d = 0; d < D; d++) {
                dhn[d] += g[v] * wv[d];
                dwv[d] += g[v] * hn[d];
            }
        }
    }
}

/* ----------------------------------------------------------------------------------- */
/* The model                                                                           */

typedef struct {
    gpt_embedding *layer;
    int V;
    float *wte;  /* [V, D] the token table, the layer's memory (zero-copy) */
    float *dwte; /* [V, D] its gradient, the layer's memory (zero-copy) */
    float *h;      /* [B, T, D] activations */
    float *logits; /* [B, T, V] logits, then probabilities, then dlogits */
    float *dh;     /* [B, T, D] */
} model;

static void model_init(model *m, int V) {
    gpt_embedding_config config;
    CHECK(gpt_embedding_config_init(&config, sizeof config));
    config.vocab_size = V;
    config.embed_dim = D;
    config.max_seq_len = T;
    config.dropout = DROPOUT;
    config.scale_embeddings = 0; /* GPT-2: token rows are not multiplied by sqrt(D) */
    config.layer_norm = 1;       /* every forward normalises */
    config.seed = SEED;
    config.num_threads = 1;      /* tiny: one thread is fastest */
    CHECK(gpt_embedding_create(&config, &m->layer));
    m->V = V;

    int64_t len;
    CHECK(gpt_embedding_parameter_data(m->layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &m->wte, &len));
    CHECK(gpt_embedding_gradient_data(m->layer, GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING, &m->dwte, &len));
    m->h = xmalloc(sizeof(float) * B * T * D);
    m->logits = xmalloc(sizeof(float) * B * T * (size_t)V);
    m->dh = xmalloc(sizeof(float) * B * T * D);
}

static void model_free(model *m) {
    gpt_embedding_free(m->layer); /* also frees wte and dwte */
    free(m->h);
    free(m->logits);
    free(m->dh);
}

/* The forward pass and the loss over one batch; probabilities stay in m->logits.
 * flags: GPT_EMBEDDING_TRAINING (dropout on, keep what backward needs) or 0. */
static double model_forward(model *m, const int32_t *inputs, const int32_t *targets,
                            uint32_t flags) {
    CHECK(gpt_embedding_forward(m->layer, inputs, B, T, NULL, 0, flags, m->h, B * T * D));
    head_forward(m->logits, m->h, m->wte, B * T, m->V);
    return softmax_cross_entropy(m->logits, targets, B * T, m->V);
}

/* The backward pass of the latest training forward: every gradient of the model. */
static void model_backward(model *m, const int32_t *targets) {
    softmax_cross_entropy_backward(m->logits, targets, B * T, m->V);
    head_backward(m->dh, m->dwte, m->logits, m->h, m->wte, B * T, m->V);
    CHECK(gpt_embedding_backward(m->layer, m->dh, B, T));
}

/* The mean loss over consecutive windows of T + 1 characters of tokens[0, n), in whole
 * batches of B, without dropout (the same windows each time, so evaluations compare). */
static double evaluate(model *m, const int32_t *tokens, long n) {
    int32_t inputs[B * T], targets[B * T];
    long windows = (n - 1) / T;
    double total = 0.0;
    int batches = 0;
    for (long w = 0; w + B <= windows; w += B) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                inputs[b * T + t] = tokens[(w + b) * T + t];
                targets[b * T + t] = tokens[(w + b) * T + t + 1];
            }
        total += model_forward(m, inputs, targets, 0);
        batches++;
    }
    return total / batches;
}

/* Generates n characters after `first`: each step embeds the latest character at its
 * position (eval forward of one token), applies the head and samples the softmax. */
static void sample(model *m, const char *chars, int first, int n, uint64_t *rng) {
    int32_t id = first;
    float h[D];
    float *probs = xmalloc(sizeof(float) * (size_t)m->V);
    putchar(chars[first]);
    for (int i = 0; i < n; i++) {
        CHECK(gpt_embedding_forward(m->layer, &id, 1, 1, NULL, (i + 1) % T, 0, h, D));
        head_forward(probs, h, m->wte, 1, m->V);
        softmax(probs, m->V);
        float r = random_f32(rng), cdf = 0.0f;
        id = m->V - 1;
        for (int v = 0; v < m->V; v++) {
            cdf += probs[v];
            if (r < cdf) { id = v; break; }
        }
        putchar(chars[id]);
    }
    putchar('\n');
    free(probs);
}

/* ----------------------------------------------------------------------------------- */

static double seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC); /* C11 */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "examples/data/shakespeare.txt";
    long len;
    char *text = read_text(path, &len);
    char chars[256];
    int index[256];
    int V = build_vocab(text, len, chars, index);
    int32_t *tokens = xmalloc(sizeof(int32_t) * (size_t)len);
    for (long i = 0; i < len; i++) tokens[i] = index[(unsigned char)text[i]];
    long n_train = len - len / 10; /* the last 10% is the validation split */
    const int32_t *val = tokens + n_train;
    long n_val = len - n_train;
    printf("%s: %ld characters, vocabulary %d, train %ld, val %ld\n", path, len, V, n_train, n_val);
    if (n_val < B * T + 1) {
        fprintf(stderr, "%s: too short (at least %d characters)\n", path, 10 * (B * T + 1));
        return 1;
    }

    model m;
    model_init(&m, V);
    int64_t params;
    CHECK(gpt_embedding_num_parameters(m.layer, &params));
    printf("model: D %d, T %d, B %d, %lld parameters (the head is the token table)\n", D, T, B,
           (long long)params);

    gpt_embedding_adamw_options adamw;
    CHECK(gpt_embedding_adamw_options_init(&adamw, sizeof adamw));
    adamw.lr = LR;
    adamw.weight_decay = WEIGHT_DECAY; /* on every parameter, as torch.optim.AdamW */
    /* A dense step (lazy 0, the default): the head's gradient reaches every row of the
     * token table anyway (and since its gradient pointer was handed out, a lazy step
     * would update every row of it too). */

    double val_start = evaluate(&m, val, n_val);
    printf("val loss %.4f (ln V = %.4f)\n", val_start, log((double)V));

    uint64_t rng = SEED;
    int32_t inputs[B * T], targets[B * T];
    double t0 = seconds();
    for (int step = 1; step <= STEPS; step++) {
        get_batch(tokens, n_train, &rng, inputs, targets);
        CHECK(gpt_embedding_zero_grad(m.layer));
        double loss = model_forward(&m, inputs, targets, GPT_EMBEDDING_TRAINING);
        model_backward(&m, targets);

        /* The layer holds every gradient of this model, so this is the global norm (to
         * clip by it, set adamw.grad_scale = max_norm / norm when norm > max_norm). */
        double norm2;
        CHECK(gpt_embedding_grad_norm_squared(m.layer, &norm2));
        double norm = sqrt(norm2);
        CHECK(gpt_embedding_adamw_step(m.layer, &adamw));

        if (step == 1 || step % PRINT_EVERY == 0)
            printf("step %4d/%d | loss %.4f | grad norm %.4f\n", step, STEPS, loss, norm);
    }
    double elapsed = seconds() - t0;
    double val_end = evaluate(&m, val, n_val);
    printf("val loss %.4f (was %.4f) after %d steps, %.2f s\n", val_end, val_start, STEPS, elapsed);

    printf("sample:\n");
    sample(&m, chars, index['\n'] >= 0 ? index['\n'] : 0, SAMPLE_CHARS, &rng);

    model_free(&m);
    free(tokens);
    free(text);
    if (!(val_end < 0.8 * val_start)) {
        fprintf(stderr, "FAIL: the validation loss did not fall below 0.8 x %.4f\n", val_start);
        return 1;
    }
    return 0;
}
