import GPTEmbedding
import Testing

@Suite struct DropoutTests {
    @Test(arguments: [Float(0.1), 0.5])
    func keptFractionAndMeanArePreserved(p: Float) throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 1000, dim: 256, maxSeqLen: 256, dropout: p, threads: 2))
        var rng = TestRandom(3)
        let ids = (0..<(8 * 256)).map { _ in Int32(rng.int(1000)) }
        let eval = try layer.forward(ids: ids, batch: 8, seq: 256)
        let train = try layer.forward(ids: ids, batch: 8, seq: 256, training: true)
        let n = Double(train.count)
        let kept = Double(train.filter { $0 != 0 }.count)
        let sigma = (n * Double(p) * Double(1 - p)).squareRoot()
        #expect(abs(kept - n * Double(1 - p)) < 5 * sigma, "kept \(kept) of \(n)")
        // Kept values are exactly y / (1 - p).
        let scale = 1 / (1 - p)
        for i in train.indices where train[i] != 0 { #expect(train[i] == eval[i] * scale); break }
        #expect(zip(train, eval).allSatisfy { $0 == 0 || $0 == $1 * scale })
        // The mean is preserved.
        let meanTrain = train.reduce(0.0) { $0 + Double($1) } / n
        let meanEval = eval.reduce(0.0) { $0 + Double($1) } / n
        let sd = (eval.reduce(0.0) { $0 + Double($1) * Double($1) } / n).squareRoot()
        #expect(abs(meanTrain - meanEval) < 5 * sd / n.squareRoot() * 3)
    }

    /// Backward applies exactly the forward's mask: with unique ids and no layer norm,
    /// dwte[id] is dout * scale where the output was kept and 0 where it was dropped.
    @Test(arguments: [false, true])
    func backwardUsesTheForwardMask(layerNorm: Bool) throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 64, dim: 32, dropout: 0.3, threads: 2))
        let ids = (0..<32).map { Int32($0) }
        _ = try layer.forward(ids: ids, batch: 1, seq: 32, training: true)   // advance the step once
        let out = try layer.forward(ids: ids, batch: 1, seq: 32, training: true, useLayerNorm: layerNorm)
        let g = [Float](repeating: 1, count: out.count)
        try layer.backward(gradOutput: g, batch: 1, seq: 32)
        let dwte = layer.tokenEmbedding.weight.gradient
        if !layerNorm {
            for i in out.indices {
                #expect((out[i] == 0) == (dwte[i] == 0), "element \(i)")
                if out[i] != 0 { #expect(dwte[i] == 1 / Float(0.7)) }
            }
        } else {
            // d beta = sum of dy = sum over kept elements of 1 / (1 - p).
            let dbeta = layer.layerNormBias.gradient
            for c in 0..<32 {
                let kept = (0..<32).filter { out[$0 * 32 + c] != 0 }.count
                #expect(abs(dbeta[c] - Float(kept) / 0.7) < 1e-4)
            }
        }
    }

    @Test func evalHasNoDropoutAndSeedsReproduceMasks() throws {
        let c = smallConfig(vocab: 100, dim: 64, dropout: 0.5)
        let a = try GPTEmbedding(config: c), b = try GPTEmbedding(config: c)
        let ids = (0..<16).map { Int32($0 * 3) }
        #expect(try a.forward(ids: ids, batch: 2, seq: 8) == a.forward(ids: ids, batch: 2, seq: 8))
        let a1 = try a.forward(ids: ids, batch: 2, seq: 8, training: true)
        let a2 = try a.forward(ids: ids, batch: 2, seq: 8, training: true)
        let b1 = try b.forward(ids: ids, batch: 2, seq: 8, training: true)
        #expect(a1 == b1, "same seed, same step: same mask")
        #expect(a1 != a2, "the next step draws a new mask")
    }

    @Test func dropoutOneZeroesEverything() throws {
        let layer = try GPTEmbedding(config: smallConfig(dropout: 1))
        let y = try layer.forward(ids: [Int32](repeating: 2, count: 4), batch: 1, seq: 4, training: true)
        #expect(y.allSatisfy { $0 == 0 })
    }
}

@Suite struct ReproducibilityTests {
    @Test func sameSeedSameWeightsAnyThreadCount() throws {
        var c = smallConfig(vocab: 5000, dim: 64, maxSeqLen: 64, threads: 1)
        c.seed = 1234
        let a = try GPTEmbedding(config: c)
        c.numThreads = 2
        let b = try GPTEmbedding(config: c)
        #expect(a.tokenEmbedding.weight.values == b.tokenEmbedding.weight.values)
        #expect(a.positionalEmbedding!.weight.values == b.positionalEmbedding!.weight.values)
        c.seed = 1235
        let other = try GPTEmbedding(config: c)
        #expect(a.tokenEmbedding.weight.values != other.tokenEmbedding.weight.values)
    }

