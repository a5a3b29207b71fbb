/*
 * gpt_embedding.h -- the input layer of a GPT model, forward and backward.
 *
 * This header is the whole contract of libgpt_embedding: C and C++ programs
 * include it, the Python package mirrors it through ctypes, and the Swift
 * shims are checked against it at compile time (@c @implementation).
 *
 * What the layer computes, in float32, for every token (b, t):
 *
 *     x[b,t,:]  = s * wte[ids[b,t], :] + P[pos[b,t], :]
 *     y[b,t,:]  = LayerNorm(x[b,t,:])       if GPT_EMBEDDING_LAYER_NORM is set
 *     out[b,t,:] = dropout(y[b,t,:])        if GPT_EMBEDDING_TRAINING is set
 *
 *   s    sqrt(embed_dim) when config.scale_embeddings is 1, else 1 (GPT-2).
 *   P    the learned table wpe [max_seq_len, embed_dim], or the sinusoidal
 *        table (channel c even: sin(pos * 10000^(-c/D)); c odd:
 *        cos(pos * 10000^(-(c-1)/D)); for odd D the last channel is a sin
 *        channel, nothing is padded), or nothing (GPT_EMBEDDING_POSITION_NONE).
 *   pos  start_position + t, or an explicit positions array [batch, seq].
 *   LayerNorm: biased variance, eps = config.layer_norm_eps, affine weight
 *        and bias (initialised to 1 and 0).
 *   dropout: inverted; each element is kept with probability 1 - p and then
 *        multiplied by 1 / (1 - p). The mask is a pure function of
 *        (seed, training step, element index), so backward regenerates it.
 *
 * Conventions used by every function below:
 *   - Functions return int status codes: GPT_EMBEDDING_OK (0) on success, a
 *     positive GPT_EMBEDDING_ERROR_* value otherwise. Values never change.
 *   - On failure a readable message is available from
 *     gpt_embedding_last_error() on the same thread, and nothing was written:
 *     output buffers, weights and gradients are exactly as they were.
 *   - Every argument is validated before memory is touched: NULL pointers,
 *     negative sizes (and sizes that must be positive), size products that
 *     overflow, token ids outside [0, vocab_size), positions outside the
 *     table, unknown flags, wrong state. A batch or sequence of length 0 is a
 *     valid, empty call (see "Calls with explicit state").
 *     No input makes the library abort, trap or print.
 *   - Sizes and counts are int64_t; element counts, not bytes.
 *   - Arrays are row-major and contiguous; ids and positions [batch, seq];
 *     outputs and gradients [batch, seq, embed_dim].
 *
 * Thread safety (the concurrency contract):
 *   - Different handles are fully independent: any calls on different
 *     handles may run at the same time on different threads.
 *   - On one handle, calls that only read it may run at the same time:
 *     eval forwards (flags without GPT_EMBEDDING_TRAINING), get_config,
 *     get_parameter, get_gradient, num_parameters, parameter_shape, sizeof.
 *   - Calls that modify a handle (training forward, backward, zero_grad,
 *     set_parameter, parameter_data, gradient_data, free) need exclusive
 *     access: the caller must not run anything else on that handle meanwhile.
 *   - The last-error message is per thread.
 *   - Functions without a handle are safe to call from any thread.
 *   - Worker threads: large calls are split over one process-wide team of
 *     worker threads, started on the first call worth splitting and grown to
 *     the largest num_threads a layer asks for; they live until the process
 *     exits, spin for about 0.1 ms after a job and then sleep. Small calls (a
 *     decode step, one short sequence) run on the calling thread only. A call
 *     that finds the team busy with another call runs on its own thread.
 *     Results never depend on how work was split.
 *
 * Memory ownership: the library never takes ownership of caller memory and
 * never keeps a caller pointer past the call. Handles are released with
 * gpt_embedding_free(). Strings returned by the library are owned by it.
 */
#ifndef GPT_EMBEDDING_H
#define GPT_EMBEDDING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define GPT_EMBEDDING_VERSION_MAJOR 0
#define GPT_EMBEDDING_VERSION_MINOR 6
#define GPT_EMBEDDING_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, as zstd and SQLite do. */
#define GPT_EMBEDDING_VERSION_NUMBER                                           \
    (GPT_EMBEDDING_VERSION_MAJOR * 10000 + GPT_EMBEDDING_VERSION_MINOR * 100 + \
     GPT_EMBEDDING_VERSION_PATCH)
#define GPT_EMBEDDING_VERSION_STRING "0.6.0"

/* The version of the library actually loaded; compare it with
 * GPT_EMBEDDING_VERSION_NUMBER to detect a header/library mismatch.
 * Thread-safe. */
unsigned gpt_embedding_version_number(void);

/* The same as a static string such as "0.5.0". Never NULL; owned by the
 * library; valid for the life of the process. Thread-safe. */
const char *gpt_embedding_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

enum gpt_embedding_status {
    GPT_EMBEDDING_OK = 0,
    GPT_EMBEDDING_ERROR_NULL_POINTER = 1,     /* a required pointer was NULL */
    GPT_EMBEDDING_ERROR_INVALID_ARGUMENT = 2, /* bad size, flag or selector */
    GPT_EMBEDDING_ERROR_INVALID_CONFIG = 3,   /* a config field is invalid */
    GPT_EMBEDDING_ERROR_OUT_OF_RANGE = 4,     /* token id or position outside its table */
    GPT_EMBEDDING_ERROR_SIZE_OVERFLOW = 5,    /* a size product overflows */
    GPT_EMBEDDING_ERROR_BUFFER_TOO_SMALL = 6, /* an output buffer is too short */
    GPT_EMBEDDING_ERROR_BAD_STATE = 7,        /* e.g. backward without training forward */
    GPT_EMBEDDING_ERROR_OUT_OF_MEMORY = 8,    /* an allocation failed */
    GPT_EMBEDDING_ERROR_INVALID_HANDLE = 9,   /* not a live handle (freed?) */
    GPT_EMBEDDING_ERROR_VERSION_MISMATCH = 10,/* config.struct_size is unknown */
    GPT_EMBEDDING_ERROR_IO = 11,              /* a file could not be read or written */
    GPT_EMBEDDING_ERROR_BAD_FILE = 12,        /* a file is malformed */
    GPT_EMBEDDING_ERROR_UNSUPPORTED_CPU = 13  /* GPT_EMBEDDING_ISA names an unknown
                                                 path or one this CPU cannot run */
};

/* A static, human-readable name for a status code, e.g.
 * "GPT_EMBEDDING_ERROR_OUT_OF_RANGE: ...". Never NULL (unknown codes give a
 * generic text). Owned by the library. Thread-safe. */
const char *gpt_embedding_status_string(int status);

/* The message of the most recent failed call made on the calling thread,
 * naming the bad value and where it is, e.g.
 * "gpt_embedding_forward: token id 50300 at [1, 7] is out of range [0, 50257)".
 * Returns NULL if the most recent call on this thread succeeded (every call
 * clears it on entry). The string is owned by the library and stays valid
 * until the next call of any gpt_embedding function on the same thread.
 * Thread-safe: each thread has its own message. */
const char *gpt_embedding_last_error(void);

/* ------------------------------------------------------------------------ */
/* CPU paths                                                                */
/* ------------------------------------------------------------------------ */

/* One library runs on every x86-64 CPU. Its kernels (forward, backward, layer
 * norm, dropout, init) are compiled twice: for the x86-64 baseline (SSE2) and
 * for x86-64-v3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE: Intel Haswell, AMD
 * Excavator and newer); everything else is baseline code. The path is chosen
 * once per process, at the first call that needs it (gpt_embedding_create or
 * the two functions below):
 *   - the environment variable GPT_EMBEDDING_ISA, when set: "baseline",
 *     "x86-64-v3", or "auto" (the default);
 *   - otherwise x86-64-v3 when CPUID and XGETBV say that the CPU and the
 *     operating system support it, else the baseline.
 * Both paths give bit-identical results (the same operations in the same
 * order, no fused multiply-add), so the choice changes speed only.
 * A GPT_EMBEDDING_ISA value that is unknown, or names a path this CPU cannot
 * run, makes gpt_embedding_create fail with GPT_EMBEDDING_ERROR_UNSUPPORTED_CPU
 * and a message naming the value and the paths this CPU supports; nothing
 * runs an instruction the CPU lacks. */

/* The name of the active path, "baseline" or "x86-64-v3". Returns NULL (and
 * sets gpt_embedding_last_error) when GPT_EMBEDDING_ISA is invalid. Static
 * string owned by the library. Thread-safe. */
const char *gpt_embedding_isa(void);

/* The paths this CPU can run, best first, comma-separated, e.g.
 * "x86-64-v3,baseline". Never NULL; static; thread-safe. */
