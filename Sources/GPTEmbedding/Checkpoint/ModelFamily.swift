/// What a Hugging Face decoder family computes before its first decoder block, as
/// transformers' `modeling_<family>.py` does it, and where its `config.json` keeps the
/// numbers. A checkpoint folder's `config.json` names the family (`model_type`).
struct ModelFamily: Sendable {
    /// The `model_type` values of the family.
    let modelTypes: [String]
    /// Base-model prefixes of tensor names (a checkpoint may also drop them).
    let prefixes: [String]
    /// The token table's name without the prefix.
    let token: String
    /// The learned position table's name without the prefix, if the family has one.
    let position: String?
    /// Row of position p: p + offset (OPT: 2).
    let positionOffset: Int
    /// The layer norm after the embedding (BLOOM), weight and bias names without prefix.
    let layerNorm: (weight: String, bias: String)?
    /// config.json fields, first present wins.
    let vocabFields: [String]
    let hiddenFields: [String]
    let epsFields: [String]
    let dropoutFields: [String]
    /// Token rows times sqrt(hidden_size) rounded to the table's dtype (Gemma).
    let scaledBySqrtHidden: Bool

    static let all: [ModelFamily] = [
        ModelFamily(modelTypes: ["gpt2", "gpt_bigcode"], prefixes: ["transformer."], token: "wte.weight", position: "wpe.weight",
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["n_embd", "hidden_size"],
                    epsFields: ["layer_norm_epsilon"], dropoutFields: ["embd_pdrop"], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["gpt_neo"], prefixes: ["transformer."], token: "wte.weight", position: "wpe.weight",
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["hidden_size"],
                    epsFields: ["layer_norm_epsilon"], dropoutFields: ["embed_dropout"], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["gptj"], prefixes: ["transformer."], token: "wte.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["n_embd", "hidden_size"],
                    epsFields: ["layer_norm_epsilon"], dropoutFields: ["embd_pdrop"], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["opt"], prefixes: ["model.decoder.", "decoder."], token: "embed_tokens.weight",
                    position: "embed_positions.weight", positionOffset: 2, layerNorm: nil, vocabFields: ["vocab_size"],
                    hiddenFields: ["hidden_size"], epsFields: [], dropoutFields: [], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["bloom"], prefixes: ["transformer."], token: "word_embeddings.weight", position: nil,
                    positionOffset: 0, layerNorm: ("word_embeddings_layernorm.weight", "word_embeddings_layernorm.bias"),
                    vocabFields: ["vocab_size"], hiddenFields: ["hidden_size", "n_embed"], epsFields: ["layer_norm_epsilon"],
                    dropoutFields: [], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["llama", "mistral", "qwen2"], prefixes: ["model."], token: "embed_tokens.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["hidden_size"],
                    epsFields: [], dropoutFields: [], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["falcon"], prefixes: ["transformer."], token: "word_embeddings.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["hidden_size"],
                    epsFields: [], dropoutFields: [], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["mpt"], prefixes: ["transformer."], token: "wte.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["d_model", "hidden_size"],
                    epsFields: [], dropoutFields: [], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["gpt_neox"], prefixes: ["gpt_neox."], token: "embed_in.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["hidden_size"],
                    epsFields: [], dropoutFields: ["hidden_dropout"], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["phi"], prefixes: ["model."], token: "embed_tokens.weight", position: nil,
                    positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"], hiddenFields: ["hidden_size"],
                    epsFields: [], dropoutFields: ["embd_pdrop"], scaledBySqrtHidden: false),
        ModelFamily(modelTypes: ["gemma", "gemma2", "gemma3_text"], prefixes: ["model.", "model.language_model."],
                    token: "embed_tokens.weight", position: nil, positionOffset: 0, layerNorm: nil, vocabFields: ["vocab_size"],
                    hiddenFields: ["hidden_size"], epsFields: [], dropoutFields: [], scaledBySqrtHidden: true),
    ]

    /// Every supported `model_type`, for messages.
    static var supported: [String] { all.flatMap(\.modelTypes).sorted() }

    /// The family of `modelType`, if supported.
    static func named(_ modelType: String) -> ModelFamily? { all.first { $0.modelTypes.contains(modelType) } }

    /// The names a tensor of this family may have: with each prefix, then without.
    func names(_ bare: String) -> [String] { prefixes.map { $0 + bare } + [bare] }

    /// The token-table names a checkpoint without a family (no config.json, no `family`
    /// option) is searched for: the library's and GPT-2's (``GPTEmbedding/tensorAliases``),
    /// then every family's, with each prefix and without, each once.
    static let tokenTableNames: [String] = {
        var names = GPTEmbedding.tensorAliases.first { $0.0 == .tokenEmbedding }?.1 ?? []
        for f in all {
            for n in f.names(f.token) where !names.contains(n) { names.append(n) }
        }
        return names
    }()

    /// The `model_type` values whose token table may be called `name` (for messages).
    static func types(withTokenTable name: String) -> [String] {
        all.filter { $0.names($0.token).contains(name) }.flatMap(\.modelTypes)
    }
}

/// A model's `config.json`: the fields the input stage needs.
struct ModelConfigFile {
    let path: String
    let fields: [(String, JSONValue)]

    /// No config.json (the `family` open option names the family): no fields, so sizes
    /// come from the tensors and epsilon and dropout from the options or their defaults.
    /// `path` only describes the checkpoint in messages.
    init(noFileFor description: String) {
        path = description
        fields = []
    }

    init(path: String) throws(GPTEmbeddingError) {
        self.path = path
        let bytes = try CheckpointFiles.readWhole(path, limit: 16 << 20)
        let value: JSONValue
        do {
            value = try bytes.withUnsafeBufferPointer { (b) throws(GPTEmbeddingError) in
                try JSONValue.parse(UnsafeRawBufferPointer(b), what: path)
            }
        } catch {
            throw error
        }
        guard case .object(let members) = value else { throw GPTEmbeddingError(.badFile, "\(path) is not a JSON object") }
        fields = members
    }

    func string(_ key: String) -> String? {
        guard case .string(let s)? = fields.first(where: { $0.0 == key })?.1 else { return nil }
        return s
    }

    /// The first of `keys` that holds an integer.
    func int(_ keys: [String]) throws(GPTEmbeddingError) -> (key: String, value: Int)? {
        for k in keys {
            guard let v = fields.first(where: { $0.0 == k })?.1 else { continue }
            guard case .integer(let i) = v else { throw GPTEmbeddingError(.badFile, "\(path): \"\(k)\" is not an integer") }
            return (k, i)
        }
        return nil
    }

    /// The first of `keys` that holds a number.
    func number(_ keys: [String]) throws(GPTEmbeddingError) -> Double? {
        for k in keys {
            switch fields.first(where: { $0.0 == k })?.1 {
            case .integer(let i)?: return Double(i)
            case .number(let d)?: return d
            case nil: continue
            default: throw GPTEmbeddingError(.badFile, "\(path): \"\(k)\" is not a number")
            }
        }
        return nil
    }
}
