#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How llama.cpp computes the input stage of a GGUF architecture (`general.architecture`),
/// as far as this library reproduces it.
public enum GGUFInputStage: Sendable, Equatable {
    /// `get_rows(token_embd)` only.
    case plainLookup
    /// Gemma 1/2/3: the row times `sqrtf(n_embd)` in float32.
    case sqrtScale
    /// Granite, GraniteMoE, GraniteHybrid, MiniCPM: times `{arch}.embedding_scale` when the
    /// file has it (llama.cpp skips a zero or missing scale).
    case embeddingScaleKey
    /// A fixed multiplier (MiniCPM3's 12).
    case fixedScale(Float)
    /// Learned positions `position_embd.weight` added (gpt2, starcoder; mpt when present).
    case learnedPositions(required: Bool)
    /// BLOOM: LayerNorm with `token_embd_norm.weight/.bias` and
    /// `{arch}.attention.layer_norm_epsilon`.
    case layerNorm
    /// An input stage this library does not compute; the string says why.
    case refused(String)

    /// The input stage of architecture `arch`; unknown architectures are refused.
    public static func of(_ arch: String) -> GGUFInputStage {
        switch arch {
        case "gemma", "gemma2", "gemma3": return .sqrtScale
        case "granite", "granitemoe", "granitehybrid", "minicpm": return .embeddingScaleKey
        case "minicpm3": return .fixedScale(12)
        case "gpt2", "starcoder": return .learnedPositions(required: true)
        case "mpt": return .learnedPositions(required: false)
        case "bloom": return .layerNorm
        case "bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert", "modern-bert":
            return .refused("an encoder whose input stage adds token-type rows and positions before a layer norm")
        case "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7":
            return .refused("an RWKV model whose input stage this library does not compute")
        case "gemma3n", "gemma4":
            return .refused("its input stage also reads per-layer token tables (per_layer_token_embd)")
        case "grok":
            return .refused("llama.cpp's input scale of grok depends on its version (a hard-coded 78.38 or grok.embedding_scale)")
        case "t5", "t5encoder":
            return .refused("an encoder-decoder model")
        case "falcon-h1":
            return .refused("its embedding multiplier is not reproduced")
        case "llama", "llama4", "mistral", "mistral3", "qwen", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe",
             "phi2", "phi3", "phimoe", "falcon", "stablelm", "deepseek", "deepseek2", "internlm2", "olmo", "olmo2",
             "olmoe", "command-r", "cohere2", "starcoder2", "gptneox", "baichuan", "orion", "xverse", "chatglm",
             "glm4", "exaone", "nemotron", "dbrx", "arctic", "mamba", "codeshell", "refact", "persimmon", "plamo",
             "gpt-oss", "smollm3", "deci", "openelm", "jais", "chameleon", "ernie4_5", "hunyuan-moe", "exaone4":
            return .plainLookup
        default:
            return .refused("an architecture this library does not know")
        }
    }
}

/// A GGUF file opened for the layer: the parsed file, its mapping and descriptor.
final class GGUFCheckpoint {
    let path: String
    let fd: Int32
    let mapping: MappedFile
    let file: GGUFFile

    /// True when `path` is a regular file starting with GGUF's magic.
    static func isGGUF(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        guard CheckpointFiles.readFully(fd, &magic, 4, at: 0) else { return false }
        return magic.withUnsafeBytes { GGUFFile.hasMagic($0) }
    }