const char *gpt_embedding_isa_supported(void);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/* Element types of tables, outputs and gradient inputs. Arithmetic is always
 * float32: bf16 and f16 values are widened exactly (bf16: the bits shifted;
 * f16: IEEE half with subnormals, infinities and NaN) and results are rounded
 * once, to nearest even, when stored as bf16 or f16 (a NaN becomes 0x7FC0 in
 * bf16 and a quiet NaN with its sign in f16, as PyTorch writes them).
 * Gradients are always float32. */
enum gpt_embedding_dtype {
    GPT_EMBEDDING_DTYPE_F32 = 0,
    GPT_EMBEDDING_DTYPE_BF16 = 1,
    GPT_EMBEDDING_DTYPE_F16 = 2
};

/* A token table kept in one of ggml's block formats (a quantized table opened
 * from a GGUF file, see gpt_embedding_open) reports its dtype as
 * GPT_EMBEDDING_DTYPE_GGML + its ggml type id, e.g.
 * GPT_EMBEDDING_DTYPE_GGML + GPT_EMBEDDING_GGML_Q4_K, wherever a dtype is
 * reported (config.weight_dtype from gpt_embedding_get_config,
 * gpt_embedding_parameter_dtype, gpt_embedding_parameter_data_typed). Such a
 * table is never an input dtype: rows are dequantized to float32 as they are
 * read (bit for bit as ggml's dequantize_row_*), and the table is frozen (see
 * gpt_embedding_open). Since 0.6. */
#define GPT_EMBEDDING_DTYPE_GGML 256

/* ggml's tensor type ids (the ids GGUF files store) of the block formats a
 * token table may keep: blocks of 32 elements (Q4_0 .. Q8_0, IQ4_NL) or 256
 * (the K-quants, IQ4_XS). Since 0.6. */
#define GPT_EMBEDDING_GGML_F32 0
#define GPT_EMBEDDING_GGML_F16 1
#define GPT_EMBEDDING_GGML_Q4_0 2
#define GPT_EMBEDDING_GGML_Q4_1 3
#define GPT_EMBEDDING_GGML_Q5_0 6
#define GPT_EMBEDDING_GGML_Q5_1 7
#define GPT_EMBEDDING_GGML_Q8_0 8
#define GPT_EMBEDDING_GGML_Q2_K 10
#define GPT_EMBEDDING_GGML_Q3_K 11
#define GPT_EMBEDDING_GGML_Q4_K 12
#define GPT_EMBEDDING_GGML_Q5_K 13
#define GPT_EMBEDDING_GGML_Q6_K 14
#define GPT_EMBEDDING_GGML_IQ4_NL 20
#define GPT_EMBEDDING_GGML_IQ4_XS 23
#define GPT_EMBEDDING_GGML_BF16 30

/* The name of a dtype code: "float32", "bfloat16", "float16" for enum
 * gpt_embedding_dtype, ggml's lower-case names ("q4_k", "q8_0", ...) for
 * GPT_EMBEDDING_DTYPE_GGML + a block type above; NULL for any other value.
 * The string is static. Thread-safe. Since 0.6. */
const char *gpt_embedding_dtype_name(int dtype);

/* config.position_encoding */
enum gpt_embedding_position_encoding {
    GPT_EMBEDDING_POSITION_LEARNED = 0,    /* trainable wpe [max_seq_len, D] */
    GPT_EMBEDDING_POSITION_SINUSOIDAL = 1, /* fixed; positions may exceed max_seq_len */
    GPT_EMBEDDING_POSITION_NONE = 2        /* token embedding only (e.g. RoPE models) */
};

/* The configuration of a layer. Always start from
 * gpt_embedding_default_config() or gpt_embedding_preset_config(), then
 * change fields: that keeps struct_size right. Fields are only ever appended
 * in later versions: struct_size tells the library which fields the caller
 * has (those added later take their defaults), and a struct_size it does not
 * know is rejected. All fields are plain scalars so that FFI layers can mirror
 * the struct. */
typedef struct gpt_embedding_config {
    uint32_t struct_size;      /* sizeof(gpt_embedding_config); set by the defaults */
    int32_t position_encoding; /* enum gpt_embedding_position_encoding; default LEARNED */
    int64_t vocab_size;        /* rows of the token table, 1 .. 2^31-1; default 50257 */
    int64_t embed_dim;         /* D; default 768 */
    int64_t max_seq_len;       /* rows of the learned position table (and of the cached
                                  sinusoidal rows), 1 .. 2^31-1; may be 0 with
                                  POSITION_NONE, where it is unused; default 1024 */
    int64_t padding_idx;       /* token row that receives no gradient; -1 = none (default) */
    uint64_t seed;             /* initialisation and dropout; default 0 */
    float dropout;             /* probability in [0, 1]; default 0.1 */
    float layer_norm_eps;      /* > 0; default 1e-5 */
    float init_std;            /* >= 0; std of the N(0, std) init; default 0.02 */
    int32_t scale_embeddings;  /* 1: multiply token rows by sqrt(D) (the seed's
                                  TokenEmbedding, default); 0: GPT-2 exactly */
    int32_t num_threads;       /* worker threads; 0 = all cores (default) */
    /* Added in 0.2 (in what was the struct's tail padding, so sizeof and
     * struct_size are unchanged and 0.1 programs, whose configs come from the
     * functions below, keep working): */
    int32_t weight_dtype;      /* enum gpt_embedding_dtype of the token table and the
                                  learned position table; default F32. The layer
                                  norm vectors and sinusoidal rows are F32. */
    /* Added in 0.3 (what Hugging Face model families need; see
     * gpt_embedding_open): */
    float token_scale;         /* multiplier of token rows; 0 (default) = sqrt(D)
                                  when scale_embeddings is 1, else 1. Gemma's is
                                  sqrt(hidden_size) rounded to the table's dtype
                                  (55.5 for 3072 in bf16) */
    int32_t layer_norm;        /* 1: forwards apply the layer norm unless their flags
                                  say GPT_EMBEDDING_NO_LAYER_NORM (BLOOM's input
                                  stage); 0 (default): only with GPT_EMBEDDING_LAYER_NORM */
    int64_t position_offset;   /* position p reads row p + position_offset (OPT's
                                  learned positions: 2, so the -1 OPT gives padding
                                  tokens reads row 1); positions may be as low as
                                  -position_offset; default 0 */
    /* Added in 0.4 (vocabulary parallelism; see "Vocabulary-parallel shards"
     * below): */
    int64_t shard_start;       /* the layer holds rows [shard_start, shard_end) of */
    int64_t shard_end;         /* the token table of vocab_size rows (one shard);
                                  shard_end 0 (the default, with shard_start 0) =
                                  the whole vocabulary. Otherwise 0 <= shard_start
                                  < shard_end <= vocab_size, else _INVALID_CONFIG. */
} gpt_embedding_config;

/* The 0.1 / 0.2 size of the struct (before token_scale), which programs built
 * against those headers pass; the library accepts it and gives the later
 * fields their defaults. */
#define GPT_EMBEDDING_CONFIG_SIZE_0_2 72u
/* The 0.3 size (before shard_start); accepted, the shard fields default to
 * the whole vocabulary. */
#define GPT_EMBEDDING_CONFIG_SIZE_0_3 88u

/* sizeof(gpt_embedding_config) as compiled into the library. FFI bindings
 * compare it with their own struct at load time. Thread-safe. */
size_t gpt_embedding_config_size(void);

/* Fills *out (size = sizeof *out as the caller was compiled, at least
 * GPT_EMBEDDING_CONFIG_SIZE_0_2) with the default configuration: the seed's
 * GPTEmbeddingConfig defaults (vocab 50257, D 768, max_seq_len 1024, dropout
 * 0.1, learned positions, token scaling on), eps 1e-5, init_std 0.02, no
 * padding row, seed 0, all cores, F32 tables. Only `size` bytes are written
 * and struct_size is set to `size` (a library with a longer struct never
 * writes past the caller's). Returns _NULL_POINTER or _VERSION_MISMATCH.
 * Thread-safe. */
int gpt_embedding_config_init(gpt_embedding_config *out, size_t size);

/* The same with a named preset that reproduces the Hugging Face GPT-2
 * embedding exactly (learned positions, no scaling, dropout 0.1,
 * max_seq_len 1024, vocab 50257): "gpt2" (alias "gpt2-small", D 768),
 * "gpt2-medium" (D 1024), "gpt2-large" (D 1280), "gpt2-xl" (D 1600).
 * Returns GPT_EMBEDDING_ERROR_NULL_POINTER, _VERSION_MISMATCH or
 * _INVALID_ARGUMENT (unknown name; *out untouched). Thread-safe. */
int gpt_embedding_preset(const char *name, gpt_embedding_config *out, size_t size);

/* The 0.1 spellings, kept for source compatibility: they pass this header's
 * sizeof. (The library still exports functions of these names with the 0.1
 * meaning -- writing the 0.1 struct -- for programs built against 0.1 and 0.2
 * headers; a function returning a struct by value cannot learn the caller's
 * size, hence the new entry points.) */
