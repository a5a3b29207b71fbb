/*
 * placement.h -- where the host has put the first two vCPUs, for the benchmarks.
 *
 * One cache line bounced between a thread pinned to CPU 0 and one pinned to CPU 1 takes
 * 40-60 ns when the two share a die (and its L3) and 300-400 ns when they sit on two dies;
 * on this project's VM the placement changes in stretches of seconds (docs/performance.md).
 * On two dies the STREAM probes read up to 1.5x more while random-row ops run 1.1-1.3x
 * slower, so every ratio to a floor depends on it: the benchmarks count, per case, the
 * rounds after which the round trip took over FAR_ROUNDTRIP_NS. Needs _GNU_SOURCE.
 */
#ifndef GPTE_BENCH_PLACEMENT_H
#define GPTE_BENCH_PLACEMENT_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define FAR_ROUNDTRIP_NS 200.0

static _Alignas(64) atomic_int bounce;

static void *bounce_back(void *arg) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(1, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    atomic_store(&bounce, 0); /* pinned: the round trips may start */
    for (;;) {
        int v = atomic_load(&bounce);
        if (v == 1) atomic_store(&bounce, 0);
        else if (v == 3) return arg;
    }
}

/* Mean round trip of one cache line between CPUs 0 and 1 (2,000 of them, after 200 not
 * counted), in ns; 0 when there are fewer than two CPUs or a thread cannot be pinned. The
 * calling thread's affinity is restored. */
static double roundtrip_ns(void) {
    cpu_set_t old, zero;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0) return 0;
    CPU_ZERO(&zero);
    CPU_SET(0, &zero);
    if (pthread_setaffinity_np(pthread_self(), sizeof zero, &zero) != 0) return 0;
    atomic_store(&bounce, 2);
    pthread_t t;
    if (pthread_create(&t, NULL, bounce_back, NULL) != 0) { pthread_setaffinity_np(pthread_self(), sizeof old, &old); return 0; }
    while (atomic_load(&bounce) != 0) { }
    struct timespec t0 = {0, 0}, t1;
    for (int i = -200; i < 2000; i++) {
        if (i == 0) clock_gettime(CLOCK_MONOTONIC, &t0);
        atomic_store(&bounce, 1);
        while (atomic_load(&bounce) != 0) { }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 2000;
    atomic_store(&bounce, 3);
    pthread_join(t, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    return ns;
}

#endif
