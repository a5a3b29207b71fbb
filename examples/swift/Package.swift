// swift-tools-version:6.0
// A client of gpt-embedding, as a Swift user would write it (with a URL and a version
// instead of the local path).
import PackageDescription

let package = Package(
    name: "quickstart",
    dependencies: [.package(name: "gpt-embedding", path: "../..")],
    targets: [
        .executableTarget(name: "quickstart", dependencies: [.product(name: "GPTEmbedding", package: "gpt-embedding")]),
    ]
)
