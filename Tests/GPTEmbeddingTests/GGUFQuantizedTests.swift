import Foundation
@testable import GPTEmbedding
import Testing

/// Quantized token tables opened from GGUF files (issue 19): kept in their block format,
/// dequantized as rows are read. The forward of every fixture against `gguf.quants.dequantize`
/// (and llama.cpp's input stage) is in ``GGUFTests/reproducesLlamaCppInputStage(f:mmap:)``;
/// these check the rest against a layer opened with `dtype: .float32`, whose table holds the
/// same dequantized values (so every result must agree bit for bit), and the rules of a
/// frozen table.
@Suite struct GGUFQuantizedTests {
    static let root = GGUFFixture.root
    static let types = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"]

    static func open(_ name: String, mmap: Bool = false, dtype: TensorDType? = nil, threads: Int = 2,
                     shard: (Int, Int)? = nil, dropout: Float? = nil) throws -> GPTEmbedding {
        var o = OpenOptions()
        o.mmap = mmap
        o.dtype = dtype
        o.numThreads = threads
        o.dropout = dropout
        if let (rank, world) = shard {
            o.shardRank = rank
            o.shardWorld = world
        }
        return try GPTEmbedding(contentsOf: root + "/" + name, options: o)
    }

    @Test(arguments: types, [false, true])
    func tableKeepsItsBlocks(type: String, mmap: Bool) throws {
        let name = "llama_\(type).gguf"
        let layer = try Self.open(name, mmap: mmap)
        let t = layer.parameters[0]
        let g = try GPTEmbedding.ggufFile(path: Self.root + "/" + name)
        let info = try #require(g.tensor("token_embd.weight"))
        #expect(t.blockType?.name == type)
        #expect(t.dtype == .float32 && t.data.isEmpty, "no float32 view of blocks")
        #expect(t.isMapped == mmap, "blocks map at any offset")
        // The raw blocks are the file's bytes.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.root + "/" + name)))
        let raw = UnsafeRawBufferPointer(start: t.rawData.pointer, count: info.byteCount)
        let same = Array(raw) == Array(bytes[info.offset..<(info.offset + info.byteCount)])
        #expect(same, "the raw blocks are the file's bytes")
        // Values are the dequantized rows (as the float32 conversion at open computes them).
        let f32 = try Self.open(name, dtype: .float32)
        #expect(f32.parameters[0].blockType == nil && f32.config.weightDType == .float32)
        #expect(sameBits(t.values, f32.parameters[0].values))
        // Memory: the blocks, not float32 rows.
        #expect(layer.parameters[0].byteCount == (mmap ? 0 : info.byteCount))
    }

