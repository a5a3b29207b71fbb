import CKernelDispatch

/// Phase one of a two-phase forward: the validated tokens and the call's switches, kept
/// until phase two.
struct PendingForward {
    let tokens: TokenBatch
    let training: Bool
    let normalize: Bool
}

/// The summed token part of a two-phase forward `[R, D]`, seen as a float32 table whose
/// row r is token r (ids 0 ..< R): phase two and the layer norm backward read it through
/// the kernels' ordinary gather.
struct SummedTokens {
    let rows: TableStorage
    /// The tokens of the call with ids `0 ..< R` (positions as the call's).
    let tokens: TokenBatch
    var byteCount: Int { rows.byteCount + tokens.byteCount }
}

/// Vocabulary parallelism (Megatron-LM's `VocabParallelEmbedding`): a layer holding the
/// rows ``GPTEmbeddingConfig/vocabShard`` of the token table runs its forward in two phases
/// with the caller's all-reduce (sum) between them:
///
/// ```swift
/// try layer.forwardPartial(ids: ids, batch: b, seq: t, training: true, into: x, capacity: n)
/// allReduceSum(x, n)                 // MPI_Allreduce, torch.distributed, NCCL, gloo ...
/// try layer.forwardFinish(batch: b, seq: t, summed: x, capacity: n)
/// try layer.backward(gradOutput: dy, batch: b, seq: t)   // dy replicated on every rank
/// ```
///
/// Phase one writes the token part `s * wte[id]` of the tokens whose ids the shard holds and
/// -0.0 for the others. -0.0 is the additive identity of IEEE arithmetic (`-0 + x == x` for
/// every x, zeros of either sign included), and every token has exactly one owner, so the
/// all-reduce's sum is exact in any order: phase two (positions, layer norm, dropout) then
/// gives bit for bit what a layer holding the whole table gives in one call. The position
/// table and the layer norm are replicated, and their gradients come out identical on every
/// rank; the token gradient of each rank holds its own rows.
extension GPTEmbedding {
    /// Phase one of a two-phase forward: `partial [batch, seq, embedDim]` receives, for each
    /// token, its scaled token row when this layer holds the id, else -0.0 (see the
    /// extension's notes). The switches of the whole forward (`training`, `useLayerNorm`)
    /// are given here; ids and positions are validated here (ids against the whole
    /// vocabulary) and kept until ``forwardFinish(batch:seq:summed:capacity:)``, which
    /// must follow with the same shape after the caller has summed the partials of every
    /// rank. Works on any layer: with the whole vocabulary the sum is the partial itself.
    ///
    /// - Throws: as ``forward(ids:batch:seq:positions:startPosition:training:useLayerNorm:into:capacity:)``,
    ///   before anything is written or kept; a phase one still pending is then kept.
    public func forwardPartial<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>? = nil,
        startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil,
        into partial: UnsafeMutablePointer<Float>, capacity: Int
    ) throws(GPTEmbeddingError) {
        let need = try Checked.multiply(TokenBatch.count(batch: batch, seq: seq), embedDim, "batch * seq * embed_dim")
        try ParameterTensor.checkCapacity(capacity, need, "the partial output", unit: "floats")
        // Copied: phase two runs after this call returns.
        let tokens = try TokenBatch.make(
            ids: ids, batch: batch, seq: seq, positions: positions, start: startPosition,
            vocabSize: config.vocabSize, positionLimit: positionLimit, positionRule: positionRule,
            positionOffset: config.positionOffset, copy: true)
        // An empty call writes nothing; its phase two finishes an empty forward.
        if tokens.count == 0 {
            pending = PendingForward(tokens: tokens, training: training, normalize: useLayerNorm ?? config.layerNormByDefault)
            return
        }
        let out = UnsafeMutableRawPointer(partial)
        let storeMode = forwardStoreMode(out, count: need, dim: embedDim, threshold: streamingThreshold)
        let rowScratch = storeMode != Int32(GPTE_STORE_CACHED) || tables.decodesRows
            ? try FloatBuffer(count: forwardScratchCount(dim: embedDim, pool: pool, decodesRows: tables.decodesRows),
                              zeroed: false, what: "forward scratch")
            : nil
        // The token part alone: no positions, no layer norm, no dropout (phase two's).
        let t = tables
        let tokenOnly = EmbeddingTables(dim: t.dim, wte: t.wte, scale: t.scale, paddingIdx: t.paddingIdx, positions: .none,
                                        gamma: t.gamma, beta: t.beta, eps: t.eps, shard: t.shard)
        embeddingForward(kernels: kernels, tables: tokenOnly, tokens: tokens, normalize: false, mask: nil,
                         saveMean: nil, saveRstd: nil, out: out, dtype: .float32, storeMode: storeMode,
                         rowScratch: rowScratch?.base, pool: pool)
        pending = PendingForward(tokens: tokens, training: training, normalize: useLayerNorm ?? config.layerNormByDefault)
    }

    /// Phase two of a two-phase forward, in place: `inout [batch, seq, embedDim]` holds the
    /// sum over the ranks of their phase-one partials; this adds the positions and applies
    /// the layer norm and dropout of the phase-one call, exactly as a single forward does,
    /// and (training) keeps what ``GPTEmbedding/backward(gradOutput:batch:seq:)-(UnsafePointer<Float>,_,_)`` needs: the ids and, with
    /// the layer norm, the summed token part (`4 * embedDim` bytes per token, since a shard
    /// cannot rebuild it from its rows). `batch` and `seq` must be phase one's.
    ///
    /// - Throws: `badState` without a pending phase one; `invalidArgument` for another
    ///   shape; `bufferTooSmall`; `outOfMemory`. Nothing is written or changed on error (the
    ///   phase one stays pending).
    public func forwardFinish(batch: Int, seq: Int, summed x: UnsafeMutablePointer<Float>, capacity: Int) throws(GPTEmbeddingError) {
        guard let p = pending else {
            throw GPTEmbeddingError(.badState, "no phase one to finish: call forward_partial first (each forward_finish consumes one)")
        }
        guard batch == p.tokens.batch, seq == p.tokens.seq else {
            throw GPTEmbeddingError(.invalidArgument, "shape [\(batch), \(seq), \(embedDim)] differs from phase one's [\(p.tokens.batch), \(p.tokens.seq), \(embedDim)]")
        }
        let n = p.tokens.count, d = embedDim
        let need = try Checked.multiply(n, d, "batch * seq * embed_dim")
        try ParameterTensor.checkCapacity(capacity, need, "the summed partials", unit: "floats")
        // An empty forward writes nothing; a training one keeps an empty state, as the
        // single call does.
        if n == 0 {
            pending = nil
            if p.training {
                saved = TrainingState(tokens: p.tokens, stats: SavedStatistics(mean: nil, rstd: nil), mask: nil)
                trainingStep &+= 1
            }
            return
        }
        // Allocate everything first, so that a failure leaves the buffer and the layer as
        // they were. Only a training call with the layer norm keeps the summed part (for
        // the backward); the others read and write x in place and keep nothing.
        let keeps = p.training && p.normalize
        // A training call replaces the saved state, so the summed part an earlier training
        // call kept is free: reusing it spares the kernel clearing 4 * D bytes per token of
        // fresh pages on every step (a quarter of phase two's time at 8 x 1024).
        let previous = p.training ? saved?.summed : nil
        var rows: TableStorage? = nil
        if keeps {
            if let old = previous?.rows, old.count == need, old.dtype == .float32, old.mapping == nil {
                rows = old
            } else {
                rows = try TableStorage(count: need, dtype: .float32, zeroed: false, what: "summed token part")
            }
        }
        let identity: Int32Buffer
        if let old = previous?.tokens.idStorage, old.count == n {
            identity = old
        } else {
            identity = try Int32Buffer(count: n, what: "row ids of the summed token part")
        }
        let rowScratch = try FloatBuffer(count: forwardScratchCount(dim: d, pool: pool), zeroed: false, what: "forward scratch")
        var stats = SavedStatistics(mean: nil, rstd: nil)
        var mask: DropoutMask? = nil
        if p.training {
            if p.normalize {
                stats = SavedStatistics(mean: try FloatBuffer(count: n, what: "layer norm mean"),
                                        rstd: try FloatBuffer(count: n, what: "layer norm rstd"))
            }
            if config.dropout > 0 { mask = DropoutMask(probability: config.dropout, seed: config.seed, step: trainingStep) }
        }
        // Nothing throws from here on: a reused buffer is overwritten only now.
        for r in 0..<n { identity.base[r] = Int32(truncatingIfNeeded: r) }
        let tokens = TokenBatch(batch: p.tokens.batch, seq: p.tokens.seq, ids: identity.base, positions: p.tokens.positions,
                                idStorage: identity, positionStorage: p.tokens.positionStorage, start: p.tokens.start)
        embeddingForwardSummed(kernels: kernels, tables: tables, tokens: tokens, normalize: p.normalize, mask: mask,
                               saveMean: stats.mean?.base, saveRstd: stats.rstd?.base, x: x,
                               keep: rows.map { $0.base.assumingMemoryBound(to: Float.self) }, rowScratch: rowScratch.base,
                               pool: pool)
        let out = UnsafeMutableRawPointer(x)
        // Dropout 1 keeps nothing, not even inf * 0 = nan, as the single call.
        if mask?.dropAll == true { out.initializeMemory(as: UInt8.self, repeating: 0, count: need * 4) }
        pending = nil
        if p.training {
            // The layer norm backward recomputes x from the summed part; without the layer
            // norm the backward needs the ids and the mask only.
            saved = TrainingState(tokens: p.tokens, stats: stats, mask: mask, summed: rows.map { SummedTokens(rows: $0, tokens: tokens) })
            trainingStep &+= 1
        }
    }

    /// Phase one from arrays: returns the partial `[batch * seq * embedDim]`.
    public func forwardPartial<I: EmbeddingIndex>(
        ids: [I], batch: Int, seq: Int, positions: [I]? = nil, startPosition: Int = 0,
        training: Bool = false, useLayerNorm: Bool? = nil
    ) throws(GPTEmbeddingError) -> [Float] {
        let n = try Checked.multiply(batch, seq, "batch * seq")
        guard ids.count == n else {
            throw GPTEmbeddingError(.invalidArgument, "ids has \(ids.count) elements, expected batch * seq = \(n)")
        }
        if let positions, positions.count != n {
            throw GPTEmbeddingError(.invalidArgument, "positions has \(positions.count) elements, expected batch * seq = \(n)")
        }
        let count = try Checked.multiply(n, embedDim, "output size")
        var out = [Float](repeating: 0, count: count)
        try ids.withUnsafeBufferPointer { (idBuf) throws(GPTEmbeddingError) in
            try out.withUnsafeMutableBufferPointer { (o) throws(GPTEmbeddingError) in
                // Empty arrays may have no base address (an empty call reads and writes nothing).
                let idBase = idBuf.baseAddress ?? UnsafePointer(TokenBatch.placeholder())
                let outBase = o.baseAddress ?? TokenBatch.placeholder()
                if let positions {
                    try positions.withUnsafeBufferPointer { (pb) throws(GPTEmbeddingError) in
                        try forwardPartial(ids: idBase, batch: batch, seq: seq,
                                           positions: pb.baseAddress ?? UnsafePointer(TokenBatch.placeholder()),
                                           training: training, useLayerNorm: useLayerNorm, into: outBase, capacity: count)
                    }
                } else {
                    try forwardPartial(ids: idBase, batch: batch, seq: seq, startPosition: startPosition,
                                       training: training, useLayerNorm: useLayerNorm, into: outBase, capacity: count)
                }
            }
        }
        return out
    }

    /// Phase two on an array holding the summed partials; `summed.count` must be
    /// `batch * seq * embedDim` of phase one.
    public func forwardFinish(batch: Int, seq: Int, summed: inout [Float]) throws(GPTEmbeddingError) {
        let count = summed.count
        try summed.withUnsafeMutableBufferPointer { (b) throws(GPTEmbeddingError) in
            guard let base = b.baseAddress ?? (count == 0 ? TokenBatch.placeholder() : nil) else {
                throw GPTEmbeddingError(.bufferTooSmall, "the summed partials are empty")
            }
            try forwardFinish(batch: batch, seq: seq, summed: base, capacity: count)
        }
    }

    /// Whether a phase one waits for ``forwardFinish(batch:seq:summed:capacity:)``.
    public var hasPendingForward: Bool { pending != nil }
}
