// swift-tools-version:6.0
import PackageDescription

// Targets:
//   GPTEmbedding       the Swift core and the native Swift API (what Swift users import)
//   GPTEmbeddingKernels    the kernels (forward, backward, layer norm, dropout, init), for
//                      the x86-64 baseline; the only kernels of the GPTEmbedding product
//   GPTEmbeddingKernelsV3  the same files (Sources/GPTEmbeddingKernelsV3 is a link to
//                      them) compiled for x86-64-v3. It carries unsafe flags, so only the
//                      shared library, the tool and the tests link it; the layer picks it
//                      at run time when the CPU can run it (Runtime/KernelDispatch.swift)
//   CKernelDispatch    the C boundary of the kernels (pointers and scalars only), the
//                      CPUID / XGETBV check and the weak reference to the v3 kernels
//   CMemoryHints       prefetch, streaming-store and vector square-root builtins the kernels call (header only)
//   CGPTEmbedding      the public C header as a clang module (include/gpt_embedding.h)
//   GPTEmbeddingC      the C-ABI shims, checked against the header by @c @implementation
//   GPTEmbeddingDylib  link-only target of libgpt_embedding.so (baseline and v3 kernels): static Swift runtime,
//                      export list, SONAME. Only the dynamic product contains it, so its
//                      unsafe flags never reach Swift users or the test links.
//   gpt-embedding      the command-line tool (the main job)
/// The x86-64-v3 copy of the kernels; empty on other architectures.
let v3Kernels: [Target.Dependency] = [.target(name: "GPTEmbeddingKernelsV3", condition: .when(platforms: [.linux]))]

let package = Package(
    name: "gpt-embedding",
    products: [
        .library(name: "GPTEmbedding", targets: ["GPTEmbedding"]),
        .library(name: "gpt_embedding", type: .dynamic, targets: ["GPTEmbeddingDylib"]),
        .executable(name: "gpt-embedding", targets: ["gpt-embedding"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation` (make docs): the DocC catalog of GPTEmbedding.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CMemoryHints"),
        .target(name: "CKernelDispatch"),
        .target(name: "GPTEmbeddingKernels", dependencies: ["CKernelDispatch", "CMemoryHints"]),
        .target(
            name: "GPTEmbeddingKernelsV3",
            dependencies: ["CKernelDispatch", "CMemoryHints"],
            swiftSettings: [
                .define("GPTE_KERNELS_X86_64_V3"),
                .unsafeFlags(["-target-cpu", "haswell"]),
            ]
        ),
        .target(name: "GPTEmbedding", dependencies: ["GPTEmbeddingKernels", "CKernelDispatch"]),
        .target(name: "CGPTEmbedding"),
        // The 0.1 config entry points, for programs built against older headers (the .so only).
        .target(name: "CGPTEmbeddingLegacy"),
        .target(name: "GPTEmbeddingC", dependencies: ["GPTEmbedding", "CGPTEmbedding"]),
        .target(
            name: "GPTEmbeddingDylib",
            dependencies: ["GPTEmbeddingC", "CGPTEmbeddingLegacy"] + v3Kernels,
            linkerSettings: [.unsafeFlags([
                "-static-stdlib",
                "-Xlinker", "--version-script=exports.map",
                "-Xlinker", "-soname=libgpt_embedding.so.0",
                // No DWARF in the shipped library (symbols stay): a third smaller, and
                // valgrind 3.19 (Debian 12) gives up on the DWARF 5 the toolchain emits.
                "-Xlinker", "--strip-debug",
            ])]
        ),
        .executableTarget(
            name: "gpt-embedding",
            dependencies: [
                "GPTEmbedding",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ] + v3Kernels
        ),
        // Fuzz targets (Tests/fuzz/README.md): replay their corpora in a normal build,
        // run libFuzzer when built with --sanitize fuzzer -Xcc -DGPT_EMBEDDING_FUZZING.
        .target(name: "FuzzSupport", path: "Tests/fuzz/support"),
        .executableTarget(name: "fuzz-api", dependencies: ["GPTEmbeddingC", "CGPTEmbedding", "FuzzSupport"],
                          path: "Tests/fuzz/api"),
        .executableTarget(name: "fuzz-safetensors", dependencies: ["GPTEmbeddingC", "CGPTEmbedding", "FuzzSupport"],
                          path: "Tests/fuzz/safetensors"),
        .testTarget(
            name: "GPTEmbeddingTests",
            dependencies: ["GPTEmbedding", "GPTEmbeddingC", "CGPTEmbedding", "CKernelDispatch", "GPTEmbeddingKernels"] + v3Kernels
        ),
    ]
)
