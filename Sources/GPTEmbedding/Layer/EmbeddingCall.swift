/// One forward and its backward with explicit state, for autograd engines (PyTorch, JAX,
/// your own): everything the backward needs is in the call and in memory the caller owns,
/// so the layer keeps nothing and advances nothing.
///
/// - The ids and positions are the caller's arrays; with the layer norm, the forward writes
///   each token's mean and rstd into ``mean`` and ``rstd`` (`batch * seq` floats each) and
///   the backward reads them.
/// - The dropout mask of a training call is a pure function of (``dropoutSeed``,
///   ``dropoutOffset``, element): a layer created with `config.seed = s` draws at its n-th
///   training ``GPTEmbedding/forward(ids:batch:seq:positions:startPosition:training:useLayerNorm:into:capacity:)``
///   (counting from 0) the mask of seed `s`, offset `n`.
/// - The backward of one call is ``GPTEmbedding/backward(_:gradOutput:dtype:count:into:)``
///   with the same value, in any order relative to other calls, any number of times.
///
/// `batch` or `seq` 0 is an empty call: nothing is read or written, and its pointers may be
/// `nil`. The call holds pointers only for the duration of the calls it is passed to.
public struct EmbeddingCall<I: EmbeddingIndex>: @unchecked Sendable {
    /// `[batch, seq]` token ids, each in `[0, vocabSize)`; `nil` only for an empty call.
    public var ids: UnsafePointer<I>?
    /// `[batch, seq]` explicit positions, or `nil` for `startPosition + t`.
    public var positions: UnsafePointer<I>?
    /// Rows of the call, >= 0.
    public var batch: Int
    /// Tokens per row, >= 0.
    public var seq: Int
    /// The position of `t == 0` (>= 0) when ``positions`` is `nil`.
    public var startPosition: Int
    /// Dropout on, with the mask of (``dropoutSeed``, ``dropoutOffset``).
    public var training: Bool
    /// Apply the layer norm (`true`), not (`false`), or as
    /// ``GPTEmbeddingConfig/layerNormByDefault`` says (`nil`).
    public var useLayerNorm: Bool?
    /// The seed of a training call's dropout mask.
    public var dropoutSeed: UInt64
    /// The offset of a training call's dropout mask (the layer's own training forwards use
    /// offsets 0, 1, 2, ... with `config.seed`).
    public var dropoutOffset: UInt64
    /// `[batch * seq]` floats: a forward that applies the layer norm writes each token's mean
    /// here (`nil`: not kept); the backward of a call that normalises reads them.
    public var mean: UnsafeMutablePointer<Float>?
    /// `[batch * seq]` floats: each token's `1 / sqrt(var + eps)`, like ``mean``.
    public var rstd: UnsafeMutablePointer<Float>?
    /// A borrowed token table (llm.c's `encoder_forward(out, inp, wte, wpe, ...)` style): when
    /// set, the call computes from it instead of the layer's own, forward and backward alike,
    /// so that an engine owning its parameters needs no copy into the layer. It must have the
    /// shape and dtype of the layer's table, exactly; it is only read, during the call.
    public var tokenEmbedding: BorrowedTable?
    /// A borrowed learned position table `[maxSeqLen, embedDim]` of the layer's dtype (learned
    /// positions only), like ``tokenEmbedding``.
    public var positionEmbedding: BorrowedTable?
    /// A borrowed layer norm weight: `embedDim` floats, like ``tokenEmbedding``.
    public var layerNormWeight: UnsafeBufferPointer<Float>?
    /// A borrowed layer norm bias: `embedDim` floats, like ``tokenEmbedding``.
    public var layerNormBias: UnsafeBufferPointer<Float>?

    /// A call on `ids [batch, seq]`; the other fields default to an eval call at positions
    /// `0 ..< seq` with the configuration's layer norm choice, no statistics kept and the
    /// layer's own tables.
    public init(ids: UnsafePointer<I>?, batch: Int, seq: Int, positions: UnsafePointer<I>? = nil,
                startPosition: Int = 0, training: Bool = false, useLayerNorm: Bool? = nil,
                dropoutSeed: UInt64 = 0, dropoutOffset: UInt64 = 0,
                mean: UnsafeMutablePointer<Float>? = nil, rstd: UnsafeMutablePointer<Float>? = nil) {
        self.ids = ids
        self.positions = positions
        self.batch = batch
        self.seq = seq
        self.startPosition = startPosition
        self.training = training
        self.useLayerNorm = useLayerNorm
        self.dropoutSeed = dropoutSeed
        self.dropoutOffset = dropoutOffset
        self.mean = mean
        self.rstd = rstd
    }
}

/// A table in the caller's memory that a call reads instead of the layer's own: `count`
/// elements of the layer table's ``TensorDType`` at `base` (aligned for it).
public struct BorrowedTable: @unchecked Sendable {
    /// The first element.
    public var base: UnsafeRawPointer
    /// Elements (not bytes); must equal the layer table's `rows * cols`.
    public var count: Int

    /// `count` elements at `base`.
    public init(_ base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }
}

/// The caller's float32 gradient buffers of an explicit-state backward. Every buffer is
/// optional: `nil` means not wanted, and the work only it needs is skipped (a frozen table
/// costs nothing). Each must hold at least its parameter's `rows * cols` floats.
public struct CallGradients: @unchecked Sendable {
    /// `[rows, embedDim]`: `+=` the token table's gradient (the padding row receives nothing).
    public var tokenEmbedding: UnsafeMutableBufferPointer<Float>?
    /// `[maxSeqLen, embedDim]`: `+=` the learned position table's gradient; only for a layer
    /// with learned positions.
    public var positionEmbedding: UnsafeMutableBufferPointer<Float>?
    /// `[embedDim]`: `+=` the layer norm weight's gradient (calls that normalise; others add
    /// nothing).
    public var layerNormWeight: UnsafeMutableBufferPointer<Float>?
    /// `[embedDim]`: `+=` the layer norm bias's gradient, likewise.
    public var layerNormBias: UnsafeMutableBufferPointer<Float>?
    /// `[batch * seq, embedDim]`: `=` (written, not added) the gradient of each token's table
    /// row, `s * dx`; a token whose id is the padding row gets zeros. Summing row r into row
    /// `ids[r]` of a zero table gives ``tokenEmbedding``'s addition (the sparse gradient of
    /// `nn.Embedding(sparse=True)`).
    public var tokenRows: UnsafeMutableBufferPointer<Float>?

    /// Buffers for the gradients wanted; the others are skipped.
    public init(tokenEmbedding: UnsafeMutableBufferPointer<Float>? = nil,
                positionEmbedding: UnsafeMutableBufferPointer<Float>? = nil,
                layerNormWeight: UnsafeMutableBufferPointer<Float>? = nil,
                layerNormBias: UnsafeMutableBufferPointer<Float>? = nil,
                tokenRows: UnsafeMutableBufferPointer<Float>? = nil) {
        self.tokenEmbedding = tokenEmbedding
        self.positionEmbedding = positionEmbedding
        self.layerNormWeight = layerNormWeight
        self.layerNormBias = layerNormBias
        self.tokenRows = tokenRows
    }
}

/// Where an explicit-state backward puts its gradients.
public enum GradientTargets: Sendable {
    /// The layer's own gradients, exactly as ``GPTEmbedding/backward(gradOutput:dtype:batch:seq:)``
    /// adds them: touched rows recorded, the gradient pending for the optimizer step. Needs
    /// exclusive access to the layer.
    case layer
    /// The caller's buffers only: the layer is only read (safe next to other read-only calls).
    case buffers(CallGradients)
}
