/* cpu_features.c -- can this CPU run x86-64-v3 code? CPUID for the instructions, XGETBV
 * for the operating system's support of the YMM registers (a CPU with AVX under an OS or
 * hypervisor that does not save YMM state must not run AVX code). Compiled for the
 * baseline like everything outside the kernels. */
#include "kernel_interface.h"

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

int gpte_cpu_supports_x86_64_v3(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    /* Leaf 1 ECX: SSE3 0, SSSE3 9, FMA 12, CMPXCHG16B 13, SSE4.1 19, SSE4.2 20, MOVBE 22,
     * POPCNT 23, OSXSAVE 27, AVX 28, F16C 29. */
    const unsigned leaf1 = (1u << 0) | (1u << 9) | (1u << 12) | (1u << 13) | (1u << 19) | (1u << 20) |
                           (1u << 22) | (1u << 23) | (1u << 27) | (1u << 28) | (1u << 29);
    if ((c & leaf1) != leaf1) return 0;
    /* OSXSAVE is set, so XGETBV exists: XCR0 bits 1 (SSE) and 2 (AVX) must both be on. */
    if ((xcr0() & 0x6) != 0x6) return 0;
    /* Leaf 7 EBX: BMI1 3, AVX2 5, BMI2 8. */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned leaf7 = (1u << 3) | (1u << 5) | (1u << 8);
    if ((b & leaf7) != leaf7) return 0;
    /* Leaf 0x80000001 ECX: LAHF/SAHF 0, LZCNT 5. */
    if (!__get_cpuid(0x80000001, &a, &b, &c, &d)) return 0;
    const unsigned ext = (1u << 0) | (1u << 5);
    return (c & ext) == ext;
}
#else
int gpte_cpu_supports_x86_64_v3(void) { return 0; }
#endif