static inline gpt_embedding_config gpt_embedding_default_config_sized_(void) {
    gpt_embedding_config c;
    gpt_embedding_config_init(&c, sizeof c);
    return c;
}
#define gpt_embedding_default_config() gpt_embedding_default_config_sized_()
#define gpt_embedding_preset_config(name, out) gpt_embedding_preset((name), (out), sizeof *(out))

/* Checks every field of *config without allocating anything. Returns
 * GPT_EMBEDDING_OK, _NULL_POINTER, _VERSION_MISMATCH (struct_size),
 * _INVALID_CONFIG (message names the field and the value) or _SIZE_OVERFLOW
 * (tables too large to address). Thread-safe. */
int gpt_embedding_config_validate(const gpt_embedding_config *config);

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

/* Selects a parameter (and its gradient). */
enum gpt_embedding_param {
    GPT_EMBEDDING_PARAM_ALL = -1,               /* counts only: the total */
    GPT_EMBEDDING_PARAM_TOKEN_EMBEDDING = 0,    /* wte [vocab_size, D]; a shard's rows
                                                   [shard_end - shard_start, D] */
    GPT_EMBEDDING_PARAM_POSITION_EMBEDDING = 1, /* wpe [max_seq_len, D]; learned only */
    GPT_EMBEDDING_PARAM_LAYER_NORM_WEIGHT = 2,  /* [D] */
    GPT_EMBEDDING_PARAM_LAYER_NORM_BIAS = 3     /* [D] */
};

/* The number of trainable parameters a layer with this configuration has:
 * for one parameter, or all of them (GPT_EMBEDDING_PARAM_ALL). A parameter
 * the configuration does not have (wpe when positions are not learned)
 * counts 0. Allocates nothing, so it works for any size. The layer norm
 * parameters always exist (the norm is switched per forward call).
 * Returns _NULL_POINTER, _VERSION_MISMATCH, _INVALID_CONFIG, _SIZE_OVERFLOW
 * or _INVALID_ARGUMENT (unknown selector). Thread-safe. */
int gpt_embedding_config_num_parameters(const gpt_embedding_config *config,
                                        int param, int64_t *out_count);

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */
/* ------------------------------------------------------------------------ */

/* An opaque layer. Create with gpt_embedding_create, release with
 * gpt_embedding_free. */
typedef struct gpt_embedding gpt_embedding;

/* Validates *config, allocates a layer and initialises it from config.seed:
 * token and learned position tables N(0, init_std) (the padding row, if
 * any, zero, as torch.nn.Embedding does), layer norm weight 1, bias 0.
 * Gradients are allocated on first use. The same seed gives the same
 * weights on every platform and thread count.
 * On success *out receives the handle (owned by the caller, release it with
 * gpt_embedding_free). On failure *out is set to NULL (if out is not NULL)
 * and the status is _NULL_POINTER, _VERSION_MISMATCH, _INVALID_CONFIG,
 * _SIZE_OVERFLOW or _OUT_OF_MEMORY. Thread-safe. */
int gpt_embedding_create(const gpt_embedding_config *config, gpt_embedding **out);

/* Releases the layer and everything it owns, including memory returned by
 * gpt_embedding_parameter_data and gpt_embedding_gradient_data. NULL is a
 * no-op; so is a handle that was already freed (it is recognised and
 * ignored). Needs exclusive access to the handle. */
void gpt_embedding_free(gpt_embedding *layer);

/* Copies the layer's configuration into *out: size bytes (sizeof *out as the
 * caller was compiled), struct_size set to it. Returns _NULL_POINTER,
 * _VERSION_MISMATCH or _INVALID_HANDLE. Read-only. */
int gpt_embedding_layer_config(const gpt_embedding *layer, gpt_embedding_config *out, size_t size);

/* The 0.1 spelling (see gpt_embedding_preset_config). */
#define gpt_embedding_get_config(layer, out) gpt_embedding_layer_config((layer), (out), sizeof *(out))

/* Bytes of memory the layer owns right now: tables, gradients (if
 * allocated) and what the latest training forward keeps for backward.
 * Errors: _NULL_POINTER, _INVALID_HANDLE. Read-only. */
int gpt_embedding_sizeof(const gpt_embedding *layer, int64_t *out_bytes);

/* ------------------------------------------------------------------------ */
/* Forward and backward                                                     */
/* ------------------------------------------------------------------------ */

/* Flags for the forward call (bitwise or). Unknown bits are an error. */
#define GPT_EMBEDDING_TRAINING 1u   /* dropout on; keep what backward needs */
#define GPT_EMBEDDING_LAYER_NORM 2u /* apply the layer norm (the seed's use_layer_norm) */
#define GPT_EMBEDDING_NO_LAYER_NORM 4u /* do not, even when config.layer_norm is 1 */

/* Forward for int32 ids. Writes out[batch, seq, embed_dim].
 *   ids          [batch, seq] token ids, each in [0, vocab_size).
 *   positions    [batch, seq] explicit positions (left-padded batches), or
 *                NULL to use start_position + t for every row (the past
 *                length when decoding with a KV cache).
 *   start_position  >= 0; ignored when positions is not NULL.
 *   flags        GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM or 0.
 *   out, out_len the caller's buffer and its length in floats; out_len must
 *                be at least batch * seq * embed_dim. Exactly that many
 *                floats are written.
 * Learned positions must be < max_seq_len; sinusoidal ones may be larger
 * (up to 2^31 - 1); with GPT_EMBEDDING_POSITION_NONE positions are checked
 * against the same limit but unused.
 * A training forward replaces what the previous training forward kept for
 * backward (the ids, the positions, per-token mean and rstd: about
 * 12 bytes per token) and advances the dropout step.
 * batch or seq 0 (the other >= 0) is an empty call: GPT_EMBEDDING_OK, nothing
 * written, ids and out may be NULL.
 * Errors: _NULL_POINTER, _INVALID_HANDLE, _INVALID_ARGUMENT (batch or seq
 * < 0, negative start_position, unknown flags), _SIZE_OVERFLOW,
 * _BUFFER_TOO_SMALL, _OUT_OF_RANGE (message names the id or position, its
 * [b, t] index and the valid range), _OUT_OF_MEMORY. Nothing is written on
 * error.
 * Thread safety: an eval forward only reads the layer; a training forward
 * needs exclusive access. */
int gpt_embedding_forward(gpt_embedding *layer, const int32_t *ids,
                          int64_t batch, int64_t seq, const int32_t *positions,
                          int64_t start_position, uint32_t flags, float *out,
                          int64_t out_len);

/* The same for int64 ids and positions (numpy's and PyTorch's default
 * integer type). */
int gpt_embedding_forward_i64(gpt_embedding *layer, const int64_t *ids,
                              int64_t batch, int64_t seq,
                              const int64_t *positions, int64_t start_position,
                              uint32_t flags, float *out, int64_t out_len);

/* Backward of the latest training forward. grad_output is
 * [batch, seq, embed_dim] and batch, seq must equal the forward's. Adds
 * (+=) into the gradients of the token table, the learned position table
 * and the layer norm weight and bias (if the forward used the norm).
 * Repeated ids accumulate; the padding row receives nothing; dropout uses
 * exactly the forward's mask. Gradients accumulate across calls until
 * gpt_embedding_zero_grad. The result is bit-identical for any thread count.
 * Calling it twice for one forward adds the gradient twice.
 * Errors: _NULL_POINTER, _INVALID_HANDLE, _BAD_STATE (no training forward
 * since creation), _INVALID_ARGUMENT (shape differs from the forward's),
 * _OUT_OF_MEMORY (first allocation of the gradients). Gradients are
 * unchanged on error. Needs exclusive access. */
int gpt_embedding_backward(gpt_embedding *layer, const float *grad_output,
                           int64_t batch, int64_t seq);

/* gpt_embedding_forward with an output element type: out holds out_len
 * elements of out_dtype (enum gpt_embedding_dtype), at least batch * seq * D;
 * bf16 and f16 results are the float32 result rounded once to nearest even.
 * The _i64 variant takes int64 ids and positions. Errors as for
 * gpt_embedding_forward, plus _INVALID_ARGUMENT for an unknown out_dtype.
 * Thread safety as gpt_embedding_forward. */
int gpt_embedding_forward_typed(gpt_embedding *layer, const int32_t *ids,
                                int64_t batch, int64_t seq, const int32_t *positions,
                                int64_t start_position, uint32_t flags,
                                int out_dtype, void *out, int64_t out_len);
int gpt_embedding_forward_typed_i64(gpt_embedding *layer, const int64_t *ids,
                                    int64_t batch, int64_t seq, const int64_t *positions,
                                    int64_t start_position, uint32_t flags,
                                    int out_dtype, void *out, int64_t out_len);

/* gpt_embedding_backward with grad_output [batch, seq, D] of grad_dtype (F32,
 * or BF16 / F16, widened exactly; typically the forward's output dtype). A
 * 16-bit grad_output is read where it is, 2 bytes per element (no float32 copy
 * is allocated), so it is faster than the same gradient in F32.
 * Gradients accumulate in float32 whatever the table dtype. Errors as for
 * gpt_embedding_backward, plus _INVALID_ARGUMENT for an unknown grad_dtype. */
