import GPTEmbedding
import Testing

/// IEEE special values flow through as arithmetic says; nothing traps.
@Suite struct NumericalEdgeTests {
    @Test func nanAndInfInWeightsPropagate() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 4, dim: 8, maxSeqLen: 4))
        var w = layer.tokenEmbedding.weight.values
        w[8 + 2] = .nan        // token 1, channel 2
        w[16 + 5] = .infinity  // token 2, channel 5
        try layer.tokenEmbedding.weight.setValues(w)
        let y = try layer.forward(ids: [Int32(1), 2, 3], batch: 1, seq: 3)
        #expect(y[2].isNaN)
        #expect(y[8 + 5] == .infinity)
        #expect(y[16..<24].allSatisfy { $0.isFinite }, "other tokens are untouched")
        // Through the layer norm a NaN or an infinity poisons its own row only.
        let n = try layer.forward(ids: [Int32(1), 3], batch: 1, seq: 2, useLayerNorm: true)
        #expect(n[0..<8].allSatisfy { $0.isNaN })
        #expect(n[8..<16].allSatisfy { $0.isFinite })
    }

    @Test func nanInGradOutputPropagatesToTheTouchedRowsOnly() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 4, dim: 8, maxSeqLen: 4))
        _ = try layer.forward(ids: [Int32(1), 2], batch: 1, seq: 2, training: true)
        var g = [Float](repeating: 1, count: 16)
        g[3] = .nan
        g[9] = -.infinity
        try layer.backward(gradOutput: g, batch: 1, seq: 2)
        let dwte = layer.tokenEmbedding.weight.gradient
        #expect(dwte[8 + 3].isNaN && dwte[16 + 1] == -.infinity)
        #expect(dwte[0..<8].allSatisfy { $0 == 0 } && dwte[24..<32].allSatisfy { $0 == 0 })
    }

    @Test func layerNormOfAConstantRowIsFinite() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 3, dim: 16, maxSeqLen: 2, positions: .none))
        try layer.tokenEmbedding.weight.setValues([Float](repeating: 3.25, count: 48))
        try layer.layerNormBias.setValues((0..<16).map { Float($0) })
        let y = try layer.forward(ids: [Int32(0)], batch: 1, seq: 1, training: true, useLayerNorm: true)
        #expect(y == (0..<16).map { Float($0) }, "x - mean is 0, so the output is the bias")
        try layer.backward(gradOutput: [Float](repeating: 1, count: 16), batch: 1, seq: 1)
        #expect(layer.parameters.allSatisfy { $0.gradient.allSatisfy { $0.isFinite } })
    }

    @Test func hugeShapesAreRefusedCleanly() throws {
        var c = GPTEmbeddingConfig()
        c.vocabSize = 256_000
        c.embedDim = 12_288
        #expect(try c.parameterCounts().tokenEmbedding == 3_145_728_000)
        c.vocabSize = Int(Int32.max)
        c.embedDim = Int(Int32.max)
        #expect(throws: GPTEmbeddingError.self) { try c.validate() }  // 2^62 floats do not fit in bytes
        c.vocabSize = 1 << 30
        c.embedDim = 1 << 12  // 16 TiB: valid arithmetic, more memory than any machine here
        do {
            _ = try GPTEmbedding(config: c)
            Issue.record("a 16 TiB layer was created")
        } catch {
            #expect(error.code == .outOfMemory)
        }
    }
}
