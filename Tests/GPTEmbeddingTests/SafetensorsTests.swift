import GPTEmbedding
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Builds safetensors files byte by byte, to test every rule of the reader.
struct SafetensorsBuilder {
    var header: String
    var data: [UInt8]

    init(_ entries: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])], metadata: String? = nil) {
        var parts: [String] = metadata.map { ["\"__metadata__\":\($0)"] } ?? []
        var data: [UInt8] = []
        for e in entries {
            parts.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":\(e.shape),\"data_offsets\":[\(data.count),\(data.count + e.bytes.count)]}")
            data += e.bytes
        }
        header = "{" + parts.joined(separator: ",") + "}"
        self.data = data
    }

    var file: [UInt8] { Self.file(header: Array(header.utf8), data: data) }

    static func file(header: [UInt8], data: [UInt8], length: UInt64? = nil) -> [UInt8] {
        let n = length ?? UInt64(header.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + header + data
    }
}

func f32Bytes(_ v: [Float]) -> [UInt8] { v.flatMap { f in (0..<4).map { UInt8(truncatingIfNeeded: f.bitPattern >> (8 * UInt32($0))) } } }
func u16Bytes(_ v: [UInt16]) -> [UInt8] { v.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] } }

@Suite struct SafetensorsTests {
    func layer() throws -> GPTEmbedding { try GPTEmbedding(config: smallConfig(vocab: 6, dim: 4, maxSeqLen: 3)) }
    var wte: [Float] { (0..<24).map { Float($0) * 0.5 - 3 } }
    var wpe: [Float] { (0..<12).map { Float($0) * 0.25 } }

    func load(_ l: GPTEmbedding, _ bytes: [UInt8]) throws(GPTEmbeddingError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        try l.loadSafetensors(bytes: UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]))
    }

    @Test(arguments: ["", "transformer."])
    func gpt2NamesLoadAndOtherTensorsAreIgnored(prefix: String) throws {
        let l = try layer()
        let file = SafetensorsBuilder([("\(prefix)h.0.attn.bias", "F32", [1], f32Bytes([9])),
                                       ("\(prefix)wte.weight", "F32", [6, 4], f32Bytes(wte)),
                                       ("\(prefix)wpe.weight", "F32", [3, 4], f32Bytes(wpe)),
                                       ("\(prefix)ln_f.weight", "I64", [2], [UInt8](repeating: 0, count: 16))],
                                      metadata: "{\"format\":\"pt\"}").file
        let lnBefore = l.layerNormWeight.values
        try load(l, file)
        #expect(l.tokenEmbedding.weight.values == wte && l.positionalEmbedding!.weight.values == wpe)
        #expect(l.layerNormWeight.values == lnBefore, "no layer norm in a GPT-2 file: the layer keeps its own")
    }

    @Test func f16AndBF16ConvertExactly() throws {
        let l = try layer()
        let halves: [UInt16] = (0..<24).map { Float16(Float($0) - 12.5).bitPattern }  // exact in f16
        let bf16: [UInt16] = wpe.map { UInt16($0.bitPattern >> 16) }
        try load(l, SafetensorsBuilder([("token_embedding.weight", "F16", [6, 4], u16Bytes(halves)),
                                        ("position_embedding.weight", "BF16", [3, 4], u16Bytes(bf16))]).file)
        #expect(l.tokenEmbedding.weight.values == (0..<24).map { Float($0) - 12.5 })
        #expect(l.positionalEmbedding!.weight.values == wpe, "these values are exact in bfloat16")
    }

    @Test func roundTripThroughAFile() throws {
        let a = try layer(), b = try layer()
        try a.tokenEmbedding.weight.setValues(wte)
        try a.layerNormBias.setValues([1, 2, 3, 4])
        let path = "/tmp/gpt-embedding-test-\(getpid()).safetensors"
        defer { unlink(path) }
        for gpt2 in [false, true] {
            try a.saveSafetensors(path: path, gpt2Names: gpt2)
            try b.loadSafetensors(path: path)
            for (x, y) in zip(a.parameters, b.parameters) { #expect(x.values == y.values, "\(x.name) gpt2=\(gpt2)") }
        }
        #expect(throws: GPTEmbeddingError.self) { try b.loadSafetensors(path: "/nonexistent/x.safetensors") }
    }

    /// Every rejection rule: the error names the problem and the layer is unchanged.
    @Test func malformedFilesAreRejectedAndChangeNothing() throws {
        let good: [(String, String, [Int], [UInt8])] = [("token_embedding.weight", "F32", [6, 4], f32Bytes(wte)),
                                                        ("position_embedding.weight", "F32", [3, 4], f32Bytes(wpe))]
        var cases: [(String, [UInt8])] = []
        cases.append(("shorter than the 8-byte", [1, 2, 3]))
        cases.append(("exceeds the limit", SafetensorsBuilder.file(header: Array("{}".utf8), data: [], length: 200_000_000)))
        cases.append(("goes past the end", SafetensorsBuilder.file(header: Array("{}".utf8), data: [], length: 50)))
        cases.append(("does not start with '{'", SafetensorsBuilder.file(header: Array(" {}".utf8), data: [])))
        cases.append(("not valid UTF-8", SafetensorsBuilder.file(header: [UInt8(ascii: "{"), 0xFF, UInt8(ascii: "}")], data: [])))
        cases.append(("not valid JSON", SafetensorsBuilder.file(header: Array("{\"a\":}".utf8), data: [])))
        cases.append(("duplicate key", SafetensorsBuilder.file(header: Array("{\"a\":1,\"a\":2}".utf8), data: [])))
        var b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("F32", "Q7", first: true)
        cases.append(("unknown dtype \"Q7\"", b.file))
        b = SafetensorsBuilder([("token_embedding.weight", "I32", [6, 4], [UInt8](repeating: 0, count: 96)), good[1]])
        cases.append(("dtype I32 cannot be loaded", b.file))
        b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("[6, 4]", "[6, -4]", first: true)
        cases.append(("non-negative integers", b.file))
        b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("[6, 4]", "[6.5, 4]", first: true)
        cases.append(("non-negative integers", b.file))
        b = SafetensorsBuilder(good); b.data.removeLast(4)
        cases.append(("cover 144 bytes but the file has 140", b.file))
        b = SafetensorsBuilder(good); b.data += [0, 0, 0, 0]
        cases.append(("cover 144 bytes but the file has 148", b.file))
        b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("[96,144]", "[92,140]", first: true)
        cases.append(("overlap", b.file))
        b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("[0,96]", "[0,92]", first: true)
        cases.append(("hold 92 bytes", b.file))
        b = SafetensorsBuilder(good); b.header = b.header.replacingOccurrences("[6, 4]", "[4611686018427387904, 4]", first: true)
        cases.append(("overflows", b.file))
        cases.append(("shape [3, 4] does not match", SafetensorsBuilder([("token_embedding.weight", "F32", [3, 4], f32Bytes(wpe)), good[1]]).file))
        cases.append(("missing tensor token_embedding.weight", SafetensorsBuilder([good[1]]).file))
        cases.append(("two names for one parameter", SafetensorsBuilder(good + [("wte.weight", "F32", [6, 4], f32Bytes(wte))]).file))
        cases.append(("__metadata__: value of \"n\" is not a string", SafetensorsBuilder(good, metadata: "{\"n\":1}").file))

        let l = try layer()
        _ = try l.forward(ids: [Int32(1)], batch: 1, seq: 1, training: true)
        try l.backward(gradOutput: [1, 1, 1, 1], batch: 1, seq: 1)
        let before = snapshot(l)
        for (expected, bytes) in cases {
            do {
                try load(l, bytes)
                Issue.record("accepted a file that should fail with: \(expected)")
            } catch {
                #expect(error.code == .badFile, "\(expected): \(error.message)")
                #expect(error.message.contains(expected), "\(error.message) should mention \(expected)")
            }
            #expect(snapshot(l) == before, "a rejected file changed the layer (\(expected))")
        }
    }
}

