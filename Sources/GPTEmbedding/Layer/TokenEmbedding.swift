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
    /// The vocabulary rows the table holds: all of them, or a shard's (``GPTEmbeddingConfig/vocabShard``).
    /// Ids are global; row `i` of ``weight`` is vocabulary row `heldRows.lowerBound + i`.
    public let heldRows: Range<Int>
    /// Rows of the whole vocabulary (ids are checked against it).
    public let globalVocabSize: Int
    let pool: WorkerPool

    /// Rows of the table (a shard's own rows).
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
        let held = c.heldTokenRows
        weight = try ParameterTensor(name: "token_embedding.weight", rows: held.count, cols: c.embedDim,
                                     dtype: c.weightDType, zeroed: false,  // the fill below writes every element
                                     kernels: kernels)
        scale = c.resolvedTokenScale
        paddingIdx = c.paddingIdx
        heldRows = held
        globalVocabSize = c.vocabSize
        self.pool = pool
        // A shard draws the stream elements of its own rows: its values are exactly those
        // rows of the whole table made with the same seed.
        CounterRandom.fillNormal(weight.storage, std: c.initStd, key: CounterRandom.streamKey(seed: c.seed, stream: 1),
                                 firstElement: held.lowerBound * c.embedDim, kernels: kernels, pool: pool)
        if let p = paddingIdx, held.contains(p) {
            let rowBytes = c.embedDim * weight.dtype.byteCount
            (weight.storage.base + (p - held.lowerBound) * rowBytes).initializeMemory(as: UInt8.self, repeating: 0, count: rowBytes)
        }
    }

    /// A token table over values read or mapped from a checkpoint (no initialisation).
    init(weight: ParameterTensor, config c: GPTEmbeddingConfig, pool: WorkerPool) {
        self.weight = weight
        scale = c.resolvedTokenScale
        paddingIdx = c.paddingIdx
        heldRows = c.heldTokenRows
        globalVocabSize = c.vocabSize
        self.pool = pool
    }

    /// `[ids.count, embedDim]` rows `s * weight[id]`. A shard gives -0.0 rows for ids it
    /// does not hold (the additive identity: a sum over the shards is the whole table's row).
    public func forward<I: EmbeddingIndex>(_ ids: [I]) throws(GPTEmbeddingError) -> [Float] {
        let d = embedDim
        try checkIDs(ids)
        var out = [Float](repeating: -0.0, count: try Checked.multiply(ids.count, d, "output size"))
        out.withUnsafeMutableBufferPointer { o in
            guard let base = o.baseAddress else { return }
            for (i, id) in ids.enumerated() where heldRows.contains(Int(id)) {
                let row = base + i * d
                weight.widen(into: row, from: (Int(id) - heldRows.lowerBound) * d, count: d)
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
        for (i, id) in ids.enumerated() where Int(id) != paddingIdx && heldRows.contains(Int(id)) {
            let row = g + (Int(id) - heldRows.lowerBound) * d
            for c in 0..<d { row[c] += scale * gradOutput[i * d + c] }
        }
    }

    private func checkIDs<I: EmbeddingIndex>(_ ids: [I]) throws(GPTEmbeddingError) {
        for (i, id) in ids.enumerated() where id < 0 || id >= globalVocabSize {
            throw GPTEmbeddingError(.outOfRange, "token id \(id) at [\(i)] is out of range [0, \(globalVocabSize))")
        }
    }
}
