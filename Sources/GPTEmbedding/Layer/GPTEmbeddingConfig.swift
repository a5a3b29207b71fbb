/// Where position information comes from.
public enum PositionEncoding: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// A trainable table `wpe [maxSeqLen, embedDim]` (GPT-2).
    case learned = 0
    /// The fixed sin/cos table of Vaswani et al.; positions may exceed `maxSeqLen`.
    case sinusoidal = 1
    /// No position embedding (token embedding only, e.g. for rotary-position models).
    case none = 2

    public var description: String {
        switch self {
        case .learned: "learned"
        case .sinusoidal: "sinusoidal"
        case .none: "none"
        }
    }
}

/// The configuration of a ``GPTEmbedding`` layer: a value type, validated when a layer is
/// created (or by ``validate()``).
///
/// The defaults are the seed's `GPTEmbeddingConfig` (vocabulary 50257, width 768,
/// 1024 positions, dropout 0.1, learned positions, token scaling by `sqrt(embedDim)`).
/// The presets (``gpt2Small`` ...) reproduce the Hugging Face GPT-2 embedding exactly.
public struct GPTEmbeddingConfig: Sendable, Equatable {
    /// Rows of the token table.
    public var vocabSize: Int = 50257
    /// Width of every embedding vector, `D`.
    public var embedDim: Int = 768
    /// Rows of the learned position table (and of the cached sinusoidal table).
    public var maxSeqLen: Int = 1024
    /// Dropout probability in `[0, 1]`, applied in training forwards.
    public var dropout: Float = 0.1
    /// The kind of position embedding.
    public var positionEncoding: PositionEncoding = .learned
    /// Multiply token rows by `sqrt(embedDim)` (the seed's `TokenEmbedding`); GPT-2 does not.
    public var scaleEmbeddings: Bool = true
    /// The layer norm's epsilon, added to the variance.
    public var layerNormEps: Float = 1e-5
    /// Standard deviation of the `N(0, initStd)` initialisation of the tables.
    public var initStd: Float = 0.02
    /// A token row that receives no gradient (and is initialised to zero), or `nil`.
    public var paddingIdx: Int? = nil
    /// Seed of the initialisation and of the dropout masks.
    public var seed: UInt64 = 0
    /// Worker threads; 0 means one per core.
    public var numThreads: Int = 0
    /// The element type of the token table and the learned position table (the layer norm
    /// vectors and sinusoidal rows are always float32; arithmetic is float32).
    public var weightDType: TensorDType = .float32
    /// An explicit multiplier of token rows (Gemma's `sqrt(hidden_size)` rounded to the
    /// table dtype, e.g. 55.5 for 3072 in bf16); `nil` (the default) means `sqrt(embedDim)`
    /// when ``scaleEmbeddings`` is on, else 1.
    public var tokenScale: Float? = nil
    /// The row of position `p` is `p + positionOffset` (OPT's learned positions: 2, so that
    /// the -1 OPT gives padding tokens reads row 1). Positions may be negative down to
    /// `-positionOffset`.
    public var positionOffset: Int = 0
    /// Forwards apply the layer norm unless a call says otherwise (BLOOM's
    /// `word_embeddings_layernorm`). Default `false`: the seed's `use_layer_norm` per call.
    public var layerNormByDefault: Bool = false
    /// The rows of the token table this layer holds, when it is one shard of a
    /// vocabulary-parallel table (Megatron-LM's `VocabParallelEmbedding`); `nil` (the
    /// default) holds all `vocabSize` rows. Ids stay global (validated against
    /// ``vocabSize``); a shard's forward runs in two phases with the caller's all-reduce
    /// between them (``GPTEmbedding/forwardPartial(ids:batch:seq:positions:startPosition:training:useLayerNorm:into:capacity:)``).
    /// ``VocabShard/range(vocabSize:rank:world:rule:)`` computes the ranges of a split.
    public var vocabShard: Range<Int>? = nil

    /// The seed's defaults.
    public init() {}

    /// A configuration with the seed's keyword arguments; the other fields keep their defaults.
    public init(vocabSize: Int = 50257, embedDim: Int = 768, maxSeqLen: Int = 1024,
                dropout: Float = 0.1, useSinusoidal: Bool = false) {
        self.vocabSize = vocabSize
        self.embedDim = embedDim
        self.maxSeqLen = maxSeqLen
        self.dropout = dropout
        self.positionEncoding = useSinusoidal ? .sinusoidal : .learned
    }

    /// Whether positions come from the sinusoidal table (the seed's `use_sinusoidal`).
    public var useSinusoidal: Bool {
        get { positionEncoding == .sinusoidal }
        set { positionEncoding = newValue ? .sinusoidal : .learned }
    }

    // MARK: Presets

    /// Hugging Face GPT-2 with width `embedDim`: learned positions, no scaling, dropout 0.1.
    static func gpt2(embedDim: Int) -> GPTEmbeddingConfig {
        var c = GPTEmbeddingConfig()
        c.embedDim = embedDim
        c.scaleEmbeddings = false
        return c
    }

    /// GPT-2 small (124M): width 768.
    public static let gpt2Small = gpt2(embedDim: 768)
    /// GPT-2 medium (355M): width 1024.
    public static let gpt2Medium = gpt2(embedDim: 1024)
    /// GPT-2 large (774M): width 1280.
    public static let gpt2Large = gpt2(embedDim: 1280)
    /// GPT-2 XL (1.5B): width 1600.
    public static let gpt2XL = gpt2(embedDim: 1600)

