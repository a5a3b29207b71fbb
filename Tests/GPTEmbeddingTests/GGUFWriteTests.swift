import Foundation
@testable import GPTEmbedding
import Testing

/// Writing GGUF files (issue 19, item 6) against `Tests/fixtures/gguf/write/` (made by
/// `generate_write_golden.py` with the `gguf` package): the written token table is
/// `gguf.quants.quantize`'s bytes, and the file opens again with `gguf.quants.dequantize`'s rows.
@Suite struct GGUFWriteTests {
    static let root = GGUFFixture.root + "/write"
    static let types = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16"]

    static func bytes(_ path: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) }

    static func floats(_ path: String) throws -> [UInt32] {
        let b = try bytes(path)
        return stride(from: 0, to: b.count, by: 4).map { i in
            UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
        }
    }

    static func temporary(_ name: String) -> String {
        NSTemporaryDirectory() + "gpte-write-\(getpid())-\(name)"
    }

    static func open(_ path: String, mmap: Bool = false) throws -> GPTEmbedding {
        var o = OpenOptions()
        o.mmap = mmap
        o.numThreads = 2
        return try GPTEmbedding(contentsOf: path, options: o)
    }

    /// The data of `name` in the GGUF file at `path`, parsed by the library's reader.
    static func tensorBytes(_ path: String, _ name: String) throws -> [UInt8] {
        let g = try GPTEmbedding.ggufFile(path: path)
        let t = try #require(g.tensor(name))
        return Array(try bytes(path)[t.offset..<(t.offset + t.byteCount)])
    }

    @Test(arguments: types)
    func writesTheReferenceBytesAndReadsTheReferenceRows(type: String) throws {
        let source = try Self.open(Self.root + "/source.gguf")
        let out = Self.temporary("\(type).gguf")
        defer { unlink(out) }
        try source.saveGGUF(path: out, tableType: try #require(GGUFTableType(name: type)))
        #expect(try Self.tensorBytes(out, "token_embd.weight") == Self.bytes(Self.root + "/\(type).bin"))
        let g = try GPTEmbedding.ggufFile(path: out)
        #expect(g.value("general.architecture")?.stringValue == "llama")
        for mmap in [false, true] {
            let back = try Self.open(out, mmap: mmap)
            #expect(back.parameters[0].values.map(\.bitPattern) == (try Self.floats(Self.root + "/\(type).rows.bin")))
        }
    }

    @Test func keepCopiesTheStoredTableAndItsBlocks() throws {
        let source = try Self.open(Self.root + "/source.gguf")
        let f32 = Self.temporary("keep.gguf")
        defer { unlink(f32) }
        try source.saveGGUF(path: f32)
        let sourceTable = try Self.tensorBytes(Self.root + "/source.gguf", "token_embd.weight")
        #expect(try Self.tensorBytes(f32, "token_embd.weight") == sourceTable)
        // A quantized layer keeps its blocks unchanged.
        for name in ["llama_q4_k.gguf", "llama_iq4_xs.gguf", "llama_q8_0.gguf"] {
            let q = try Self.open(GGUFFixture.root + "/" + name)
            let out = Self.temporary("keep-\(name)")
            defer { unlink(out) }
            try q.saveGGUF(path: out)
            #expect(try Self.tensorBytes(out, "token_embd.weight") == Self.tensorBytes(GGUFFixture.root + "/" + name, "token_embd.weight"))
            let back = try Self.open(out)
            #expect(back.parameters[0].blockType == q.parameters[0].blockType)
            #expect(back.parameters[0].values.map(\.bitPattern) == q.parameters[0].values.map(\.bitPattern))
        }
    }

    /// Each family's input stage survives the round trip: the written file's forward is the
    /// original's, bit for bit (positions, Gemma's scale, granite's key, BLOOM's norm).
    @Test(arguments: ["gpt2_f32.gguf", "gemma_bf16.gguf", "granite_f16.gguf", "bloom_f32.gguf", "llama_f16_align64.gguf",
                      "gpt2_q8_0.gguf", "gemma_q4_k.gguf", "granite_q5_1.gguf", "bloom_q8_0.gguf"])
    func familiesRoundTrip(name: String) throws {
        let a = try Self.open(GGUFFixture.root + "/" + name)
        let out = Self.temporary("family-\(name)")
        defer { unlink(out) }
        try a.saveGGUF(path: out)
        let b = try Self.open(out)
        #expect(b.config.positionEncoding == a.config.positionEncoding)
        #expect(b.config.resolvedTokenScale == a.config.resolvedTokenScale)
        #expect(b.config.layerNormByDefault == a.config.layerNormByDefault && b.config.layerNormEps == a.config.layerNormEps)
        let v = a.config.vocabSize
        let ids: [Int32] = (0..<12).map { Int32(($0 * 5 + 1) % v) }
        let x = try a.forward(ids: ids, batch: 3, seq: 4), y = try b.forward(ids: ids, batch: 3, seq: 4)
        #expect(x.map(\.bitPattern) == y.map(\.bitPattern))
    }

    @Test func refusesWhatItCannotWriteAndLeavesNoFile() throws {
        let out = Self.temporary("refused.gguf")
        defer { unlink(out) }
        func refused(_ layer: GPTEmbedding, _ type: GGUFTableType, _ part: String) {
            do {
                try layer.saveGGUF(path: out, tableType: type)
                Issue.record("saved, expected an error containing \(part)")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains(part), "\(error.message)")
            }
            #expect(access(out, F_OK) != 0, "no file after an error")
            #expect(access(out + ".tmp-\(getpid())", F_OK) != 0, "no temporary file after an error")
        }
        var c = GPTEmbeddingConfig()
        c.vocabSize = 10
        c.embedDim = 48
        c.dropout = 0
        c.scaleEmbeddings = false
        c.positionEncoding = .none
        refused(try GPTEmbedding(config: c), .type(.q8_0), "multiple of 32")
        refused(try GPTEmbedding(config: c), .type(.q4_k), "cannot be written")
        c.embedDim = 64
        c.positionEncoding = .sinusoidal
        refused(try GPTEmbedding(config: c), .keep, "sinusoidal")
        c.positionEncoding = .learned
        c.scaleEmbeddings = true
        refused(try GPTEmbedding(config: c), .keep, "learned positions with token rows scaled")
        c.scaleEmbeddings = false
        c.positionEncoding = .none
        let nan = try GPTEmbedding(config: c)
        var values = nan.parameters[0].values
        values[3 * 64 + 7] = .nan
        try nan.parameters[0].setValues(values)
        refused(nan, .type(.q4_0), "row 3, column 7")
        // An unwritable place: an I/O error, no file.
        do {
            try nan.saveGGUF(path: "/nonexistent-dir/x.gguf")
            Issue.record("saved into a missing directory")
        } catch {
            #expect(error.code == .io)
        }
    }
}
