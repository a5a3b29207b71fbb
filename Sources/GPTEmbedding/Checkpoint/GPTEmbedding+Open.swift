#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening a checkpoint as a layer, with no random initialisation.
extension GPTEmbedding {
    /// Opens the checkpoint at `path`: a `.safetensors` file, or a folder holding
    /// `model.safetensors` or a sharded checkpoint (`model.safetensors.index.json`), or a
    /// GGUF file (llama.cpp's format, recognised by its magic whatever its name; see
    /// ``GGUFFile`` for the checks and ``GGUFInputStage`` for the architectures: the token
    /// table `token_embd.weight` in F32, F16 or BF16, or in one of ggml's block formats
    /// (``GGMLType/isQuantizedTableType``: kept in its blocks and frozen, see
    /// ``ParameterTensor/blockType``), learned positions, Gemma's `sqrtf(n_embd)` in float32
    /// (not rounded to the table dtype as transformers does), `{arch}.embedding_scale`,
    /// BLOOM's norm; another block type, or an architecture whose input stage is not
    /// reproduced, is refused by name, the latter opening as a plain lookup when
    /// `options.useConfigJSON` is off).
    ///
    /// Which input stage: a folder's config.json names the model family (`model_type`,
    /// ``supportedModelTypes``), or `options.family` does (``OpenOptions/family``: the
    /// family's semantics without config.json); the family then fixes the tensor names,
    /// OPT's position offset, BLOOM's layer norm and Gemma's scale. Without either (no
    /// config.json, or `options.useConfigJSON` off), tensor names decide: the library's
    /// and GPT-2's (`token_embedding.weight`, `wte.weight`, `transformer.wte.weight`, with
    /// their position tables and `layer_norm.*`, as ``loadSafetensors(path:)`` accepts),
    /// or any supported family's token-table name (`model.embed_tokens.weight`,
    /// `transformer.word_embeddings.weight`, `gpt_neox.embed_in.weight`,
    /// `model.decoder.embed_tokens.weight`, ..., with or without its prefix), opened as a
    /// plain lookup: a family's position table (OPT), embedding layer norm (BLOOM) and
    /// scale (Gemma) are not picked up by name, since their meaning is the family's; name
    /// the family for them. Two candidate token tables in one checkpoint are `badFile`
    /// naming both.
    ///
    /// The sizes come from the tensors: vocabulary and width from the token table; learned
    /// positions and `maxSeqLen` from the position table when there is one, else none; the
    /// layer norm vectors from the file when present (else weight 1, bias 0); everything
    /// else from `options` (or config.json). The file's dtype is kept unless
    /// `options.dtype` converts.
    ///
    /// Read mode (the default) reads the tables with plain I/O straight into the layer's
    /// memory, in parallel parts: no second copy. Mapped mode (`options.mmap`) points each
    /// table whose dtype is kept and whose data is aligned for it into a private
    /// copy-on-write mapping of its file (``ParameterTensor/isMapped``): pages are shared
    /// with the page cache and other processes until written, and writes never reach the
    /// file. If another process truncates a mapped file, touching a page past its new end
    /// raises SIGBUS, which no library can catch: that is why reading is the default.
    ///
    /// - Throws: `io`, `badFile` (naming the file, the tensor and the problem),
    ///   `invalidArgument` / `invalidConfig` (an option), `outOfMemory`; nothing survives.
    public convenience init(contentsOf path: String, options: OpenOptions = OpenOptions()) throws(GPTEmbeddingError) {
        let kernels = try Kernels.active()
        let namedFamily = try options.family.map { (name) throws(GPTEmbeddingError) in
            guard let f = ModelFamily.named(name) else {
                throw GPTEmbeddingError(.invalidArgument, "family \"\(name)\" is not supported (supported: \(ModelFamily.supported.joined(separator: ", ")))")
            }
            return f
        }
        if GGUFCheckpoint.isGGUF(path) || path.hasSuffix(".gguf") {
            // A GGUF file (llama.cpp's format), whatever its name: the magic decides (a
            // `.gguf` file without it is refused as "not a GGUF file", not as safetensors).
            if let name = options.family {
                throw GPTEmbeddingError(.invalidArgument, "\(path): family \"\(name)\" applies to safetensors checkpoints; a GGUF file's input stage follows its general.architecture (by_tensor_names opens its token table as a plain lookup)")
            }
            let g = try GGUFCheckpoint(path: path)
            let plan = try GGUFPlan(g, options: options)
            let pool = WorkerPool(threads: plan.config.resolvedThreads)
            let token = try plan.load(plan.token, name: "token_embedding.weight", from: g, options: options, kernels: kernels, pool: pool)
            let position = try plan.position.map { (p) throws(GPTEmbeddingError) in
                try plan.load(p, name: "position_embedding.weight", from: g, options: options, kernels: kernels, pool: pool)
            }
            var layerNorm: (ParameterTensor, ParameterTensor)? = nil
            if let (w, b) = plan.layerNorm {
                layerNorm = (try plan.load(w, name: "layer_norm.weight", from: g, options: options, kernels: kernels, pool: pool),
                             try plan.load(b, name: "layer_norm.bias", from: g, options: options, kernels: kernels, pool: pool))
            }
            try self.init(config: plan.config, kernels: kernels, tokenTable: token, positionTable: position, layerNorm: layerNorm)
            return
        }
        let files = try CheckpointFiles(path: path)
        let plan: CheckpointPlan
        var configJSON: String? = nil
        if let folder = files.folder, access(folder + "/config.json", F_OK) == 0 { configJSON = folder + "/config.json" }
        if let family = namedFamily, let name = options.family {
            // The family named by the option; config.json, when read, gives only numbers.
            var modelConfig = ModelConfigFile(noFileFor: files.description)
            if options.useConfigJSON, let configJSON { modelConfig = try ModelConfigFile(path: configJSON) }
            plan = try CheckpointPlan(files: files, family: family, modelConfig: modelConfig, options: options, familyOption: name)
        } else if options.useConfigJSON, let configJSON {
            let modelConfig = try ModelConfigFile(path: configJSON)
            guard let type = modelConfig.string("model_type") else {
                throw GPTEmbeddingError(.badFile, "\(modelConfig.path) has no \"model_type\"; name the family (C: options.family; Swift: OpenOptions.family; Python: family=\"llama\", ...), or to open by tensor names, ignore config.json (C: options.by_tensor_names = 1; Swift: useConfigJSON = false; Python: by_tensor_names=True)")
            }
            guard let family = ModelFamily.named(type) else {
                throw GPTEmbeddingError(.badFile, "\(modelConfig.path): model_type \"\(type)\" is not supported (supported: \(ModelFamily.supported.joined(separator: ", "))); to open it as one of these, name the family (C: options.family; Swift: OpenOptions.family; Python: family=), or to open it by tensor names, ignore config.json (C: options.by_tensor_names = 1; Swift: useConfigJSON = false; Python: by_tensor_names=True)")
            }
            plan = try CheckpointPlan(files: files, family: family, modelConfig: modelConfig, options: options)
        } else {
            plan = try CheckpointPlan(files: files, options: options)
        }
        let pool = WorkerPool(threads: plan.config.resolvedThreads)
        let token = try plan.load(plan.token, name: "token_embedding.weight", files: files, options: options,
                                  kernels: kernels, pool: pool)
        let position = try plan.position.map { (p) throws(GPTEmbeddingError) in
            try plan.load(p, name: "position_embedding.weight", files: files, options: options, kernels: kernels, pool: pool)
        }
        var layerNorm: (ParameterTensor, ParameterTensor)? = nil
        if let (w, b) = plan.layerNorm {
            layerNorm = (try plan.load(w, name: "layer_norm.weight", files: files, options: options, kernels: kernels, pool: pool),
                         try plan.load(b, name: "layer_norm.bias", files: files, options: options, kernels: kernels, pool: pool))
        }
        try self.init(config: plan.config, kernels: kernels, tokenTable: token, positionTable: position, layerNorm: layerNorm)
    }
}

