/*
 * kernel_interface.h -- the boundary between the layer (baseline code) and its kernels,
 * which are compiled once per CPU level (Sources/GPTEmbeddingKernels: the x86-64
 * baseline, and again as GPTEmbeddingKernelsV3 for x86-64-v3). Only pointers and scalars
 * cross it: no Swift type, generic or SIMD value, so nothing compiled for one level can be
 * merged by the linker into the other (the trap of compiling the same code twice).
 *
 * The layer splits work into parts (rows or column ranges) and calls one kernel per part
 * through the table of the path chosen at first use (Runtime/KernelDispatch.swift).
 */
#ifndef GPTE_KERNEL_INTERFACE_H
#define GPTE_KERNEL_INTERFACE_H

#include <stdint.h>

/* Where position rows come from. */
enum {
    GPTE_POSITIONS_NONE = 0,        /* no position term */
    GPTE_POSITIONS_TABLE = 1,       /* rows of wpe (learned table); every position < wpe_rows */
    GPTE_POSITIONS_SINUSOIDAL = 2,  /* rows of wpe (the cached sinusoidal rows) below
                                       wpe_rows, computed on the fly past it */
};

/* Element types of tables and outputs (the values of the public enum gpt_embedding_dtype). */
enum {
    GPTE_DTYPE_F32 = 0,
    GPTE_DTYPE_BF16 = 1,
    GPTE_DTYPE_F16 = 2,
    /* wte_dtype GPTE_DTYPE_GGML + t: token rows in ggml's block type t (GPTE_GGML_*), a
     * row being dim / block size whole blocks, dequantized to float32 as they are read
     * (dequantize_row). forward_rows then needs a spill of 2 * D floats (the row is
     * decoded into the second D) and layer_norm_backward_rows a dy of 2 * D floats (the
     * same); a kernel given a block type it does not decode writes nothing. */
    GPTE_DTYPE_GGML = 256,
};

/* ggml tensor types (the ggml_type ids GGUF files store) whose rows dequantize_row decodes:
 * block size elements in bytes-per-block bytes, as GGMLType.swift lists them. */
enum {
    GPTE_GGML_Q4_0 = 2,     /* 32 elements, 18 bytes */
    GPTE_GGML_Q4_1 = 3,     /* 32, 20 */
    GPTE_GGML_Q5_0 = 6,     /* 32, 22 */
    GPTE_GGML_Q5_1 = 7,     /* 32, 24 */
    GPTE_GGML_Q8_0 = 8,     /* 32, 34 */
    GPTE_GGML_Q2_K = 10,    /* 256, 84 */
    GPTE_GGML_Q3_K = 11,    /* 256, 110 */
    GPTE_GGML_Q4_K = 12,    /* 256, 144 */
    GPTE_GGML_Q5_K = 13,    /* 256, 176 */
    GPTE_GGML_Q6_K = 14,    /* 256, 210 */
    GPTE_GGML_IQ4_NL = 20,  /* 32, 18 */
    GPTE_GGML_IQ4_XS = 23,  /* 256, 136 */
};

/* How the forward writes its output rows (for bf16 and f16 outputs, STREAM16 means 16-byte
 * streaming stores of eight 16-bit values, rows 16-byte aligned, dim % 8 == 0; STREAM32
 * 32-byte ones of sixteen, rows 32-byte aligned, dim % 16 == 0). */
enum {
    GPTE_STORE_CACHED = 0,    /* normal stores */
    GPTE_STORE_STREAM16 = 1,  /* streaming stores; rows 16-byte aligned, dim % 4 == 0 */
    GPTE_STORE_STREAM32 = 2,  /* streaming stores; rows 32-byte aligned, dim % 8 == 0 */
    GPTE_STORE_STREAM32_SHIFTED = 3,  /* 32-byte streaming stores for rows 16 bytes past a
                                         32-byte boundary, dim % 8 == 0 */
};

/* Everything a kernel reads or writes for one call, shapes in brackets
 * (R = tokens of the call, D = dim). Fields a kernel does not use may be anything. */
