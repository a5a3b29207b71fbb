import CKernelDispatch
import CMemoryHints

/// The input layer of a GPT model: token embedding plus position embedding, then an
/// optional layer norm and dropout; forward and backward.
///
/// ```swift
/// let layer = try GPTEmbedding(config: .gpt2Small)
/// let out = try layer([[15496, 11, 995]])            // [1, 3, 768], eval mode
/// let y = try layer.forward(ids: ids, batch: 2, seq: 10, training: true)
/// try layer.backward(gradOutput: dy, batch: 2, seq: 10)
/// ```
///
/// Thread safety: eval forwards and read-only queries may run concurrently on one layer;
/// training forwards, backward, `zeroGrad` and parameter writes need exclusive access.
/// Different layers are independent.
public final class GPTEmbedding: @unchecked Sendable {
    /// The validated configuration.
    public let config: GPTEmbeddingConfig
    /// The token table.
    public let tokenEmbedding: TokenEmbedding
    /// The learned position table, when `config.positionEncoding == .learned`.
    public let positionalEmbedding: PositionalEmbedding?
    /// The sinusoidal table, when `config.positionEncoding == .sinusoidal`.
    public let sinusoidalEmbedding: SinusoidalPositionalEmbedding?
    /// The layer norm weight `[embedDim]`, initialised to 1.
    public let layerNormWeight: ParameterTensor
    /// The layer norm bias `[embedDim]`, initialised to 0.
    public let layerNormBias: ParameterTensor

    let pool: WorkerPool
    /// The kernels this layer runs (the process's choice, see ``InstructionSet``).
    let kernels: Kernels
    /// The latest training forward (single call or finished two-phase one).
    var saved: TrainingState?
    /// Phase one of a two-phase forward, waiting for ``forwardFinish(batch:seq:summed:capacity:)``.
    var pending: PendingForward?
    /// Backward's working memory, kept between calls so it is not allocated (and faulted
    /// in) on every step.
    private var scratch: FloatBuffer?
    /// Token and position rows written by backward since the last `zeroGrad`.
    let touchedTokens: RowTracker
    let touchedPositions: RowTracker
    /// Whether backward has written the gradients since the last `zeroGrad` (a step needs
    /// a gradient to apply).
    var gradientPending = false
    /// Training forwards so far: the dropout masks' stream position (saved with the
    /// optimizer state, so that resumed training draws the same masks).
    var trainingStep: UInt64 = 0
    /// Output elements from which a forward streams its output around the caches
    /// (``streamingOutputFloats``). Tests lower it to reach the streaming store paths with
    /// small calls (the suite runs under the sanitizers); set before the layer is shared.
    var streamingThreshold = streamingOutputFloats
    /// Gradient floats from which `zeroGrad` clears a table's rows with streaming stores
    /// (``streamingZeroFloats``); tests change it to reach both paths with small tables.
    var streamingZeroThreshold = streamingZeroFloats

    /// What the latest training forward keeps for backward.
    struct TrainingState {
        let tokens: TokenBatch
        let stats: SavedStatistics
        let mask: DropoutMask?
        /// A two-phase forward with the layer norm: the summed token part `[R, D]` (phase
        /// two's input, which a shard cannot recompute from its rows) and the identity ids
        /// that read it as a table, for the layer norm backward.
        var summed: SummedTokens? = nil
        var byteCount: Int {
            tokens.byteCount + (stats.mean?.byteCount ?? 0) + (stats.rstd?.byteCount ?? 0) + (summed?.byteCount ?? 0)
        }
    }

    /// Creates a layer and initialises it from `config.seed`: tables N(0, initStd) (the
    /// padding row zero), layer norm weight 1 and bias 0. Gradients are allocated on the
    /// first backward.
    ///
    /// Throws `unsupportedCPU` when `GPT_EMBEDDING_ISA` names a kernel path this CPU cannot
    /// run (see ``InstructionSet``).
    public convenience init(config: GPTEmbeddingConfig = GPTEmbeddingConfig()) throws(GPTEmbeddingError) {
        try self.init(config: config, kernels: Kernels.active())
    }

