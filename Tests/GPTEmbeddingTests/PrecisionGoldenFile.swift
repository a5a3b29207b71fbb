import Foundation
import GPTEmbedding

/// One reduced-precision golden file of `Tests/golden/precision/` (format `precision-1`,
/// described in that folder's README), produced from PyTorch by
/// `Tests/golden/generate_precision.py`, with its checkpoint next to it.
struct PrecisionGoldenFile: CustomStringConvertible, Sendable {
    var scalars: [String: String] = [:]
    var ints: [String: [Int64]] = [:]
    var floats: [String: [Float]] = [:]
    let path: String

    var description: String { scalars["name"] ?? path }

    /// `Tests/golden/precision`.
    static let directory = GoldenFile.directory.appendingPathComponent("precision")

    /// The cases of the README's table, in its order.
    static let names = ["bf16_learned", "f16_none_extremes", "bf16_scaled_ln", "f16_learned_rounding", "f32_reference",
                        "sharded", "accumulate_4096"]

    /// Every case, read once per process.
    static let all: [PrecisionGoldenFile] = names.compactMap {
        try? PrecisionGoldenFile(path: directory.appendingPathComponent("\($0).txt").path)
    }

    static func named(_ name: String) -> PrecisionGoldenFile? { all.first { $0.description == name } }

    init(path: String) throws {
        self.path = path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var tokens = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            .flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }) }[...]
        func take() throws -> Substring {
            guard let t = tokens.popFirst() else { throw GoldenError.malformed(path, "unexpected end") }
            return t
        }
        guard try take() == "format", try take() == "precision-1" else { throw GoldenError.malformed(path, "not format precision-1") }
        while true {
            let tok = try take()
            if tok == "end" { break }
            if tok == "int" || tok == "float" {
                let name = String(try take())
                guard let count = Int(try take()) else { throw GoldenError.malformed(path, "bad count for \(name)") }
                if tok == "int" {
                    ints[name] = try (0..<count).map { _ in
                        guard let v = Int64(try take()) else { throw GoldenError.malformed(path, "bad int in \(name)") }
                        return v
                    }
                } else {
                    floats[name] = try (0..<count).map { _ in
                        guard let v = Float(try take()) else { throw GoldenError.malformed(path, "bad float in \(name)") }
                        return v
                    }
                }
            } else {
                scalars[String(tok)] = String(try take())
            }
        }
        guard tokens.isEmpty else { throw GoldenError.malformed(path, "tokens after end") }
    }

    func int(_ key: String) -> Int { Int(scalars[key]!)! }
    func flag(_ key: String) -> Bool { int(key) == 1 }

    /// The checkpoint: a `.safetensors` file or a sharded folder.
    var checkpoint: String { Self.directory.appendingPathComponent(scalars["checkpoint"]!).path }

    var weightDType: TensorDType {
        ["f32": .float32, "bf16": .bfloat16, "f16": .float16][scalars["weight_dtype"]!]!
    }

    var vocabSize: Int { int("vocab_size") }
    var embedDim: Int { int("embed_dim") }
    var batch: Int { int("batch") }
    var seq: Int { int("seq") }
    var learned: Bool { scalars["position_encoding"] == "learned" }
    var layerNorm: Bool { flag("layer_norm") }
    /// A case with forward expectations (all but accumulate_4096).
    var hasForward: Bool { ints["out_f32_bits"] != nil }

    var ids32: [Int32] { ints["ids"]!.map { Int32($0) } }

    /// The options that reproduce the case (dropout 0, the file's positions).
    func options(mmap: Bool, threads: Int) -> OpenOptions {
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = threads
        o.scaleEmbeddings = flag("scale_embeddings")
        o.layerNormEps = Float(scalars["layer_norm_eps"]!)!
        return o
    }

    /// grad_output's bits as stored (little-endian elements of `grad_output_dtype`).
    var gradOutputBytes: [UInt8] {
        let dt = scalars["grad_output_dtype"]!
        let bits = ints["grad_output_\(dt)_bits"]!
        if dt == "f32" { return bits.flatMap { b in (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * Int64($0))) } } }
        return bits.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }

    /// grad_output widened to float32 (exact).
    var gradOutputF32: [Float] {
        let dt = scalars["grad_output_dtype"]!
        return ints["grad_output_\(dt)_bits"]!.map { widenBits(UInt32($0), ["f32": .float32, "bf16": .bfloat16, "f16": .float16][dt]!) }
    }
}

// MARK: Bits

/// A float of `dtype` (bits in the low 16 or all 32 bits) widened exactly to float32.
func widenBits(_ bits: UInt32, _ dtype: TensorDType) -> Float {
    switch dtype {
    case .float32: Float(bitPattern: bits)
    case .bfloat16: Float(bitPattern: bits << 16)
    case .float16: Float(Float16(bitPattern: UInt16(truncatingIfNeeded: bits)))
    }
}

/// float32 to bfloat16 bits, round to nearest even (NaN: 0x7FC0 with the sign dropped, as
/// PyTorch writes it; any NaN matches in the comparisons anyway).
func bf16RNE(_ f: Float) -> UInt16 {
    if f.isNaN { return 0x7FC0 }
    let u = f.bitPattern
    return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
}

/// float32 to float16 bits, IEEE round to nearest even (Swift's conversion).
func f16RNE(_ f: Float) -> UInt16 { Float16(f).bitPattern }

/// Whether an element of `dtype` with these bits is a NaN.
func isNaNBits(_ bits: UInt32, _ dtype: TensorDType) -> Bool { widenBits(bits, dtype).isNaN }

/// The first index where `got` differs from `expected` under the README's NaN rule (an
/// expected NaN matches any NaN; a non-NaN must have the same bits), or `nil`.
func firstBitMismatch(_ got: [UInt32], _ expected: [Int64], _ dtype: TensorDType) -> String? {
    guard got.count == expected.count else { return "count \(got.count) != \(expected.count)" }
    for i in got.indices {
        let e = UInt32(truncatingIfNeeded: expected[i])
        let ok = isNaNBits(e, dtype) ? isNaNBits(got[i], dtype) : got[i] == e
        if !ok {
            return "element \(i): 0x\(String(got[i], radix: 16, uppercase: true)) (\(widenBits(got[i], dtype))), expected 0x\(String(e, radix: 16, uppercase: true)) (\(widenBits(e, dtype)))"
        }
    }
    return nil
}

/// `count` elements of `dtype` at `p` as bit patterns.
func bitPatterns(_ p: UnsafeRawPointer, _ dtype: TensorDType, count: Int) -> [UInt32] {
    (0..<count).map {
        dtype == .float32 ? p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)
            : UInt32(p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))
    }
}

/// The bytes of the file at `path`.
func fileBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