int gpt_embedding_backward_typed(gpt_embedding *layer, int grad_dtype,
                                 const void *grad_output, int64_t batch, int64_t seq);

/* Sets every gradient to zero. Only the table rows backward wrote since the
 * last zero_grad are cleared, so the cost follows the batch, not the
 * vocabulary; once gpt_embedding_gradient_data has handed out a gradient's
 * address (writes through it cannot be tracked) that whole gradient is
 * cleared. Errors: _INVALID_HANDLE, _NULL_POINTER. Needs exclusive access. */
int gpt_embedding_zero_grad(gpt_embedding *layer);

/* The token rows whose gradient backward has written since the last
 * zero_grad, ascending, without duplicates (the padding row is never among
 * them): an optimizer can update just these rows. *out_count always receives
 * their number. rows may be NULL when capacity is 0 (a size query);
 * otherwise capacity must be at least that number, or the call fails with
 * _BUFFER_TOO_SMALL and writes no row. Writes through
 * gpt_embedding_gradient_data are not tracked. Read-only. */
int gpt_embedding_touched_rows(const gpt_embedding *layer, int32_t *rows,
                               int64_t capacity, int64_t *out_count);

/* ------------------------------------------------------------------------ */
/* Parameters and gradients                                                 */
/* ------------------------------------------------------------------------ */

/* The total number of trainable parameters of the layer (see
 * gpt_embedding_config_num_parameters). Errors: _NULL_POINTER,
 * _INVALID_HANDLE. Read-only. */
int gpt_embedding_num_parameters(const gpt_embedding *layer, int64_t *out_count);

/* The shape of one parameter: [rows, cols] (rows is 1 for the layer norm
 * vectors). Returns _INVALID_ARGUMENT for an unknown selector or for
 * GPT_EMBEDDING_PARAM_POSITION_EMBEDDING when positions are not learned.
 * Read-only. */
int gpt_embedding_parameter_shape(const gpt_embedding *layer, int param,
                                  int64_t *out_rows, int64_t *out_cols);

/* Copies a parameter into dst as float32 (dst_len >= rows * cols floats;
 * exactly rows * cols are written), whatever its stored dtype (bf16 and f16
 * are widened exactly). Read-only. */
int gpt_embedding_get_parameter(const gpt_embedding *layer, int param,
                                float *dst, int64_t dst_len);

/* Replaces a parameter with src (src_len must equal rows * cols), rounded to
 * the stored dtype to nearest even. Gradients are not touched. Needs
 * exclusive access. */
int gpt_embedding_set_parameter(gpt_embedding *layer, int param,
                                const float *src, int64_t src_len);

/* Copies a gradient into dst, like gpt_embedding_get_parameter. Before the
 * first backward (or after zero_grad) the gradient is all zeros. Read-only. */
int gpt_embedding_get_gradient(const gpt_embedding *layer, int param,
                               float *dst, int64_t dst_len);

/* Zero-copy access: *out_data receives a pointer to the parameter's
 * row-major storage and *out_len its length in floats. The memory is owned
 * by the layer; it stays valid and at the same address until
 * gpt_embedding_free. Writing through it changes the parameter (tie the
 * token table to an output head, run an optimizer in place). Needs
 * exclusive access while used for writing. A table stored as bf16 or f16 is
 * refused with _INVALID_ARGUMENT (use gpt_embedding_parameter_data_typed);
 * *out_data is then NULL. */
int gpt_embedding_parameter_data(gpt_embedding *layer, int param,
                                 float **out_data, int64_t *out_len);

/* Zero-copy access for any dtype: *out_data receives the storage, *out_dtype
 * its enum gpt_embedding_dtype and *out_rows, *out_cols its shape (elements,
 * not bytes). Same lifetime and rules as gpt_embedding_parameter_data. For a
 * mapped table (gpt_embedding_open with mmap) the pointer is inside the
 * private mapping: writes make private copies of the pages and never reach
 * the file. */
int gpt_embedding_parameter_data_typed(gpt_embedding *layer, int param, void **out_data,
                                       int *out_dtype, int64_t *out_rows, int64_t *out_cols);

/* The stored dtype of a parameter (enum gpt_embedding_dtype). Read-only. */
int gpt_embedding_parameter_dtype(const gpt_embedding *layer, int param, int *out_dtype);

/* The same for a gradient; allocates the gradients (zeroed) if no backward
 * ran yet, so it can fail with _OUT_OF_MEMORY. Backward adds into this
 * memory, so an output head tied to the token table can add its own
 * gradient here too. */
int gpt_embedding_gradient_data(gpt_embedding *layer, int param,
                                float **out_data, int64_t *out_len);

/* ------------------------------------------------------------------------ */
/* Calls with explicit state (autograd engines: PyTorch, JAX, your own)      */
/* ------------------------------------------------------------------------ */

/* gpt_embedding_forward keeps what backward needs inside the layer and draws
 * the dropout mask from the layer's own stream, which suits a loop that
 * alternates one forward and one backward. An autograd engine needs more:
 * several forwards before their backwards (micro-batches, a tied second call),
 * a backward run twice or never, a forward recomputed inside backward
 * (activation checkpointing) that must draw the same mask, a forward without
 * gradient between a forward and its backward. The functions below keep
 * nothing in the layer and advance nothing:
 *
 *   - a training forward writes what its backward needs into memory the caller
 *     owns: the ids and positions are the caller's arrays already, and with the
 *     layer norm the per-token mean and rstd (8 bytes per token) go to
 *     call.mean and call.rstd: 12 bytes per token with int32 ids;
 *   - the dropout mask is a pure function of (call.dropout_seed,
 *     call.dropout_offset, element): the mask a layer created with
 *     config.seed = s draws at its n-th training gpt_embedding_forward
 *     (counting from 0) is the mask of seed s, offset n. The same pair gives
 *     the same mask on every CPU path and thread count, so the caller decides
 *     when a mask repeats (PyTorch draws the pair from its own generator,
 *     so torch.manual_seed and checkpointing's RNG preservation govern it);
 *   - the backward of one forward is gpt_embedding_backward_call with the same
 *     gpt_embedding_call, in any order relative to other calls, any number of
 *     times; it adds into the caller's gradient buffers (gpt_embedding_grads)
 *     or, given NULL, into the layer's own gradients as gpt_embedding_backward
 *     does (then gpt_embedding_adamw_step can use them, lazily).
 *
 * Empty calls: batch or seq 0 (the other >= 0) is a valid call that writes
 * nothing and returns GPT_EMBEDDING_OK; its pointers may then be NULL. This
 * holds for gpt_embedding_forward* and gpt_embedding_backward* too (a training
 * forward of 0 tokens keeps an empty state, whose backward adds nothing). */

/* gpt_embedding_call.index_dtype: the element type of ids and positions. */
#define GPT_EMBEDDING_INDEX_I32 0
#define GPT_EMBEDDING_INDEX_I64 1

/* One forward and its backward. Fill it with gpt_embedding_call_init (never
 * by hand: struct_size must be right), then set the fields. Fields are only
 * ever appended; the library never keeps a pointer past the call. */
typedef struct gpt_embedding_call {
    uint32_t struct_size;     /* sizeof(gpt_embedding_call) */
    uint32_t flags;           /* GPT_EMBEDDING_TRAINING (dropout on: with the seed and
                                 offset below), GPT_EMBEDDING_LAYER_NORM,
                                 GPT_EMBEDDING_NO_LAYER_NORM, as for gpt_embedding_forward */
    int32_t index_dtype;      /* GPT_EMBEDDING_INDEX_I32 (default) or _I64 */
    int32_t reserved;         /* 0 */
    const void *ids;          /* [batch, seq] token ids of index_dtype */
    const void *positions;    /* [batch, seq] positions of index_dtype, or NULL for
                                 start_position + t */
    int64_t batch;            /* >= 0 */
    int64_t seq;              /* >= 0 */
    int64_t start_position;   /* >= 0; ignored when positions is not NULL */
    uint64_t dropout_seed;    /* the dropout mask of a TRAINING call (see above) */
    uint64_t dropout_offset;
    float *mean;              /* [batch * seq] floats: a forward that applies the layer
                                 norm writes each token's mean here (NULL: not kept; an
                                 eval forward needs none); its backward reads them */
    float *rstd;              /* [batch * seq]: 1 / sqrt(var + eps), likewise */
    /* Borrowed tables (as llm.c's encoder_forward takes out, inp, wte, wpe, ...): a
     * non-NULL pointer replaces the layer's own tensor for the duration of this call,
     * forward and backward alike, so that an engine that owns its parameters (a torch
     * tensor, an arena of a C engine) computes from them without copying them into the
     * layer. Each must have the shape and dtype of the layer's own tensor
     * (gpt_embedding_parameter_shape / _dtype; the layer norm vectors are float32) and
     * *_len its element count, exactly; NULL (the default) means the layer's own. The
     * library reads them only during the call and never writes them. */
    const void *token_embedding;       /* [rows, D] of the token table's dtype */
    int64_t token_embedding_len;
    const void *position_embedding;    /* [max_seq_len, D] (learned positions only) */
    int64_t position_embedding_len;
    const float *layer_norm_weight;    /* [D] */
    int64_t layer_norm_weight_len;
    const float *layer_norm_bias;      /* [D] */
    int64_t layer_norm_bias_len;
} gpt_embedding_call;

