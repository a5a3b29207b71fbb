import CKernelDispatch

/// Calls with explicit state (``EmbeddingCall``): a forward that keeps nothing in the layer
/// and a backward that recomputes what it needs from the call, for autograd engines that
/// run several forwards before their backwards, a backward twice or never, or a forward
/// again inside backward (activation checkpointing).
///
/// ```swift
/// var call = EmbeddingCall(ids: ids, batch: b, seq: t, training: true, dropoutSeed: 7, dropoutOffset: n)
/// try layer.forward(call, into: y, capacity: count)
/// try layer.backward(call, gradOutput: dy, count: count,
///                    into: .buffers(CallGradients(tokenEmbedding: dwte)))
/// ```
///
/// Same arithmetic and summation order as the stateful calls: a layer with `config.seed = s`
/// at its n-th training forward gives bit for bit the output of the call with seed `s` and
/// offset `n`, and its backward the gradients of this call's backward.
extension GPTEmbedding {
    /// The forward of `call` into `out`: at least `batch * seq * embedDim` elements of `dtype`
    /// (`capacity` counts elements); exactly that many are written. What the stateful forward
    /// with the same switches computes, with the dropout mask of (`call.dropoutSeed`,
    /// `call.dropoutOffset`) when `call.training`. With the layer norm, each token's mean and
    /// rstd go to `call.mean` and `call.rstd` when given.
    ///
    /// Only reads the layer: it may run next to other read-only calls (eval forwards, these
    /// forwards, backwards into ``GradientTargets/buffers(_:)``). An empty call writes nothing
    /// and `out` may then be `nil`.
    ///
    /// - Throws: `badState` for a layer holding part of the vocabulary (use the two-phase
    ///   forward); `invalidArgument`, `sizeOverflow`, `bufferTooSmall`, `nullPointer`,
    ///   `outOfRange`, `outOfMemory`, before anything is written.
    public func forward<I: EmbeddingIndex>(
        _ call: EmbeddingCall<I>, into out: UnsafeMutableRawPointer?, dtype: TensorDType = .float32, capacity: Int
    ) throws(GPTEmbeddingError) {
        try requireWholeVocabulary()
        let n = try TokenBatch.count(batch: call.batch, seq: call.seq)
        let need = try Checked.multiply(n, embedDim, "batch * seq * embed_dim")
        try ParameterTensor.checkCapacity(capacity, need, "the output", unit: dtype == .float32 ? "floats" : "\(dtype) elements")
        let tables = try callTables(call)
        if n > 0 {
            guard call.ids != nil else { throw GPTEmbeddingError(.nullPointer, "ids is NULL") }
            guard out != nil else { throw GPTEmbeddingError(.nullPointer, "out is NULL") }
        }
        let tokens = try callTokens(call)
        guard n > 0, let out else { return }
        let normalize = call.useLayerNorm ?? config.layerNormByDefault
        let mask = callMask(call)
        // Allocated per call (the layer is only read); a streamed or 16-bit output row is
        // assembled in a scratch row per worker.
        let storeMode = forwardStoreMode(out, count: need, dim: embedDim, dtype: dtype, threshold: streamingThreshold)
        let rowScratch = storeMode != Int32(GPTE_STORE_CACHED) || dtype != .float32 || tables.decodesRows
            ? try FloatBuffer(count: forwardScratchCount(dim: embedDim, pool: pool, decodesRows: tables.decodesRows),
                              zeroed: false, what: "forward scratch")
            : nil
        embeddingForward(kernels: kernels, tables: tables, tokens: tokens, normalize: normalize, mask: mask,
                         saveMean: normalize ? call.mean : nil, saveRstd: normalize ? call.rstd : nil,
                         out: out, dtype: dtype, storeMode: storeMode, rowScratch: rowScratch?.base, pool: pool)
        // Dropout 1 keeps nothing, not even inf * 0 = nan (0 has all bits zero in every dtype).
        if mask?.dropAll == true { out.initializeMemory(as: UInt8.self, repeating: 0, count: need * dtype.byteCount) }
    }

