import Foundation
@testable import GPTEmbedding
import Testing

/// One `expected.txt` of `Tests/fixtures/families/<name>/` (format `family-1`, see that
/// folder's README): ids (and OPT's positions), and the hidden states transformers hands its
/// first decoder block, as float32 bit patterns of the model-dtype values.
struct FamilyFixture: CustomStringConvertible {
    var scalars: [String: String] = [:]
    var ints: [String: [Int64]] = [:]
    let folder: String
    let file: String
    var description: String { "\(scalars["name"] ?? folder)\(file == "expected.txt" ? "" : " (\(file))")" }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/families").path

    static func all() -> [FamilyFixture] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
        return names.flatMap { name in
            ["expected.txt", "expected_padded.txt"].compactMap { try? FamilyFixture(folder: root + "/" + name, file: $0) }
        }
    }

    init(folder: String, file: String) throws {
        self.folder = folder
        self.file = file
        let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
        var tokens = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: " ")
            .split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)[...]
        guard tokens.popFirst() == "format", tokens.popFirst() == "family-1" else { throw GoldenError.malformed(folder, "format") }
        while let k = tokens.popFirst(), k != "end" {
            if k == "int" || k == "float" {
                guard let name = tokens.popFirst(), let n = tokens.popFirst().flatMap({ Int($0) }) else { break }
                let values = (0..<n).compactMap { _ in tokens.popFirst() }
                if k == "int" { ints[name] = values.compactMap { Int64($0) } }
            } else {
                scalars[k] = tokens.popFirst()
            }
        }
    }

    var dtype: TensorDType { ["bfloat16": .bfloat16, "float16": .float16][scalars["dtype"] ?? ""] ?? .float32 }
}

/// Every Hugging Face family opens from its folder and reproduces transformers' input to
/// decoder block 0 (issue 12).
@Suite struct FamilyTests {
    static let fixtures = FamilyFixture.all()

    @Test func everyFamilyHasAFixture() {
        let types = Set(Self.fixtures.compactMap { $0.scalars["model_type"] })
        #expect(types == Set(ModelFamily.supported), "fixtures cover \(types.sorted())")
    }