typedef struct gpte_kernel_args {
    int64_t dim;                 /* D */
    /* The tables. */
    const void *wte;             /* [V, D] of wte_dtype */
    int32_t wte_dtype;           /* GPTE_DTYPE_*, or GPTE_DTYPE_GGML + a GPTE_GGML_* type */
    float scale;                 /* multiplier of token rows */
    int64_t padding_idx;         /* the row that gets no gradient, or -1 */
    int32_t position_kind;       /* GPTE_POSITIONS_* */
    const void *wpe;             /* [wpe_rows, D] of wpe_dtype (F32 for sinusoidal rows) */
    int32_t wpe_dtype;
    int64_t wpe_rows;
    const float *gamma;          /* [D] layer norm weight */
    const float *beta;           /* [D] layer norm bias */
    float eps;
    /* The tokens. */
    const int32_t *ids;          /* [R], validated */
    const int32_t *positions;    /* [R] validated, or NULL for start + r % seq */
    int64_t start;
    int64_t seq;
    int64_t count;               /* R */
    /* Dropout: element c of row r is kept when hash(row_key(r) + c * stride) >= threshold. */
    int32_t dropout;             /* 0: no dropout in this call */
    uint32_t threshold;
    float keep_scale;
    uint64_t step_key;
    /* Forward. */
    int32_t normalize;           /* apply the layer norm */
    float *save_mean;            /* [R] or NULL */
    float *save_rstd;            /* [R] or NULL */
    void *out;                   /* [R, D] of out_dtype */
    int32_t out_dtype;           /* GPTE_DTYPE_* */
    int32_t store_mode;          /* GPTE_STORE_* */
    /* Backward. */
    const float *mean;           /* [R] kept by the training forward */
    const float *rstd;           /* [R] */
    const void *dout;            /* [R, D] of dout_dtype (F32, BF16 or F16: widened exactly
                                    as it is read, so no float32 copy is made) */
    float *dwte;                 /* [V, D], or NULL (no token gradient wanted) */
    float *dwpe;                 /* [wpe_rows, D] learned positions, or NULL (none, or not wanted) */
    /* A shard of the token table (vocabulary parallelism): wte and dwte hold the rows
     * [wte_first_row, wte_first_row + wte_rows) of the vocabulary, and ids stay global.
     * wte_rows == 0 means the whole table (first row 0), so arguments that leave these
     * fields zero keep their meaning. Only the plain lookup of the forward (no layer
     * norm, no dropout) and scatter_rows look at it: a token outside the shard gives an
     * output row of -0.0 (the additive identity: summing it into another rank's value
     * changes no bit, not even the sign of a zero) and adds nothing to dwte. */
    int64_t wte_first_row;
    int64_t wte_rows;
    int32_t dout_dtype;          /* GPTE_DTYPE_* of dout; 0 (F32) when left zero */
} gpte_kernel_args;

/* One AdamW update (torch.optim.AdamW's single-tensor arithmetic, in float32) over rows of
 * a [rows, cols] parameter. Every scalar is computed by the caller in double and rounded
 * to float once, as PyTorch does with its Python-float hyperparameters. */
typedef struct gpte_adamw_args {
    int64_t cols;
    void *param;                 /* [rows, cols] of param_dtype: the stored values */
    int32_t param_dtype;         /* GPTE_DTYPE_*; 16-bit tables need master */
    float *master;               /* [rows, cols] float32 master copy, or NULL (then the
                                    F32 param is the master and is updated in place) */
    const float *grad;           /* [rows, cols] */
    float *exp_avg;              /* [rows, cols] first moment */
    float *exp_avg_sq;           /* [rows, cols] second moment */
    const int32_t *rows;         /* row list (lazy updates), or NULL: item i is row i */
    const uint8_t *grad_rows;    /* [rows] 0 for a row whose gradient is known to be zero
                                    (not read: a dense step reads 24 bytes per element
                                    there instead of 28), or NULL: every row is read */
    float grad_scale;            /* g = grad * grad_scale */
    float decay;                 /* p *= decay (1 - lr * weight_decay) */
    int32_t lerp_small;          /* 1: m += w1 * (g - m); 0: m = g - (g - m) * (1 - w1),
                                    torch's two lerp forms, chosen by w1 < 0.5 */
    float lerp_weight;           /* w1 = 1 - beta1 when lerp_small, else 1 - w1 */
    float beta2;
    float one_minus_beta2;
    float bias_correction2_sqrt; /* sqrt(1 - beta2^step) */
    float eps;
    float neg_step_size;         /* -lr / (1 - beta1^step) */
    int32_t store_mode;          /* how a 16-bit param is written (with master): GPTE_STORE_CACHED,
                                    or streaming stores (fenced before returning) of 16 bytes
                                    (GPTE_STORE_STREAM16: param 16-byte aligned, cols % 8 == 0)
                                    or 32 (_STREAM32: 32-byte aligned, cols % 16 == 0) */
} gpte_adamw_args;

