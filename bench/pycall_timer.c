/*
 * pycall_timer.c -- the "C call" rows of bench/bench_pycall.py, timed inside the Python
 * process on the very layer, ids and output the Python rows use, so that C and Python are
 * measured in alternating rounds under the same conditions.
 *
 * Built as a shared object by bench_pycall.py. It does not link libgpt_embedding: Python
 * passes the address of the forward function of the library it loaded, so both sides call
 * the same copy of the library (a call through a function pointer costs what a PLT call
 * costs).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <time.h>

typedef int (*forward_fn)(void *layer, const void *ids, int64_t batch, int64_t seq, const void *positions,
                          int64_t start_position, uint32_t flags, float *out, int64_t out_len);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Seconds for `calls` forwards; a negative status of the first failing call otherwise. */
double pycall_forward_loop(forward_fn fn, void *layer, const void *ids, int64_t batch, int64_t seq,
                           int64_t start_position, uint32_t flags, float *out, int64_t out_len, int64_t calls) {
    double t0 = now();
    for (int64_t i = 0; i < calls; i++) {
        int status = fn(layer, ids, batch, seq, NULL, start_position, flags, out, out_len);
        if (status != 0) return -(double)status;
    }
    return now() - t0;
}
