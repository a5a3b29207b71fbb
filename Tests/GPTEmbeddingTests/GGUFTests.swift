import Foundation
@testable import GPTEmbedding
import Testing

/// One `<name>.expected.txt` of `Tests/fixtures/gguf/` (written by generate_gguf.py): ids at
/// positions 0..<seq and llama.cpp's input stage for them (float64 reference rounded once to
/// float32), as bit patterns.
struct GGUFFixture: CustomStringConvertible {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/gguf").path

    var fields: [String: [String]] = [:]
    var description: String { fields["file"]?.first ?? "?" }
    var path: String { Self.root + "/" + description }
    var ids: [Int32] { (fields["ids"] ?? []).compactMap { Int32($0) } }
    var exact: Bool { fields["exact"]?.first == "1" }
    var byTensorNames: Bool { fields["by_tensor_names"]?.first == "1" }
    var expected: [Float] { (fields["out"] ?? []).compactMap { UInt32($0).map { Float(bitPattern: $0) } } }

    static func all() -> [GGUFFixture] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasSuffix(".expected.txt") }.sorted()
        return names.compactMap { name in
            guard let text = try? String(contentsOfFile: root + "/" + name, encoding: .utf8) else { return nil }
            var f = GGUFFixture()
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ").map(String.init)
                if let k = parts.first { f.fields[k] = Array(parts.dropFirst()) }
            }
            return f
        }
    }

    /// `bad/expected.txt`: file name and a part of the message.
    static func bad() -> [(String, String)] {
        guard let text = try? String(contentsOfFile: root + "/bad/expected.txt", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let p = line.split(separator: "\t", maxSplits: 1).map(String.init)
            return p.count == 2 ? (p[0], p[1]) : nil
        }
    }
}

@Suite struct GGUFTests {
    static let fixtures = GGUFFixture.all()

    @Test func fixturesExist() {
        #expect(Self.fixtures.count >= 12)
        #expect(GGUFFixture.bad().count >= 20)
    }