    init(path: String) throws(GPTEmbeddingError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GPTEmbeddingError(.io, "cannot open \(path): \(String(cString: strerror(errno)))") }
        var keep = false
        defer { if !keep { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw GPTEmbeddingError(.io, "cannot stat \(path)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw GPTEmbeddingError(.io, "\(path) is not a regular file") }
        let mapping = try MappedFile(fd: fd, byteCount: Int(st.st_size), path: path)
        file = try GGUFFile(file: UnsafeRawBufferPointer(start: mapping.base, count: mapping.byteCount), path: path)
        self.mapping = mapping
        self.path = path
        self.fd = fd
        keep = true
    }

    deinit { close(fd) }
}

/// What a GGUF file gives the layer.
struct GGUFPlan {
    struct Entry {
        let tensor: GGUFFile.Tensor
        let rows: Int
        let cols: Int
        let dtype: TensorDType
        let fileDType: TensorDType
        var firstRow = 0
        /// The file's block type of a quantized table, or `nil` for float elements.
        var fileBlockType: GGMLType? = nil
        /// Whether the table stays in its block format (else it is dequantized while opening).
        var keepsBlocks = false
    }

    let config: GPTEmbeddingConfig
    let token: Entry
    let position: Entry?
    let layerNorm: (Entry, Entry)?

    init(_ g: GGUFCheckpoint, options o: OpenOptions) throws(GPTEmbeddingError) {
        let f = g.file, path = g.path
        func bad(_ s: String) -> GPTEmbeddingError { GPTEmbeddingError(.badFile, "\(path): \(s)") }
        let arch = f.value("general.architecture")?.stringValue
        let stage: GGUFInputStage
        if !o.useConfigJSON {
            stage = .plainLookup  // by tensor names: the plain lookup, whatever the architecture
        } else if let arch {
            stage = GGUFInputStage.of(arch)
        } else {
            throw bad("no general.architecture key; to open token_embd.weight as a plain lookup, open by tensor names (C: options.by_tensor_names = 1; Swift: useConfigJSON = false; Python: by_tensor_names=True)")
        }
        if case .refused(let why) = stage {
            throw bad("architecture \"\(arch ?? "?")\" is not supported: \(why); to open token_embd.weight as a plain lookup anyway, open by tensor names (C: options.by_tensor_names = 1; Swift: useConfigJSON = false; Python: by_tensor_names=True)")
        }
        func floatType(_ t: GGUFFile.Tensor) throws(GPTEmbeddingError) -> TensorDType {
            if let d = t.type.plainDType { return d }
            if t.type.blockSize > 1 {
                throw bad("\(t.name) is \(t.type.name): only token_embd.weight and position_embd.weight may be in a block format")
            }
            throw bad("\(t.name) is \(t.type.name): tables must be f32, f16 or bf16")
        }
        guard let tok = f.tensor("token_embd.weight") else { throw bad("no token table (token_embd.weight)") }
        guard tok.ne.count == 2, tok.ne[0] >= 1, tok.ne[1] >= 1 else {
            throw bad("token_embd.weight has ne \(tok.ne), expected [n_embd, n_vocab]")
        }
        let (dim, vocab) = (tok.ne[0], tok.ne[1])
        // A quantized table stays in its block format (dequantized as rows are read, which
        // is float32) unless the dtype option converts it.
        let blocks: GGMLType?
        let fileType: TensorDType
        if tok.type.isQuantizedTableType {
            guard dim % tok.type.blockSize == 0 else {
                throw bad("token_embd.weight is \(tok.type.name) with rows of \(dim) elements, not a whole number of \(tok.type.blockSize)-element blocks")
            }
            blocks = tok.type
            fileType = .float32
        } else if tok.type.blockSize > 1 {
            throw bad("token_embd.weight is \(tok.type.name): this build decodes f32, f16, bf16 and \(GGMLType.allCases.filter(\.isQuantizedTableType).map(\.name).joined(separator: ", ")) tables (\(tok.type.name) needs ggml's lattice grids or is not a table type)")
        } else {
            blocks = nil
            fileType = try floatType(tok)
        }
        let prefix = arch ?? ""
        if let v = f.value("\(prefix).embedding_length"), v.intValue != dim {
            throw bad("\(prefix).embedding_length = \(v) but token_embd.weight has ne \(tok.ne): they must agree")
        }
        if case .array(_, let n)? = f.value("tokenizer.ggml.tokens"), n != vocab {
            throw bad("tokenizer.ggml.tokens has \(n) tokens but token_embd.weight has ne \(tok.ne) (\(vocab) rows): they must agree")
        }
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
        switch stage {
        case .sqrtScale:
            // llama.cpp multiplies the float32 row by sqrtf(n_embd) in float32: the scale is
            // NOT rounded to the table's dtype, unlike transformers' Gemma (which multiplies by
            // the bf16/f16-rounded normalizer, e.g. 55.5 instead of 55.4256 for 3072).
            c.tokenScale = Float(dim).squareRoot()
        case .embeddingScaleKey:
            if let v = f.value("\(prefix).embedding_scale") {
                guard let s = v.doubleValue, Float(s).isFinite else { throw bad("\(prefix).embedding_scale = \(v) is not a finite number") }
                // llama.cpp stores the key as float32 and skips a zero scale.
                if Float(s) != 0 { c.tokenScale = Float(s) }
            }
        case .fixedScale(let s):
            c.tokenScale = s
        default:
            break
        }
        let shard = try CheckpointPlan.shardRows(vocab: vocab, options: o, files: nil, description: path)
        c.vocabShard = shard
        token = Entry(tensor: tok, rows: shard?.count ?? vocab, cols: dim, dtype: o.dtype ?? fileType, fileDType: fileType,
                      firstRow: shard?.lowerBound ?? 0, fileBlockType: blocks, keepsBlocks: o.dtype == nil)
        if blocks != nil && o.dtype == nil {
            // A block-format table computes in float32; other tables follow the file's.
            c.weightDType = .float32
        }

        let posAt = f.tensor("position_embd.weight")
        var wantPositions = posAt != nil
        if case .learnedPositions(required: true) = stage, posAt == nil, o.positionEncoding == nil || o.positionEncoding == .learned {
            throw bad("architecture \"\(prefix)\" needs its position table position_embd.weight, which the file does not have")
        }
        if o.positionEncoding == .sinusoidal || o.positionEncoding == PositionEncoding.none { wantPositions = false }
        if o.positionEncoding == .learned && posAt == nil { throw bad("learned positions asked for, but there is no position_embd.weight") }
        if wantPositions, let p = posAt {
            guard p.ne.count == 2, p.ne[0] == dim, p.ne[1] >= 1 else {
                throw bad("position_embd.weight has ne \(p.ne), expected [\(dim), n_ctx]")
            }
            // A quantized position table (small, and trained like any) is dequantized to
            // float32 while opening.
            if p.type.isQuantizedTableType {
                position = Entry(tensor: p, rows: p.ne[1], cols: dim, dtype: o.dtype ?? .float32, fileDType: .float32,
                                 fileBlockType: p.type)
            } else {
                let pf = try floatType(p)
                position = Entry(tensor: p, rows: p.ne[1], cols: dim, dtype: o.dtype ?? (blocks != nil ? pf : dtype), fileDType: pf)
            }
            c.positionEncoding = .learned
            c.maxSeqLen = p.ne[1]
        } else if o.positionEncoding == .sinusoidal {
            position = nil
            c.positionEncoding = .sinusoidal
            c.maxSeqLen = o.maxSeqLen
        } else {
            position = nil
            c.positionEncoding = .none
            c.maxSeqLen = 0
        }

        let w = f.tensor("token_embd_norm.weight"), b = f.tensor("token_embd_norm.bias")
        if case .layerNorm = stage, w == nil || b == nil {
            throw bad("architecture \"\(prefix)\" needs token_embd_norm.weight and token_embd_norm.bias, which the file does not have")
        }
        if let w, let b {
            for t in [w, b] where t.ne != [dim] {
                throw bad("\(t.name) has ne \(t.ne), expected [\(dim)]")
            }
            layerNorm = (Entry(tensor: w, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(w)),
                         Entry(tensor: b, rows: 1, cols: dim, dtype: .float32, fileDType: try floatType(b)))
            if case .layerNorm = stage {
                c.layerNormByDefault = true
                if o.layerNormEps == nil {
                    guard let v = f.value("\(prefix).attention.layer_norm_epsilon") else {
                        throw bad("\(prefix).attention.layer_norm_epsilon is missing (give the epsilon as an option)")
                    }
                    guard let e = v.doubleValue, Float(e).isFinite, Float(e) > 0 else {
                        throw bad("\(prefix).attention.layer_norm_epsilon = \(v) is not a positive number")
                    }
                    c.layerNormEps = Float(e)
                }
            }
        } else if let one = w ?? b {
            throw bad("\(one.name) without its layer norm partner (weight and bias come together)")
        } else {
            layerNorm = nil
        }
        do { try c.validate() } catch { throw GPTEmbeddingError(.badFile, "\(path): \(error.message)") }
        config = c
    }

    /// The parameter for `entry`: mapped when asked for, the dtype is kept and the data is
    /// aligned for it; else read into the layer's memory (converted when the dtype changes).
    func load(_ entry: Entry, name: String, from g: GGUFCheckpoint, options: OpenOptions, kernels: Kernels,
              pool: WorkerPool) throws(GPTEmbeddingError) -> ParameterTensor {
        let count = entry.rows * entry.cols
        if let type = entry.fileBlockType, let rowBytes = type.rowBytes(entry.cols) {
            return try loadBlocks(entry, type: type, rowBytes: rowBytes, name: name, from: g, options: options,
                                  kernels: kernels, pool: pool)
        }
        let offset = entry.tensor.offset + entry.firstRow * entry.cols * entry.fileDType.byteCount
        if options.mmap && entry.dtype == entry.fileDType && offset % entry.dtype.byteCount == 0 {
            return ParameterTensor(name: name, rows: entry.rows, cols: entry.cols,
                                   storage: TableStorage(mapping: g.mapping, offset: offset, count: count, dtype: entry.dtype),
                                   kernels: kernels)
        }
        let storage = try TableStorage(count: count, dtype: entry.dtype, zeroed: false, what: name)
        if entry.dtype == entry.fileDType {
            guard CheckpointPlan.read(g.fd, into: storage.base, bytes: count * entry.dtype.byteCount, at: offset, pool: pool) else {
                throw GPTEmbeddingError(.io, "\(g.path): cannot read tensor \"\(entry.tensor.name)\": \(String(cString: strerror(errno)))")
            }
        } else {
            storage.convert(from: UnsafeRawPointer(g.mapping.base + offset), dtype: entry.fileDType, count: count,
                            kernels: kernels, pool: pool)
        }
        return ParameterTensor(name: name, rows: entry.rows, cols: entry.cols, storage: storage, kernels: kernels)
    }

    /// A quantized table (`rowBytes` per row of `type`): its blocks mapped (any offset: blocks
    /// are read byte by byte) or read, or each row dequantized and converted to the dtype
    /// option. A shard takes only its own rows.
    private func loadBlocks(_ entry: Entry, type: GGMLType, rowBytes: Int, name: String, from g: GGUFCheckpoint,
                            options: OpenOptions, kernels: Kernels, pool: WorkerPool) throws(GPTEmbeddingError) -> ParameterTensor {
        let count = entry.rows * entry.cols
        let offset = entry.tensor.offset + entry.firstRow * rowBytes
        let storage: TableStorage
        if entry.keepsBlocks {
            if options.mmap {
                storage = TableStorage(mapping: g.mapping, offset: offset, count: count, blockType: type)
            } else {
                storage = try TableStorage(rows: entry.rows, cols: entry.cols, blockType: type, what: name)
                guard CheckpointPlan.read(g.fd, into: storage.base, bytes: entry.rows * rowBytes, at: offset, pool: pool) else {
                    throw GPTEmbeddingError(.io, "\(g.path): cannot read tensor \"\(entry.tensor.name)\": \(String(cString: strerror(errno)))")
                }
            }
        } else {
            // Converted while opening: each row dequantized (as the kernels read it) into a
            // float row of the worker's scratch, then rounded to the dtype.
            storage = try TableStorage(count: count, dtype: entry.dtype, zeroed: false, what: name)
            let cols = entry.cols, dtype = entry.dtype
            let parts = pool.parts(count: entry.rows, grain: WorkerPool.memoryGrain(bytesPerItem: 4 * cols))
            let scratch = try FloatBuffer(count: Checked.multiply(parts, cols, "\(name) conversion scratch"), zeroed: false,
                                          what: "\(name) conversion scratch")
            let src = SendableConstPointer(UnsafePointer(g.mapping.base.assumingMemoryBound(to: UInt8.self) + offset))
            let dst = SendablePointer(storage.base.assumingMemoryBound(to: UInt8.self))
            let tmp = SendablePointer(scratch.base)
            let decode = kernels.dequantizeRow, convert = kernels.convert, raw = Int32(type.rawValue)
            let rows = entry.rows
            pool.run(parts: parts) { part in
                let row = tmp.pointer + part * cols
                for r in WorkerPool.range(part: part, of: parts, count: rows) {
                    let out = dst.pointer + r * cols * dtype.byteCount
                    if dtype == .float32 {
                        _ = decode(raw, UnsafeRawPointer(src.pointer + r * rowBytes), Int64(cols), UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self))
                    } else {
                        _ = decode(raw, UnsafeRawPointer(src.pointer + r * rowBytes), Int64(cols), row)
                        convert(UnsafeMutableRawPointer(out), dtype.rawValue, UnsafeRawPointer(row), TensorDType.float32.rawValue, Int64(cols))
                    }
                }
            }
        }
        return ParameterTensor(name: name, rows: entry.rows, cols: entry.cols, storage: storage, kernels: kernels)
    }
}

extension GPTEmbedding {
    /// The parsed GGUF file at `path` (for inspecting without opening a layer).
    /// - Throws: `io`, `badFile`.
    public static func ggufFile(path: String) throws(GPTEmbeddingError) -> GGUFFile {
        try GGUFCheckpoint(path: path).file
    }

    /// True when `path` is a file that starts with GGUF's magic (whatever its name).
    public static func isGGUF(path: String) -> Bool { GGUFCheckpoint.isGGUF(path) }
}