/* Fills *call (size = sizeof *call as the caller was compiled) with the
 * defaults: no flags, int32 ids, every pointer NULL, every number 0. Returns
 * _NULL_POINTER or _VERSION_MISMATCH (size unknown). Thread-safe. */
int gpt_embedding_call_init(gpt_embedding_call *call, size_t size);

/* Forward of *call into out (out_len elements of out_dtype, enum
 * gpt_embedding_dtype, at least batch * seq * embed_dim; exactly that many are
 * written), computing what gpt_embedding_forward_typed computes with the same
 * flags, with the dropout mask of (dropout_seed, dropout_offset). With the
 * layer norm and call->mean, call->rstd given, each token's statistics are
 * written there (what gpt_embedding_backward_call needs). Keeps nothing in the
 * layer and changes no state: it only reads the layer, so it may run at the
 * same time as other read-only calls (eval or training forwards of this
 * kind, gpt_embedding_backward_call into caller buffers).
 * Errors: as gpt_embedding_forward_typed, plus _VERSION_MISMATCH
 * (call->struct_size), _INVALID_ARGUMENT (index_dtype, reserved, a negative
 * batch or seq), _BAD_STATE (a layer holding part of the vocabulary: use the
 * two-phase forward). Nothing is written on error. */
int gpt_embedding_forward_call(const gpt_embedding *layer, const gpt_embedding_call *call,
                               int out_dtype, void *out, int64_t out_len);

/* Where gpt_embedding_backward_call puts its gradients: the caller's float32
 * buffers. Fill it with gpt_embedding_grads_init. Every pointer is optional:
 * NULL means "not wanted" and the work for it is skipped (a frozen table
 * costs nothing). Each *_len is the buffer's length in floats and must be at
 * least the parameter's rows * cols (gpt_embedding_parameter_shape). */
typedef struct gpt_embedding_grads {
    uint32_t struct_size;       /* sizeof(gpt_embedding_grads) */
    uint32_t reserved;          /* 0 */
    float *token_embedding;     /* [rows, D]: += the token table's gradient (the
                                   padding row receives nothing) */
    int64_t token_embedding_len;
    float *position_embedding;  /* [max_seq_len, D]: += (learned positions only) */
    int64_t position_embedding_len;
    float *layer_norm_weight;   /* [D]: += (calls that normalise) */
    int64_t layer_norm_weight_len;
    float *layer_norm_bias;     /* [D]: += */
    int64_t layer_norm_bias_len;
    float *token_rows;          /* [batch * seq, D]: = (written, not added) the
                                   gradient of each token's table row, s * dx; a
                                   token whose id is the padding row (or outside
                                   the layer's shard) gets a row of zeros. Summing
                                   row r into row ids[r] of a zero table gives
                                   token_embedding: what nn.Embedding(sparse=True)
                                   returns as a sparse COO gradient */
    int64_t token_rows_len;
} gpt_embedding_grads;

/* Fills *grads (size = sizeof *grads as the caller was compiled): every
 * pointer NULL, every length 0. Returns _NULL_POINTER or _VERSION_MISMATCH.
 * Thread-safe. */
int gpt_embedding_grads_init(gpt_embedding_grads *grads, size_t size);

/* Backward of the forward described by *call (the same ids, positions,
 * start_position, flags, dropout seed and offset, and the mean and rstd that
 * forward wrote) for grad_output[batch, seq, embed_dim] of grad_dtype (F32,
 * or BF16 / F16 widened exactly; grad_len elements, exactly batch * seq * D).
 * The arithmetic and the summation order are gpt_embedding_backward's, so
 * the results are bit-identical to it, for any thread count.
 *   grads non-NULL: adds into the caller's buffers only; the layer is only
 *     read (safe next to other read-only calls). Gradient work for a NULL
 *     pointer is skipped.
 *   grads NULL: adds into the layer's own gradients and records the touched
 *     rows, exactly as gpt_embedding_backward (so zero_grad, grad_norm_squared
 *     and a lazy gpt_embedding_adamw_step work); needs exclusive access.
 * The ids and positions are validated again (they are the caller's memory).
 * Errors: _NULL_POINTER (ids, grad_output, or mean/rstd when the call
 * normalises), _INVALID_HANDLE, _VERSION_MISMATCH, _INVALID_ARGUMENT (sizes,
 * flags, dtypes, lengths: the message names the field), _OUT_OF_RANGE,
 * _BAD_STATE (a partial shard's call: its backward follows the two-phase
 * forward), _OUT_OF_MEMORY. Nothing is written on error. */
int gpt_embedding_backward_call(gpt_embedding *layer, const gpt_embedding_call *call,
                                int grad_dtype, const void *grad_output, int64_t grad_len,
                                const gpt_embedding_grads *grads);

/* ------------------------------------------------------------------------ */
/* Training step: AdamW                                                     */
/* ------------------------------------------------------------------------ */

/* Bit masks of parameters (1u << enum gpt_embedding_param), for
 * gpt_embedding_adamw_options.params and .decay_params. */
#define GPT_EMBEDDING_PARAM_BIT(param) (1u << (param))
#define GPT_EMBEDDING_PARAMS_ALL 0xFu
#define GPT_EMBEDDING_PARAMS_TABLES 0x3u /* token and position tables */

/* One AdamW step: what torch.optim.AdamW computes, per element in float32
 * (the scalars in double, rounded once to float as PyTorch does):
 *     g = grad * grad_scale                       (the gradient is not changed)
 *     p = p * (1 - lr * weight_decay)             (parameters in decay_params)
 *     m = lerp(m, g, 1 - beta1)                   (torch.lerp's two forms)
 *     v = beta2 * v + (1 - beta2) * g * g
 *     p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * with t the parameter's own step count (incremented by every step that
 * updates it). Fill it with gpt_embedding_adamw_options_init (never by hand:
 * struct_size must be right), then change fields; schedulers change lr
 * between steps. Fields are only ever appended; scalars only. */
typedef struct gpt_embedding_adamw_options {
    uint32_t struct_size;   /* sizeof(gpt_embedding_adamw_options) */
    uint32_t params;        /* parameters this step updates (a parameter group);
                               default GPT_EMBEDDING_PARAMS_ALL. A parameter
                               without a gradient (the layer norm when no
                               forward normalised) is skipped, as PyTorch
                               skips a parameter whose grad is None */
    double lr;              /* >= 0, finite; default 1e-3 */
    double beta1;           /* [0, 1); default 0.9 */
    double beta2;           /* [0, 1); default 0.999 */
    double eps;             /* > 0, finite; default 1e-8 */
    double weight_decay;    /* >= 0, finite; default 0.01 (decoupled) */
    double grad_scale;      /* >= 0, finite; multiplies the gradients inside
                               the step (clipping by a global norm); default 1 */
    uint32_t decay_params;  /* parameters weight decay applies to; default
                               GPT_EMBEDDING_PARAMS_ALL (PyTorch over
                               model.parameters()); GPT recipes use
                               GPT_EMBEDDING_PARAMS_TABLES */
    int32_t lazy;           /* 1: update only the table rows backward touched
                               since the last zero_grad (token and learned
                               position tables; the layer norm is dense): the
                               other rows keep their values and moments, as
                               torch.optim.SparseAdam / LazyAdam do (weight
                               decay too applies to touched rows only);
                               0 (default): every row, as AdamW */
} gpt_embedding_adamw_options;

/* Fills *options (size = sizeof *options as the caller was compiled) with
 * torch.optim.AdamW's defaults and the fields' defaults above. Returns
 * _NULL_POINTER or _VERSION_MISMATCH (size unknown). Thread-safe. */
int gpt_embedding_adamw_options_init(gpt_embedding_adamw_options *options, size_t size);

/* One AdamW step on the parameters in options->params (options NULL: the
 * defaults), each in one fused, multi-threaded pass; bit-identical for any
 * thread count and on every CPU path. The optimizer state of a parameter
 * (both moments in float32, its step count, and for a bf16/f16 table a
 * float32 master copy of the weights, which the step updates and then rounds
 * to nearest even into the table) is allocated on its first step and counted
 * by gpt_embedding_sizeof. A lazy step costs what the batch costs. When
 * gpt_embedding_gradient_data has handed out a table's gradient (a tied
 * output head), a lazy step updates every row of that table: writes through
 * the pointer cannot be tracked.
 * Inf or NaN gradients propagate as IEEE arithmetic says; to skip such a
 * step, check gpt_embedding_grad_norm_squared first.
 * Errors: _NULL_POINTER, _INVALID_HANDLE, _VERSION_MISMATCH (struct_size),
 * _INVALID_ARGUMENT (a value out of range, unknown bits in params or
 * decay_params, lazy not 0 or 1: the message names it), _BAD_STATE (no
 * backward since the last zero_grad, or a step count already at INT64_MAX),
 * _OUT_OF_MEMORY. On error no parameter
 * and no state has changed. Needs exclusive access. */
