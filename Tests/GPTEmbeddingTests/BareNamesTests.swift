import Foundation
@testable import GPTEmbedding
import Testing

/// Bare safetensors files and the `family` open option (issue 19 item 7): a file without
/// config.json opens by any supported family's token-table name as a plain lookup, equal
/// to the rows written by the safetensors package (`Tests/fixtures/bare_names`, from
/// `generate_bare_names.py`); `family` reproduces transformers' block-0 input of every
/// family fixture from its tensors alone; two candidates and unknown families are refused.
@Suite struct BareNamesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/bare_names").path

    /// The plain-lookup fixtures: `<name>.expected.txt` beside `<name>.safetensors`.
    static let bare: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
        .filter { $0.hasSuffix(".expected.txt") }.map { String($0.dropLast(".expected.txt".count)) }.sorted()

    /// The refusals of `EXPECTED`: file, then texts the message must contain.
    static let refused: [[String]] = ((try? String(contentsOfFile: root + "/EXPECTED", encoding: .utf8)) ?? "")
        .split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t").map(String.init) }

    /// Forward of `f`'s ids (and positions) through `layer` in `f`'s dtype, widened to float32.
    static func output(_ layer: GPTEmbedding, _ f: FamilyFixture) throws -> [Float] {
        let b = Int(f.scalars["batch"]!)!, t = Int(f.scalars["seq"]!)!
        let ids = f.ints["ids"]!.map { Int32($0) }
        let positions = f.ints["positions"].map { $0.map { Int32($0) } }
        let n = b * t * layer.embedDim
        var raw = [UInt16](repeating: 0, count: f.dtype == .float32 ? 2 * n : n)
        try raw.withUnsafeMutableBytes { out in
            try ids.withUnsafeBufferPointer { idp in
                try (positions ?? []).withUnsafeBufferPointer { pp in
                    try layer.forward(ids: idp.baseAddress!, batch: b, seq: t, positions: positions == nil ? nil : pp.baseAddress,
                                      into: out.baseAddress!, dtype: f.dtype, capacity: n)
                }
            }
        }
        return raw.withUnsafeBytes { bytes in
            (0..<n).map { i in
                switch f.dtype {
                case .float32: return bytes.load(fromByteOffset: 4 * i, as: Float.self)
                case .bfloat16: return Float(bitPattern: UInt32(bytes.load(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                case .float16: return Float(Float16(bitPattern: bytes.load(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
        }
    }

    /// `got` against `f`'s hidden_f32_bits: bit for bit, or (BLOOM's float32 layer norm, a
    /// reduction) within 1e-6 |b| + 1e-6.
    static func expectMatches(_ got: [Float], _ f: FamilyFixture, exact: Bool, _ label: String) {
        let expected = f.ints["hidden_f32_bits"]!.map { Float(bitPattern: UInt32($0)) }
        #expect(got.count == expected.count, "\(label)")
        for i in 0..<min(got.count, expected.count) {
            let ok = exact ? got[i].bitPattern == expected[i].bitPattern
                : abs(got[i] - expected[i]) <= 1e-6 * abs(expected[i]) + 1e-6
            #expect(ok, "\(label) element \(i): \(got[i]) vs \(expected[i])")
            if !ok { break }
        }
    }

    /// A fresh folder holding `folder`'s safetensors files (single or sharded), no config.json.
    static func withoutConfig(_ folder: String) throws -> String {
        let dir = NSTemporaryDirectory() + "bare_\(getpid())_\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: folder)
        where name.hasSuffix(".safetensors") || name == "model.safetensors.index.json" {
            try FileManager.default.copyItem(atPath: folder + "/" + name, toPath: dir + "/" + name)
        }
        return dir
    }

    @Test func fixturesCoverTheNameSets() {
        #expect(Self.bare.count >= 7 && Self.refused.count >= 2, "\(Self.bare) \(Self.refused)")
        // Every family token-table name is searched, and the library's come first.
        let names = ModelFamily.tokenTableNames
        for n in ["token_embedding.weight", "transformer.wte.weight", "model.embed_tokens.weight", "transformer.word_embeddings.weight",
                  "gpt_neox.embed_in.weight", "model.decoder.embed_tokens.weight", "model.language_model.embed_tokens.weight",
                  "embed_tokens.weight", "word_embeddings.weight", "embed_in.weight"] {
            #expect(names.contains(n), "\(n)")
        }
        #expect(names.first == "token_embedding.weight" && Set(names).count == names.count)
        #expect(Set(GPTEmbedding.recognisedTensorNames).isSuperset(of: names))
    }

    @Test(arguments: bare, [false, true])
    func bareFileIsAPlainLookupOfItsTable(name: String, mmap: Bool) throws {
        let f = try FamilyFixture(folder: Self.root, file: name + ".expected.txt")
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = 2
        let layer = try GPTEmbedding(contentsOf: Self.root + "/" + name + ".safetensors", options: o)
        // A plain lookup: no positions, no layer norm, no scale, whatever else the file holds.
        #expect(layer.config.positionEncoding == PositionEncoding.none)
        #expect(!layer.config.layerNormByDefault && layer.config.tokenScale == nil && layer.config.positionOffset == 0)
        #expect(layer.config.vocabSize == f.ints["ids"]!.count && layer.embedDim == Int(f.scalars["hidden_size"]!)!)
        #expect(layer.tokenEmbedding.weight.dtype == f.dtype)
        Self.expectMatches(try Self.output(layer, f), f, exact: true, name)
    }

    @Test(arguments: refused)
    func twoCandidateTablesAreRefusedNamingBoth(entry: [String]) throws {
        do {
            _ = try GPTEmbedding(contentsOf: Self.root + "/" + entry[0])
            Issue.record("\(entry[0]) opened")
        } catch {
            #expect(error.code == .badFile, "\(entry[0]): \(error)")
            for text in entry.dropFirst(2) { #expect(error.message.contains(text), "\(entry[0]): \(error.message) lacks \(text)") }
        }
    }

    @Test func familyChoosesBetweenCandidates() throws {
        var o = OpenOptions()
        o.family = "llama"
        let llama = try GPTEmbedding(contentsOf: Self.root + "/two_candidates.safetensors", options: o)
        #expect(llama.config.vocabSize == 11)
        o.family = "gptj"  // transformer.wte.weight, no positions
        _ = try GPTEmbedding(contentsOf: Self.root + "/two_candidates.safetensors", options: o)
        o.family = "gpt2"  // needs transformer.wpe.weight too
        #expect(throws: GPTEmbeddingError.self) { try GPTEmbedding(contentsOf: Self.root + "/two_candidates.safetensors", options: o) }
    }

    /// Every family fixture, its safetensors copied without config.json, opened with
    /// `family` = its model_type: transformers' block-0 input, as with config.json.
    @Test(arguments: FamilyTests.fixtures, [false, true])
    func familyOptionReproducesTheFolderWithConfigJSON(f: FamilyFixture, mmap: Bool) throws {
        let type = f.scalars["model_type"]!
        let dir = try Self.withoutConfig(f.folder)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = 2
        o.family = type
        let layer = try GPTEmbedding(contentsOf: dir, options: o)
        let withConfig = try GPTEmbedding(contentsOf: f.folder)
        // The same input stage; only config.json's numbers (dropout, epsilon) are absent.
        #expect(layer.config.tokenScale == withConfig.config.tokenScale)
        #expect(layer.config.positionOffset == withConfig.config.positionOffset)
        #expect(layer.config.layerNormByDefault == withConfig.config.layerNormByDefault)
        #expect(layer.config.positionEncoding == withConfig.config.positionEncoding)
        #expect(layer.config.maxSeqLen == withConfig.config.maxSeqLen)
        #expect(layer.config.dropout == 0 && layer.config.layerNormEps == 1e-5)
        Self.expectMatches(try Self.output(layer, f), f, exact: !(type == "bloom" && f.dtype == .float32), "\(f) family=\(type)")
        // The single file alone (no folder) opens the same way.
        if FileManager.default.fileExists(atPath: dir + "/model.safetensors") {
            let file = try GPTEmbedding(contentsOf: dir + "/model.safetensors", options: o)
            Self.expectMatches(try Self.output(file, f), f, exact: !(type == "bloom" && f.dtype == .float32), "\(f) file family=\(type)")
        }
    }

    /// Without `family`, a family whose input stage is a plain lookup (or GPT-2's sum, by
    /// the GPT-2 names) reproduces transformers from its tensors alone; OPT, BLOOM and
    /// Gemma open as the plain lookup of their token table (their extras are the family's).
    @Test(arguments: FamilyTests.fixtures)
    func familyFilesOpenBareByTheirTokenTableName(f: FamilyFixture) throws {
        let type = f.scalars["model_type"]!
        let dir = try Self.withoutConfig(f.folder)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let layer = try GPTEmbedding(contentsOf: dir)
        if ["opt", "bloom", "gemma", "gemma2", "gemma3_text"].contains(type) {
            #expect(layer.config.positionEncoding == PositionEncoding.none && !layer.config.layerNormByDefault
                    && layer.config.tokenScale == nil, "\(f)")
            #expect(layer.positionalEmbedding == nil && layer.config.positionOffset == 0)
        } else {
            Self.expectMatches(try Self.output(layer, f), f, exact: true, "\(f) bare")
        }
    }

    @Test func familyOptionOnTheBareFixtures() throws {
        var o = OpenOptions()
        // OPT: the position table, offset 2.
        o.family = "opt"
        let opt = try GPTEmbedding(contentsOf: Self.root + "/opt.safetensors", options: o)
        #expect(opt.config.positionOffset == 2 && opt.config.maxSeqLen == 18 && opt.config.positionEncoding == .learned)
        let out = try opt.forward(ids: [Int32(4), 9], batch: 1, seq: 2, positions: [Int32(-1), 15])
        let w = opt.tokenEmbedding.weight.values, p = opt.positionalEmbedding!.weight.values, d = opt.embedDim
        for c in 0..<d {
            #expect(out[c] == w[4 * d + c] + p[1 * d + c])
            #expect(out[d + c] == w[9 * d + c] + p[17 * d + c])
        }
        // BLOOM: its layer norm, on by default, with the option's epsilon.
        o.family = "bloom"
        o.layerNormEps = 1e-3
        let bloom = try GPTEmbedding(contentsOf: Self.root + "/bloom.safetensors", options: o)
        #expect(bloom.config.layerNormByDefault && bloom.config.layerNormEps == 1e-3)
        // Gemma: sqrt(10) rounded to the f16 table's dtype.
        o = OpenOptions()
        o.family = "gemma"
        let gemma = try GPTEmbedding(contentsOf: Self.root + "/gemma.safetensors", options: o)
        #expect(gemma.config.tokenScale == Float(Float16(Float(Double(10).squareRoot()))))
        o.family = "gemma3_text"
        _ = try GPTEmbedding(contentsOf: Self.root + "/gemma3_language_model.safetensors", options: o)
        // A family whose tensors the file lacks: refused naming the family and the names.
        o.family = "llama"
        do {
            _ = try GPTEmbedding(contentsOf: Self.root + "/bloom.safetensors", options: o)
            Issue.record("bloom.safetensors opened as llama")
        } catch {
            #expect(error.code == .badFile && error.message.contains("family \"llama\"") && error.message.contains("model.embed_tokens.weight"),
                    "\(error.message)")
        }
        // OPT without its position table: refused, unless positions are switched off.
        o.family = "opt"
        let noPositions = Self.root + "/llama.safetensors"
        #expect(throws: GPTEmbeddingError.self) { try GPTEmbedding(contentsOf: noPositions, options: o) }
        // OPT whose widths disagree (project_in): the position table's width is refused.
        let projectIn = try Self.withoutConfig(FamilyFixture.root + "/opt_project_in")
        defer { try? FileManager.default.removeItem(atPath: projectIn) }
        do {
            _ = try GPTEmbedding(contentsOf: projectIn, options: o)
            Issue.record("opt_project_in opened")
        } catch {
            #expect(error.code == .badFile && error.message.contains("embed_positions"), "\(error.message)")
        }
    }

    @Test func unknownFamilyIsAnInvalidArgumentListingTheSupportedOnes() throws {
        var o = OpenOptions()
        for name in ["llamaX", "", "Llama"] {
            o.family = name
            do {
                _ = try GPTEmbedding(contentsOf: Self.root + "/llama.safetensors", options: o)
                Issue.record("family \(name) accepted")
            } catch {
                #expect(error.code == .invalidArgument, "\(error)")
                #expect(error.message.contains("\"\(name)\"") && error.message.contains("gemma3_text") && error.message.contains("gpt_neox"))
            }
        }
        // Before anything is opened: even a missing path reports the option.
        o.family = "nope"
        #expect(throws: GPTEmbeddingError.self) { try GPTEmbedding(contentsOf: Self.root + "/absent.safetensors", options: o) }
        do { _ = try GPTEmbedding(contentsOf: Self.root + "/absent.safetensors", options: o) } catch { #expect(error.code == .invalidArgument) }
        // A GGUF file's architecture decides: family is refused there.
        o.family = "llama"
        let gguf = FamilyFixture.root + "/../gguf/bloom_f32.gguf"
        do { _ = try GPTEmbedding(contentsOf: gguf, options: o) } catch {
            #expect(error.code == .invalidArgument && error.message.contains("general.architecture"), "\(error.message)")
        }
    }

    @Test func familyOptionStillReadsConfigJSONNumbers() throws {
        // model_type "llamaX" is not supported; family "llama" opens it, config.json's
        // sizes still checked (hidden_size 8, vocab_size 16).
        var o = OpenOptions()
        o.family = "llama"
        let layer = try GPTEmbedding(contentsOf: FamilyFixture.root + "/bad/unknown_model_type", options: o)
        #expect(layer.config.vocabSize == 16 && layer.embedDim == 8)
        // config.json's dropout is the family's field: gpt2's embd_pdrop 0.1 via family gpt2.
        o.family = "gpt2"
        #expect(try GPTEmbedding(contentsOf: FamilyFixture.root + "/gpt2", options: o).config.dropout == 0.1)
        o.useConfigJSON = false
        #expect(try GPTEmbedding(contentsOf: FamilyFixture.root + "/gpt2", options: o).config.dropout == 0)
        // shape_mismatch's config.json disagrees with its table: still refused under family.
        o = OpenOptions()
        o.family = "llama"
        #expect(throws: GPTEmbeddingError.self) { try GPTEmbedding(contentsOf: FamilyFixture.root + "/bad/shape_mismatch", options: o) }
    }
}