/// What a checkpoint holds for the layer, checked: which tensor fills which parameter, in
/// which dtype, and the configuration that follows.
struct CheckpointPlan {
    /// A tensor to load: where it is, its shape as the layer sees it, and the dtype to hold.
    struct Entry {
        let location: CheckpointFiles.Location
        let rows: Int
        let cols: Int
        let dtype: TensorDType
        /// The dtype in the file.
        let fileDType: TensorDType
        /// The first row of the tensor to load (a shard of the token table), else 0.
        var firstRow = 0
    }

    /// The rows of a `vocab`-row token table that `o` asks for (its shard), or `nil` for all.
    static func shardRows(vocab: Int, options o: OpenOptions, files: CheckpointFiles) throws(GPTEmbeddingError) -> Range<Int>? {
        try shardRows(vocab: vocab, options: o, files: nil, description: files.description)
    }

    /// The same for a checkpoint described by `description` (a GGUF file).
    static func shardRows(vocab: Int, options o: OpenOptions, files _: CheckpointFiles?, description: String) throws(GPTEmbeddingError) -> Range<Int>? {
        guard o.shardWorld != 0 || o.shardRank != 0 else { return nil }
        do {
            return try VocabShard.range(vocabSize: vocab, rank: o.shardRank, world: o.shardWorld, rule: o.shardRule)
        } catch {
            throw GPTEmbeddingError(error.code, "\(description): shard rank \(o.shardRank) of world \(o.shardWorld) (\(o.shardRule) rule) does not fit the checkpoint's token table of \(vocab) rows: \(error.message)")
        }
    }