    /// Creates a layer that runs `kernels` (the tests compare the paths in one process).
    init(config: GPTEmbeddingConfig, kernels: Kernels) throws(GPTEmbeddingError) {
        try config.validate()
        self.config = config
        self.kernels = kernels
        pool = WorkerPool(threads: config.resolvedThreads)
        tokenEmbedding = try TokenEmbedding(config: config, pool: pool, kernels: kernels)
        switch config.positionEncoding {
        case .learned:
            positionalEmbedding = try PositionalEmbedding(config: config, pool: pool, kernels: kernels)
            sinusoidalEmbedding = nil
        case .sinusoidal:
            positionalEmbedding = nil
            sinusoidalEmbedding = try SinusoidalPositionalEmbedding(maxSeqLen: config.maxSeqLen, embedDim: config.embedDim)
        case .none:
            positionalEmbedding = nil
            sinusoidalEmbedding = nil
        }
        touchedTokens = RowTracker(rows: config.heldTokenRows.count)
        touchedPositions = RowTracker(rows: config.positionEncoding == .learned ? config.maxSeqLen : 0)
        (layerNormWeight, layerNormBias) = try Self.defaultLayerNorm(config, kernels)
    }

    /// A layer over tables read or mapped from a checkpoint: no random initialisation.
    /// `config` must describe them (vocabulary, width, dtype, positions); the layer norm
    /// vectors are weight 1 and bias 0 unless given.
    init(config: GPTEmbeddingConfig, kernels: Kernels, tokenTable: ParameterTensor, positionTable: ParameterTensor?,
         layerNorm: (weight: ParameterTensor, bias: ParameterTensor)?) throws(GPTEmbeddingError) {
        try config.validate()
        self.config = config
        self.kernels = kernels
        pool = WorkerPool(threads: config.resolvedThreads)
        tokenEmbedding = TokenEmbedding(weight: tokenTable, config: config, pool: pool)
        positionalEmbedding = positionTable.map { PositionalEmbedding(weight: $0) }
        sinusoidalEmbedding = config.positionEncoding == .sinusoidal
            ? try SinusoidalPositionalEmbedding(maxSeqLen: config.maxSeqLen, embedDim: config.embedDim) : nil
        touchedTokens = RowTracker(rows: config.heldTokenRows.count)
        touchedPositions = RowTracker(rows: config.positionEncoding == .learned ? config.maxSeqLen : 0)
        if let layerNorm {
            (layerNormWeight, layerNormBias) = layerNorm
        } else {
            (layerNormWeight, layerNormBias) = try Self.defaultLayerNorm(config, kernels)
        }
    }

    /// Layer norm weight 1 and bias 0 (float32).
    private static func defaultLayerNorm(_ config: GPTEmbeddingConfig, _ kernels: Kernels)
        throws(GPTEmbeddingError) -> (ParameterTensor, ParameterTensor) {
        let weight = try ParameterTensor(name: "layer_norm.weight", rows: 1, cols: config.embedDim, kernels: kernels)
        let bias = try ParameterTensor(name: "layer_norm.bias", rows: 1, cols: config.embedDim, kernels: kernels)
        weight.data.update(repeating: 1)
        return (weight, bias)
    }

    /// Creates a layer with the seed's keyword arguments.
    public convenience init(vocabSize: Int = 50257, embedDim: Int = 768, maxSeqLen: Int = 1024,
                            dropout: Float = 0.1, useSinusoidal: Bool = false) throws(GPTEmbeddingError) {
        try self.init(config: GPTEmbeddingConfig(vocabSize: vocabSize, embedDim: embedDim, maxSeqLen: maxSeqLen,
                                                 dropout: dropout, useSinusoidal: useSinusoidal))
    }

    /// The CPU path of the kernels this layer runs.
    public var instructionSet: InstructionSet { kernels.isa }

    /// Width of every output vector.
    public var embedDim: Int { config.embedDim }

    // MARK: Forward