    @Test(arguments: fixtures, [false, true])
    func reproducesTransformersInputToBlockZero(f: FamilyFixture, mmap: Bool) throws {
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = 2
        let layer = try GPTEmbedding(contentsOf: f.folder, options: o)
        let b = Int(f.scalars["batch"]!)!, t = Int(f.scalars["seq"]!)!
        let ids = f.ints["ids"]!.map { Int32($0) }
        let positions = f.ints["positions"].map { $0.map { Int32($0) } }
        let d = layer.embedDim
        let n = b * t * d
        // The output in the model's dtype (what transformers hands the block), widened.
        var raw = [UInt16](repeating: 0, count: f.dtype == .float32 ? 2 * n : n)
        try raw.withUnsafeMutableBytes { out in
            try ids.withUnsafeBufferPointer { idp in
                try (positions ?? []).withUnsafeBufferPointer { pp in
                    try layer.forward(ids: idp.baseAddress!, batch: b, seq: t, positions: positions == nil ? nil : pp.baseAddress,
                                      into: out.baseAddress!, dtype: f.dtype, capacity: n)
                }
            }
        }
        let got: [Float] = raw.withUnsafeBytes { bytes in
            (0..<n).map { i in
                switch f.dtype {
                case .float32: return bytes.load(fromByteOffset: 4 * i, as: Float.self)
                case .bfloat16: return Float(bitPattern: UInt32(bytes.load(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                case .float16: return Float(Float16(bitPattern: bytes.load(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
        }
        let expected = f.ints["hidden_f32_bits"]!.map { Float(bitPattern: UInt32($0)) }
        #expect(got.count == expected.count)
        // Reductions (BLOOM's layer norm in float32) to float32 rounding; everything else exact.
        let exact = !(f.scalars["model_type"] == "bloom" && f.dtype == .float32)
        var worst: Float = 0
        for i in 0..<min(got.count, expected.count) {
            if exact {
                #expect(got[i].bitPattern == expected[i].bitPattern, "\(f) element \(i): \(got[i]) vs \(expected[i])")
                if got[i].bitPattern != expected[i].bitPattern { break }
            } else {
                // |a - b| <= 1e-6 |b| + 1e-6, as a fraction of the allowance.
                worst = max(worst, abs(got[i] - expected[i]) / (1e-6 * abs(expected[i]) + 1e-6))
            }
        }
        #expect(worst <= 1, "\(f): worst difference \(worst) of the allowance 1e-6 |b| + 1e-6")
        if !exact { print("\(f): worst difference \(worst) of the allowance 1e-6 |b| + 1e-6") }
    }

    @Test func optProjectInIsRefused() throws {
        do {
            _ = try GPTEmbedding(contentsOf: FamilyFixture.root + "/opt_project_in")
            Issue.record("opt_project_in opened")
        } catch {
            #expect(error.code == .badFile)
            #expect(error.message.contains("project_in"), "\(error.message)")
        }
    }

    @Test(arguments: ["config_not_json", "missing_tensor", "shape_mismatch", "unknown_model_type"])
    func malformedFoldersAreRefused(name: String) throws {
        do {
            _ = try GPTEmbedding(contentsOf: FamilyFixture.root + "/bad/" + name)
            Issue.record("\(name) opened")
        } catch {
            #expect(error.code == .badFile, "\(name): \(error)")
            #expect(error.message.contains("config.json") || error.message.contains(name), "\(name): \(error.message)")
            if name == "unknown_model_type" { #expect(error.message.contains("gpt2") && error.message.contains("llama")) }
        }
    }

    @Test func unknownFamilyOpensByTensorNamesWhenAsked() throws {
        var o = OpenOptions()
        o.useConfigJSON = false
        // llamaX's token table has Llama's name: without a family, a plain lookup of it.
        let llamaX = try GPTEmbedding(contentsOf: FamilyFixture.root + "/bad/unknown_model_type", options: o)
        #expect(llamaX.config.vocabSize == 16 && llamaX.config.positionEncoding == PositionEncoding.none)
        // gpt2's do: by tensor names it is GPT-2 (transformer.wte / wpe).
        let layer = try GPTEmbedding(contentsOf: FamilyFixture.root + "/gpt2", options: o)
        #expect(layer.config.positionEncoding == .learned)
    }

    @Test func gemmaScaleIsRoundedToTheTableDtype() throws {
        let bf16 = try GPTEmbedding(contentsOf: FamilyFixture.root + "/gemma_bf16")
        #expect(bf16.config.tokenScale == 6.9375)  // sqrt(48) = 6.928... in bf16
        let f32 = try GPTEmbedding(contentsOf: FamilyFixture.root + "/gemma_f32")
        #expect(f32.config.tokenScale == Float(Double(50).squareRoot()))
    }

    @Test func bloomAppliesItsLayerNormByDefaultAndOptItsOffset() throws {
        let bloom = try GPTEmbedding(contentsOf: FamilyFixture.root + "/bloom")
        #expect(bloom.config.layerNormByDefault)
        let ln = try bloom.forward(ids: [Int32(1), 2, 3], batch: 1, seq: 3)
        let plain = try bloom.forward(ids: [Int32(1), 2, 3], batch: 1, seq: 3, useLayerNorm: false)
        #expect(ln != plain)
        let opt = try GPTEmbedding(contentsOf: FamilyFixture.root + "/opt")
        #expect(opt.config.positionOffset == 2)
        // A padding token's position -1 reads row 1.
        let out = try opt.forward(ids: [Int32(5)], batch: 1, seq: 1, positions: [Int32(-1)])
        let w = opt.tokenEmbedding.weight.values, p = opt.positionalEmbedding!.weight.values
        let d = opt.embedDim
        for c in 0..<d { #expect(out[c] == w[5 * d + c] + p[1 * d + c]) }
        #expect(throws: GPTEmbeddingError.self) { try opt.forward(ids: [Int32(5)], batch: 1, seq: 1, positions: [Int32(-3)]) }
    }
}