/* One path's kernels. Each is called for one part of a call and is free of threads. */
typedef struct gpte_kernel_table {
    /* out rows [r0, r1) of the forward; spill: D floats of the worker's own scratch (the
     * row is assembled there when store_mode streams or the output is not F32; a
     * sinusoidal row past the cache is computed there). Required unless the output is F32
     * with normal stores and the table is not in a block format (then 2 * D floats). */
    void (*forward_rows)(const gpte_kernel_args *a, int64_t r0, int64_t r1, float *spill);
    /* dwte[id] += scale * dy and dwpe[p] += dy over columns [c0, c1) for token rows
     * [r0, r1), dy = row r - first_row of dy_rows (elements of dy_dtype: F32, BF16 or
     * F16), through the dropout mask when masked. A NULL dwte or dwpe is not written;
     * with both NULL nothing is done. */
    void (*scatter_rows)(const gpte_kernel_args *a, int64_t r0, int64_t r1, const void *dy_rows,
                         int32_t dy_dtype, int64_t first_row, int32_t masked, int64_t c0, int64_t c1);
    /* Layer norm backward of token rows [r0, r1): dx rows (dx row 0 = token row r0) and
     * the sums over those rows of dy * xhat and dy ([D] each, overwritten). xhat and dy
     * are D floats of scratch each (dy 2 * D for a table in a block format). */
    void (*layer_norm_backward_rows)(const gpte_kernel_args *a, int64_t r0, int64_t r1, float *dx,
                                     float *sum_dy_xhat, float *sum_dy, float *xhat, float *dy);
    /* dst[c] += src[c] for c in [c0, c1). */
    void (*add_columns)(float *dst, const float *src, int64_t c0, int64_t c1);
    /* Elements [begin, end) of the N(0, std) stream `key`, element i at out[i - begin],
     * rounded to dtype (GPTE_DTYPE_*) to nearest even. */
    void (*fill_normal)(void *out, int32_t dtype, int64_t begin, int64_t end, float std, uint64_t key);
    /* dst[i] = src[i] for i in [0, count), converted from src_dtype to dst_dtype: widening
     * is exact, narrowing rounds to nearest even. */
    void (*convert)(void *dst, int32_t dst_dtype, const void *src, int32_t src_dtype, int64_t count);
    /* The AdamW update of items [i0, i1) (rows[i], or row i when rows is NULL). */
    void (*adamw_rows)(const gpte_adamw_args *a, int64_t i0, int64_t i1);
    /* out[i - i0] = sum of x[row][c]^2 over the row's cols columns, for items [i0, i1)
     * (rows[i], or row i when rows is NULL); each row summed in one fixed order. */
    void (*sum_squares_rows)(const float *x, int64_t cols, const int32_t *rows, int64_t i0, int64_t i1,
                             double *out);
    /* dst[0..cols) = row `row` (cols / block size blocks of ggml_type, GPTE_GGML_*)
     * dequantized to float32, bit for bit as ggml's dequantize_row_*. Returns 1, or 0
     * without writing anything for a type it does not decode or cols not a whole number
     * of blocks. Free of allocation: a forward kernel can decode a token row into D floats
     * of its worker's scratch. */
    int32_t (*dequantize_row)(int32_t ggml_type, const void *row, int64_t cols, float *dst);
    /* The scatter_rows of worker `worker` when token rows have owners (a backward without
     * the layer norm split over workers): owners[r] bits 0-6 name the worker that owns
     * token r (its position row), bit 7 is set when r's id is shared (its tokens belong to
     * more than one worker). Over every token row r of [0, count), in order, the worker
     * adds its own tokens' dy into dwpe (whole rows) and, for an unshared id, into dwte
     * (whole rows); for a shared id it adds columns [c0, c1) of dy into dwte, whoever owns
     * the token. dy = row r of dy_rows (elements of dy_dtype), through the dropout mask
     * when masked. */
    void (*scatter_owned_rows)(const gpte_kernel_args *a, const uint8_t *owners, int32_t worker,
                               const void *dy_rows, int32_t dy_dtype, int32_t masked, int64_t c0, int64_t c1);
} gpte_kernel_table;

/* The tables of each path, defined by the kernel modules. The x86-64-v3 one is a weak
 * reference: only builds that link GPTEmbeddingKernelsV3 (the shared library, the tool,
 * the tests) have it; a Swift package build without unsafe flags has the baseline alone. */
void gpte_kernels_baseline(gpte_kernel_table *out);

/* Fills *out with the x86-64-v3 kernels and returns 1 when they are linked in, else 0. */
int gpte_kernels_x86_64_v3_linked(gpte_kernel_table *out);

/* Whether this CPU and its operating system can run x86-64-v3 code: CPUID reports AVX,
 * AVX2, FMA, F16C, BMI1, BMI2, LZCNT, MOVBE and the x86-64-v2 set, and XGETBV says the OS
 * saves the YMM registers. Always 0 on other architectures. */
int gpte_cpu_supports_x86_64_v3(void);

#endif /* GPTE_KERNEL_INTERFACE_H */
