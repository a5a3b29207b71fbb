import Foundation
import GPTEmbedding
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How a checkpoint is opened: read or mapped, at 1 or 2 threads.
struct OpenMode: CustomStringConvertible, Sendable {
    let mmap: Bool
    let threads: Int
    var description: String { "\(mmap ? "mmap" : "read"), \(threads) thread\(threads == 1 ? "" : "s")" }
    static let all = [false, true].flatMap { m in [1, 2].map { OpenMode(mmap: m, threads: $0) } }
}

/// Issue 11 against the PyTorch golden vectors of Tests/golden/precision: checkpoints opened
/// at their own precision (read and mapped, 1 and 2 threads), forward into float32,
/// bfloat16 and float16 (bit-exact where the README says so), backward from bf16/f16
/// grad_output into float32 gradients.
@Suite struct PrecisionGoldenTests {
    static let cases = PrecisionGoldenFile.all
    static let forwardCases = cases.filter(\.hasForward)

    @Test func everyCaseIsRead() {
        #expect(Self.cases.count == PrecisionGoldenFile.names.count, "expected the files in \(PrecisionGoldenFile.directory.path)")
        #expect(Self.forwardCases.count == 6)
    }

    static func open(_ file: PrecisionGoldenFile, _ mode: OpenMode) throws -> GPTEmbedding {
        try GPTEmbedding(contentsOf: file.checkpoint, options: file.options(mmap: mode.mmap, threads: mode.threads))
    }

    /// An eval (or training) forward of the case into `dtype`, as bit patterns.
    static func forward(_ layer: GPTEmbedding, _ file: PrecisionGoldenFile, _ dtype: TensorDType,
                        training: Bool = false, int64: Bool = false) throws -> [UInt32] {
        let n = file.batch * file.seq * file.embedDim
        let out = UnsafeMutableRawPointer.allocate(byteCount: n * dtype.byteCount + 8, alignment: 64)
        defer { out.deallocate() }
        if int64 {
            try file.ints["ids"]!.withUnsafeBufferPointer { ids in
                try layer.forward(ids: ids.baseAddress!, batch: file.batch, seq: file.seq, startPosition: file.int("start_position"),
                                  training: training, useLayerNorm: file.layerNorm, into: out, dtype: dtype, capacity: n)
            }
        } else {
            try file.ids32.withUnsafeBufferPointer { ids in
                try layer.forward(ids: ids.baseAddress!, batch: file.batch, seq: file.seq, startPosition: file.int("start_position"),
                                  training: training, useLayerNorm: file.layerNorm, into: out, dtype: dtype, capacity: n)
            }
        }
        return bitPatterns(out, dtype, count: n)
    }

    /// The bits of a tensor as the checkpoint stores them (for the tables' dtype check).
    static func fileTensorBits(_ file: PrecisionGoldenFile, _ name: String) throws -> (dtype: String, bits: [UInt32])? {
        for (path, header) in try GPTEmbedding.checkpointFiles(path: file.checkpoint) {
            guard let t = header.tensors.first(where: { $0.name == name }) else { continue }
            let bytes = try fileBytes(path)
            let dtype = TensorDType(safetensorsName: t.dtype)!
            let bits = bytes.withUnsafeBytes { bitPatterns($0.baseAddress! + header.dataOffset + t.begin, dtype, count: t.count) }
            return (t.dtype, bits)
        }
        return nil
    }