    /// The preset names accepted by ``preset(named:)``, in size order.
    public static let presetNames = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"]

    /// The preset with a Hugging Face model name (`gpt2`, `gpt2-small`, `gpt2-medium`,
    /// `gpt2-large`, `gpt2-xl`), or `nil`.
    public static func preset(named name: String) -> GPTEmbeddingConfig? {
        switch name {
        case "gpt2", "gpt2-small": gpt2Small
        case "gpt2-medium": gpt2Medium
        case "gpt2-large": gpt2Large
        case "gpt2-xl": gpt2XL
        default: nil
        }
    }

    // MARK: Validation

    /// Positions are stored as 32-bit integers, so no table may have more rows than this.
    public static let maxRows = Int(Int32.max)

    /// Throws `invalidConfig` naming the first bad field and its value, or `sizeOverflow`
    /// when a table is too large to address.
    public func validate() throws(GPTEmbeddingError) {
        func bad(_ field: String, _ value: Any, _ rule: String) -> GPTEmbeddingError {
            GPTEmbeddingError(.invalidConfig, "invalid config: \(field) = \(value): \(rule)")
        }
        let maxRows = Self.maxRows
        guard vocabSize > 0, vocabSize <= maxRows else {
            throw bad("vocab_size", vocabSize, "must be in [1, \(maxRows)]")
        }
        guard embedDim > 0, embedDim <= maxRows else {
            throw bad("embed_dim", embedDim, "must be in [1, \(maxRows)]")
        }
        let needsPositions = positionEncoding != .none
        guard maxSeqLen >= (needsPositions ? 1 : 0), maxSeqLen <= maxRows else {
            throw bad("max_seq_len", maxSeqLen, needsPositions ? "must be in [1, \(maxRows)]" : "must be in [0, \(maxRows)]")
        }
        guard dropout >= 0, dropout <= 1 else {  // false for NaN too
            throw bad("dropout", dropout, "must be in [0, 1]")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw bad("layer_norm_eps", layerNormEps, "must be a finite number > 0")
        }
        guard initStd >= 0, initStd.isFinite else {
            throw bad("init_std", initStd, "must be a finite number >= 0")
        }
        if let p = paddingIdx, p < 0 || p >= vocabSize {
            throw bad("padding_idx", p, "must be in [0, \(vocabSize)) or none")
        }
        if let s = tokenScale, !s.isFinite {
            throw bad("token_scale", s, "must be a finite number (0 = derive it from scale_embeddings)")
        }
        guard positionOffset >= -maxRows, positionOffset <= maxRows else {
            throw bad("position_offset", positionOffset, "must be in [-\(maxRows), \(maxRows)]")
        }
        if let shard = vocabShard, shard.isEmpty || shard.lowerBound < 0 || shard.upperBound > vocabSize {
            throw bad("shard", "[\(shard.lowerBound), \(shard.upperBound))",
                      "must be a non-empty range of rows inside the vocabulary [0, \(vocabSize)) (shard_start < shard_end <= vocab_size)")
        }
        guard numThreads >= 0, numThreads <= 1024 else {
            throw bad("num_threads", numThreads, "must be in [0, 1024] (0 = all cores)")
        }
        // Every table must be addressable in bytes.
        _ = try Checked.floatBytes(Checked.multiply(vocabSize, embedDim, "token table size"), "token table bytes")
        _ = try Checked.floatBytes(Checked.multiply(max(maxSeqLen, 1), embedDim, "position table size"), "position table bytes")
    }

    // MARK: Sizes

    /// Trainable parameters per component. Layer norm parameters always exist (the norm
    /// is switched on per forward call, as in the seed). A shard counts its own rows.
    public struct ParameterCounts: Sendable, Equatable {
        /// `vocabSize * embedDim` (a shard's rows times `embedDim` for a shard).
        public var tokenEmbedding: Int
        /// `maxSeqLen * embedDim` for learned positions, else 0.
        public var positionEmbedding: Int
        /// `2 * embedDim` (weight and bias).
        public var layerNorm: Int
        /// The sum of all three.
        public var total: Int { tokenEmbedding + positionEmbedding + layerNorm }
        /// Token plus position parameters: the seed's "Parameters (Embedding)" column.
        public var embeddingTables: Int { tokenEmbedding + positionEmbedding }
    }

    /// The parameter counts of a layer with this configuration (validated first).
    public func parameterCounts() throws(GPTEmbeddingError) -> ParameterCounts {
        try validate()
        return ParameterCounts(
            tokenEmbedding: heldTokenRows.count * embedDim,
            positionEmbedding: positionEncoding == .learned ? maxSeqLen * embedDim : 0,
            layerNorm: 2 * embedDim)
    }

    /// The rows of the token table a layer with this configuration holds: ``vocabShard``,
    /// or the whole vocabulary.
    public var heldTokenRows: Range<Int> { vocabShard ?? 0..<vocabSize }

    /// Whether a layer with this configuration holds only part of the vocabulary (its
    /// forward then needs the two phases and an all-reduce).
    public var isPartialShard: Bool { heldTokenRows != 0..<vocabSize }

    /// The number of worker threads a layer with this configuration uses.
    var resolvedThreads: Int { numThreads > 0 ? numThreads : WorkerPool.coreCount }

    /// The multiplier of token rows: ``tokenScale``, else `sqrt(embedDim)` (rounded to float)
    /// or 1.
    var resolvedTokenScale: Float { tokenScale ?? (scaleEmbeddings ? Float(Double(embedDim).squareRoot()) : 1) }
}
