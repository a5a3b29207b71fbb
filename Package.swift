// swift-tools-version:6.0
import PackageDescription

// Targets:
//   GPTEmbedding       the Swift core and the native Swift API (what Swift users import)
//   CMemoryHints       prefetch and streaming-store builtins the kernels call (header only)
//   CGPTEmbedding      the public C header as a clang module (include/gpt_embedding.h)
//   GPTEmbeddingC      the C-ABI shims, checked against the header by @c @implementation
//   GPTEmbeddingDylib  link-only target of libgpt_embedding.so: static Swift runtime,
//                      export list, SONAME. Only the dynamic product contains it, so its
//                      unsafe flags never reach Swift users or the test links.
//   gpt-embedding      the command-line tool (the main job)
let package = Package(
    name: "gpt-embedding",
    products: [
        .library(name: "GPTEmbedding", targets: ["GPTEmbedding"]),
        .library(name: "gpt_embedding", type: .dynamic, targets: ["GPTEmbeddingDylib"]),
        .executable(name: "gpt-embedding", targets: ["gpt-embedding"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CMemoryHints"),
        .target(name: "GPTEmbedding", dependencies: ["CMemoryHints"]),
        .target(name: "CGPTEmbedding"),
        .target(name: "GPTEmbeddingC", dependencies: ["GPTEmbedding", "CGPTEmbedding"]),
        .target(
            name: "GPTEmbeddingDylib",
            dependencies: ["GPTEmbeddingC"],
            linkerSettings: [.unsafeFlags([
                "-static-stdlib",
                "-Xlinker", "--version-script=exports.map",
                "-Xlinker", "-soname=libgpt_embedding.so.0",
            ])]
        ),
        .executableTarget(
            name: "gpt-embedding",
            dependencies: [
                "GPTEmbedding",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
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
            dependencies: ["GPTEmbedding", "GPTEmbeddingC", "CGPTEmbedding"]
        ),
    ]
)
