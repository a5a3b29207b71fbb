/* kernel_tables.c -- finds the x86-64-v3 kernels when the build linked them. The symbol is
 * a weak reference: in a build without GPTEmbeddingKernelsV3 (a Swift package that depends
 * on the GPTEmbedding product, which carries no unsafe flags) it resolves to NULL and the
 * baseline kernels are the only path. Swift cannot test a weak symbol, so C does. */
#include "kernel_interface.h"
#include <stddef.h>

extern void gpte_kernels_x86_64_v3(gpte_kernel_table *out) __attribute__((weak));

int gpte_kernels_x86_64_v3_linked(gpte_kernel_table *out) {
    if (gpte_kernels_x86_64_v3 == NULL) return 0;
    gpte_kernels_x86_64_v3(out);
    return 1;
}