    @Test func initStatistics() throws {
        var c = smallConfig(vocab: 2000, dim: 128)
        c.initStd = 0.02
        c.paddingIdx = 5
        let layer = try GPTEmbedding(config: c)
        let w = layer.tokenEmbedding.weight.values
        let n = Double(w.count)
        let mean = w.reduce(0.0) { $0 + Double($1) } / n
        let std = (w.reduce(0.0) { $0 + Double($1) * Double($1) } / n - mean * mean).squareRoot()
        #expect(abs(mean) < 5 * 0.02 / n.squareRoot())
        #expect(abs(std - 0.02) < 0.02 * 0.01)
        #expect(w[(5 * 128)..<(6 * 128)].allSatisfy { $0 == 0 }, "the padding row starts at zero")
        #expect(layer.layerNormWeight.values.allSatisfy { $0 == 1 })
        #expect(layer.layerNormBias.values.allSatisfy { $0 == 0 })
    }

    /// The worst case for a parallel scatter: every token the same. Bit-identical anyway.
    @Test(arguments: [false, true])
    func bitIdenticalAcrossThreadsOnLargeBatches(allSame: Bool) throws {
        var results: [[[Float]]] = []
        var rng = TestRandom(9)
        let ids = (0..<(4 * 512)).map { _ in allSame ? Int32(17) : Int32(rng.int(3000)) }
        let g = rng.floats(ids.count * 256)
        for threads in [1, 2, 4] {
            let layer = try GPTEmbedding(config: smallConfig(vocab: 3000, dim: 256, maxSeqLen: 512, dropout: 0.1, scale: true, threads: threads))
            let out = try layer.forward(ids: ids, batch: 4, seq: 512, training: true, useLayerNorm: true)
            try layer.backward(gradOutput: g, batch: 4, seq: 512)
            let out2 = try layer.forward(ids: ids, batch: 4, seq: 512, training: true)
            try layer.backward(gradOutput: g, batch: 4, seq: 512)
            results.append([out, out2] + layer.parameters.map(\.gradient))
        }
        #expect(results[0] == results[1])
        #expect(results[0] == results[2])
    }
}

@Suite struct ConfigurationTests {
    @Test func defaultsAreTheSeeds() {
        let c = GPTEmbeddingConfig()
        #expect(c.vocabSize == 50257 && c.embedDim == 768 && c.maxSeqLen == 1024)
        #expect(c.dropout == 0.1 && !c.useSinusoidal && c.scaleEmbeddings)
        #expect(c.layerNormEps == 1e-5 && c.initStd == 0.02 && c.paddingIdx == nil)
    }

    @Test func presetParameterCounts() throws {
        let expected = [("gpt2", 768, 39_383_808), ("gpt2-medium", 1024, 52_511_744),
                        ("gpt2-large", 1280, 65_639_680), ("gpt2-xl", 1600, 82_049_600)]
        for (name, d, tables) in expected {
            let c = try #require(GPTEmbeddingConfig.preset(named: name))
            #expect(c.embedDim == d && !c.scaleEmbeddings && c.positionEncoding == .learned && c.dropout == 0.1)
            let n = try c.parameterCounts()
            #expect(n.embeddingTables == tables, "\(name)")
            #expect(n.tokenEmbedding == 50257 * d && n.positionEmbedding == 1024 * d && n.total == tables + 2 * d)
        }
        #expect(GPTEmbeddingConfig.preset(named: "gpt2-small") == .gpt2Small)
        #expect(GPTEmbeddingConfig.preset(named: "gpt3") == nil)
    }

    @Test func invalidFieldsAreNamed() {
        func message(_ edit: (inout GPTEmbeddingConfig) -> Void) -> String? {
            var c = GPTEmbeddingConfig()
            edit(&c)
            do { try c.validate(); return nil } catch { return error.message }
        }
        #expect(message { $0.vocabSize = 0 }?.contains("vocab_size = 0") == true)
        #expect(message { $0.embedDim = -3 }?.contains("embed_dim = -3") == true)
        #expect(message { $0.maxSeqLen = 0 }?.contains("max_seq_len = 0") == true)
        #expect(message { $0.dropout = 1.5 }?.contains("dropout = 1.5") == true)
        #expect(message { $0.dropout = .nan }?.contains("dropout = nan") == true)
        #expect(message { $0.layerNormEps = 0 }?.contains("layer_norm_eps") == true)
        #expect(message { $0.initStd = -1 }?.contains("init_std = -1") == true)
        #expect(message { $0.paddingIdx = 50257 }?.contains("padding_idx = 50257") == true)
        #expect(message { $0.numThreads = -1 }?.contains("num_threads = -1") == true)
        #expect(message { $0.vocabSize = 1 << 40; $0.embedDim = 1 << 30 } != nil)
        #expect(message { _ in } == nil)
    }
}