    /// The forward of `call` as a new `[batch * seq * embedDim]` float32 array.
    public func forward<I: EmbeddingIndex>(_ call: EmbeddingCall<I>) throws(GPTEmbeddingError) -> [Float] {
        let n = try TokenBatch.count(batch: call.batch, seq: call.seq)
        let count = try Checked.multiply(n, embedDim, "output size")
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { (o) throws(GPTEmbeddingError) in
            try forward(call, into: o.baseAddress.map(UnsafeMutableRawPointer.init), dtype: .float32, capacity: count)
        }
        return out
    }

    /// The backward of the forward described by `call` (the same ids, positions, switches,
    /// dropout seed and offset, and the mean and rstd that forward wrote) for
    /// `gradOutput [batch, seq, embedDim]` of `dtype` (float32, or bfloat16 / float16 widened
    /// exactly); `count` is its number of elements and must be exactly `batch * seq * embedDim`.
    /// The arithmetic and summation order are
    /// ``backward(gradOutput:dtype:batch:seq:)``'s, so the results are bit-identical to it.
    ///
    /// - ``GradientTargets/layer``: adds into the layer's own gradients exactly as the stateful
    ///   backward does (touched rows recorded, gradient pending); needs exclusive access.
    /// - ``GradientTargets/buffers(_:)``: adds into the caller's buffers only, skipping the work
    ///   of those that are `nil`; only reads the layer.
    ///
    /// The ids and positions are validated again. An empty call writes nothing and its
    /// pointers may be `nil`.
    ///
    /// - Throws: `badState` for a layer holding part of the vocabulary; `invalidArgument`
    ///   (sizes, `count`, buffer lengths, a position buffer without learned positions),
    ///   `sizeOverflow`, `nullPointer` (ids, gradOutput, mean / rstd when the call
    ///   normalises), `outOfRange`, `outOfMemory`, before anything is written.
    public func backward<I: EmbeddingIndex>(
        _ call: EmbeddingCall<I>, gradOutput: UnsafeRawPointer?, dtype: TensorDType = .float32, count: Int,
        into targets: GradientTargets
    ) throws(GPTEmbeddingError) {
        try requireWholeVocabulary()
        let n = try TokenBatch.count(batch: call.batch, seq: call.seq)
        let need = try Checked.multiply(n, embedDim, "batch * seq * embed_dim")
        guard count == need else {
            throw GPTEmbeddingError(.invalidArgument, "grad_output has \(count) elements, expected batch * seq * embed_dim = \(call.batch) * \(call.seq) * \(embedDim) = \(need)")
        }
        let normalize = call.useLayerNorm ?? config.layerNormByDefault
        if case .buffers(let g) = targets { try checkGradientBuffers(g, tokens: n) }
        let tables = try callTables(call)
        if n > 0 {
            guard call.ids != nil else { throw GPTEmbeddingError(.nullPointer, "ids is NULL") }
            guard gradOutput != nil else { throw GPTEmbeddingError(.nullPointer, "grad_output is NULL") }
            if normalize {
                guard call.mean != nil else {
                    throw GPTEmbeddingError(.nullPointer, "mean is NULL: the call normalises, and its backward reads the mean and rstd its forward wrote")
                }
                guard call.rstd != nil else {
                    throw GPTEmbeddingError(.nullPointer, "rstd is NULL: the call normalises, and its backward reads the mean and rstd its forward wrote")
                }
            }
        }
        let tokens = try callTokens(call)
        guard n > 0, let gradOutput else { return }
        let mask = callMask(call)
        let statistics = normalize ? call.mean.flatMap { m in call.rstd.map { (UnsafePointer(m), UnsafePointer($0)) } } : nil
        switch targets {
        case .layer:
            try addGradients(tables: tables, tokens: tokens, statistics: statistics, mask: mask, gradOutput: gradOutput,
                             dtype: dtype, recompute: nil)
        case .buffers(let g):
            try addGradients(into: g, tables: tables, tokens: tokens, statistics: statistics, mask: mask,
                             gradOutput: gradOutput, dtype: dtype)
        }
    }

    // MARK: Internals

    /// Throws `badState` for a layer holding part of the vocabulary: its calls follow the
    /// two-phase forward.
    private func requireWholeVocabulary() throws(GPTEmbeddingError) {
        guard !config.isPartialShard else {
            throw GPTEmbeddingError(.badState, "this layer holds rows [\(config.heldTokenRows.lowerBound), \(config.heldTokenRows.upperBound)) of a vocabulary of \(config.vocabSize): calls with explicit state need the whole table (run the two-phase forward and the stateful backward)")
        }
    }