int gpt_embedding_adamw_step(gpt_embedding *layer, const gpt_embedding_adamw_options *options);

/* *out receives the squared L2 norm of all the layer's gradients, in double
 * (the tables over the rows backward touched, the others being zero: it costs
 * what the batch costs). Add the other layers' squared norms and clip by a
 * global norm with grad_scale = min(1, max_norm / (sqrt(total) + 1e-6)).
 * Infinite or NaN when a gradient is; 0 before any backward. Deterministic.
 * Errors: _NULL_POINTER, _INVALID_HANDLE. Read-only. */
int gpt_embedding_grad_norm_squared(const gpt_embedding *layer, double *out);

/* Selects one tensor of a parameter's optimizer state. */
enum gpt_embedding_optimizer_state {
    GPT_EMBEDDING_STATE_EXP_AVG = 0,    /* first moment, float32, the parameter's shape */
    GPT_EMBEDDING_STATE_EXP_AVG_SQ = 1, /* second moment */
    GPT_EMBEDDING_STATE_MASTER = 2      /* float32 master weights (bf16/f16 tables only) */
};

/* Zero-copy access to one optimizer state tensor of a parameter, for saving
 * and restoring it (PyTorch's state_dict): *out_data receives its address
 * (valid until gpt_embedding_optimizer_reset or gpt_embedding_free; writing
 * changes the state), *out_len its float count. Allocates the parameter's
 * state when no step has yet (zero moments, step 0, master from the table).
 * Errors: _NULL_POINTER, _INVALID_HANDLE, _INVALID_ARGUMENT (unknown param or
 * kind; MASTER of a float32 parameter; the position table when positions are
 * not learned), _OUT_OF_MEMORY. */
int gpt_embedding_optimizer_state_data(gpt_embedding *layer, int param, int kind,
                                       float **out_data, int64_t *out_len);

/* A parameter's step count (0 before its first step). Read-only. */
int gpt_embedding_optimizer_get_step(const gpt_embedding *layer, int param, int64_t *out_step);

/* Sets a parameter's step count (>= 0), allocating its state as
 * gpt_embedding_optimizer_state_data does: to restore a saved state. */
int gpt_embedding_optimizer_set_step(gpt_embedding *layer, int param, int64_t step);

/* Frees every optimizer state; the next step starts from step 1 with zero
 * moments (and master weights taken from the tables). Errors:
 * _INVALID_HANDLE, _NULL_POINTER. */
int gpt_embedding_optimizer_reset(gpt_embedding *layer);

/* ------------------------------------------------------------------------ */
/* Stateless helpers                                                        */
/* ------------------------------------------------------------------------ */

/* Writes the sinusoidal table rows for positions start_position ..
 * start_position + num_positions - 1 into out[num_positions, embed_dim]
 * (out_len >= num_positions * embed_dim), with the formula at the top of
 * this header, computed in double and rounded to float. Errors:
 * _NULL_POINTER, _INVALID_ARGUMENT, _SIZE_OVERFLOW, _BUFFER_TOO_SMALL,
 * _OUT_OF_RANGE (a position past 2^31 - 1). Thread-safe. */
int gpt_embedding_sinusoidal_table(int64_t start_position, int64_t num_positions,
                                   int64_t embed_dim, float *out, int64_t out_len);

/* ------------------------------------------------------------------------ */
/* Weights in and out: safetensors                                          */
/* ------------------------------------------------------------------------ */

/* Flag for gpt_embedding_save_safetensors: name the tables wte.weight and
 * wpe.weight (Hugging Face GPT-2) instead of the library's names. */
#define GPT_EMBEDDING_SAVE_GPT2_NAMES 1u
/* Flag for gpt_embedding_save_safetensors: save the optimizer state with the
 * weights (tensors "optimizer.<parameter name>.exp_avg", ".exp_avg_sq" and,
 * for 16-bit tables, ".master", all F32; each step count in the header's
 * __metadata__ as "optimizer.<parameter name>.step", and the position of the
 * dropout masks' stream as "dropout.step"), so that training of a layer
 * created with the same configuration (seed included) resumes bit for bit
 * after gpt_embedding_load_safetensors. */
#define GPT_EMBEDDING_SAVE_OPTIMIZER 2u

/* Loads parameters from a safetensors file (the file is memory-mapped, not
 * copied). Tensor names: the library's (token_embedding.weight,
 * position_embedding.weight, layer_norm.weight, layer_norm.bias) or Hugging
 * Face GPT-2's (wte.weight, wpe.weight, with or without "transformer.");
 * other tensors are ignored. The token table is required, the position table
 * too when positions are learned; the layer norm vectors are optional. F32,
 * F16 and BF16 are converted to the layer's dtypes (exactly when widening, to
 * nearest even when narrowing). The file is validated completely
 * before anything is written (header length cap, JSON, dtypes, shapes
 * against the configuration, offsets contiguous and inside the file):
 * after an error the layer is unchanged. Gradients are not touched.
 * Optimizer state saved with GPT_EMBEDDING_SAVE_OPTIMIZER is restored (moments,
 * master weights, step counts, the dropout stream's position); for a parameter whose state the file lacks,
 * the state is kept, except that a 16-bit table's master weights are re-taken
 * from the loaded table.
 * Errors: _NULL_POINTER, _INVALID_HANDLE, _IO (cannot open or map),
 * _BAD_FILE (the message names the tensor and the problem).
 * Needs exclusive access. */
int gpt_embedding_load_safetensors(gpt_embedding *layer, const char *path);

/* The same from a whole file held in memory: data[0 .. size). The library
 * does not keep the pointer. */
int gpt_embedding_load_safetensors_buffer(gpt_embedding *layer, const void *data,
                                          int64_t size);

/* Saves every parameter as safetensors to path, each in its stored dtype (a
 * bf16 table stays BF16; the layer norm vectors are F32; a table in a ggml block
 * format, which safetensors cannot hold, is written dequantized as F32), loadable by the
 * official safetensors package and torch (written to a temporary file, then
 * renamed, so a failure leaves no partial file). flags: 0, or
 * GPT_EMBEDDING_SAVE_GPT2_NAMES and/or GPT_EMBEDDING_SAVE_OPTIMIZER. Errors: _NULL_POINTER, _INVALID_HANDLE,
 * _INVALID_ARGUMENT (unknown flags), _IO. Read-only. */
int gpt_embedding_save_safetensors(const gpt_embedding *layer, const char *path,
                                   uint32_t flags);

/* ------------------------------------------------------------------------ */
/* Opening a checkpoint (no random initialisation)                          */
/* ------------------------------------------------------------------------ */

/* gpt_embedding_open_options.dtype: keep each table's dtype from the file. */
#define GPT_EMBEDDING_DTYPE_KEEP (-1)
/* gpt_embedding_open_options.position_encoding: from the file (learned when it
 * has a position table, else none). */
#define GPT_EMBEDDING_POSITION_FROM_FILE (-1)

/* How gpt_embedding_open builds a layer. Fill it with
 * gpt_embedding_open_options_init (never by hand: struct_size must be right).
 * Fields are only ever appended; scalars only, and one string (family), which
 * is read during gpt_embedding_open and not kept. */
