import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

// Opening a checkpoint without a random initialisation.

/// The options struct sizes this library knows: 0.2's and its own. A caller compiled against
/// a later header may pass a longer one (its extra fields are ignored).
private let optionsSize = MemoryLayout<gpt_embedding_open_options>.size
private let smallestOptions = Int(GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_2)
private let options03 = Int(GPT_EMBEDDING_OPEN_OPTIONS_SIZE_0_3)
/// The longest family name read: every model_type is far shorter.
private let maxFamilyName = 64

extension gpt_embedding_open_options {
    /// The defaults, as the header documents them.
    static var defaults: gpt_embedding_open_options {
        var o = gpt_embedding_open_options()
        o.struct_size = UInt32(optionsSize)
        o.dtype = GPT_EMBEDDING_DTYPE_KEEP
        o.mmap = 0
        o.num_threads = 0
        o.seed = 0
        o.dropout = -1
        o.layer_norm_eps = -1
        o.scale_embeddings = 0
        o.position_encoding = GPT_EMBEDDING_POSITION_FROM_FILE
        o.max_seq_len = 1024
        o.padding_idx = -1
        o.by_tensor_names = 0
        o.reserved_0_3 = 0
        o.shard_rank = 0
        o.shard_world = 0
        o.shard_rule = Int32(GPT_EMBEDDING_SHARD_BALANCED.rawValue)
        o.reserved_0_4 = 0
        o.family = nil
        return o
    }

    /// The Swift options; rejects values only C can get wrong (sizes, enums, booleans).
    func swiftOptions() throws(GPTEmbeddingError) -> OpenOptions {
        var o = OpenOptions()
        if dtype != GPT_EMBEDDING_DTYPE_KEEP {
            guard let t = TensorDType(rawValue: dtype) else {
                throw GPTEmbeddingError(.invalidArgument, "options.dtype = \(dtype): must be -1 (keep the file's), 0 (F32), 1 (BF16) or 2 (F16)")
            }
            o.dtype = t
        }
        guard mmap == 0 || mmap == 1 else { throw GPTEmbeddingError(.invalidArgument, "options.mmap = \(mmap): must be 0 or 1") }
        guard scale_embeddings == 0 || scale_embeddings == 1 else {
            throw GPTEmbeddingError(.invalidArgument, "options.scale_embeddings = \(scale_embeddings): must be 0 or 1")
        }
        if position_encoding != GPT_EMBEDDING_POSITION_FROM_FILE {
            guard let p = PositionEncoding(rawValue: position_encoding) else {
                throw GPTEmbeddingError(.invalidArgument, "options.position_encoding = \(position_encoding): must be -1 (from the file), 0 (learned), 1 (sinusoidal) or 2 (none)")
            }
            o.positionEncoding = p
        }
        guard padding_idx >= -1 else { throw GPTEmbeddingError(.invalidArgument, "options.padding_idx = \(padding_idx): must be >= -1") }
        o.mmap = mmap == 1
        o.numThreads = Int(num_threads)
        guard by_tensor_names == 0 || by_tensor_names == 1 else {
            throw GPTEmbeddingError(.invalidArgument, "options.by_tensor_names = \(by_tensor_names): must be 0 or 1")
        }
        o.seed = seed
        o.dropout = dropout < 0 ? nil : dropout
        o.layerNormEps = layer_norm_eps < 0 ? nil : layer_norm_eps
        o.useConfigJSON = by_tensor_names == 0
        o.scaleEmbeddings = scale_embeddings == 1
        o.maxSeqLen = Int(max_seq_len)
        o.paddingIdx = padding_idx == -1 ? nil : Int(padding_idx)
        guard let rule = VocabShardRule(rawValue: shard_rule) else {
            throw GPTEmbeddingError(.invalidArgument, "options.shard_rule = \(shard_rule): must be 0 (GPT_EMBEDDING_SHARD_BALANCED) or 1 (GPT_EMBEDDING_SHARD_MEGATRON)")
        }
        guard shard_world >= 0 else {
            throw GPTEmbeddingError(.invalidArgument, "options.shard_world = \(shard_world): must be >= 1, or 0 for the whole table")
        }
        o.shardRank = Int(shard_rank)
        o.shardWorld = Int(shard_world)
        o.shardRule = rule
        if let name = family {
            // Bounded, so that a string without its terminator is not read far past its end.
            let n = strnlen(name, maxFamilyName + 1)
            guard n <= maxFamilyName else {
                throw GPTEmbeddingError(.invalidArgument, "options.family is longer than \(maxFamilyName) bytes: not a model_type (supported: \(GPTEmbedding.supportedModelTypes.joined(separator: ", ")))")
            }
            o.family = String(decoding: UnsafeRawBufferPointer(start: name, count: n), as: UTF8.self)
        }
        return o
    }
}

@c @implementation
public func gpt_embedding_open_options_init(_ options: UnsafeMutablePointer<gpt_embedding_open_options>?, _ size: Int) -> Int32 {
    api("gpt_embedding_open_options_init") { () throws(GPTEmbeddingError) in
        let out = try required(options, "options")
        guard size >= smallestOptions else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size) is smaller than the smallest options this library knows (\(smallestOptions) bytes)")
        }
        // Only the caller's bytes: a 0.2 struct is shorter, a later one longer (zeroed tail).
        // A 0.2 caller gets 0.2's defaults: explicit dropout 0 and epsilon 1e-5.
        var d = gpt_embedding_open_options.defaults
        if size < options03 {
            d.dropout = 0
            d.layer_norm_eps = 1e-5
        }
        d.struct_size = UInt32(min(size, optionsSize))
        memset(out, 0, size)
        withUnsafeBytes(of: &d) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: min(size, optionsSize)) }
    }
}

@c @implementation
public func gpt_embedding_open(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<gpt_embedding_open_options>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return api("gpt_embedding_open") { () throws(GPTEmbeddingError) in
        let out = try required(out, "out")
        let path = String(cString: try required(path, "path"))
        var o = OpenOptions()
        if let options {
            // struct_size first, so that a short (0.2) struct is never read past its end.
            let size = Int(UnsafeRawPointer(options).load(as: UInt32.self))
            guard size >= smallestOptions else {
                throw GPTEmbeddingError(.versionMismatch, "options.struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) needs at least \(smallestOptions): fill the options with gpt_embedding_open_options_init")
            }
            var full = gpt_embedding_open_options.defaults
            // A 0.2 caller (56 bytes) keeps 0.2's meaning: tensor names only, no config.json.
            if size < options03 { full.by_tensor_names = 1 }
            withUnsafeMutableBytes(of: &full) { $0.baseAddress!.copyMemory(from: UnsafeRawPointer(options), byteCount: min(size, optionsSize)) }
            o = try full.swiftOptions()
            // ... and 0.2's names: the library's and GPT-2's, not every family's.
            if size < options03 { o.searchFamilyTokenNames = false }
        }
        out.pointee = HandleRegistry.register(try GPTEmbedding(contentsOf: path, options: o))
    }
}

@c @implementation
public func gpt_embedding_parameter_mapped(_ layer: OpaquePointer?, _ param: Int32, _ outMapped: UnsafeMutablePointer<Int32>?) -> Int32 {
    api("gpt_embedding_parameter_mapped") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        guard let p = GPTEmbedding.Parameter(rawValue: param) else {
            throw GPTEmbeddingError(.invalidArgument, "unknown parameter selector \(param): expected 0 (token), 1 (position), 2 (layer norm weight) or 3 (layer norm bias)")
        }
        try required(outMapped, "out_mapped").pointee = try layer.tensor(p).isMapped ? 1 : 0
    }
}