    let config: GPTEmbeddingConfig
    let token: Entry
    let position: Entry?
    let layerNorm: (Entry, Entry)?

    init(files: CheckpointFiles, options o: OpenOptions) throws(GPTEmbeddingError) {
        func find(_ p: GPTEmbedding.Parameter) throws(GPTEmbeddingError) -> CheckpointFiles.Location? {
            let names = GPTEmbedding.tensorAliases.first { $0.0 == p }?.1 ?? []
            let found = names.compactMap { files.location($0) }
            if found.count > 1 {
                throw GPTEmbeddingError(.badFile, "\(files.description): \(found.map { "\"\($0.tensor.name)\"" }.joined(separator: " and ")) are two names for one parameter")
            }
            return found.first
        }
        func floatType(_ l: CheckpointFiles.Location) throws(GPTEmbeddingError) -> TensorDType {
            guard let t = TensorDType(safetensorsName: l.tensor.dtype) else {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: l)): tensor \"\(l.tensor.name)\" has dtype \(l.tensor.dtype): tables must be F32, BF16 or F16")
            }
            return t
        }
        // The token table: the library's or GPT-2's name, or any family's (a plain lookup;
        // the family's position table and layer norm are not looked for: their meaning is
        // the family's, which the `family` option applies). 0.2 callers keep 0.2's names.
        let tokenNames = o.searchFamilyTokenNames ? ModelFamily.tokenTableNames
            : GPTEmbedding.tensorAliases.first { $0.0 == .tokenEmbedding }?.1 ?? []
        let candidates = tokenNames.compactMap { files.location($0) }
        if candidates.count > 1 {
            let named = candidates.map { (l) -> String in
                let types = ModelFamily.types(withTokenTable: l.tensor.name)
                return "\"\(l.tensor.name)\"" + (types.isEmpty ? " (the library's)" : " (\(types.joined(separator: ", ")))")
            }
            throw GPTEmbeddingError(.badFile, "\(files.description): two candidate token tables, \(named.joined(separator: " and ")): name the family to choose (C: options.family; Swift: OpenOptions.family; Python: family=)")
        }
        guard let tokenAt = candidates.first else {
            throw GPTEmbeddingError(.badFile, "\(files.description): no token table (looked for \(tokenNames.joined(separator: ", ")))")
        }
        let shape = tokenAt.tensor.shape
        guard shape.count == 2, shape[0] >= 1, shape[1] >= 1 else {
            throw GPTEmbeddingError(.badFile, "\(files.file(of: tokenAt)): token table \"\(tokenAt.tensor.name)\" has shape \(shape), expected [vocab_size, embed_dim]")
        }
        let (vocab, dim) = (shape[0], shape[1])
        let fileType = try floatType(tokenAt)
        let dtype = o.dtype ?? fileType

        var c = GPTEmbeddingConfig()
        c.vocabSize = vocab
        c.embedDim = dim
        c.weightDType = dtype
        c.dropout = o.dropout ?? 0
        c.seed = o.seed
        c.numThreads = o.numThreads
        c.layerNormEps = o.layerNormEps ?? 1e-5
        c.scaleEmbeddings = o.scaleEmbeddings
        c.paddingIdx = o.paddingIdx
        let shard = try Self.shardRows(vocab: vocab, options: o, files: files)
        c.vocabShard = shard
        token = Entry(location: tokenAt, rows: shard?.count ?? vocab, cols: dim, dtype: dtype, fileDType: fileType,
                      firstRow: shard?.lowerBound ?? 0)

        let positionAt = try find(.positionEmbedding)
        switch o.positionEncoding ?? (positionAt == nil ? PositionEncoding.none : .learned) {
        case .learned:
            guard let p = positionAt else {
                throw GPTEmbeddingError(.badFile, "\(files.description): learned positions asked for, but there is no position table")
            }
            let ps = p.tensor.shape
            guard ps.count == 2, ps[0] >= 1, ps[1] == dim else {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: p)): position table \"\(p.tensor.name)\" has shape \(ps), but the token table's width is \(dim): expected [max_seq_len, \(dim)]")
            }
            // The layer holds both tables in one dtype: the token table's.
            position = Entry(location: p, rows: ps[0], cols: dim, dtype: dtype, fileDType: try floatType(p))
            c.positionEncoding = .learned
            c.maxSeqLen = ps[0]
        case .sinusoidal:
            position = nil
            c.positionEncoding = .sinusoidal
            c.maxSeqLen = o.maxSeqLen
        case .none:
            position = nil
            c.positionEncoding = .none
            c.maxSeqLen = 0
        }

        let weightAt = try find(.layerNormWeight), biasAt = try find(.layerNormBias)
        if let w = weightAt, let b = biasAt {
            for l in [w, b] where l.tensor.shape != [dim] {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: l)): \"\(l.tensor.name)\" has shape \(l.tensor.shape), expected [\(dim)]")
            }
            layerNorm = (Entry(location: w, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(w)),
                         Entry(location: b, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(b)))
        } else if let one = weightAt ?? biasAt {
            throw GPTEmbeddingError(.badFile, "\(files.file(of: one)): \"\(one.tensor.name)\" without its layer norm partner (weight and bias come together)")
        } else {
            layerNorm = nil
        }
        try c.validate()
        config = c
    }

    /// The plan for a Hugging Face model folder whose config.json names `family`: its tensor
    /// names, its position offset, its layer norm, its scale; sizes checked against
    /// config.json.
    /// With `familyOption` (the `family` open option) that name is the family, and
    /// `m` is config.json for its numbers only, or ``ModelConfigFile/init(noFileFor:)``.
    init(files: CheckpointFiles, family f: ModelFamily, modelConfig m: ModelConfigFile, options o: OpenOptions,
         familyOption: String? = nil) throws(GPTEmbeddingError) {
        let type = familyOption ?? m.string("model_type") ?? "?"
        let who = familyOption == nil ? "model_type \"\(type)\"" : "family \"\(type)\""
        func find(_ bare: String, _ what: String) throws(GPTEmbeddingError) -> CheckpointFiles.Location {
            let names = f.names(bare)
            let found = names.compactMap { files.location($0) }
            guard let first = found.first else {
                throw GPTEmbeddingError(.badFile, "\(files.description): \(who) needs its \(what) (\(names.joined(separator: " or "))), which the checkpoint does not have")
            }
            if found.count > 1 {
                throw GPTEmbeddingError(.badFile, "\(files.description): \(found.map { "\"\($0.tensor.name)\"" }.joined(separator: " and ")) are two names for the \(what)")
            }
            return first
        }
        func floatType(_ l: CheckpointFiles.Location) throws(GPTEmbeddingError) -> TensorDType {
            guard let t = TensorDType(safetensorsName: l.tensor.dtype) else {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: l)): tensor \"\(l.tensor.name)\" has dtype \(l.tensor.dtype): tables must be F32, BF16 or F16")
            }
            return t
        }
        let tokenAt = try find(f.token, "token table")
        let shape = tokenAt.tensor.shape
        guard shape.count == 2, shape[0] >= 1, shape[1] >= 1 else {
            throw GPTEmbeddingError(.badFile, "\(files.file(of: tokenAt)): token table \"\(tokenAt.tensor.name)\" has shape \(shape), expected [vocab_size, hidden_size]")
        }
        let (vocab, dim) = (shape[0], shape[1])
        // OPT with word_embed_proj_dim != hidden_size projects its token rows (project_in)
        // before adding positions: refused first, whatever else disagrees.
        if type == "opt", let (_, proj) = try m.int(["word_embed_proj_dim"]), let (_, hidden) = try m.int(f.hiddenFields), proj != hidden {
            throw GPTEmbeddingError(.badFile, "\(m.path): word_embed_proj_dim \(proj) differs from hidden_size \(hidden): this OPT model projects its token rows (project_in), which this layer does not compute")
        }
        if let (key, h) = try m.int(f.hiddenFields), h != dim {
            throw GPTEmbeddingError(.badFile, "\(m.path): \(key) = \(h) but the token table \"\(tokenAt.tensor.name)\" is \(shape): they must agree")
        }
        if let (key, v) = try m.int(f.vocabFields), v != vocab {
            throw GPTEmbeddingError(.badFile, "\(m.path): \(key) = \(v) but the token table \"\(tokenAt.tensor.name)\" has \(vocab) rows: they must agree")
        }
        let fileType = try floatType(tokenAt)
        let dtype = o.dtype ?? fileType
        var c = GPTEmbeddingConfig()
        c.vocabSize = vocab
        c.embedDim = dim
        c.weightDType = dtype
        c.scaleEmbeddings = o.scaleEmbeddings
        c.seed = o.seed
        c.numThreads = o.numThreads
        c.paddingIdx = o.paddingIdx
        let fileDropout = try m.number(f.dropoutFields), fileEps = try m.number(f.epsFields)
        c.dropout = o.dropout ?? Float(fileDropout ?? 0)
        c.layerNormEps = o.layerNormEps ?? Float(fileEps ?? 1e-5)
        if f.scaledBySqrtHidden {
            // sqrt(hidden_size) rounded to the table's dtype, as transformers multiplies by
            // `embed_scale.to(weight.dtype)`.
            // The float32 value first, as transformers' buffer holds it.
            let exact = Float(Double(dim).squareRoot())
            switch dtype {
            case .bfloat16:
                let u = exact.bitPattern  // positive and finite: round to nearest even
                c.tokenScale = Float(bitPattern: ((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16) << 16)
            case .float16:
                c.tokenScale = Float(Float16(exact))
            case .float32:
                c.tokenScale = exact
            }
        }
        let shard = try Self.shardRows(vocab: vocab, options: o, files: files)
        c.vocabShard = shard
        token = Entry(location: tokenAt, rows: shard?.count ?? vocab, cols: dim, dtype: dtype, fileDType: fileType,
                      firstRow: shard?.lowerBound ?? 0)
        if let bare = f.position, o.positionEncoding == nil || o.positionEncoding == .learned {
            let p = try find(bare, "position table")
            let ps = p.tensor.shape
            guard ps.count == 2, ps[0] >= 1, ps[1] == dim else {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: p)): position table \"\(p.tensor.name)\" has shape \(ps), expected [rows, \(dim)]")
            }
            position = Entry(location: p, rows: ps[0], cols: dim, dtype: dtype, fileDType: try floatType(p))
            c.positionEncoding = .learned
            c.maxSeqLen = ps[0]
            c.positionOffset = f.positionOffset
        } else if o.positionEncoding == .sinusoidal {
            position = nil
            c.positionEncoding = .sinusoidal
            c.maxSeqLen = o.maxSeqLen
        } else if o.positionEncoding == .learned {
            throw GPTEmbeddingError(.badFile, "\(files.description): learned positions asked for, but \(who) has no position table")
        } else {
            position = nil
            c.positionEncoding = .none
            c.maxSeqLen = 0
        }
        if let (w, b) = f.layerNorm {
            let wAt = try find(w, "input layer norm weight"), bAt = try find(b, "input layer norm bias")
            for l in [wAt, bAt] where l.tensor.shape != [dim] {
                throw GPTEmbeddingError(.badFile, "\(files.file(of: l)): \"\(l.tensor.name)\" has shape \(l.tensor.shape), expected [\(dim)]")
            }
            layerNorm = (Entry(location: wAt, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(wAt)),
                         Entry(location: bAt, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(bAt)))
            c.layerNormByDefault = true
        } else {
            layerNorm = nil
        }
        try c.validate()
        config = c
    }

    /// Bytes read per part when tables are read in parallel.
    static let readPart = 64 << 20

    /// The parameter for `entry`: mapped when asked for and possible, else read (and
    /// converted when its dtype changes).
    func load(_ entry: Entry, name: String, files: CheckpointFiles, options: OpenOptions,
              kernels: Kernels, pool: WorkerPool) throws(GPTEmbeddingError) -> ParameterTensor {
        let shard = files.shards[entry.location.shard]
        let count = entry.rows * entry.cols
        // A shard starts firstRow rows into the tensor: only its own rows are read or mapped.
        let offset = entry.location.offset + entry.firstRow * entry.cols * entry.fileDType.byteCount
        if options.mmap && entry.dtype == entry.fileDType && offset % entry.dtype.byteCount == 0 {
            let mapping = try files.mapping(of: entry.location.shard)
            return ParameterTensor(name: name, rows: entry.rows, cols: entry.cols,
                                   storage: TableStorage(mapping: mapping, offset: offset, count: count, dtype: entry.dtype),
                                   kernels: kernels)
        }
        let storage = try TableStorage(count: count, dtype: entry.dtype, zeroed: false, what: name)
        let ok: Bool
        if entry.dtype == entry.fileDType {
            ok = Self.read(shard.fd, into: storage.base, bytes: count * entry.dtype.byteCount, at: offset, pool: pool)
        } else {
            // Read a part at a time into scratch and convert it into the table.
            let part = Self.readPart / entry.fileDType.byteCount
            let scratch = try FloatBuffer(count: min(count, part) * entry.fileDType.byteCount / 4 + 1, zeroed: false,
                                          what: "\(name) conversion buffer")
            var done = 0, good = true
            while good && done < count {
                let n = min(part, count - done)
                good = CheckpointFiles.readFully(shard.fd, scratch.base, n * entry.fileDType.byteCount,
                                                 at: offset + done * entry.fileDType.byteCount)
                if good {
                    kernels.convert(storage.base + done * entry.dtype.byteCount, entry.dtype.rawValue,
                                    UnsafeRawPointer(scratch.base), entry.fileDType.rawValue, Int64(n))
                }
                done += n
            }
            ok = good
        }
        guard ok else {
            throw GPTEmbeddingError(.io, "\(shard.path): cannot read tensor \"\(entry.location.tensor.name)\" (\(count * entry.fileDType.byteCount) bytes at offset \(offset)): \(String(cString: strerror(errno)))")
        }
        return ParameterTensor(name: name, rows: entry.rows, cols: entry.cols, storage: storage, kernels: kernels)
    }

    /// Reads `bytes` at `offset` into `dst`, in parallel parts of ``readPart`` bytes.
    static func read(_ fd: Int32, into dst: UnsafeMutableRawPointer, bytes: Int, at offset: Int, pool: WorkerPool) -> Bool {
        let parts = max(1, (bytes + readPart - 1) / readPart)
        let d = SendablePointer(dst.assumingMemoryBound(to: UInt8.self))
        let failed = SendablePointer(UnsafeMutablePointer<Int32>.allocate(capacity: parts))
        defer { failed.pointer.deallocate() }
        failed.pointer.initialize(repeating: 0, count: parts)
        pool.parallelFor(count: parts, grain: 1) { _, range in
            for k in range {
                let lo = k * readPart, n = min(readPart, bytes - lo)
                if !CheckpointFiles.readFully(fd, d.pointer + lo, n, at: offset + lo) { failed.pointer[k] = 1 }
            }
        }
        return (0..<parts).allSatisfy { failed.pointer[$0] == 0 }
    }
}