    @Test(arguments: forwardCases, OpenMode.all)
    func openedCheckpointHasTheFilesTablesAndConfig(file: PrecisionGoldenFile, mode: OpenMode) throws {
        let layer = try Self.open(file, mode)
        let c = layer.config
        #expect(c.vocabSize == file.vocabSize && c.embedDim == file.embedDim && c.weightDType == file.weightDType)
        #expect(c.positionEncoding == (file.learned ? .learned : PositionEncoding.none))
        if file.learned { #expect(c.maxSeqLen == file.int("max_seq_len")) }
        #expect(c.dropout == 0 && c.scaleEmbeddings == file.flag("scale_embeddings"))
        var tables: [(ParameterTensor, String)] = [(layer.tokenEmbedding.weight, "transformer.wte.weight")]
        if let p = layer.positionalEmbedding { tables.append((p.weight, "transformer.wpe.weight")) }
        #expect((layer.positionalEmbedding != nil) == file.learned)
        for (t, name) in tables {
            #expect(t.dtype == file.weightDType, "\(file) \(name)")
            // The official writer aligns every tensor, so mapped mode maps every table.
            #expect(t.isMapped == mode.mmap, "\(file) \(name) mapped in \(mode)")
            let stored = try #require(try Self.fileTensorBits(file, name))
            #expect(stored.dtype == file.weightDType.safetensorsName)
            #expect(bitPatterns(t.rawData.pointer, t.dtype, count: t.count) == stored.bits, "\(file) \(name): the file's bits")
            if t.dtype == .float32 { #expect(t.data.count == t.count) } else { #expect(t.data.isEmpty, "no float view of a 16-bit table") }
        }
        for t in [layer.layerNormWeight, layer.layerNormBias] {
            #expect(t.dtype == .float32)
            #expect(t.isMapped == (mode.mmap && file.layerNorm), "\(file) \(t.name) mapped in \(mode)")
            if file.layerNorm {
                let stored = try #require(try Self.fileTensorBits(file, t.name))
                #expect(t.values.map(\.bitPattern) == stored.bits)
            } else {
                #expect(t.values == [Float](repeating: t === layer.layerNormWeight ? 1 : 0, count: file.embedDim))
            }
        }
    }

    @Test(arguments: forwardCases, OpenMode.all)
    func forwardMatchesPyTorch(file: PrecisionGoldenFile, mode: OpenMode) throws {
        let layer = try Self.open(file, mode)
        let keys: [(TensorDType, String)] = [(.float32, "out_f32_bits"), (.bfloat16, "out_bf16_bits"), (.float16, "out_f16_bits")]
        if !file.layerNorm {
            for (dtype, key) in keys {
                for int64 in [false, true] {
                    let got = try Self.forward(layer, file, dtype, int64: int64)
                    let miss = firstBitMismatch(got, file.ints[key]!, dtype)
                    #expect(miss == nil, "\(file) \(mode) \(key) int64=\(int64): \(miss ?? "")")
                }
            }
        } else {
            // Layer norm: tolerance (README), and each reduced output is the RNE of ours in F32.
            let expected = file.floats["out_f32"]!
            let f32 = try Self.forward(layer, file, .float32).map { Float(bitPattern: $0) }
            #expect(firstMismatch(f32, expected) == nil, "\(file) \(mode) F32: \(firstMismatch(f32, expected) ?? "")")
            for (dtype, halfUlp) in [(TensorDType.bfloat16, Float(1) / 256), (.float16, Float(1) / 2048)] {
                let got = try Self.forward(layer, file, dtype)
                let widened = got.map { widenBits($0, dtype) }
                let miss = firstMismatch(widened, expected, rtol: halfUlp + 1e-5, atol: 1e-6)
                #expect(miss == nil, "\(file) \(mode) \(dtype): \(miss ?? "")")
                let rne = f32.map { UInt32(dtype == .bfloat16 ? bf16RNE($0) : f16RNE($0)) }
                #expect(got == rne, "\(file) \(mode): the \(dtype) output is the float32 output rounded once")
            }
        }
        // A training forward (dropout 0) writes the same bits as an eval forward.
        #expect(try Self.forward(layer, file, file.weightDType, training: true) == Self.forward(layer, file, file.weightDType))
    }

    @Test(arguments: forwardCases, OpenMode.all)
    func backwardFromReducedGradOutputMatchesPyTorch(file: PrecisionGoldenFile, mode: OpenMode) throws {
        let layer = try Self.open(file, mode)
        _ = try Self.forward(layer, file, file.weightDType, training: true)
        let gradType = ["f32": TensorDType.float32, "bf16": .bfloat16, "f16": .float16][file.scalars["grad_output_dtype"]!]!
        try file.gradOutputBytes.withUnsafeBytes {
            try layer.backward(gradOutput: $0.baseAddress!, dtype: gradType, batch: file.batch, seq: file.seq)
        }
        var expected: [(ParameterTensor, String)] = [(layer.tokenEmbedding.weight, "grad_wte")]
        if let p = layer.positionalEmbedding { expected.append((p.weight, "grad_wpe")) }
        if file.layerNorm { expected += [(layer.layerNormWeight, "grad_ln_weight"), (layer.layerNormBias, "grad_ln_bias")] }
        for (t, key) in expected {
            let miss = firstMismatch(t.gradient, file.floats[key]!)
            #expect(miss == nil, "\(file) \(mode) \(key): \(miss ?? "")")
        }
        if !file.layerNorm {
            #expect(layer.layerNormWeight.gradient.allSatisfy { $0 == 0 } && layer.layerNormBias.gradient.allSatisfy { $0 == 0 })
        }
        // Without layer norm and scale, a row hit by one token is grad_output's widened bits.
        if !file.layerNorm && !file.flag("scale_embeddings") {
            let ids = file.ids32, d = file.embedDim, go = file.gradOutputF32, g = layer.tokenEmbedding.weight.gradient
            var once = 0
            for (k, id) in ids.enumerated() where ids.filter({ $0 == id }).count == 1 {
                once += 1
                #expect(g[Int(id) * d ..< Int(id + 1) * d].map(\.bitPattern) == go[k * d ..< (k + 1) * d].map(\.bitPattern),
                        "\(file) row \(id)")
            }
            #expect(once > 0)
        }
    }

    /// Read or mapped, 1 or 2 threads: the same bits everywhere.
    @Test(arguments: forwardCases)
    func sameBitsInEveryMode(file: PrecisionGoldenFile) throws {
        var results: [[[UInt32]]] = []
        for mode in OpenMode.all {
            let layer = try Self.open(file, mode)
            var r = try TensorDType.allCases.map { try Self.forward(layer, file, $0) }
            _ = try Self.forward(layer, file, .float32, training: true)
            try layer.backward(gradOutput: file.gradOutputF32, batch: file.batch, seq: file.seq)
            r += layer.parameters.map { $0.gradient.map(\.bitPattern) }
            results.append(r)
        }
        for k in 1..<results.count { #expect(results[k] == results[0], "\(file): \(OpenMode.all[k]) differs from \(OpenMode.all[0])") }
    }

    /// 4096 copies of one token, grad_output bf16(1e-3): the gradient accumulates in float32
    /// (4.09375 exactly), not in bfloat16 (where torch's bf16 embedding stalls at 0.5).
    @Test(arguments: OpenMode.all)
    func gradientsAccumulateInFloat32(mode: OpenMode) throws {
        let file = try #require(PrecisionGoldenFile.named("accumulate_4096"))
        let layer = try Self.open(file, mode)
        #expect(layer.config.weightDType == .bfloat16 && layer.tokenEmbedding.weight.isMapped == mode.mmap)
        _ = try Self.forward(layer, file, .bfloat16, training: true)
        try file.gradOutputBytes.withUnsafeBytes {
            try layer.backward(gradOutput: $0.baseAddress!, dtype: .bfloat16, batch: 1, seq: 4096)
        }
        let g = layer.tokenEmbedding.weight.gradient
        #expect(g.map(\.bitPattern) == file.ints["grad_wte_f32_bits"]!.map { UInt32($0) })
        #expect(Array(g[12..<16]) == [4.09375, 4.09375, 4.09375, 4.09375])
        #expect(file.floats["torch_bf16_grad"]!.allSatisfy { $0 == 0.5 } && !g.contains(0.5), "not bf16 accumulation")
        // A second backward adds as much again: still exact in float32.
        try file.gradOutputBytes.withUnsafeBytes {
            try layer.backward(gradOutput: $0.baseAddress!, dtype: .bfloat16, batch: 1, seq: 4096)
        }
        #expect(Array(layer.tokenEmbedding.weight.gradient[12..<16]) == [8.1875, 8.1875, 8.1875, 8.1875])
    }

    /// The sharded folder: each table comes from (and in mapped mode lives in) its own shard.
    @Test func shardedFolderHasTwoShards() throws {
        let file = try #require(PrecisionGoldenFile.named("sharded"))
        let shards = try GPTEmbedding.checkpointFiles(path: file.checkpoint)
        #expect(shards.map { URL(fileURLWithPath: $0.path).lastPathComponent }.sorted()
            == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(shards.flatMap { $0.header.tensors.map(\.dtype) } == ["BF16", "BF16"])
        for path in [file.checkpoint, file.checkpoint + "/"] {
            let layer = try GPTEmbedding(contentsOf: path, options: file.options(mmap: true, threads: 1))
            #expect(layer.tokenEmbedding.weight.isMapped && layer.positionalEmbedding!.weight.isMapped)
        }
    }

    /// options.dtype converts: widening a bf16/f16 checkpoint to float32 changes no output bit
    /// (the widening is exact); a converted table is never mapped.
    @Test(arguments: forwardCases.filter { $0.weightDType != .float32 })
    func wideningOnOpenKeepsEveryBit(file: PrecisionGoldenFile) throws {
        var o = file.options(mmap: true, threads: 1)
        o.dtype = .float32
        let wide = try GPTEmbedding(contentsOf: file.checkpoint, options: o)
        let native = try Self.open(file, OpenMode(mmap: true, threads: 1))
        #expect(wide.config.weightDType == .float32 && !wide.tokenEmbedding.weight.isMapped)
        #expect(wide.tokenEmbedding.weight.values.map(\.bitPattern) == native.tokenEmbedding.weight.values.map(\.bitPattern))
        for dtype in TensorDType.allCases {
            #expect(try Self.forward(wide, file, dtype) == Self.forward(native, file, dtype), "\(file) \(dtype)")
        }
    }

    /// options.dtype narrowing: a float32 checkpoint opened as bf16 holds RNE(values).
    @Test func narrowingOnOpenRoundsToNearestEven() throws {
        let file = try #require(PrecisionGoldenFile.named("f32_reference"))
        for dtype in [TensorDType.bfloat16, .float16] {
            var o = file.options(mmap: false, threads: 1)
            o.dtype = dtype
            let layer = try GPTEmbedding(contentsOf: file.checkpoint, options: o)
            let f32 = try #require(try Self.fileTensorBits(file, "transformer.wte.weight")).bits.map { Float(bitPattern: $0) }
            let t = layer.tokenEmbedding.weight
            #expect(t.dtype == dtype)
            #expect(bitPatterns(t.rawData.pointer, dtype, count: t.count) == f32.map { UInt32(dtype == .bfloat16 ? bf16RNE($0) : f16RNE($0)) })
        }
    }
}

/// A layer created with a 16-bit weight dtype: float32 writes round to nearest even, reads
/// widen exactly; saving keeps the dtype and reopening gives the same bits.
@Suite struct ReducedPrecisionLayerTests {
    /// Values around every rounding rule: ties to even (both directions), near ties, signed
    /// zeros, subnormals, overflow to infinity, infinities and NaN.
    static let specials: [Float] = {
        var v: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, -.nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                          .leastNonzeroMagnitude, -.leastNormalMagnitude, 65504, 65519.996, 65520, -65520, 70000,
                          Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
                          Float(bitPattern: 0x3F80_7FFF), Float(bitPattern: 0xBF80_8000), Float(bitPattern: 0xBF81_8000),
                          Float(bitPattern: 0x7F7F_8000), Float(bitPattern: 0x0000_8000), Float(bitPattern: 0x0001_8000),
                          1 + 0x1p-11, 1 + 3 * 0x1p-11, 1 + 0x1p-11 + 0x1p-20, 0x1p-25, 3 * 0x1p-26, 0x1p-26, 0x1p-24, -0x1p-25,
                          1e-7, -3e-8, 0.1, 1.0 / 3, 3.14159265, 1e30, -1e-30]
        var rng = TestRandom(11)
        while v.count < 64 { v.append(rng.uniform() * 8) }
        return v
    }()

    static func layer(_ dtype: TensorDType) throws -> GPTEmbedding {
        var c = smallConfig(vocab: 16, dim: 4, maxSeqLen: 8, threads: 1)
        c.weightDType = dtype
        return try GPTEmbedding(config: c)
    }

    @Test(arguments: [TensorDType.bfloat16, .float16])
    func setValuesRoundsToNearestEvenAndValuesWidenExactly(dtype: TensorDType) throws {
        let layer = try Self.layer(dtype)
        let t = layer.tokenEmbedding.weight
        #expect(t.dtype == dtype && layer.positionalEmbedding!.weight.dtype == dtype && layer.layerNormWeight.dtype == .float32)
        #expect(t.data.isEmpty)
        try t.setValues(Self.specials)
        let bits = bitPatterns(t.rawData.pointer, dtype, count: t.count)
        let expected = Self.specials.map { UInt32(dtype == .bfloat16 ? bf16RNE($0) : f16RNE($0)) }
        for i in bits.indices {
            let ok = isNaNBits(expected[i], dtype) ? isNaNBits(bits[i], dtype) : bits[i] == expected[i]
            #expect(ok, "\(dtype) \(Self.specials[i]) (0x\(String(Self.specials[i].bitPattern, radix: 16))): got 0x\(String(bits[i], radix: 16)), expected 0x\(String(expected[i], radix: 16))")
        }
        // Spot checks of the rule itself, independent of the reference functions.
        if dtype == .bfloat16 {
            #expect(bits[17] == 0x3F80 && bits[18] == 0x3F82 && bits[19] == 0x3F81 && bits[20] == 0x3F80, "ties to even, near ties")
            #expect(bits[21] == 0xBF80 && bits[22] == 0xBF82 && bits[23] == 0x7F80, "negative ties; overflow to inf")
            #expect(bits[6] == 0x7FC0, "NaN as PyTorch writes it")
        } else {
            #expect(bits[12] == 0x7BFF && bits[13] == 0x7BFF && bits[14] == 0x7C00 && bits[15] == 0xFC00 && bits[16] == 0x7C00,
                    "65504; just below the tie 65520; 65520 and beyond -> inf")
            #expect(bits[26] == 0x3C00 && bits[27] == 0x3C02 && bits[28] == 0x3C01, "ties to even, near tie")
            #expect(bits[29] == 0x0000 && bits[30] == 0x0001 && bits[31] == 0x0000 && bits[32] == 0x0001 && bits[33] == 0x8000,
                    "subnormals: the tie 2^-25 to +0, 3*2^-26 up, 2^-26 down, -2^-25 to -0")
            #expect(bits[34] == 0x0002 && bits[35] == 0x8001)
        }
        // values widens every stored element exactly; copyValues agrees.
        let values = t.values
        #expect(zip(values, bits).allSatisfy { $0.isNaN ? isNaNBits($1, dtype) : $0.bitPattern == widenBits($1, dtype).bitPattern })
        var copy = [Float](repeating: 7, count: t.count + 1)
        try copy.withUnsafeMutableBufferPointer { try t.copyValues(into: $0) }
        #expect(copy[t.count] == 7)
        #expect(zip(copy, values).allSatisfy { $0.bitPattern == $1.bitPattern })
        // Writing back what was read changes nothing (the widened values are representable).
        try t.setValues(values)
        #expect(bitPatterns(t.rawData.pointer, dtype, count: t.count).map { isNaNBits($0, dtype) ? 0 : $0 }
            == bits.map { isNaNBits($0, dtype) ? 0 : $0 })
        #expect(throws: GPTEmbeddingError.self) { try t.setValues([1, 2, 3]) }
    }

    @Test(arguments: [TensorDType.bfloat16, .float16])
    func saveKeepsTheDtypeAndReopensBitIdentically(dtype: TensorDType) throws {
        let layer = try Self.layer(dtype)
        try layer.tokenEmbedding.weight.setValues(Self.specials.map { $0.isFinite ? $0 : 1 })
        try layer.layerNormBias.setValues([0.5, -0.25, 1e-3, 7])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpte-precision-\(getpid())-\(dtype)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for gpt2 in [false, true] {
            let path = dir.appendingPathComponent("layer\(gpt2).safetensors").path
            try layer.saveSafetensors(path: path, gpt2Names: gpt2)
            let header = try GPTEmbedding.safetensorsHeader(path: path)
            let dtypes = Dictionary(uniqueKeysWithValues: header.tensors.map { ($0.name, $0.dtype) })
            #expect(dtypes[gpt2 ? "wte.weight" : "token_embedding.weight"] == dtype.safetensorsName)
            #expect(dtypes[gpt2 ? "wpe.weight" : "position_embedding.weight"] == dtype.safetensorsName)
            #expect(dtypes["layer_norm.weight"] == "F32" && dtypes["layer_norm.bias"] == "F32")
            #expect(header.dataOffset % 8 == 0)
            for mmap in [false, true] {
                var o = OpenOptions()
                o.mmap = mmap
                let back = try GPTEmbedding(contentsOf: path, options: o)
                #expect(back.config.weightDType == dtype)
                for (a, b) in zip(layer.parameters, back.parameters) {
                    #expect(a.dtype == b.dtype && a.rows == b.rows && a.cols == b.cols)
                    #expect(bitPatterns(a.rawData.pointer, a.dtype, count: a.count) == bitPatterns(b.rawData.pointer, b.dtype, count: b.count),
                            "\(a.name) gpt2=\(gpt2) mmap=\(mmap)")
                    #expect(b.isMapped == mmap)
                }
            }
        }
    }

    /// A golden bf16 checkpoint, opened (mapped) and saved, gives back the file's table bytes.
    @Test func savingAnOpenedCheckpointKeepsItsBytes() throws {
        let file = try #require(PrecisionGoldenFile.named("bf16_learned"))
        let layer = try PrecisionGoldenTests.open(file, OpenMode(mmap: true, threads: 1))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gpte-resave-\(getpid()).safetensors").path
        defer { unlink(path) }
        try layer.saveSafetensors(path: path, gpt2Names: true)
        let saved = try fileBytes(path)
        let header = try GPTEmbedding.safetensorsHeader(path: path)
        for (name, original) in [("wte.weight", "transformer.wte.weight"), ("wpe.weight", "transformer.wpe.weight")] {
            let t = try #require(header.tensors.first { $0.name == name })
            #expect(t.dtype == "BF16")
            let bits = saved.withUnsafeBytes { bitPatterns($0.baseAddress! + header.dataOffset + t.begin, .bfloat16, count: t.count) }
            #expect(bits == (try PrecisionGoldenTests.fileTensorBits(file, original))?.bits)
        }
    }
}