@Suite struct ErrorTests {
    /// Every rejected call leaves the output, the weights and the gradients unchanged.
    @Test func rejectedCallsChangeNothing() throws {
        let layer = try GPTEmbedding(config: smallConfig(vocab: 10, dim: 8, maxSeqLen: 4))
        _ = try layer.forward(ids: [Int32]([1, 2]), batch: 1, seq: 2, training: true)
        try layer.backward(gradOutput: [Float](repeating: 1, count: 16), batch: 1, seq: 2)
        let before = snapshot(layer)
        var out = [Float](repeating: 42, count: 64)

        func expectError(_ code: GPTEmbeddingError.Code, _ text: String, _ body: (UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) -> Void) {
            out.withUnsafeMutableBufferPointer { o in
                do throws(GPTEmbeddingError) { try body(o); Issue.record("expected \(code)") } catch {
                    #expect(error.code == code)
                    #expect(error.message.contains(text), "\(error.message)")
                }
            }
            #expect(out.allSatisfy { $0 == 42 })
            #expect(snapshot(layer) == before)
        }
        let ids: [Int32] = [1, 2, 3, 10, 4, 5]
        expectError(.outOfRange, "token id 10 at [1, 0] is out of range [0, 10)") { o throws(GPTEmbeddingError) in
            try ids.withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in try layer.forward(ids: i, batch: 2, seq: 3, into: o) }
        }
        expectError(.outOfRange, "token id -1 at [0, 1]") { o throws(GPTEmbeddingError) in
            try [Int64(0), -1].withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in try layer.forward(ids: i, batch: 1, seq: 2, into: o) }
        }
        expectError(.outOfRange, "position 4 at [0, 2] (start_position 2 + 2) is out of range [0, 4)") { o throws(GPTEmbeddingError) in
            try [Int32](repeating: 1, count: 3).withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in
                try layer.forward(ids: i, batch: 1, seq: 3, startPosition: 2, training: true, into: o)
            }
        }
        expectError(.outOfRange, "position 7 at [1, 0]") { o throws(GPTEmbeddingError) in
            try [Int32](repeating: 1, count: 4).withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in
                try [Int32]([0, 1, 7, 0]).withUnsafeBufferPointer { (p) throws(GPTEmbeddingError) in
                    try layer.forward(ids: i, batch: 2, seq: 2, positions: p, into: o)
                }
            }
        }
        expectError(.bufferTooSmall, "holds 8 floats, needs 16") { o throws(GPTEmbeddingError) in
            try [Int32]([1, 1]).withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in
                try layer.forward(ids: i, batch: 1, seq: 2, into: UnsafeMutableBufferPointer(rebasing: o[0..<8]))
            }
        }
        expectError(.invalidArgument, "batch must be >= 0, got -1") { o throws(GPTEmbeddingError) in
            try [Int32]([1]).withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in try layer.forward(ids: i.baseAddress!, batch: -1, seq: 1, into: o.baseAddress!, capacity: 64) }
        }
        expectError(.sizeOverflow, "overflows") { o throws(GPTEmbeddingError) in
            try [Int32]([1]).withUnsafeBufferPointer { (i) throws(GPTEmbeddingError) in try layer.forward(ids: i.baseAddress!, batch: 1 << 40, seq: 1 << 40, into: o.baseAddress!, capacity: 64) }
        }
        expectError(.invalidArgument, "differs from the training forward's [1, 2, 8]") { _ throws(GPTEmbeddingError) in
            try layer.backward(gradOutput: [Float](repeating: 1, count: 24), batch: 1, seq: 3)
        }
        expectError(.invalidArgument, "this layer has no learned position table") { _ throws(GPTEmbeddingError) in
            let sin = try GPTEmbedding(config: smallConfig(positions: .sinusoidal))
            _ = try sin.tensor(.positionEmbedding)
        }
    }

    @Test func backwardWithoutTrainingForwardIsAnError() throws {
        let layer = try GPTEmbedding(config: smallConfig())
        _ = try layer.forward(ids: [Int32]([1]), batch: 1, seq: 1)
        #expect(throws: GPTEmbeddingError.self) { try layer.backward(gradOutput: [Float](repeating: 0, count: 16), batch: 1, seq: 1) }
        #expect(!layer.hasTrainingState)
    }

    @Test func sinusoidalPositionsMayExceedMaxSeqLenLearnedMayNot() throws {
        let sin = try GPTEmbedding(config: smallConfig(maxSeqLen: 4, positions: .sinusoidal))
        let y = try sin.forward(ids: [Int32]([1, 2, 3]), batch: 1, seq: 3, startPosition: 100)
        #expect(y.count == 48 && y.allSatisfy(\.isFinite))
        let learned = try GPTEmbedding(config: smallConfig(maxSeqLen: 4))
        #expect(throws: GPTEmbeddingError.self) { _ = try learned.forward(ids: [Int32]([1, 2, 3]), batch: 1, seq: 3, startPosition: 2) }
    }
}

