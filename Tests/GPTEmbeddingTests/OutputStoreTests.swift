import CKernelDispatch
@testable import GPTEmbedding
import Testing

/// Large outputs are written with streaming stores (32-byte, 32-byte shifted by 16 bytes, or
/// 16-byte, depending on the buffer's alignment and the width) and small or unaligned ones
/// with normal stores. Every path must give
/// the same bits, and a sinusoidal row past the cached table (computed in place or in
/// scratch) must not disturb any other row.
@Suite struct OutputStoreTests {
    /// Runs `body` with `count` floats starting `offset` floats past a 64-byte boundary.
    func withBuffer<R>(_ count: Int, offset: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: (count + offset) * 4, alignment: 64)
        defer { raw.deallocate() }
        let p = raw.bindMemory(to: Float.self, capacity: count + offset) + offset
        p.initialize(repeating: .nan, count: count)
        return try body(UnsafeMutableBufferPointer(start: p, count: count))
    }

    // 256 tokens of width 520 (a multiple of 8) and 516 (of 4 only), above the layers'
    // streaming threshold (lowered from 2M floats so that the suite stays quick under the
    // sanitizers), so offsets 0, 4 and 1 float take the 32-byte, shifted 32-byte (520;
    // 16-byte for 516) and normal store paths.
    @Test(arguments: [520, 516], [false, true])
    func everyStorePathGivesTheSameBits(dim: Int, layerNorm: Bool) throws {
        let (batch, seq) = (4, 64)
        var rng = TestRandom(11)
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(300)) }
        let config = smallConfig(vocab: 300, dim: dim, maxSeqLen: 512, dropout: 0.2, threads: 2)
        var results: [[Float]] = []
        for offset in [0, 4, 1] {
            // A fresh layer per offset: the same seed gives the same weights and dropout step.
            let layer = try GPTEmbedding(config: config)
            layer.streamingThreshold = 1024
            for training in [false, true] {
                let out = try withBuffer(batch * seq * dim, offset: offset) { buf in
                    // The store path this output takes (what the comment above promises).
                    let mode = forwardStoreMode(UnsafeMutableRawPointer(buf.baseAddress!), count: buf.count, dim: dim,
                                                threshold: layer.streamingThreshold)
                    let want = offset == 1 ? GPTE_STORE_CACHED : dim % 8 != 0 ? GPTE_STORE_STREAM16
                        : offset == 0 ? GPTE_STORE_STREAM32 : GPTE_STORE_STREAM32_SHIFTED
                    #expect(mode == Int32(want), "offset \(offset), dim \(dim)")
                    return try ids.withUnsafeBufferPointer { idBuf in
                        try layer.forward(ids: idBuf, batch: batch, seq: seq, training: training,
                                          useLayerNorm: layerNorm, into: buf)
                        return Array(buf)
                    }
                }
                results.append(out)
            }
        }
        let small = try GPTEmbedding(config: config)
        for i in 1..<3 {
            #expect(results[2 * i] == results[0], "eval, offset path \(i)")
            #expect(results[2 * i + 1] == results[1], "training, offset path \(i)")
        }
        #expect(!results[0].contains { $0.isNaN })
        // And equal to what small calls (normal stores) give, row batch by row batch.
        let perBatch = seq * dim
        for b in [0, batch - 1] {
            let row = try small.forward(ids: Array(ids[(b * seq)..<((b + 1) * seq)]), batch: 1, seq: seq,
                                        useLayerNorm: layerNorm)
            #expect(Array(results[0][(b * perBatch)..<((b + 1) * perBatch)]) == row, "batch \(b)")
        }
    }

    /// bf16 and f16 outputs: 32-byte streaming stores (a pair of groups rounded together;
    /// rows 32-byte aligned, width a multiple of 16), 16-byte ones (16-byte aligned, or a
    /// width of 8 mod 16) and normal stores give the same bits, equal to the float32 output
    /// rounded to nearest even; on a 16-bit table too.
    @Test(arguments: [TensorDType.bfloat16, .float16], [528, 520])
    func sixteenBitOutputsGiveTheSameBitsOnEveryStorePath(dtype: TensorDType, dim: Int) throws {
        let (batch, seq) = (4, 64), n = batch * seq * dim
        var rng = TestRandom(12)
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(300)) }
        for table in [TensorDType.float32, dtype] {
            var config = smallConfig(vocab: 300, dim: dim, maxSeqLen: 512, dropout: 0.2, threads: 2)
            config.weightDType = table
            let reference = try GPTEmbedding(config: config)
            let wide = try reference.forward(ids: ids, batch: batch, seq: seq, training: true, useLayerNorm: true)
            let expected: [UInt16] = wide.map { dtype == .bfloat16 ? bf16RNE($0) : f16RNE($0) }
            // Offsets in bytes past a 64-byte boundary: 0 and 16 (streamed), 2 (normal stores).
            for offset in [0, 16, 2] {
                let layer = try GPTEmbedding(config: config)
                layer.streamingThreshold = 1024
                let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * n + offset, alignment: 64)
                defer { raw.deallocate() }
                let out = raw + offset
                let mode = forwardStoreMode(out, count: n, dim: dim, dtype: dtype, threshold: layer.streamingThreshold)
                let want = offset == 2 ? GPTE_STORE_CACHED : offset == 0 && dim % 16 == 0 ? GPTE_STORE_STREAM32 : GPTE_STORE_STREAM16
                #expect(mode == Int32(want), "offset \(offset), dim \(dim)")
                try ids.withUnsafeBufferPointer { idBuf in
                    try layer.forward(ids: idBuf.baseAddress!, batch: batch, seq: seq, training: true, useLayerNorm: true,
                                      into: out, dtype: dtype, capacity: n)
                }
                let got = Array(UnsafeBufferPointer(start: out.assumingMemoryBound(to: UInt16.self), count: n))
                let same = got == expected  // (not inside #expect: it would print every value)
                #expect(same, "\(dtype) output, \(table) table, offset \(offset), dim \(dim)")
            }
        }
    }

    /// Sinusoidal positions past the cached table in an eval forward without layer norm:
    /// each row is s * wte[id] + PE(pos), whatever its neighbours are. Normal stores, and
    /// streamed (the layer's threshold lowered to the output's size).
    @Test(arguments: [false, true])
    func sinusoidalRowsPastTheCacheLeaveOtherRowsAlone(streamed: Bool) throws {
        let (batch, seq, dim, maxSeqLen) = (4, 256, 256, 8)
        var config = smallConfig(vocab: 97, dim: dim, maxSeqLen: maxSeqLen, positions: .sinusoidal, threads: 2)
        config.scaleEmbeddings = true
        let layer = try GPTEmbedding(config: config)
        if streamed { layer.streamingThreshold = batch * seq * dim }
        var rng = TestRandom(5)
        let ids = (0..<(batch * seq)).map { _ in Int32(rng.int(97)) }
        // Every batch row is one sequence that starts inside the cache and runs past it.
        let out = try withBuffer(batch * seq * dim, offset: 0) { buf in
            try ids.withUnsafeBufferPointer { idBuf in
                try layer.forward(ids: idBuf, batch: batch, seq: seq, startPosition: 3, into: buf)
            }
            return Array(buf)
        }
        let table = try SinusoidalPositionalEmbedding(maxSeqLen: 1, embedDim: dim).forward(seqLen: seq, startPosition: 3)
        let wte = layer.tokenEmbedding.weight.values
        let s = Float(dim).squareRoot()
        for r in [0, 1, 2, 3, 4, 5, 6, 7, 8, 255, batch * seq - 1] where r < batch * seq {
            let id = Int(ids[r]), t = r % seq
            for c in 0..<dim {
                #expect(out[r * dim + c] == s * wte[id * dim + c] + table[t * dim + c], "row \(r) column \(c)")
            }
        }
    }
}