    /// The forward pass into a caller's buffer: `out [batch, seq, embedDim]`.
    ///
    /// - Parameters:
    ///   - ids: `[batch, seq]` token ids in `[0, vocabSize)`.
    ///   - batch: sequences in the call.
    ///   - seq: tokens per sequence.
    ///   - positions: `[batch, seq]` explicit positions (left-padded batches), or `nil` for
    ///     `startPosition + t` (the past length when decoding with a KV cache).
    ///   - startPosition: the position of each sequence's first token when `positions` is `nil`.
    ///   - training: apply dropout and keep what ``backward(gradOutput:batch:seq:)-(UnsafePointer<Float>,_,_)`` needs.
    ///   - useLayerNorm: apply the layer norm (the seed's `use_layer_norm`); `nil` follows
    ///     ``GPTEmbeddingConfig/layerNormByDefault``.
    ///   - out: at least `batch * seq * embedDim` floats; exactly that many are written.
    ///   - capacity: the number of floats `out` holds.
    ///
    /// `batch` or `seq` 0 is an empty call: nothing is read or written (a training one keeps
    /// an empty state for backward).
    /// - Throws: on any invalid argument, before anything is written.
    public func forward<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>? = nil,
        startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil,
        into out: UnsafeMutablePointer<Float>, capacity: Int
    ) throws(GPTEmbeddingError) {
        try forward(ids: ids, batch: batch, seq: seq, positions: positions, startPosition: startPosition,
                    training: training, useLayerNorm: useLayerNorm, into: UnsafeMutableRawPointer(out),
                    dtype: .float32, capacity: capacity)
    }

    /// The forward pass into a caller's buffer of `dtype` elements: float32, or bfloat16 /
    /// float16 rounded once, to nearest even, from the float32 result.
    ///
    /// - Parameters:
    ///   - ids: `[batch, seq]` token ids in `[0, vocabSize)`.
    ///   - batch: sequences in the call.
    ///   - seq: tokens per sequence.
    ///   - positions: `[batch, seq]` explicit positions, or `nil` for `startPosition + t`.
    ///   - startPosition: the position of each sequence's first token when `positions` is `nil`.
    ///   - training: apply dropout and keep what backward needs.
    ///   - useLayerNorm: apply the layer norm; `nil` follows ``GPTEmbeddingConfig/layerNormByDefault``.
    ///   - out: at least `batch * seq * embedDim` elements of `dtype` (`capacity` counts
    ///     elements, not bytes); exactly that many are written.
    ///   - dtype: the element type of `out`.
    ///   - capacity: the number of elements `out` holds.
    /// - Throws: on any invalid argument, before anything is written.
    public func forward<I: EmbeddingIndex>(
        ids: UnsafePointer<I>, batch: Int, seq: Int, positions: UnsafePointer<I>? = nil,
        startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil,
        into out: UnsafeMutableRawPointer, dtype: TensorDType, capacity: Int
    ) throws(GPTEmbeddingError) {
        guard !config.isPartialShard else {
            throw GPTEmbeddingError(.badState, "this layer holds rows [\(config.heldTokenRows.lowerBound), \(config.heldTokenRows.upperBound)) of a vocabulary of \(config.vocabSize): run the two-phase forward (forward_partial, the all-reduce of the partials across the ranks, forward_finish)")
        }
        // Sizes first: a batch * seq that disagrees with out_len must be reported before
        // the ids (batch * seq of them, by contract) are read.
        let need = try Checked.multiply(TokenBatch.count(batch: batch, seq: seq), embedDim, "batch * seq * embed_dim")
        try ParameterTensor.checkCapacity(capacity, need, "the output", unit: dtype == .float32 ? "floats" : "\(dtype) elements")
        let tokens = try TokenBatch.make(
            ids: ids, batch: batch, seq: seq, positions: positions, start: startPosition,
            vocabSize: config.vocabSize, positionLimit: positionLimit, positionRule: positionRule,
            positionOffset: config.positionOffset, copy: training)
        let normalize = useLayerNorm ?? config.layerNormByDefault
        // An empty call writes nothing; a training one keeps an empty state (its backward
        // adds nothing) and counts as a training forward of the dropout stream.
        if tokens.count == 0 {
            if training {
                saved = TrainingState(tokens: tokens, stats: SavedStatistics(mean: nil, rstd: nil), mask: nil)
                trainingStep &+= 1
            }
            return
        }

        // Allocate everything first, so that a failure leaves the output untouched. A
        // streamed or 16-bit output row is assembled in a scratch row per worker.
        let storeMode = forwardStoreMode(out, count: need, dim: embedDim, dtype: dtype, threshold: streamingThreshold)
        let rowScratch = storeMode != Int32(GPTE_STORE_CACHED) || dtype != .float32 || tables.decodesRows
            ? try FloatBuffer(count: forwardScratchCount(dim: embedDim, pool: pool, decodesRows: tables.decodesRows),
                              zeroed: false, what: "forward scratch")
            : nil
        var stats = SavedStatistics(mean: nil, rstd: nil)
        var mask: DropoutMask? = nil
        if training {
            if normalize {
                stats = SavedStatistics(mean: try FloatBuffer(count: tokens.count, what: "layer norm mean"),
                                        rstd: try FloatBuffer(count: tokens.count, what: "layer norm rstd"))
            }
            if config.dropout > 0 {
                mask = DropoutMask(probability: config.dropout, seed: config.seed, step: trainingStep)
            }
        }
        embeddingForward(kernels: kernels, tables: tables, tokens: tokens, normalize: normalize, mask: mask,
                         saveMean: stats.mean?.base, saveRstd: stats.rstd?.base, out: out, dtype: dtype,
                         storeMode: storeMode, rowScratch: rowScratch?.base, pool: pool)
        // Dropout 1 keeps nothing, not even inf * 0 = nan (0 has all bits zero in every dtype).
        if mask?.dropAll == true { out.initializeMemory(as: UInt8.self, repeating: 0, count: need * dtype.byteCount) }
        if training {
            saved = TrainingState(tokens: tokens, stats: stats, mask: mask)
            trainingStep &+= 1
        }
    }

    /// The forward pass into a caller's buffer (buffer-pointer variant); `ids.count` must be
    /// `batch * seq`, and so must `positions.count` when given.
    public func forward<I: EmbeddingIndex>(
        ids: UnsafeBufferPointer<I>, batch: Int, seq: Int, positions: UnsafeBufferPointer<I>? = nil,
        startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil,
        into out: UnsafeMutableBufferPointer<Float>
    ) throws(GPTEmbeddingError) {
        let n = try Checked.multiply(batch, seq, "batch * seq")
        // An empty call may come with empty buffers, whose base address may be nil.
        guard ids.count == n, let idBase = ids.baseAddress ?? (n == 0 ? UnsafePointer(TokenBatch.placeholder()) : nil) else {
            throw GPTEmbeddingError(.invalidArgument, "ids has \(ids.count) elements, expected batch * seq = \(n)")
        }
        if let positions, positions.count != n {
            throw GPTEmbeddingError(.invalidArgument, "positions has \(positions.count) elements, expected batch * seq = \(n)")
        }
        guard let outBase = out.baseAddress ?? (n == 0 ? TokenBatch.placeholder() : nil) else {
            throw GPTEmbeddingError(.bufferTooSmall, "the output buffer is empty")
        }
        try forward(ids: idBase, batch: batch, seq: seq, positions: positions.map { $0.baseAddress ?? UnsafePointer(TokenBatch.placeholder()) },
                    startPosition: startPosition, training: training, useLayerNorm: useLayerNorm,
                    into: outBase, capacity: out.count)
    }

    /// The forward pass, returning a new `[batch * seq * embedDim]` array.
    public func forward<I: EmbeddingIndex>(
        ids: [I], batch: Int, seq: Int, positions: [I]? = nil, startPosition: Int = 0,
        training: Bool = false, useLayerNorm: Bool? = nil
    ) throws(GPTEmbeddingError) -> [Float] {
        let count = try Checked.multiply(ids.count, embedDim, "output size")
        var out = [Float](repeating: 0, count: count)
        try ids.withUnsafeBufferPointer { (idBuf) throws(GPTEmbeddingError) in
            try out.withUnsafeMutableBufferPointer { (o) throws(GPTEmbeddingError) in
                if let positions {
                    try positions.withUnsafeBufferPointer { (p) throws(GPTEmbeddingError) in
                        try forward(ids: idBuf, batch: batch, seq: seq, positions: p,
                                    training: training, useLayerNorm: useLayerNorm, into: o)
                    }
                } else {
                    try forward(ids: idBuf, batch: batch, seq: seq, startPosition: startPosition,
                                training: training, useLayerNorm: useLayerNorm, into: o)
                }
            }
        }
        return out
    }

    /// The forward pass on a batch of equal-length rows, like calling the seed's module:
    /// `layer([[1, 2, 3], [4, 5, 6]])` returns `[2 * 3 * embedDim]` floats.
    public func callAsFunction<I: EmbeddingIndex>(
        _ ids: [[I]], startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil
    ) throws(GPTEmbeddingError) -> [Float] {
        let seq = ids.first?.count ?? 0
        for (b, row) in ids.enumerated() where row.count != seq {
            throw GPTEmbeddingError(.invalidArgument, "row \(b) has \(row.count) ids, row 0 has \(seq): rows must have equal length")
        }
        return try forward(ids: ids.flatMap { $0 }, batch: ids.count, seq: seq, startPosition: startPosition,
                           training: training, useLayerNorm: useLayerNorm)
    }

    // MARK: Backward

    /// Adds the gradient of the latest training forward for `gradOutput [batch, seq, embedDim]`
    /// into the gradients of the tables and the layer norm. `batch` and `seq` must equal the
    /// forward's. Bit-identical for any thread count.
    public func backward(gradOutput: UnsafePointer<Float>, batch: Int, seq: Int) throws(GPTEmbeddingError) {
        try backward(gradOutput: UnsafeRawPointer(gradOutput), dtype: .float32, batch: batch, seq: seq)
    }

    /// Backward from a `grad_output [batch, seq, embedDim]` of `dtype` (float32, or bfloat16 /
    /// float16 widened exactly). Gradients accumulate in float32 whatever the table dtype.
    /// The backward of an empty training forward (batch or seq 0, the same shape) adds
    /// nothing and reads nothing.
    public func backward(gradOutput: UnsafeRawPointer, dtype: TensorDType, batch: Int, seq: Int) throws(GPTEmbeddingError) {
        guard let saved else {
            throw GPTEmbeddingError(.badState, "no training forward to differentiate: call forward with training first (an eval forward keeps nothing)")
        }
        guard batch == saved.tokens.batch, seq == saved.tokens.seq else {
            throw GPTEmbeddingError(.invalidArgument, "grad_output shape [\(batch), \(seq), \(embedDim)] differs from the training forward's [\(saved.tokens.batch), \(saved.tokens.seq), \(embedDim)]")
        }
        // The backward of an empty forward adds nothing (and reads no grad_output).
        if saved.tokens.count == 0 { return }
        try addGradients(tables: tables, tokens: saved.tokens, statistics: saved.stats.pointers, mask: saved.mask,
                         gradOutput: gradOutput, dtype: dtype, recompute: saved.summed.map { (summedTables($0), $0.tokens) })
    }

    /// Adds the backward of `tokens` (their forward's layer norm `statistics`, `nil` when it
    /// did not normalise, and dropout `mask`) through `tables` (the layer's, or a call's
    /// borrowed ones) for `gradOutput` of `dtype` into the layer's own gradients, allocating
    /// them, recording the touched rows and marking the gradient pending. `tokens` is not
    /// empty. Needs exclusive access (it uses the layer's scratch).
    func addGradients(tables: EmbeddingTables, tokens: TokenBatch, statistics: (mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>)?,
                      mask: DropoutMask?, gradOutput: UnsafeRawPointer, dtype: TensorDType,
                      recompute: (tables: EmbeddingTables, tokens: TokenBatch)?) throws(GPTEmbeddingError) {
        let normalize = statistics != nil
        // Allocate everything first, so that a failure leaves the gradients untouched.
        let need = try backwardScratchCount(rows: tokens.count, dim: embedDim, pool: pool)
        let scratch: FloatBuffer
        if let kept = self.scratch, kept.count >= need {
            scratch = kept
        } else {
            scratch = try FloatBuffer(count: need, zeroed: false, what: "backward scratch")
            self.scratch = scratch
        }
        // A table in a block format is frozen: no gradient (positions and layer norm still train).
        let dwte = tokenEmbedding.weight.blockType == nil ? try tokenEmbedding.weight.gradientBuffer() : nil
        let dwpe = try positionalEmbedding?.weight.gradientBuffer()
        let dgamma = normalize ? try layerNormWeight.gradientBuffer() : nil
        let dbeta = normalize ? try layerNormBias.gradientBuffer() : nil
        try touchedTokens.prepare()
        if dwpe != nil { try touchedPositions.prepare() }
        gradientPending = true
        // With dropout 1 nothing reached the output, so no gradient flows back.
        if mask?.dropAll == true { return }
        let held = config.heldTokenRows
        // Rows are the table's own: a shard records row id - shard start for the ids it holds.
        for r in 0..<tokens.count where dwte != nil && Int(tokens.ids[r]) != config.paddingIdx && held.contains(Int(tokens.ids[r])) {
            touchedTokens.record(Int32(Int(tokens.ids[r]) - held.lowerBound))
        }
        if dwpe != nil {
            for r in 0..<tokens.count { touchedPositions.record(Int32(truncatingIfNeeded: tokens.position(r))) }
        }
        // A 16-bit grad_output is read as it is: the kernels widen it (exactly) row by row.
        let grads = EmbeddingGradients(dwte: dwte?.base, dwpe: dwpe?.base, dgamma: dgamma?.base, dbeta: dbeta?.base)
        embeddingBackward(kernels: kernels, tables: tables, tokens: tokens, statistics: statistics, mask: mask,
                          dout: gradOutput, doutType: dtype, grads: grads, scratch: scratch.base, pool: pool,
                          recompute: recompute)
    }

    /// Backward from a buffer; `gradOutput.count` must be `batch * seq * embedDim`.
    public func backward(gradOutput: UnsafeBufferPointer<Float>, batch: Int, seq: Int) throws(GPTEmbeddingError) {
        let need = try Checked.multiply(batch, seq, embedDim, "batch * seq * embed_dim")
        guard gradOutput.count == need, let base = gradOutput.baseAddress ?? (need == 0 ? UnsafePointer(TokenBatch.placeholder()) : nil) else {
            throw GPTEmbeddingError(.invalidArgument, "grad_output has \(gradOutput.count) elements, expected \(batch) * \(seq) * \(embedDim) = \(need)")
        }
        try backward(gradOutput: base, batch: batch, seq: seq)
    }

    /// Backward from an array.
    public func backward(gradOutput: [Float], batch: Int, seq: Int) throws(GPTEmbeddingError) {
        try gradOutput.withUnsafeBufferPointer { (g) throws(GPTEmbeddingError) in
            try backward(gradOutput: g, batch: batch, seq: seq)
        }
    }

    /// Whether a training forward is available for ``backward(gradOutput:batch:seq:)-(UnsafePointer<Float>,_,_)``.
    public var hasTrainingState: Bool { saved != nil }

    /// Sets every gradient to zero. Only the table rows that backward touched are cleared
    /// (unless a gradient's address was handed out with `gradientData()`, which may have
    /// been written anywhere), so the cost follows the batch, not the vocabulary.
    public func zeroGrad() {
        gradientPending = false
        clear(tokenEmbedding.weight, touchedTokens)
        if let wpe = positionalEmbedding?.weight { clear(wpe, touchedPositions) }
        layerNormWeight.zeroGradient()
        layerNormBias.zeroGradient()
    }

    private func clear(_ tensor: ParameterTensor, _ rows: RowTracker) {
        defer { rows.reset() }
        guard let g = tensor.grad else { return }
        let threshold = streamingZeroThreshold
        if tensor.gradientShared || rows.count * 4 > tensor.rows {
            // The whole table, by rows: streamed when large, and split as a step over every
            // row splits it, for the reasons ``RowTracker/zeroRows(of:cols:pool:threshold:)``
            // gives (a position table a batch touched whole is one of these).
            let cols = tensor.cols, streams = g.count >= threshold
            let base = SendablePointer(g.base)
            pool.parallelFor(count: tensor.rows, grain: WorkerPool.memoryGrain(bytesPerItem: (streams ? 4 : 28) * cols)) { _, range in
                StreamingStore.zero(base.pointer + range.lowerBound * cols, range.count * cols, streaming: streams)
                if streams { gpte_stream_fence() }
            }
            return
        }
        rows.zeroRows(of: g.base, cols: tensor.cols, pool: pool, threshold: threshold)
    }

    /// The token rows whose gradient backward has written since the last ``zeroGrad()``,
    /// ascending (the padding row is never among them). An optimizer can update just these.
    public var touchedTokenRows: [Int32] { touchedTokens.sortedRows }

    // MARK: Parameters

    /// The trainable tensors, in state-dict order: token table, learned position table (if
    /// any), layer norm weight and bias.
    public var parameters: [ParameterTensor] {
        [tokenEmbedding.weight] + (positionalEmbedding.map { [$0.weight] } ?? []) + [layerNormWeight, layerNormBias]
    }

    /// Selects one parameter; raw values are the C header's `GPT_EMBEDDING_PARAM_*`.
    public enum Parameter: Int32, Sendable, CaseIterable {
        /// `token_embedding.weight [vocabSize, embedDim]`.
        case tokenEmbedding = 0
        /// `position_embedding.weight [maxSeqLen, embedDim]` (learned positions only).
        case positionEmbedding = 1
        /// `layer_norm.weight [embedDim]`.
        case layerNormWeight = 2
        /// `layer_norm.bias [embedDim]`.
        case layerNormBias = 3
    }

    /// The tensor of a parameter; `invalidArgument` for the position table when positions
    /// are not learned.
    public func tensor(_ p: Parameter) throws(GPTEmbeddingError) -> ParameterTensor {
        switch p {
        case .tokenEmbedding: return tokenEmbedding.weight
        case .positionEmbedding:
            guard let positionalEmbedding else {
                throw GPTEmbeddingError(.invalidArgument, "this layer has no learned position table (position_encoding is \(config.positionEncoding))")
            }
            return positionalEmbedding.weight
        case .layerNormWeight: return layerNormWeight
        case .layerNormBias: return layerNormBias
        }
    }

    /// The total number of trainable parameters.
    public var numParameters: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Bytes owned now: tables, gradients, cached sinusoidal rows and the training state.
    public var memoryBytes: Int {
        parameters.reduce(0) { $0 + $1.byteCount } + (sinusoidalEmbedding?.table.byteCount ?? 0) + (saved?.byteCount ?? 0)
            + (pending?.tokens.byteCount ?? 0)
            + (scratch?.byteCount ?? 0) + touchedTokens.byteCount + touchedPositions.byteCount
    }

    // MARK: Internals

    var positionLimit: Int {
        switch config.positionEncoding {
        case .learned: config.maxSeqLen
        case .sinusoidal, .none: SinusoidalPositionalEmbedding.maxPosition + 1
        }
    }

    var positionRule: String {
        switch config.positionEncoding {
        case .learned: "max_seq_len, learned positions"
        case .sinusoidal: "sinusoidal positions"
        case .none: "positions are 32-bit"
        }
    }

    var tables: EmbeddingTables {
        let positions: PositionSource = if let positionalEmbedding {
            .learned(positionalEmbedding.weight.storage)
        } else if let sinusoidalEmbedding {
            .sinusoidal(sinusoidalEmbedding)
        } else {
            .none
        }
        return EmbeddingTables(
            dim: embedDim, wte: tokenEmbedding.weight.storage, scale: tokenEmbedding.scale,
            paddingIdx: config.paddingIdx ?? -1, positions: positions,
            gamma: layerNormWeight.storage.base.assumingMemoryBound(to: Float.self),
            beta: layerNormBias.storage.base.assumingMemoryBound(to: Float.self), eps: config.layerNormEps,
            shard: config.isPartialShard ? config.heldTokenRows : nil)
    }

    /// The layer's tables with the token part read from `summed` (row r of the call is
    /// row r of `summed`, scale 1): what phase two of a two-phase forward, and the layer
    /// norm backward after it, compute from. `1 * v == v` exactly, so `summed + P` is the
    /// single call's `s * wte[id] + P` bit for bit.
    func summedTables(_ summed: SummedTokens) -> EmbeddingTables {
        let t = tables
        return EmbeddingTables(dim: t.dim, wte: summed.rows, scale: 1, paddingIdx: -1, positions: t.positions,
                               gamma: t.gamma, beta: t.beta, eps: t.eps, shard: nil)
    }
}
