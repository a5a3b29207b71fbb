import GPTEmbedding
import Testing

/// Backward against central finite differences of L = sum(out * g), computed in double
/// from the layer's own float32 forward.
@Suite struct GradientCheckTests {
    struct Case: CustomStringConvertible, Sendable {
        var positions: PositionEncoding
        var scale: Bool
        var layerNorm: Bool
        var paddingIdx: Int?
        var description: String { "\(positions) scale=\(scale) ln=\(layerNorm) pad=\(paddingIdx.map(String.init) ?? "-")" }
    }

    static let cases: [Case] = [
        Case(positions: .learned, scale: false, layerNorm: false, paddingIdx: nil),
        Case(positions: .learned, scale: true, layerNorm: true, paddingIdx: nil),
        Case(positions: .sinusoidal, scale: true, layerNorm: true, paddingIdx: nil),
        Case(positions: .none, scale: false, layerNorm: true, paddingIdx: 3),
        Case(positions: .learned, scale: false, layerNorm: true, paddingIdx: 0),
    ]

    @Test(arguments: cases)
    func backwardMatchesFiniteDifferences(c: Case) throws {
        var config = smallConfig(vocab: 12, dim: 10, maxSeqLen: 8, positions: c.positions, scale: c.scale)
        config.paddingIdx = c.paddingIdx
        let layer = try GPTEmbedding(config: config)
        try layer.layerNormWeight.setValues((0..<10).map { 1 + Float($0) * 0.05 })
        try layer.layerNormBias.setValues((0..<10).map { Float($0) * 0.03 })
        var rng = TestRandom(42)
        let ids: [Int32] = [3, 0, 5, 3, 11, 0, 7, 3]  // repeats and the padding rows
        let g = rng.floats(ids.count * 10)
        _ = try layer.forward(ids: ids, batch: 2, seq: 4, startPosition: 1, training: true, useLayerNorm: c.layerNorm)
        try layer.backward(gradOutput: g, batch: 2, seq: 4)

        func loss() throws -> Double {
            let y = try layer.forward(ids: ids, batch: 2, seq: 4, startPosition: 1, useLayerNorm: c.layerNorm)
            return zip(y, g).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        for tensor in layer.parameters {
            let analytic = tensor.gradient
            let data = tensor.data
            for index in stride(from: 0, to: tensor.count, by: max(1, tensor.count / 23)) {
                let saved = data[index]
                let h: Float = 1e-2
                data[index] = saved + h
                let up = try loss()
                data[index] = saved - h
                let down = try loss()
                data[index] = saved
                let numeric = (up - down) / (2 * Double(h))
                let a = Double(analytic[index])
                let row = index / tensor.cols
                if tensor === layer.tokenEmbedding.weight, row == c.paddingIdx {
                    #expect(a == 0, "padding row \(row) must get no gradient")
                    continue
                }
                #expect(abs(numeric - a) <= 2e-3 + 1e-2 * abs(a), "\(c) \(tensor.name)[\(index)]: backward \(a), finite difference \(numeric)")
            }
        }
    }

    @Test func gradientsAccumulateUntilZeroed() throws {
        let layer = try GPTEmbedding(config: smallConfig())
        let ids: [Int32] = [1, 2, 1, 4]
        var rng = TestRandom(1)
        let g = rng.floats(4 * 16)
        _ = try layer.forward(ids: ids, batch: 1, seq: 4, training: true, useLayerNorm: true)
        try layer.backward(gradOutput: g, batch: 1, seq: 4)
        let once = snapshot(layer)
        try layer.backward(gradOutput: g, batch: 1, seq: 4)
        for (tensor, first) in zip(layer.parameters, once.suffix(layer.parameters.count)) {
            // Not bit-exact: (a + b) + a + b rounds differently from 2 * (a + b) for repeated ids.
            let mismatch = firstMismatch(tensor.gradient, first.map { $0 + $0 }, rtol: 1e-6, atol: 1e-6)
            #expect(mismatch == nil, "\(tensor.name) must double: \(mismatch ?? "")")
        }
        layer.zeroGrad()
        #expect(layer.parameters.allSatisfy { $0.gradient.allSatisfy { $0 == 0 } })
    }

    /// Repeated ids: the token row's gradient is the sum of its tokens' gradients.
    @Test func repeatedIdsAccumulate() throws {
        let layer = try GPTEmbedding(config: smallConfig(dim: 4))
        let g: [Float] = [1, 2, 3, 4, 10, 20, 30, 40, 100, 200, 300, 400]
        _ = try layer.forward(ids: [Int32]([7, 7, 7]), batch: 1, seq: 3, training: true)
        try layer.backward(gradOutput: g, batch: 1, seq: 3)
        let dwte = layer.tokenEmbedding.weight.gradient
        #expect(Array(dwte[28..<32]) == [111, 222, 333, 444])
        let dwpe = layer.positionalEmbedding!.weight.gradient
        #expect(Array(dwpe[0..<12]) == g)
    }
}

@Suite struct TouchedRowTests {
    @Test func zeroGradClearsExactlyWhatBackwardWrote() throws {
        var c = smallConfig(vocab: 400, dim: 16, maxSeqLen: 32, threads: 2)
        c.paddingIdx = 7
        let layer = try GPTEmbedding(config: c)
        let ids: [Int32] = [5, 7, 300, 5, 12, 399]
        var rng = TestRandom(5)
        _ = try layer.forward(ids: ids, batch: 2, seq: 3, training: true, useLayerNorm: true)
        try layer.backward(gradOutput: rng.floats(ids.count * 16), batch: 2, seq: 3)
        #expect(layer.touchedTokenRows == [5, 12, 300, 399], "sorted, unique, no padding row")
        let dwte = layer.tokenEmbedding.weight.gradient
        let nonZeroRows = (0..<400).filter { r in dwte[(r * 16)..<(r * 16 + 16)].contains { $0 != 0 } }
        #expect(nonZeroRows == [5, 12, 300, 399])
        layer.zeroGrad()
        #expect(layer.touchedTokenRows.isEmpty)
        #expect(layer.parameters.allSatisfy { $0.gradient.allSatisfy { $0 == 0 } })
    }

    @Test func writesThroughTheGradientPointerAreClearedToo() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 100, dim: 8))
        let g = try layer.tokenEmbedding.weight.gradientData()
        g[99 * 8 + 3] = 5  // a tied output head adding its gradient
        _ = try layer.forward(ids: [Int32(1)], batch: 1, seq: 1, training: true)
        try layer.backward(gradOutput: [Float](repeating: 1, count: 8), batch: 1, seq: 1)
        #expect(g[99 * 8 + 3] == 5 && g[8] == 1, "backward adds onto what was written")
        layer.zeroGrad()
        #expect(g.allSatisfy { $0 == 0 })
    }
}