    /// The layer's tables with the ones `call` borrows in their place, after checking that each
    /// has the shape and dtype of the layer's own (and is aligned for it).
    private func callTables<I: EmbeddingIndex>(_ call: EmbeddingCall<I>) throws(GPTEmbeddingError) -> EmbeddingTables {
        let own = tables
        guard call.tokenEmbedding != nil || call.positionEmbedding != nil || call.layerNormWeight != nil
              || call.layerNormBias != nil else { return own }
        func check(_ base: UnsafeRawPointer, _ count: Int, _ name: String, like t: ParameterTensor) throws(GPTEmbeddingError) {
            guard count == t.count else {
                throw GPTEmbeddingError(.invalidArgument, "the borrowed \(name) has \(count) elements, the layer's is [\(t.rows), \(t.cols)] = \(t.count) \(t.dtype) elements")
            }
            guard Int(bitPattern: base) % t.dtype.byteCount == 0 else {
                throw GPTEmbeddingError(.invalidArgument, "the borrowed \(name) at \(base) is not aligned for \(t.dtype) elements")
            }
        }
        var wte = own.wte
        if call.tokenEmbedding != nil, let type = tokenEmbedding.weight.blockType {
            throw GPTEmbeddingError(.invalidArgument, "a borrowed token_embedding cannot stand in for this layer's \(type.name) table (borrowed tables have the layer's own dtype; open the file with a dtype that converts the table to borrow one)")
        }
        if let b = call.tokenEmbedding {
            try check(b.base, b.count, "token_embedding", like: tokenEmbedding.weight)
            wte = TableStorage(borrowing: b.base, count: b.count, dtype: tokenEmbedding.weight.dtype)
        }
        var positions = own.positions
        if let b = call.positionEmbedding {
            guard let wpe = positionalEmbedding?.weight else {
                throw GPTEmbeddingError(.invalidArgument, "a borrowed position_embedding was given, but this layer has no learned position table (position_encoding is \(config.positionEncoding))")
            }
            try check(b.base, b.count, "position_embedding", like: wpe)
            positions = .learned(TableStorage(borrowing: b.base, count: b.count, dtype: wpe.dtype))
        }
        var gamma = own.gamma, beta = own.beta
        if let b = call.layerNormWeight {
            try check(UnsafeRawPointer(b.baseAddress ?? UnsafePointer(TokenBatch.placeholder(Float.self))), b.count, "layer_norm_weight", like: layerNormWeight)
            gamma = UnsafeMutablePointer(mutating: b.baseAddress.unsafelyUnwrapped)
        }
        if let b = call.layerNormBias {
            try check(UnsafeRawPointer(b.baseAddress ?? UnsafePointer(TokenBatch.placeholder(Float.self))), b.count, "layer_norm_bias", like: layerNormBias)
            beta = UnsafeMutablePointer(mutating: b.baseAddress.unsafelyUnwrapped)
        }
        return EmbeddingTables(dim: own.dim, wte: wte, scale: own.scale, paddingIdx: own.paddingIdx, positions: positions,
                               gamma: gamma, beta: beta, eps: own.eps, shard: own.shard)
    }

    /// The validated tokens of `call`, read in place where possible (nothing is kept).
    private func callTokens<I: EmbeddingIndex>(_ call: EmbeddingCall<I>) throws(GPTEmbeddingError) -> TokenBatch {
        let none = UnsafePointer(TokenBatch.placeholder(I.self))
        return try TokenBatch.make(
            ids: call.ids ?? none, batch: call.batch, seq: call.seq, positions: call.positions,
            start: call.startPosition, vocabSize: config.vocabSize, positionLimit: positionLimit,
            positionRule: positionRule, positionOffset: config.positionOffset, copy: false)
    }

    /// The dropout mask of a training call, or `nil`.
    private func callMask<I: EmbeddingIndex>(_ call: EmbeddingCall<I>) -> DropoutMask? {
        guard call.training, config.dropout > 0 else { return nil }
        return DropoutMask(probability: config.dropout, seed: call.dropoutSeed, step: call.dropoutOffset)
    }

