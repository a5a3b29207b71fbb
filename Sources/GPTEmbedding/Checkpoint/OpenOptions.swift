/// How ``GPTEmbedding/init(contentsOf:options:)`` builds a layer from a checkpoint: what the
/// file cannot tell (dropout, threads, seed, scaling, epsilon) and how to hold its tables.
public struct OpenOptions: Sendable, Equatable {
    /// Convert the tables to this dtype while loading; `nil` (the default) keeps the file's.
    public var dtype: TensorDType? = nil
    /// Point the tables into a private copy-on-write mapping of the file instead of reading
    /// them (see ``GPTEmbedding/init(contentsOf:options:)``). Default `false`.
    public var mmap: Bool = false
    /// Worker threads; 0 means one per core.
    public var numThreads: Int = 0
    /// Seed of the dropout masks.
    public var seed: UInt64 = 0
    /// Dropout probability of training forwards; `nil` (the default): the model family's
    /// input dropout from config.json, else 0.
    public var dropout: Float? = nil
    /// The layer norm's epsilon; `nil` (the default): config.json's, else 1e-5.
    public var layerNormEps: Float? = nil
    /// Multiply token rows by `sqrt(embedDim)`.
    public var scaleEmbeddings: Bool = false
    /// `nil` (the default): learned positions when the file has a position table, else
    /// none. `.sinusoidal` or `.none` override it (a position table in the file is then
    /// ignored); `.learned` requires one.
    public var positionEncoding: PositionEncoding? = nil
    /// Rows of the cached sinusoidal table when ``positionEncoding`` is `.sinusoidal`.
    public var maxSeqLen: Int = 1024
    /// A token row that receives no gradient, or `nil`.
    public var paddingIdx: Int? = nil
    /// Read the folder's `config.json`, when there is one, for the model family (the
    /// default). `false` opens by tensor names alone, whatever config.json says; for a GGUF
    /// file, `false` opens `token_embd.weight` as a plain lookup whatever
    /// `general.architecture` says (even one that is otherwise refused).
    public var useConfigJSON: Bool = true
    /// Open one shard of the token table for vocabulary parallelism: the layer holds the
    /// rows ``VocabShard/range(vocabSize:rank:world:rule:)`` gives rank ``shardRank`` of
    /// ``shardWorld`` under ``shardRule``, and only those rows are read (or mapped), so each
    /// rank's memory is about 1/world of the table. 0 (the default): the whole table.
    public var shardWorld: Int = 0
    /// This process's rank in `0 ..< shardWorld` (0 when ``shardWorld`` is 0).
    public var shardRank: Int = 0
    /// How the vocabulary is split (``VocabShardRule``).
    public var shardRule: VocabShardRule = .balanced
    /// A Hugging Face `model_type` whose input stage to apply when the checkpoint has no
    /// config.json that names it (a bare `.safetensors` file, a folder without config.json,
    /// or one whose model_type is missing or unsupported): `"llama"`, `"opt"`, `"bloom"`,
    /// `"gemma"`, ... (``GPTEmbedding/supportedModelTypes``). The family's tensor names,
    /// OPT's position offset 2, BLOOM's embedding layer norm (on by default), Gemma's
    /// `sqrt(hidden_size)` rounded to the table dtype apply as with config.json; vocabulary
    /// and width come from the token table; epsilon and dropout from ``layerNormEps`` and
    /// ``dropout`` (else config.json's when a folder has one and ``useConfigJSON`` is on,
    /// else 1e-5 and 0). A config.json beside the checkpoint is still read for those numbers
    /// and its sizes checked, but its `model_type` is not consulted. `nil` (the default):
    /// config.json's `model_type` when there is one, else tensor names alone (see
    /// ``GPTEmbedding/init(contentsOf:options:)``). An unknown name is `invalidArgument`
    /// listing the supported ones; GGUF files (whose architecture is in the file) refuse it.
    public var family: String? = nil
    /// Search every supported family's token-table name when no family is known (the
    /// default). Off only for C callers with a 0.2 options struct, who keep 0.2's names
    /// (the library's and GPT-2's).
    package var searchFamilyTokenNames: Bool = true

    /// The defaults.
    public init() {}
}
