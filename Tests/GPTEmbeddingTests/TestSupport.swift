import GPTEmbedding

/// A seeded generator for test inputs (SplitMix64).
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in uniform() } }
}

/// A small configuration for property tests.
func smallConfig(vocab: Int = 50, dim: Int = 16, maxSeqLen: Int = 32, dropout: Float = 0,
                 positions: PositionEncoding = .learned, scale: Bool = false, threads: Int = 1) -> GPTEmbeddingConfig {
    var c = GPTEmbeddingConfig()
    c.vocabSize = vocab
    c.embedDim = dim
    c.maxSeqLen = maxSeqLen
    c.dropout = dropout
    c.positionEncoding = positions
    c.scaleEmbeddings = scale
    c.numThreads = threads
    c.initStd = 0.5
    return c
}

/// Everything the layer owns that an error must leave unchanged.
func snapshot(_ layer: GPTEmbedding) -> [[Float]] {
    layer.parameters.map(\.values) + layer.parameters.map(\.gradient)
}