extension String {
    /// The string with the first occurrence of `target` replaced.
    func replacingOccurrences(_ target: String, _ replacement: String, first: Bool) -> String {
        guard let r = range(of: target) else { return self }
        return replacingCharacters(in: r, with: replacement)
    }
}

/// A checkpoint written by Hugging Face transformers (Tests/fixtures/generate.py) loads and
/// reproduces transformers' wte(ids) + wpe(positions).
@Suite struct HuggingFaceGPT2Tests {
    static let fixtures = GoldenFile.directory.deletingLastPathComponent().appendingPathComponent("fixtures")

    @Test(arguments: ["gpt2_tiny.safetensors", "gpt2_tiny_unprefixed.safetensors"])
    func checkpointReproducesTransformers(name: String) throws {
        var c = smallConfig(vocab: 64, dim: 8, maxSeqLen: 16)
        c.dropout = 0.1
        let layer = try GPTEmbedding(config: c)
        try layer.loadSafetensors(path: Self.fixtures.appendingPathComponent(name).path)
        let text = try String(contentsOfFile: Self.fixtures.appendingPathComponent("gpt2_tiny_expected.txt").path, encoding: .utf8)
        var rows: [String: [Substring]] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            rows[String(parts[0])] = Array(parts.dropFirst())
        }
        let ids = rows["ids"]!.map { Int64($0)! }, pos = rows["positions"]!.map { Int64($0)! }
        let expected = rows["out"]!.map { Float($0)! }
        let out = try layer.forward(ids: ids, batch: 2, seq: 6, positions: pos)
        #expect(firstMismatch(out, expected, rtol: 1e-6, atol: 1e-7) == nil)
    }
}
