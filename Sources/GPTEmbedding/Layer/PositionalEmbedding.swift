/// The learned position table on its own: row `p` of `weight [maxSeqLen, embedDim]` for
/// position `p` (GPT-2's `wpe`).
public final class PositionalEmbedding: @unchecked Sendable {
    /// The table `[maxSeqLen, embedDim]`, initialised N(0, initStd).
    public let weight: ParameterTensor

    /// Rows of the table: the longest sequence it can embed.
    public var maxSeqLen: Int { weight.rows }
    /// Width of a row.
    public var embedDim: Int { weight.cols }

    /// A standalone learned position table, initialised from `seed`.
    public convenience init(maxSeqLen: Int, embedDim: Int, initStd: Float = 0.02, seed: UInt64 = 0) throws(GPTEmbeddingError) {
        var c = GPTEmbeddingConfig()
        c.vocabSize = 1
        c.maxSeqLen = maxSeqLen
        c.embedDim = embedDim
        c.initStd = initStd
        c.seed = seed
        try c.validate()
        try self.init(config: c, pool: WorkerPool(threads: c.resolvedThreads), kernels: Kernels.active())
    }

    init(config c: GPTEmbeddingConfig, pool: WorkerPool, kernels: Kernels) throws(GPTEmbeddingError) {
        weight = try ParameterTensor(name: "position_embedding.weight", rows: c.maxSeqLen, cols: c.embedDim,
                                     dtype: c.weightDType, zeroed: false,  // the fill below writes every element
                                     kernels: kernels)
        CounterRandom.fillNormal(weight.storage, std: c.initStd, key: CounterRandom.streamKey(seed: c.seed, stream: 2),
                                 kernels: kernels, pool: pool)
    }

    /// A position table over values read or mapped from a checkpoint (no initialisation).
    init(weight: ParameterTensor) {
        self.weight = weight
    }

    /// Rows `startPosition ..< startPosition + seqLen`, `[seqLen, embedDim]`.
    public func forward(seqLen: Int, startPosition: Int = 0) throws(GPTEmbeddingError) -> [Float] {
        try check(seqLen: seqLen, start: startPosition)
        let n = seqLen * embedDim
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            if let b = buf.baseAddress { weight.widen(into: b, from: startPosition * embedDim, count: n) }
            count = n
        }
    }

    /// Adds `gradOutput [seqLen, embedDim]` into the gradient rows of those positions.
    public func backward(seqLen: Int, startPosition: Int = 0, gradOutput: [Float]) throws(GPTEmbeddingError) {
        try check(seqLen: seqLen, start: startPosition)
        guard gradOutput.count == seqLen * embedDim else {
            throw GPTEmbeddingError(.invalidArgument, "grad_output has \(gradOutput.count) elements, expected \(seqLen) * \(embedDim)")
        }
        let g = try weight.gradientBuffer().base + startPosition * embedDim
        weight.markUntrackedWrites()
        for i in 0..<gradOutput.count { g[i] += gradOutput[i] }
    }

    private func check(seqLen: Int, start: Int) throws(GPTEmbeddingError) {
        guard seqLen > 0, start >= 0, start < maxSeqLen, seqLen <= maxSeqLen - start else {
            throw GPTEmbeddingError(.outOfRange, "positions \(start) ..< \(start) + \(seqLen) are out of range [0, \(maxSeqLen)) (max_seq_len, learned positions)")
        }
    }
}