    @Test(arguments: ["llama_q4_k.gguf", "gpt2_q8_0.gguf", "bloom_q8_0.gguf", "gemma_q4_k.gguf", "starcoder_q4_0_f16pos.gguf"])
    func everyCallAgreesWithTheConvertedTable(name: String) throws {
        let q = try Self.open(name, dropout: 0.25), f = try Self.open(name, dtype: .float32, dropout: 0.25)
        let v = q.config.vocabSize
        let ids: [Int32] = (0..<24).map { Int32(($0 * 7 + 3) % v) }
        for ln in [false, true] {
            for training in [false, true] {
                let a = try q.forward(ids: ids, batch: 6, seq: 4, training: training, useLayerNorm: ln)
                let b = try f.forward(ids: ids, batch: 6, seq: 4, training: training, useLayerNorm: ln)
                #expect(sameBits(a, b), "\(name) ln \(ln) training \(training)")
            }
            // 16-bit outputs.
            for dtype in [TensorDType.bfloat16, .float16] {
                let n = 24 * q.embedDim
                var a = [UInt16](repeating: 0, count: n), b = a
                try a.withUnsafeMutableBytes { p in
                    try ids.withUnsafeBufferPointer { i in
                        try q.forward(ids: i.baseAddress!, batch: 6, seq: 4, useLayerNorm: ln, into: p.baseAddress!, dtype: dtype, capacity: n)
                    }
                }
                try b.withUnsafeMutableBytes { p in
                    try ids.withUnsafeBufferPointer { i in
                        try f.forward(ids: i.baseAddress!, batch: 6, seq: 4, useLayerNorm: ln, into: p.baseAddress!, dtype: dtype, capacity: n)
                    }
                }
                let same = a == b
                #expect(same, "\(name) \(dtype)")
            }
        }
        // Training: positions and the layer norm train; the frozen table gets nothing.
        let dout = (0..<(24 * q.embedDim)).map { Float(($0 * 37) % 101) / 50 - 1 }
        for layer in [q, f] {
            _ = try layer.forward(ids: ids, batch: 6, seq: 4, training: true, useLayerNorm: true)
            try layer.backward(gradOutput: dout, batch: 6, seq: 4)
        }
        #expect(sameBits(q.layerNormWeight.gradient, f.layerNormWeight.gradient))
        #expect(sameBits(q.layerNormBias.gradient, f.layerNormBias.gradient))
        if let pq = q.positionalEmbedding, let pf = f.positionalEmbedding {
            #expect(sameBits(pq.weight.gradient, pf.weight.gradient))
            #expect(pq.weight.gradient.contains { $0 != 0 })
        }
        #expect(!q.parameters[0].hasGradient && q.touchedTokenRows.isEmpty)
        // A step over every parameter skips the frozen table and moves the others as the
        // converted layer's step moves them.
        let before = q.parameters[0].values
        try q.step(AdamW(lr: 1e-2))
        try f.step(AdamW(lr: 1e-2, parameters: [.positionEmbedding, .layerNormWeight, .layerNormBias]))
        #expect(sameBits(q.parameters[0].values, before))
        #expect(sameBits(q.layerNormWeight.values, f.layerNormWeight.values))
        // (An f16 position table stays f16 beside blocks; the dtype option made it float32.)
        if let pq = q.positionalEmbedding, let pf = f.positionalEmbedding, pq.weight.dtype == pf.weight.dtype {
            #expect(sameBits(pq.weight.values, pf.weight.values))
        }
    }

