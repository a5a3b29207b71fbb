import Foundation
import GPTEmbedding

/// One golden-vector file of `Tests/golden/` (format: `Tests/golden/README.md`), produced
/// from PyTorch by `Tests/golden/generate.py`.
struct GoldenFile: CustomStringConvertible {
    var scalars: [String: String] = [:]
    var ints: [String: [Int64]] = [:]
    var floats: [String: [Float]] = [:]
    let path: String

    var description: String { scalars["name"] ?? path }

    /// The directory of the golden files, found from this source file's location.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("golden")

    /// Every golden file, sorted by name.
    static func all() throws -> [GoldenFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".txt") }.sorted()
        return try names.map { try GoldenFile(path: directory.appendingPathComponent($0).path) }
    }

    init(path: String) throws {
        self.path = path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
        var tokens = lines.joined(separator: " ").split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)[...]
        func take() throws -> String {
            guard let t = tokens.popFirst() else { throw GoldenError.malformed(path, "unexpected end") }
            return t
        }
        let keys = ["format", "name", "vocab_size", "embed_dim", "max_seq_len", "position_encoding", "scale_embeddings",
                    "padding_idx", "layer_norm", "layer_norm_eps", "batch", "seq", "start_position", "explicit_positions"]
        for key in keys {
            let k = try take()
            guard k == key else { throw GoldenError.malformed(path, "expected \(key), found \(k)") }
            scalars[key] = try take()
        }
        while true {
            let kind = try take()
            if kind == "end" { break }
            let name = try take()
            guard let count = Int(try take()) else { throw GoldenError.malformed(path, "bad count for \(name)") }
            switch kind {
            case "int": ints[name] = try (0..<count).map { _ in
                guard let v = Int64(try take()) else { throw GoldenError.malformed(path, "bad int in \(name)") }
                return v
            }
            case "float": floats[name] = try (0..<count).map { _ in
                guard let v = Float(try take()) else { throw GoldenError.malformed(path, "bad float in \(name)") }
                return v
            }
            default: throw GoldenError.malformed(path, "unknown tensor kind \(kind)")
            }
        }
    }

    func int(_ key: String) -> Int { Int(scalars[key]!)! }
    func flag(_ key: String) -> Bool { int(key) == 1 }

    /// The layer configuration of this file (dropout 0).
    func config(threads: Int) -> GPTEmbeddingConfig {
        var c = GPTEmbeddingConfig()
        c.vocabSize = int("vocab_size")
        c.embedDim = int("embed_dim")
        c.maxSeqLen = int("max_seq_len")
        c.positionEncoding = ["learned": .learned, "sinusoidal": .sinusoidal, "none": PositionEncoding.none][scalars["position_encoding"]!]!
        c.scaleEmbeddings = flag("scale_embeddings")
        c.paddingIdx = int("padding_idx") >= 0 ? int("padding_idx") : nil
        c.layerNormEps = Float(scalars["layer_norm_eps"]!)!
        c.dropout = 0
        c.numThreads = threads
        return c
    }

    /// A layer with this file's configuration and parameters.
    func makeLayer(threads: Int) throws -> GPTEmbedding {
        let layer = try GPTEmbedding(config: config(threads: threads))
        try layer.tokenEmbedding.weight.setValues(floats["wte"]!)
        if let wpe = layer.positionalEmbedding { try wpe.weight.setValues(floats["wpe"]!) }
        try layer.layerNormWeight.setValues(floats["ln_weight"]!)
        try layer.layerNormBias.setValues(floats["ln_bias"]!)
        return layer
    }
}

enum GoldenError: Error { case malformed(String, String) }

/// `|a - b| <= rtol * |b| + atol` for every element; returns the first failure.
func firstMismatch(_ a: [Float], _ b: [Float], rtol: Float = 1e-5, atol: Float = 1e-6) -> String? {
    guard a.count == b.count else { return "count \(a.count) != \(b.count)" }
    for i in a.indices where !(abs(a[i] - b[i]) <= rtol * abs(b[i]) + atol) {
        return "element \(i): \(a[i]) vs expected \(b[i])"
    }
    return nil
}