    /// Checks the length of every buffer given (each must hold its parameter).
    private func checkGradientBuffers(_ g: CallGradients, tokens n: Int) throws(GPTEmbeddingError) {
        func check(_ b: UnsafeMutableBufferPointer<Float>?, _ name: String, _ need: Int, _ shape: String) throws(GPTEmbeddingError) {
            guard let b else { return }
            guard b.count >= need else {
                throw GPTEmbeddingError(.invalidArgument, "the \(name) gradient buffer holds \(b.count) floats, needs \(need) (\(shape))")
            }
        }
        let d = embedDim, w = tokenEmbedding.weight
        if g.tokenEmbedding != nil, w.blockType != nil { throw w.frozenError("has no gradient") }
        try check(g.tokenEmbedding, "token_embedding", w.count, "[\(w.rows), \(d)]")
        if g.positionEmbedding != nil {
            guard let wpe = positionalEmbedding?.weight else {
                throw GPTEmbeddingError(.invalidArgument, "a position_embedding gradient buffer was given, but this layer has no learned position table (position_encoding is \(config.positionEncoding))")
            }
            try check(g.positionEmbedding, "position_embedding", wpe.count, "[\(wpe.rows), \(d)]")
        }
        try check(g.layerNormWeight, "layer_norm_weight", d, "[\(d)]")
        try check(g.layerNormBias, "layer_norm_bias", d, "[\(d)]")
        try check(g.tokenRows, "token_rows", try Checked.multiply(n, d, "batch * seq * embed_dim"), "[batch * seq, \(d)]")
    }

    /// Adds the backward of non-empty `tokens` into the caller's buffers of `g` (checked).
    /// Allocates per call and only reads the layer.
    private func addGradients(into g: CallGradients, tables: EmbeddingTables, tokens: TokenBatch,
                              statistics: (mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>)?,
                              mask: DropoutMask?, gradOutput: UnsafeRawPointer, dtype: TensorDType) throws(GPTEmbeddingError) {
        let n = tokens.count, d = embedDim
        let normalize = statistics != nil
        let rows = g.tokenRows?.baseAddress
        // The layer norm's gradients exist only for calls that normalise.
        let grads = EmbeddingGradients(
            dwte: g.tokenEmbedding?.baseAddress, dwpe: g.positionEmbedding?.baseAddress,
            dgamma: normalize ? g.layerNormWeight?.baseAddress : nil,
            dbeta: normalize ? g.layerNormBias?.baseAddress : nil)
        guard grads.dwte != nil || grads.dwpe != nil || grads.dgamma != nil || grads.dbeta != nil || rows != nil else { return }
        // Allocate everything first, so that a failure leaves every buffer untouched.
        let scratch = normalize
            ? try FloatBuffer(count: backwardScratchCount(rows: n, dim: d, pool: pool), zeroed: false, what: "backward scratch")
            : nil
        let identity = rows != nil ? try Int32Buffer(count: n, what: "row ids of token_rows") : nil
        if let rows { zeroRows(rows, 0, n) }
        // With dropout 1 nothing reached the output, so no gradient flows back.
        if mask?.dropAll == true { return }
        var all = grads
        if let identity {
            for r in 0..<n { identity.base[r] = Int32(truncatingIfNeeded: r) }
            all.tokenRows = rows
            all.tokenRowIds = UnsafePointer(identity.base)
        }
        embeddingBackward(kernels: kernels, tables: tables, tokens: tokens, statistics: statistics, mask: mask,
                          dout: gradOutput, doutType: dtype, grads: all, scratch: scratch?.base, pool: pool)
        // The padding row receives nothing: its tokens' rows are zeros.
        if let rows, let pad = config.paddingIdx {
            for r in 0..<n where Int(tokens.ids[r]) == pad { (rows + r * d).update(repeating: 0, count: d) }
        }
    }

    /// Sets rows `[r0, r1)` of the `[*, embedDim]` buffer at `base` to zero, in parallel.
    private func zeroRows(_ base: UnsafeMutablePointer<Float>, _ r0: Int, _ r1: Int) {
        let d = embedDim, p = SendablePointer(base)
        pool.parallelFor(count: r1 - r0, grain: WorkerPool.memoryGrain(bytesPerItem: 4 * d)) { _, range in
            (p.pointer + (r0 + range.lowerBound) * d).update(repeating: 0, count: range.count * d)
        }
    }
}