@Suite struct ComponentTests {
    /// Closed-form values (Vaswani et al.; the same numbers burn's tests take from PyTorch).
    @Test func sinusoidalClosedForm() throws {
        let table = try SinusoidalPositionalEmbedding(maxSeqLen: 4, embedDim: 6).forward(seqLen: 2)
        let expected: [Float] = [0, 1, 0, 1, 0, 1, 0.84147098, 0.54030231, 0.04639922, 0.99892298, 0.00215443, 0.99999768]
        #expect(firstMismatch(table, expected) == nil)
        // Odd width: the last channel is a lone sin channel with exponent (D - 1) / D.
        let odd = try SinusoidalPositionalEmbedding(maxSeqLen: 4, embedDim: 3).forward(seqLen: 1, startPosition: 5)
        #expect(abs(odd[0] - Float(sinValue(5))) < 1e-6)
        #expect(abs(odd[1] - Float(cosValue(5))) < 1e-6)
        #expect(abs(odd[2] - Float(sinValue(5 / 464.158883361277889))) < 1e-6)  // 10000^(2/3)
    }

    private func sinValue(_ x: Double) -> Double { taylorSin(x) }
    private func cosValue(_ x: Double) -> Double { taylorSin(x + Double.pi / 2) }
    private func taylorSin(_ x: Double) -> Double {
        // Range-reduce and sum the series: an independent check of the library's sin/cos.
        var y = x.truncatingRemainder(dividingBy: 2 * Double.pi)
        if y > Double.pi { y -= 2 * Double.pi }
        var term = y, sum = y
        for n in 1..<30 { term *= -y * y / Double((2 * n) * (2 * n + 1)); sum += term }
        return sum
    }

    @Test func tokenAndPositionalEmbeddingsAlone() throws {
        let tok = try TokenEmbedding(vocabSize: 10, embedDim: 4, scaleEmbeddings: true, seed: 3)
        let y = try tok.forward([Int32(2), 2, 5])
        let w = tok.weight.values
        #expect(Array(y[0..<4]) == Array(w[8..<12]).map { $0 * 2 })
        try tok.backward([Int32(2), 2, 5], gradOutput: [Float](repeating: 1, count: 12))
        #expect(Array(tok.weight.gradient[8..<12]) == [4, 4, 4, 4])

        let pos = try PositionalEmbedding(maxSeqLen: 8, embedDim: 4)
        let p = try pos.forward(seqLen: 3, startPosition: 2)
        #expect(p == Array(pos.weight.values[8..<20]))
        #expect(throws: GPTEmbeddingError.self) { _ = try pos.forward(seqLen: 3, startPosition: 6) }

        // The whole layer equals the sum of its parts.
        var c = smallConfig(vocab: 10, dim: 4, maxSeqLen: 8, scale: true)
        c.seed = 3
        let layer = try GPTEmbedding(config: c)
        let full = try layer.forward(ids: [Int32(2), 2, 5], batch: 1, seq: 3, startPosition: 2)
        let parts = zip(try layer.tokenEmbedding.forward([Int32(2), 2, 5]), try layer.positionalEmbedding!.forward(seqLen: 3, startPosition: 2)).map { $0 + $1 }
        #expect(full == parts)
    }

    @Test func callAsFunctionTakesRows() throws {
        let layer = try GPTEmbedding(config: smallConfig())
        let y = try layer([[1, 2, 3], [4, 5, 6]])
        #expect(y == (try layer.forward(ids: [1, 2, 3, 4, 5, 6], batch: 2, seq: 3)))
        #expect(throws: GPTEmbeddingError.self) { _ = try layer([[1, 2], [3]]) }
    }
}