    @Test(arguments: fixtures, [false, true])
    func reproducesLlamaCppInputStage(f: GGUFFixture, mmap: Bool) throws {
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = 2
        o.useConfigJSON = !f.byTensorNames
        let layer = try GPTEmbedding(contentsOf: f.path, options: o)
        let ids = f.ids
        let got = try layer.forward(ids: ids, batch: 1, seq: ids.count)
        let expected = f.expected
        #expect(got.count == expected.count, "\(f)")
        var worst: Float = 0
        for i in 0..<min(got.count, expected.count) {
            if f.exact {
                #expect(got[i].bitPattern == expected[i].bitPattern, "\(f) element \(i): \(got[i]) vs \(expected[i])")
                if got[i].bitPattern != expected[i].bitPattern { break }
            } else {
                worst = max(worst, abs(got[i] - expected[i]) / (1e-6 * abs(expected[i]) + 1e-6))
            }
        }
        #expect(worst <= 1, "\(f): worst difference \(worst) of the allowance 1e-6 |b| + 1e-6")
        // Mapped mode maps every table whose data is aligned for its dtype (all but the
        // alignment-1 fixture's odd offset, which is read).
        if mmap {
            let token = layer.parameters[0]
            let at = try #require(try GPTEmbedding.ggufFile(path: f.path).tensor("token_embd.weight"))
            // Blocks are read byte by byte: a quantized table maps at any offset.
            let aligned = token.blockType != nil || at.offset % token.dtype.byteCount == 0
            #expect(token.isMapped == aligned, "\(f)")
            if f.description.contains("align1_odd") { #expect(!aligned, "the fixture's table should be at an odd offset") }
        }
    }

    @Test func configFollowsTheArchitecture() throws {
        let root = GGUFFixture.root
        let gemma = try GPTEmbedding(contentsOf: root + "/gemma_bf16.gguf")
        // sqrtf(24) in float32, not rounded to bf16 as transformers does.
        #expect(gemma.config.tokenScale == Float(24).squareRoot())
        #expect(gemma.config.weightDType == .bfloat16)
        let granite = try GPTEmbedding(contentsOf: root + "/granite_f16.gguf")
        #expect(granite.config.tokenScale == Float(0.15))
        let minicpm3 = try GPTEmbedding(contentsOf: root + "/minicpm3_f32.gguf")
        #expect(minicpm3.config.tokenScale == 12)
        let bloom = try GPTEmbedding(contentsOf: root + "/bloom_f32.gguf")
        #expect(bloom.config.layerNormByDefault && bloom.config.layerNormEps == Float(1e-5))
        let gpt2 = try GPTEmbedding(contentsOf: root + "/gpt2_f32.gguf")
        #expect(gpt2.config.positionEncoding == .learned && gpt2.config.maxSeqLen == 8)
        let llama = try GPTEmbedding(contentsOf: root + "/llama_f32.gguf")
        #expect(llama.config.vocabSize == 1001 && llama.config.embedDim == 16 && llama.config.tokenScale == nil)
        #expect(llama.config.positionEncoding == PositionEncoding.none && !llama.config.layerNormByDefault)
    }

    @Test func dtypeConvertsAtOpen() throws {
        var o = OpenOptions()
        o.dtype = .float32
        let bf16 = try GPTEmbedding(contentsOf: GGUFFixture.root + "/qwen2_bf16.gguf")
        let f32 = try GPTEmbedding(contentsOf: GGUFFixture.root + "/qwen2_bf16.gguf", options: o)
        #expect(f32.config.weightDType == .float32)
        let ids: [Int32] = [0, 5, 256]
        #expect(try bf16.forward(ids: ids, batch: 1, seq: 3) == f32.forward(ids: ids, batch: 1, seq: 3))
        o.dtype = .bfloat16
        o.mmap = true
        let back = try GPTEmbedding(contentsOf: GGUFFixture.root + "/llama_f32.gguf", options: o)
        #expect(back.config.weightDType == .bfloat16 && !back.parameters[0].isMapped)
    }

    @Test func shardReadsItsRows() throws {
        var o = OpenOptions()
        o.shardWorld = 2
        o.shardRank = 1
        let shard = try GPTEmbedding(contentsOf: GGUFFixture.root + "/llama_f32.gguf", options: o)
        let whole = try GPTEmbedding(contentsOf: GGUFFixture.root + "/llama_f32.gguf")
        let rows = shard.config.heldTokenRows
        #expect(rows.lowerBound > 0 && rows.upperBound == 1001)
        let a = shard.parameters[0].values, b = whole.parameters[0].values
        #expect(Array(a) == Array(b[(rows.lowerBound * 16)..<(rows.upperBound * 16)]))
    }

    @Test func refusedArchitectureOpensByTensorNamesOnly() throws {
        do {
            _ = try GPTEmbedding(contentsOf: GGUFFixture.root + "/bert_f32.gguf")
            Issue.record("bert opened")
        } catch {
            #expect(error.code == .badFile)
            #expect(error.message.contains("\"bert\"") && error.message.contains("by_tensor_names"), "\(error.message)")
        }
    }

    @Test(arguments: GGUFFixture.bad().map(\.0))
    func badFilesAreRefused(name: String) throws {
        let message = GGUFFixture.bad().first { $0.0 == name }?.1 ?? "?"
        let path = GGUFFixture.root + "/bad/" + name + ".gguf"
        for mmap in [false, true] {
            var o = OpenOptions()
            o.mmap = mmap
            do {
                _ = try GPTEmbedding(contentsOf: path, options: o)
                Issue.record("\(name) opened")
            } catch {
                #expect(error.code == .badFile, "\(name): \(error)")
                #expect(error.message.contains(message), "\(name): \(error.message)")
                #expect(error.message.contains(path) || name == "wrong_magic", "\(name): \(error.message)")
            }
        }
    }

    @Test func everyTruncationIsRefusedOrOpens() throws {
        // Every prefix of a small file parses or fails with badFile, never traps.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: GGUFFixture.root + "/gpt2_f32.gguf")))
        var opened = 0
        for n in stride(from: 0, through: bytes.count, by: 7) {
            let result = bytes[0..<n].withUnsafeBytes { b in
                Result { () throws(GPTEmbeddingError) in try GGUFFile(file: b, path: "prefix") }
            }
            switch result {
            case .success: opened += 1
            case .failure(let e): #expect(e.code == .badFile)
            }
        }
        #expect(opened <= 1)
    }

    @Test func parserReadsKeysAndTensors() throws {
        let g = try GPTEmbedding.ggufFile(path: GGUFFixture.root + "/llama_f16_align64.gguf")
        #expect(g.version == 3 && g.alignment == 64 && g.dataOffset % 64 == 0)
        #expect(g.value("general.architecture")?.stringValue == "llama")
        #expect(g.value("llama.embedding_length")?.intValue == 32)
        #expect(g.value("tokenizer.ggml.tokens") == .array(elementType: 8, count: 1001))
        let t = try #require(g.tensor("token_embd.weight"))
        #expect(t.ne == [32, 1001] && t.type == .f16 && t.byteCount == 32 * 1001 * 2 && t.offset % 64 == 0)
        #expect(g.tensor("output.weight") != nil)
        #expect(try GPTEmbedding.ggufFile(path: GGUFFixture.root + "/llama_f32.gguf").tensor("output.weight") == nil)
        #expect(GPTEmbedding.isGGUF(path: GGUFFixture.root + "/llama_f32.gguf"))
        #expect(!GPTEmbedding.isGGUF(path: GGUFFixture.root + "/generate_gguf.py"))
    }

    @Test func version2OpensLikeVersion3() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: GGUFFixture.root + "/gpt2_f32.gguf")))
        bytes[4] = 2  // v2 has v3's layout (v3 only added big-endian files)
        let path = NSTemporaryDirectory() + "gguf_v2_\(getpid()).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        #expect(try GPTEmbedding.ggufFile(path: path).version == 2)
        let v2 = try GPTEmbedding(contentsOf: path), v3 = try GPTEmbedding(contentsOf: GGUFFixture.root + "/gpt2_f32.gguf")
        let ids: [Int32] = [49, 0, 7]
        #expect(try v2.forward(ids: ids, batch: 1, seq: 3) == v3.forward(ids: ids, batch: 1, seq: 3))
    }

    @Test func inputStages() {
        #expect(GGUFInputStage.of("gemma2") == .sqrtScale)
        #expect(GGUFInputStage.of("granitemoe") == .embeddingScaleKey)
        #expect(GGUFInputStage.of("minicpm3") == .fixedScale(12))
        #expect(GGUFInputStage.of("llama") == .plainLookup && GGUFInputStage.of("qwen3") == .plainLookup)
        #expect(GGUFInputStage.of("phi3") == .plainLookup && GGUFInputStage.of("falcon") == .plainLookup)
        for refused in ["bert", "nomic-bert", "rwkv6", "rwkv7", "gemma3n", "grok", "no-such-arch"] {
            if case .refused = GGUFInputStage.of(refused) {} else { Issue.record("\(refused) is not refused") }
        }
    }

    @Test func openFreeCyclesReleaseEverything() throws {
        // Private copies, so that no other (parallel) test touches them: afterwards no
        // descriptor and no mapping refers to either.
        let dir = NSTemporaryDirectory() + "gguf_cycles_\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = dir + "/good.gguf", bad = dir + "/bad.gguf"
        try FileManager.default.copyItem(atPath: GGUFFixture.root + "/gpt2_f32.gguf", toPath: good)
        try FileManager.default.copyItem(atPath: GGUFFixture.root + "/bad/truncated_data.gguf", toPath: bad)
        for i in 0..<200 {
            var o = OpenOptions()
            o.mmap = i % 2 == 0
            _ = try GPTEmbedding(contentsOf: good, options: o)
            _ = try? GPTEmbedding(contentsOf: bad, options: o)
        }
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let open = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
            .filter { $0.hasPrefix(dir) }
        #expect(open.isEmpty, "\(open)")
        let maps = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
        #expect(!maps.contains(dir), "a mapping survives")
    }
}