/// Tests/fixtures/checkpoints (Tests/fixtures/bad_checkpoints.py): every refused checkpoint
/// fails in read and in mapped mode with its status and a message naming the file, the
/// tensor and the problem; misaligned tables fall back to reading.
@Suite struct BadCheckpointTests {
    static let folder = GoldenFile.directory.deletingLastPathComponent().appendingPathComponent("fixtures/checkpoints")

    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let code: GPTEmbeddingError.Code
        let texts: [String]
        var description: String { name }
    }

    static let cases: [Case] = {
        guard let text = try? String(contentsOfFile: folder.appendingPathComponent("EXPECTED").path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let f = line.split(separator: "\t").map(String.init)
            return Case(name: f[0], code: f[1] == "IO" ? .io : .badFile, texts: Array(f.dropFirst(2)))
        }
    }()

    @Test func everyRuleHasACheckpoint() {
        #expect(Self.cases.count >= 25, "Tests/fixtures/checkpoints/EXPECTED")
    }

    @Test(arguments: cases, [false, true])
    func refusedWithAMessageNamingFileTensorAndProblem(c: Case, mmap: Bool) {
        var o = OpenOptions()
        o.mmap = mmap
        do {
            _ = try GPTEmbedding(contentsOf: Self.folder.appendingPathComponent(c.name).path, options: o)
            Issue.record("\(c.name) was opened (mmap \(mmap))")
        } catch {
            #expect(error.code == c.code, "\(c.name): \(error.code) \(error.message)")
            for t in c.texts { #expect(error.message.contains(t), "\(c.name): \"\(error.message)\" should contain \"\(t)\"") }
        }
    }

    /// The valid file the shard_parent index points at opens: only the folder rule stops it.
    @Test func theOutsideFileItselfOpens() throws {
        _ = try GPTEmbedding(contentsOf: Self.folder.appendingPathComponent("outside.safetensors").path)
    }

    static func wte(_ r: Int, _ c: Int) -> Float { Float(4 * r + c - 16) / 8 }
    static func wpe(_ r: Int, _ c: Int) -> Float { Float(4 * r + c) / 16 }

    @Test(arguments: ["misaligned_bf16.safetensors", "misaligned_f32.safetensors"], [false, true])
    func misalignedTablesAreReadInsteadOfMapped(name: String, mmap: Bool) throws {
        var o = OpenOptions()
        o.mmap = mmap
        let layer = try GPTEmbedding(contentsOf: Self.folder.appendingPathComponent(name).path, options: o)
        let f32 = name.contains("f32")
        #expect(layer.config.weightDType == (f32 ? .float32 : .bfloat16))
        let wte = layer.tokenEmbedding.weight, wpe = layer.positionalEmbedding!.weight
        #expect(!wte.isMapped, "the token table is misaligned: read")
        #expect(wpe.isMapped == (mmap && f32), "the F32 file's position table is aligned: mapped")
        #expect(wte.values == (0..<8).flatMap { r in (0..<4).map { Self.wte(r, $0) } })
        #expect(wpe.values == (0..<4).flatMap { r in (0..<4).map { Self.wpe(r, $0) } })
        let out = try layer.forward(ids: [Int32(7), 0, 3], batch: 1, seq: 3)
        #expect(out == [7, 0, 3].enumerated().flatMap { t, id in (0..<4).map { Self.wte(id, $0) + Self.wpe(t, $0) } })
    }

    /// A valid sharded folder of F16 shards: both tables mapped, each from its own shard.
    @Test(arguments: [false, true])
    func validShardedFolderOpens(mmap: Bool) throws {
        var o = OpenOptions()
        o.mmap = mmap
        let layer = try GPTEmbedding(contentsOf: Self.folder.appendingPathComponent("sharded_ok").path, options: o)
        let wte = layer.tokenEmbedding.weight, wpe = layer.positionalEmbedding!.weight
        #expect(layer.config.weightDType == .float16 && wte.isMapped == mmap && wpe.isMapped == mmap)
        #expect(wte.values == (0..<8).flatMap { r in (0..<4).map { Self.wte(r, $0) } })
        #expect(wpe.values == (0..<4).flatMap { r in (0..<4).map { Self.wpe(r, $0) } })
    }

    /// Training a mapped layer writes private pages only: the file keeps its bytes.
    @Test func trainingAMappedLayerLeavesTheFileUnchanged() throws {
        let file = try #require(PrecisionGoldenFile.named("bf16_learned"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpte-mapped-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.safetensors").path
        try FileManager.default.copyItem(atPath: file.checkpoint, toPath: path)
        let before = try fileBytes(path)
        var o = OpenOptions()
        o.mmap = true
        let layer = try GPTEmbedding(contentsOf: dir.path, options: o)
        let wte = layer.tokenEmbedding.weight
        #expect(wte.isMapped)
        let valuesBefore = wte.values
        for _ in 0..<3 {
            _ = try PrecisionGoldenTests.forward(layer, file, .bfloat16, training: true)
            try layer.backward(gradOutput: file.gradOutputF32, batch: file.batch, seq: file.seq)
            // SGD through the zero-copy pointer, in the table's own dtype.
            let g = wte.gradient, p = wte.rawData.pointer.assumingMemoryBound(to: UInt16.self)
            for i in 0..<wte.count { p[i] = bf16RNE(widenBits(UInt32(p[i]), .bfloat16) - 0.5 * g[i]) }
            layer.zeroGrad()
        }
        try layer.positionalEmbedding!.weight.setValues([Float](repeating: 2, count: layer.positionalEmbedding!.weight.count))
        #expect(wte.values != valuesBefore, "the steps changed the table")
        #expect(try fileBytes(path) == before, "the file changed")
        // A second layer over the same file sees the file's values, not the first one's.
        let fresh = try GPTEmbedding(contentsOf: dir.path, options: o)
        #expect(fresh.tokenEmbedding.weight.values.map(\.bitPattern) == valuesBefore.map(\.bitPattern))
    }
}