typedef struct gpt_embedding_open_options {
    uint32_t struct_size;      /* sizeof(gpt_embedding_open_options) */
    int32_t dtype;             /* GPT_EMBEDDING_DTYPE_KEEP (default) or an enum
                                  gpt_embedding_dtype to convert the tables to */
    int32_t mmap;              /* 0 (default): read the tables into the layer's
                                  memory; 1: map the file privately (below) */
    int32_t num_threads;       /* worker threads; 0 = all cores (default) */
    uint64_t seed;             /* dropout masks; default 0 */
    float dropout;             /* < 0 (default -1): the model family's input dropout
                                  from config.json, else 0 */
    float layer_norm_eps;      /* < 0 (default -1): config.json's, else 1e-5 */
    int32_t scale_embeddings;  /* 1: multiply token rows by sqrt(D); default 0 */
    int32_t position_encoding; /* GPT_EMBEDDING_POSITION_FROM_FILE (default): learned
                                  when the file has a position table, else none;
                                  _LEARNED (the file must have one), _SINUSOIDAL or
                                  _NONE (a position table in the file is ignored) */
    int64_t max_seq_len;       /* rows of the cached sinusoidal table when
                                  position_encoding is SINUSOIDAL (ignored otherwise:
                                  learned tables have their own); default 1024 */
    int64_t padding_idx;       /* -1 (default) or a token row without gradient */
    /* Added in 0.3: */
    int32_t by_tensor_names;   /* 1: ignore a folder's config.json and open by tensor
                                  names alone; 0 (default): config.json's model_type
                                  selects the family (gpt_embedding_open) */
    /* Added in 0.4 (after the 0.3 struct's tail padding, named here so that the new
     * fields start past the 0.3 size): */
    int32_t reserved_0_3;      /* ignored */
    int32_t shard_rank;        /* open one shard of the token table: the rows that
                                  gpt_embedding_shard_range gives rank shard_rank */
    int32_t shard_world;       /* of shard_world ranks under shard_rule; only those
                                  rows are read (or mapped). 0 (default): the whole
                                  table. A rank outside [0, shard_world), a world
                                  larger than the table, or a rule that cannot split
                                  it: _INVALID_ARGUMENT naming the checkpoint */
    int32_t shard_rule;        /* enum gpt_embedding_shard_rule; default BALANCED */
    /* Added in 0.6 (after the 0.4 struct's tail padding, named): */
    int32_t reserved_0_4;      /* ignored */
    const char *family;        /* NULL (default): config.json's model_type selects the
                                  family, else tensor names decide (gpt_embedding_open).
                                  A model_type ("llama", "opt", "bloom", "gemma", ...,
                                  the list in gpt_embedding_open): apply that family's
                                  input stage without config.json, as described there.
                                  An unknown name: _INVALID_ARGUMENT listing the
                                  supported ones. At most 64 bytes. */
} gpt_embedding_open_options;

/* The 0.2 size of the open options struct (before by_tensor_names). */
#define GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_2 56u
/* The 0.3 size (before the shard fields, which then default to the whole table). */
#define GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_3 64u
/* The 0.4 and 0.5 size (before family, which then is NULL). */
#define GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_4 80u

/* Fills *options (size = sizeof *options as the caller was compiled) with the
 * defaults; a library with a longer struct writes only the caller's part.
 * Returns _NULL_POINTER or _VERSION_MISMATCH (size too small). Thread-safe. */
int gpt_embedding_open_options_init(gpt_embedding_open_options *options, size_t size);

/* Opens a checkpoint as a layer, with no random initialisation. path is a
 * .safetensors file, or a folder holding model.safetensors or a sharded
 * checkpoint (model.safetensors.index.json: "weight_map" from tensor name to
 * shard file in the folder). The configuration comes from the tensors:
 * vocab_size and embed_dim from the token table; learned positions and
 * max_seq_len from the position table when there is one, else no positions;
 * the layer norm vectors from the file when present, else weight 1 and bias
 * 0; the rest from options (NULL: defaults). The file's dtype (F32, BF16,
 * F16) is kept unless options->dtype converts.
 *
 * Which tensors, and which input stage: a folder's config.json names the
 * Hugging Face family (model_type: gpt2, gpt_neo, gpt_bigcode, gptj, opt,
 * bloom, llama, mistral, qwen2, falcon, mpt, gpt_neox, phi, gemma, gemma2,
 * gemma3_text), which fixes the tensor names (with or without the base-model
 * prefix), OPT's position_offset 2, BLOOM's embedding layer norm (layer_norm
 * 1), Gemma's token_scale (sqrt(hidden_size) rounded to the table dtype), and
 * the input dropout and epsilon config.json gives; an unknown model_type is
 * _BAD_FILE listing the supported ones. options->family names the family
 * without config.json (a bare .safetensors file, or a model_type missing or
 * unsupported): the same input stage and tensor names, vocab_size and
 * embed_dim from the token table, dropout and layer_norm_eps from options,
 * else from a folder's config.json (still read for its numbers, its sizes
 * checked, unless by_tensor_names is 1; its model_type is not consulted),
 * else 0 and 1e-5; a tensor the family needs and the checkpoint lacks is
 * _BAD_FILE naming it. Without a family (no config.json, or by_tensor_names
 * 1), tensor names decide: the library's and GPT-2's (token_embedding.weight,
 * wte.weight, transformer.wte.weight, with their position tables and
 * layer_norm.weight/.bias, as gpt_embedding_load_safetensors reads them), or
 * any supported family's token-table name (model.embed_tokens.weight,
 * transformer.word_embeddings.weight, gpt_neox.embed_in.weight,
 * model.decoder.embed_tokens.weight, model.language_model.embed_tokens.weight,
 * with or without the prefix) opened as a plain lookup: a family's position
 * table (OPT's embed_positions), embedding layer norm (BLOOM's) and scale
 * (Gemma's) are not picked up without options->family, since their meaning is
 * the family's. Two candidate token tables in one checkpoint are _BAD_FILE
 * naming both (options->family chooses). A 0.2-sized options struct keeps
 * 0.2's names (the library's and GPT-2's only).
 *
 * GGUF (llama.cpp's format, versions 2 and 3): a file that starts with the
 * GGUF magic opens as GGUF whatever its name (a .gguf file without the magic
 * is refused as "not a GGUF file"). The token table is token_embd.weight
 * (ne [n_embd, n_vocab]: a [n_vocab, n_embd] table) in F32, F16 or BF16, or
 * in one of ggml's block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
 * Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS. A quantized table stays in its blocks
 * (read, or mapped at any offset; a shard reads only its rows) and each row is
 * dequantized to float32 as the forward reads it, bit for bit as ggml's
 * dequantize_row_* (then scale, positions, layer norm, dropout and the output
 * dtype as for any table). Its dtype reads GPT_EMBEDDING_DTYPE_GGML + the type
 * id; gpt_embedding_parameter_data_typed gives its raw blocks (rows of
 * cols / block size blocks) and gpt_embedding_get_parameter the dequantized
 * float32 values. It is frozen: backward adds into the position and layer
 * norm gradients only; the token table's gradient (get_gradient,
 * gradient_data, a gradient buffer of gpt_embedding_backward_call), a step
 * naming it (gpt_embedding_adamw_options.params) and set_parameter are
 * _BAD_STATE, and a step over every parameter skips it. options->dtype
 * converts the table while opening (dequantized, then rounded) to make it
 * trainable. Other block types (the IQ1/IQ2/IQ3 lattice types, Q8_K, TQ*,
 * MXFP4) are refused with _BAD_FILE naming the type. A quantized
 * position_embd.weight is dequantized to float32 while opening.
 * general.architecture selects llama.cpp's
 * input stage: gemma, gemma2, gemma3 multiply by sqrtf(n_embd) in float32
 * (token_scale; NOT rounded to the table dtype as transformers' Gemma does);
 * granite, granitemoe, granitehybrid, minicpm by {arch}.embedding_scale;
 * minicpm3 by 12; gpt2, starcoder (and mpt when present) add the learned
 * position_embd.weight; bloom applies token_embd_norm.weight/.bias as the
 * layer norm, on by default, with {arch}.attention.layer_norm_epsilon; llama,
 * mistral, qwen2, qwen3, phi3, falcon and other plain-lookup architectures are
 * a plain lookup. An architecture whose input stage this library does not
 * compute (bert and other encoders, rwkv6/7, gemma3n, grok, t5, unknown ones)
 * is refused with _BAD_FILE naming it, unless by_tensor_names = 1 asks for the
 * plain lookup of token_embd.weight. The file is validated at least as
 * strictly as ggml's reader (magic, version, lengths within the file, no
 * duplicate keys or tensors, no nested arrays, power-of-two alignment, at most
 * 4 dims, names under 64 bytes, known types, ne[0] a multiple of the block
 * size, tensors inside the file and not overlapping). Mapped mode maps a table
 * only when its data is aligned for its dtype (else it is read).
 *
 * Read mode (mmap 0, the default) reads the tables with plain I/O straight
 * into the layer's memory: no second copy. Mapped mode (mmap 1) points the
 * tables into a private copy-on-write mapping of the file (MAP_PRIVATE):
 * pages are shared with the page cache and other processes until written;
 * writes (training, set_parameter, zero-copy pointers) stay in this process
 * and never reach the file. Only a tensor whose dtype is kept and whose data
 * is aligned for it is mapped (the layer norm vectors too, when the file has
 * them); the others are read (see gpt_embedding_parameter_mapped). The hazard no library can catch: if
 * another process truncates the file while it is mapped, touching a page
 * past the new end raises SIGBUS. That is why reading is the default.
 *
 * On success *out receives the handle (release it with gpt_embedding_free).
 * On failure *out is NULL and nothing survives. Errors: _NULL_POINTER,
 * _VERSION_MISMATCH (options->struct_size), _INVALID_ARGUMENT (an option; an
 * unknown options->family, or one given for a GGUF file, whose architecture
 * decides),
 * _IO, _BAD_FILE (the message names the file, the tensor and the problem:
 * unknown or non-float dtypes, shapes that disagree between tables, an index
 * naming a missing shard or a shard outside the folder, a tensor listed in two
 * shards, a truncated shard; no token table, two candidate token tables, a
 * tensor the family needs missing; a malformed GGUF file, a refused architecture or
 * a GGUF table type this build does not decode), _OUT_OF_MEMORY. Thread-safe. */