extension GPTEmbedding {
    /// The safetensors files of the checkpoint at `path` (a file, or a folder with
    /// `model.safetensors` or a sharded index) with their validated headers, in order: for
    /// inspecting a checkpoint without reading its tensors.
    public static func checkpointFiles(path: String) throws(GPTEmbeddingError) -> [(path: String, header: SafetensorsHeader)] {
        try CheckpointFiles(path: path).shards.map { ($0.path, $0.header) }
    }

    /// Every tensor name the layer reads without a model family: the library's names and
    /// Hugging Face GPT-2's, and every supported family's token-table name (a plain lookup).
    public static var recognisedTensorNames: [String] {
        let aliases = tensorAliases.flatMap(\.1)
        return aliases + ModelFamily.tokenTableNames.filter { !aliases.contains($0) }
    }

    /// The `model_type` of the folder's config.json at `path`, when there is one (for
    /// inspecting; ``init(contentsOf:options:)`` refuses an unsupported one).
    public static func modelType(path: String) -> String? {
        guard let config = try? ModelConfigFile(path: (path.hasSuffix("/") ? String(path.dropLast()) : path) + "/config.json")
        else { return nil }
        return config.string("model_type")
    }

    /// The tensor names a model family's input stage reads (every prefix variant), or `nil`
    /// for an unsupported `model_type`.
    public static func tensorNames(modelType: String) -> [String]? {
        guard let f = ModelFamily.named(modelType) else { return nil }
        return f.names(f.token) + (f.position.map { f.names($0) } ?? []) + (f.layerNorm.map { f.names($0.weight) + f.names($0.bias) } ?? [])
    }

    /// Every supported `model_type`.
    public static var supportedModelTypes: [String] { ModelFamily.supported }
}
