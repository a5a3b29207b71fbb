/*
 * memory_hints.h -- the processor hints the Swift code cannot spell in Swift: software
 * prefetch, non-temporal (streaming) stores and the spin-wait pause; and one operation
 * Swift cannot vectorise: the correctly rounded square root of a vector (Swift's
 * per-lane Float.squareRoot() keeps C's errno check, a branch and a libm call per lane).
 * No other arithmetic lives here; the kernels in Sources/GPTEmbeddingKernels do all of it.
 *
 * Why: the embedding layer gathers rows that start at random places of a table far
 * larger than the caches, so each row begins with a miss that no hardware prefetcher can
 * predict; asking for the row of a token a few tokens ahead keeps several misses in
 * flight. And an output larger than the cache is better written around it: a normal
 * store first reads the line it writes (read-for-ownership), a streaming store does not,
 * which saves a third of the forward's memory traffic.
 *
 * clang builtins, so they compile for every target the Swift toolchain supports
 * (prefetcht0 / prefetchw / movntps on x86-64, prfm / stnp on arm64).
 */
#ifndef GPT_EMBEDDING_MEMORY_HINTS_H
#define GPT_EMBEDDING_MEMORY_HINTS_H

typedef float gpte_float4 __attribute__((ext_vector_type(4)));
typedef float gpte_float8 __attribute__((ext_vector_type(8)));

/* Asks for the cache line holding p, to be read soon. Never faults. */
static inline __attribute__((always_inline)) void gpte_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/* Asks for the cache line holding p into the core's L2 only (prefetcht1), to be read a
 * little later. Never faults. An L1 has few miss buffers (about two dozen lines); a row of
 * 48 lines asked for into L1 in one loop fills them and stalls the core on the prefetch
 * instructions themselves, while the L2 keeps more misses in flight. */
static inline __attribute__((always_inline)) void gpte_prefetch_l2(const void *p) {
    __builtin_prefetch(p, 0, 2);
}

/* Asks for the cache line holding p, to be written soon. Never faults. */
static inline __attribute__((always_inline)) void gpte_prefetch_for_write(const void *p) {
    __builtin_prefetch(p, 1, 3);
}

typedef unsigned short gpte_u16x8 __attribute__((ext_vector_type(8)));
typedef short gpte_i16x8_ __attribute__((vector_size(16)));

#if defined(__x86_64__)
/* The F16C conversions between eight f16 values and eight floats (vcvtph2ps, vcvtps2ph
 * with round-to-nearest-even), which Swift cannot spell without a generic conversion the
 * linker would share between the two CPU paths. Compiled for F16C whatever the including
 * module's target: only the x86-64-v3 kernels (GPTE_KERNELS_X86_64_V3) call them. They are
 * exact except where the kernels do not use them: NaNs (quieted or truncated here, kept
 * as they are or made 0x7E00 | sign by the integer conversions) and subnormals where the
 * thread's MXCSR has DAZ (widening) or FTZ (narrowing) set: the hardware ignores both
 * here (Intel SDM), QEMU does not. */
static inline __attribute__((always_inline, target("avx,f16c"))) gpte_float8 gpte_f16c_widen(gpte_u16x8 h) {
    return (gpte_float8)__builtin_ia32_vcvtph2ps256((gpte_i16x8_)h);
}
static inline __attribute__((always_inline, target("avx,f16c"))) gpte_u16x8 gpte_f16c_narrow(gpte_float8 v) {
    return (gpte_u16x8)__builtin_ia32_vcvtps2ph256(v, 0);
}
#endif

typedef unsigned int gpte_u32x8 __attribute__((ext_vector_type(8)));
typedef unsigned short gpte_u16x16 __attribute__((ext_vector_type(16)));
typedef int gpte_i32x8_ __attribute__((vector_size(32)));
typedef long long gpte_i64x4_ __attribute__((vector_size(32)));

#if defined(__x86_64__)
/* The low 16 bits of the eight lanes of a, then of b, each lane below 65536 (so the
 * saturation never applies): vpackusdw, which interleaves 128-bit halves, and vpermq to
 * put them back in order. AVX2, compiled for it whatever the including module's target:
 * only the x86-64-v3 kernels call it (the baseline ones narrow lane by lane). */
static inline __attribute__((always_inline, target("avx2"))) gpte_u16x16 gpte_avx2_pack16(gpte_u32x8 a, gpte_u32x8 b) {
    gpte_i64x4_ p = (gpte_i64x4_)__builtin_ia32_packusdw256((gpte_i32x8_)a, (gpte_i32x8_)b);
    return (gpte_u16x16)__builtin_ia32_permdi256(p, 0xD8);
}
#endif

/* Whether the calling thread's MXCSR has denormals-are-zero (bit 6) set; 0 off x86. */
static inline __attribute__((always_inline)) int gpte_denormals_are_zero(void) {
#if defined(__x86_64__) || defined(__i386__)
    return (__builtin_ia32_stmxcsr() & 0x40) != 0;
#else
    return 0;
#endif
}

/* Whether the calling thread's MXCSR has flush-to-zero (bit 15) set; 0 off x86. */
static inline __attribute__((always_inline)) int gpte_flush_to_zero(void) {
#if defined(__x86_64__) || defined(__i386__)
    return (__builtin_ia32_stmxcsr() & 0x8000) != 0;
#else
    return 0;
#endif
}

/* Stores four floats at p around the caches. p must be 16-byte aligned. */
static inline __attribute__((always_inline)) void gpte_stream_store4(float *p, gpte_float4 v) {
    __builtin_nontemporal_store(v, (gpte_float4 *)p);
}

/* Stores eight floats at p around the caches. p must be 32-byte aligned. */
static inline __attribute__((always_inline)) void gpte_stream_store8(float *p, gpte_float8 v) {
    __builtin_nontemporal_store(v, (gpte_float8 *)p);
}

/* The IEEE square root of each lane, correctly rounded, as one instruction per vector
 * (sqrtps / vsqrtps; no errno, no libm). */
static inline __attribute__((always_inline)) gpte_float8 gpte_sqrt8(gpte_float8 v) {
    return __builtin_elementwise_sqrt(v);
}

/* The same for one float (sqrtss). */
static inline __attribute__((always_inline)) float gpte_sqrt1(float x) {
    return __builtin_elementwise_sqrt(x);
}

/* Orders this thread's streaming stores before its later stores (x86 sfence), so that
 * whoever synchronises with this thread afterwards sees them. */
static inline __attribute__((always_inline)) void gpte_stream_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_sfence();
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/* Tells the core this thread is spin-waiting (x86 pause, arm64 yield): it saves power and
 * leaves the core's resources to the other hardware thread. */
static inline __attribute__((always_inline)) void gpte_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* GPT_EMBEDDING_MEMORY_HINTS_H */