    @Test func frozenTableRefusesWhatItCannotDo() throws {
        let q = try Self.open("gpt2_q8_0.gguf")
        let t = q.parameters[0]
        func expectFrozen(_ body: () throws -> Void, _ what: String) {
            do {
                try body()
                Issue.record("\(what) succeeded")
            } catch let error as GPTEmbeddingError {
                #expect(error.code == .badState, "\(what): \(error)")
                #expect(error.message.contains("q8_0") && error.message.contains("dtype"), "\(what): \(error.message)")
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        expectFrozen({ _ = try t.gradientData() }, "gradientData")
        expectFrozen({ try t.setValues([Float](repeating: 0, count: t.count)) }, "setValues")
        expectFrozen({ _ = try q.optimizerState(.tokenEmbedding) }, "optimizerState")
        var g = [Float](repeating: 0, count: t.count)
        expectFrozen({ try g.withUnsafeMutableBufferPointer { b in try t.copyGradient(into: b) } }, "copyGradient")
        _ = try q.forward(ids: [Int32(1), 2], batch: 1, seq: 2, training: true)
        try q.backward(gradOutput: [Float](repeating: 1, count: 2 * q.embedDim), batch: 1, seq: 2)
        expectFrozen({ try q.step(AdamW(parameters: [.tokenEmbedding, .positionEmbedding])) }, "step naming the table")
        // Nothing changed: the position table still has its gradient pending, and steps.
        try q.step(AdamW(parameters: [.positionEmbedding]))
        // A borrowed float table cannot stand in for blocks.
        let borrowed = [Float](repeating: 0, count: t.count)
        let ids: [Int32] = [0]
        var out = [Float](repeating: 0, count: q.embedDim)
        let capacity = out.count
        do {
            try borrowed.withUnsafeBytes { b in
                try ids.withUnsafeBufferPointer { i in
                    var call = EmbeddingCall<Int32>(ids: i.baseAddress, batch: 1, seq: 1)
                    call.tokenEmbedding = BorrowedTable(b.baseAddress!, count: borrowed.count)
                    try out.withUnsafeMutableBytes { o in
                        try q.forward(call, into: o.baseAddress, capacity: capacity)
                    }
                }
            }
            Issue.record("a borrowed table replaced blocks")
        } catch let error as GPTEmbeddingError {
            #expect(error.code == .invalidArgument && error.message.contains("q8_0"), "\(error)")
        }
        _ = capacity
    }

    @Test(arguments: [false, true])
    func shardsReadTheirRows(mmap: Bool) throws {
        let whole = try Self.open("llama_q4_k.gguf")
        let d = whole.embedDim
        var sum = [Float](repeating: 0, count: 5 * d)
        let ids: [Int32] = [36, 0, 17, 5, 36]
        for rank in 0..<3 {
            let s = try Self.open("llama_q4_k.gguf", mmap: mmap, shard: (rank, 3))
            let rows = s.config.heldTokenRows
            #expect(s.parameters[0].blockType == .q4_k && s.parameters[0].rows == rows.count)
            #expect(sameBits(s.parameters[0].values, Array(whole.parameters[0].values[(rows.lowerBound * d)..<(rows.upperBound * d)])))
            let part = try s.forwardPartial(ids: ids, batch: 1, seq: 5)
            for i in 0..<sum.count { sum[i] += part[i] }
        }
        #expect(sameBits(sum, (try whole.forward(ids: ids, batch: 1, seq: 5))))
    }

    @Test(arguments: types)
    func bothCPUPathsAndThreadCountsGiveTheSameBits(type: String) throws {
        let q = try Self.open("llama_\(type).gguf", threads: 2)
        let ids: [Int32] = (0..<64).map { Int32(($0 * 11) % 37) }
        let reference = try q.forward(ids: ids, batch: 4, seq: 16, useLayerNorm: true)
        for isa in InstructionSet.supported {
            let k = try #require(Kernels.load(isa))
            for threads in [1, 2] {
                var c = q.config
                c.numThreads = threads
                let other = try GPTEmbedding(config: c, kernels: k, tokenTable: q.tokenEmbedding.weight, positionTable: nil,
                                             layerNorm: (q.layerNormWeight, q.layerNormBias))
                let got = try other.forward(ids: ids, batch: 4, seq: 16, useLayerNorm: true)
                #expect(sameBits(got, reference), "\(type) \(isa) \(threads) threads")
            }
        }
    }

    @Test func dtypeOptionConvertsForTraining() throws {
        for dtype in [TensorDType.bfloat16, .float16] {
            let c = try Self.open("llama_q6_k.gguf", dtype: dtype)
            let q = try Self.open("llama_q6_k.gguf")
            #expect(c.parameters[0].blockType == nil && c.parameters[0].dtype == dtype)
            // Each value is the dequantized one rounded once to the dtype.
            var expected = q.parameters[0].values
            let rounded = try ParameterTensor(name: "x", rows: q.parameters[0].rows, cols: q.embedDim, dtype: dtype, kernels: Kernels.active())
            try rounded.setValues(expected)
            expected = rounded.values
            #expect(sameBits(c.parameters[0].values, expected))
            _ = try c.forward(ids: [Int32(3)], batch: 1, seq: 1, training: true)
            try c.backward(gradOutput: [Float](repeating: 1, count: c.embedDim), batch: 1, seq: 1)
            try c.step(AdamW())
        }
    }

    @Test func openFreeCyclesOfQuantizedTables() throws {
        for i in 0..<200 {
            let l = try Self.open("llama_q4_k.gguf", mmap: i % 2 == 0)
            #expect(l.parameters[0].blockType == .q4_k)
        }
    }
}

/// Whether two float arrays hold the same bits (without printing them when they do not).
private func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}