int gpt_embedding_open(const char *path, const gpt_embedding_open_options *options,
                       gpt_embedding **out);

/* Whether a parameter's values live in a mapping of the checkpoint file
 * (*out_mapped 1) or in the layer's memory (0). Read-only. */
int gpt_embedding_parameter_mapped(const gpt_embedding *layer, int param, int *out_mapped);

/* ------------------------------------------------------------------------ */
/* Writing GGUF                                                             */
/* ------------------------------------------------------------------------ */

/* gpt_embedding_save_gguf's table_type: the token table as the layer holds it
 * (F32, F16 or BF16 elements, or a block-format table's blocks unchanged). */
#define GPT_EMBEDDING_GGUF_KEEP (-1)

/* Saves the layer as a GGUF v3 file (alignment 32) that llama.cpp and the gguf
 * package read: token_embd.weight in table_type; position_embd.weight for
 * learned positions; token_embd_norm.weight / .bias (F32) when the layer applies
 * its layer norm by default; and general.architecture naming the architecture
 * whose input stage, as llama.cpp computes it, is this layer's, with the keys it
 * reads:
 *   learned positions, no scale        -> gpt2 (gpt2.context_length)
 *   the layer norm by default          -> bloom (bloom.attention.layer_norm_epsilon)
 *   token rows times sqrtf(D)          -> gemma
 *   token rows times another scale     -> granite (granite.embedding_scale)
 *   a plain lookup                     -> llama
 * plus {arch}.embedding_length, and general.quantization_version 2 for a
 * quantized table. Dropout, the padding row and optimizer state are not part of
 * a GGUF file and are not written.
 *
 * table_type: GPT_EMBEDDING_GGUF_KEEP; GPT_EMBEDDING_GGML_F32, _F16 or _BF16
 * (converted, rounded to nearest even); or GPT_EMBEDDING_GGML_Q8_0, _Q4_0,
 * _Q4_1, _Q5_0, _Q5_1: quantized byte for byte as the gguf package's
 * gguf.quants.quantize (ggml's reference quantizers) does, which needs D a
 * multiple of 32 and finite values. The position table is written in the
 * table's float type (F32 next to a quantized table). flags: 0.
 *
 * Written to a temporary file renamed over path, so a failure leaves no partial
 * file. Errors: _NULL_POINTER, _INVALID_HANDLE, _INVALID_ARGUMENT (unknown
 * flags or table_type; D not a multiple of 32 for a quantized type; a value
 * that is not finite, named by row and column; a layer no GGUF architecture
 * describes: sinusoidal positions, a position offset, a scale with learned
 * positions or a layer norm, a vocabulary shard), _IO, _OUT_OF_MEMORY.
 * Read-only. Since 0.6. */
int gpt_embedding_save_gguf(const gpt_embedding *layer, const char *path,
                            int32_t table_type, uint32_t flags);

/* ------------------------------------------------------------------------ */
/* Vocabulary-parallel shards                                               */
/* ------------------------------------------------------------------------ */

/* A token table too large for one process is split by rows over ranks, as
 * Megatron-LM's VocabParallelEmbedding does: each rank's layer holds a
 * contiguous range of the vocabulary (config.shard_start / shard_end, or
 * gpt_embedding_open_options.shard_rank / shard_world). Ids stay global and
 * are validated against vocab_size. The position table, the layer norm and
 * dropout are replicated on every rank (same config, same seed).
 *
 * The forward runs in two phases with the caller's all-reduce (sum) between
 * them; the library links no communication library:
 *
 *   gpt_embedding_forward_partial(layer, ids, B, T, NULL, 0, flags, x, n);
 *   MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_FLOAT, MPI_SUM, comm);
 *   gpt_embedding_forward_finish(layer, B, T, x, n);
 *   ... gpt_embedding_backward(layer, dy, B, T);   dy replicated on every rank
 *
 * Phase one writes the scaled token row of each token whose id the shard
 * holds and -0.0 for the others. -0.0 is the additive identity of IEEE
 * arithmetic (-0 + x == x for every x, zeros of both signs included) and each
 * token has exactly one owner, so the all-reduce's sum is exact in any order
 * and phase two gives bit for bit what one layer holding the whole table gives
 * in one call (a one-rank layer is such a layer). The all-reduce moves
 * batch * seq * embed_dim floats per forward; backward needs no
 * communication: with grad_output replicated (as tensor parallelism has it),
 * every rank runs the layer norm and dropout backward and adds into its own
 * token rows only, and the position and layer norm gradients come out
 * identical on every rank. The single-call forward of a layer holding part of
 * the vocabulary fails with _BAD_STATE. Parameter and gradient functions see
 * the shard's rows ([shard_end - shard_start, D]); gpt_embedding_touched_rows
 * lists the shard's own row numbers (id - shard_start), so an optimizer works
 * on a shard unchanged. Saving a shard writes its rows; loading
 * (gpt_embedding_load_safetensors) expects a table of the shard's shape. */

/* enum gpt_embedding_shard_rule: how a vocabulary of V rows is split over
 * world ranks (contiguous ranges, rank 0 first, tiling [0, V)). */
enum gpt_embedding_shard_rule {
    GPT_EMBEDDING_SHARD_BALANCED = 0, /* sizes differ by at most one row: the first
                                         V % world ranks hold V / world + 1 rows */
    GPT_EMBEDDING_SHARD_MEGATRON = 1  /* Megatron-LM's: V / world rows each; V must be
                                         divisible by world (Megatron pads the
                                         vocabulary to a multiple of
                                         make_vocab_size_divisible_by * world) */
};

/* The rows [*out_start, *out_end) rank `rank` of `world` holds for a
 * vocabulary of vocab_size rows under `rule`. Errors: _NULL_POINTER,
 * _INVALID_ARGUMENT (world < 1, rank outside [0, world), vocab_size < 1, a
 * world larger than vocab_size, an unknown rule, or a vocab_size the megatron
 * rule cannot divide); the outputs are untouched on error. Thread-safe. */
int gpt_embedding_shard_range(int64_t vocab_size, int32_t rank, int32_t world, int32_t rule,
                              int64_t *out_start, int64_t *out_end);

/* Phase one of a two-phase forward. Arguments as gpt_embedding_forward (the
 * flags of the whole forward -- GPT_EMBEDDING_TRAINING, _LAYER_NORM,
 * _NO_LAYER_NORM -- are given here); partial[batch, seq, embed_dim]
 * (partial_len >= that many floats) receives the shard's part of the token
 * embedding as described above. The validated ids and positions are copied
 * and kept for phase two (4 or 8 bytes per token); calling phase one again
 * replaces them. Works on any layer (with the whole vocabulary, the partial
 * is already the sum). Errors as gpt_embedding_forward; nothing is written or
 * kept on error. Needs exclusive access. */
int gpt_embedding_forward_partial(gpt_embedding *layer, const int32_t *ids,
                                  int64_t batch, int64_t seq, const int32_t *positions,
                                  int64_t start_position, uint32_t flags, float *partial,
                                  int64_t partial_len);

/* The same for int64 ids and positions. */
int gpt_embedding_forward_partial_i64(gpt_embedding *layer, const int64_t *ids,
                                      int64_t batch, int64_t seq, const int64_t *positions,
                                      int64_t start_position, uint32_t flags, float *partial,
                                      int64_t partial_len);

/* Phase two, in place: x[batch, seq, embed_dim] (x_len >= that many floats)
 * holds the sum over the ranks of their phase-one partials; this adds the
 * positions and applies the layer norm and dropout that phase one's flags
 * asked for, writing the output over x. A training call then keeps what
 * backward needs (the ids and positions; with the layer norm also mean, rstd
 * and the summed token part, 4 * embed_dim bytes per token, which a shard
 * cannot recompute from its own rows) and advances the dropout step, as a
 * training gpt_embedding_forward does (the summed part's buffer is reused from
 * one training call to the next; eval calls and calls without the layer norm
 * allocate nothing that size; a training gpt_embedding_forward in between
 * frees it with the state it replaces, and the next training phase two then
 * allocates fresh pages: 25 MB at 8 x 1024 x 768, 3 ms or more). One pass, at the memory floor: x is read and
 * written once, the kept part written once. batch and seq must be phase one's.
 * Each phase one is finished once. Errors: _NULL_POINTER, _INVALID_HANDLE,
 * _BAD_STATE (no phase one pending), _INVALID_ARGUMENT (batch or seq differ
 * from phase one's), _BUFFER_TOO_SMALL, _OUT_OF_MEMORY. Nothing is written
 * or changed on error (a pending phase one stays pending). Needs exclusive
 * access. */
int gpt_embedding_forward_finish(gpt_embedding *layer, int64_t batch, int64_t seq,
                                 float *x, int64_t x_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GPT_EMBEDDING_H */
