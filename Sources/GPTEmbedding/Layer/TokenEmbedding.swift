/// The token table on its own: `out[i] = s * weight[ids[i]]`, with `s = sqrt(embedDim)`
/// when scaling is on (the seed's `TokenEmbedding`) and 1 otherwise.
///
/// `GPTEmbedding` owns one of these and runs it inside its fused kernels; used alone it
/// has its own forward and backward.
public final class TokenEmbedding: @unchecked Sendable {
    /// The table `[vocabSize, embedDim]`, initialised N(0, initStd); the padding row is zero.
    public let weight: ParameterTensor
    /// The multiplier of every row: `sqrt(embedDim)` or 1.
    public let scale: Float
    /// The row that receives no gradient, if any.
    public let paddingIdx: Int?
    let pool: WorkerPool

    /// Rows of the table.
    public var vocabSize: Int { weight.rows }
    /// Width of a row.
    public var embedDim: Int { weight.cols }

    /// A standalone token embedding, initialised from `seed`.
    public convenience init(vocabSize: Int, embedDim: Int, scaleEmbeddings: Bool = true,
                            paddingIdx: Int? = nil, initStd: Float = 0.02, seed: UInt64 = 0) throws(GPTEmbeddingError) {
        var c = GPTEmbeddingConfig()
        c.vocabSize = vocabSize
        c.embedDim = embedDim
        c.scaleEmbeddings = scaleEmbeddings
        c.paddingIdx = paddingIdx
        c.initStd = initStd
        c.seed = seed
        c.positionEncoding = .none
        c.maxSeqLen = 0
        try c.validate()
        try self.init(config: c, pool: WorkerPool(threads: c.resolvedThreads), kernels: Kernels.active())
    }

    init(config c: GPTEmbeddingConfig, pool: WorkerPool, kernels: Kernels) throws(GPTEmbeddingError) {
        weight = try ParameterTensor(name: "token_embedding.weight", rows: c.vocabSize, cols: c.embedDim,
                                     dtype: c.weightDType, zeroed: false,  // the fill below writes every element
                                     kernels: kernels)
        scale = c.resolvedTokenScale
        paddingIdx = c.paddingIdx
        self.pool = pool
        CounterRandom.fillNormal(weight.storage, std: c.initStd, key: CounterRandom.streamKey(seed: c.seed, stream: 1),
                                 kernels: kernels, pool: pool)
        if let p = paddingIdx {
            let rowBytes = c.embedDim * weight.dtype.byteCount
            (weight.storage.base + p * rowBytes).initializeMemory(as: UInt8.self, repeating: 0, count: rowBytes)
        }
    }

    /// A token table over values read or mapped from a checkpoint (no initialisation).
    init(weight: ParameterTensor, config c: GPTEmbeddingConfig, pool: WorkerPool) {
        self.weight = weight
        scale = c.resolvedTokenScale
        paddingIdx = c.paddingIdx
        self.pool = pool
    }

    /// `[ids.count, embedDim]` rows `s * weight[id]`.
    public func forward<I: EmbeddingIndex>(_ ids: [I]) throws(GPTEmbeddingError) -> [Float] {
        let d = embedDim
        try checkIDs(ids)
        var out = [Float](repeating: 0, count: try Checked.multiply(ids.count, d, "output size"))
        out.withUnsafeMutableBufferPointer { o in
            guard let base = o.baseAddress else { return }
            for (i, id) in ids.enumerated() {
                let row = base + i * d
                weight.widen(into: row, from: Int(id) * d, count: d)
                for c in 0..<d { row[c] *= scale }
            }
        }
        return out
    }

    /// Adds the gradient of ``forward(_:)`` for `gradOutput [ids.count, embedDim]` into
    /// `weight`'s gradient. Repeated ids accumulate; the padding row gets nothing.
    public func backward<I: EmbeddingIndex>(_ ids: [I], gradOutput: [Float]) throws(GPTEmbeddingError) {
        let d = embedDim
        try checkIDs(ids)
        guard gradOutput.count == ids.count * d else {
            throw GPTEmbeddingError(.invalidArgument, "grad_output has \(gradOutput.count) elements, expected \(ids.count) * \(d)")
        }
        let g = try weight.gradientBuffer().base
        weight.markUntrackedWrites()
        for (i, id) in ids.enumerated() where Int(id) != paddingIdx {
            let row = g + Int(id) * d
            for c in 0..<d { row[c] += scale * gradOutput[i * d + c] }
        }
    }

    private func checkIDs<I: EmbeddingIndex>(_ ids: [I]) throws(GPTEmbeddingError) {
        for (i, id) in ids.enumerated() where id < 0 || id >= vocabSize {
            throw GPTEmbeddingError(.outOfRange, "token id \(id) at [\(i)] is out of range [0, \(vocabSize))")
        }
    }
}
