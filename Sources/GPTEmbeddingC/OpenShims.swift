import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

// Opening a checkpoint without a random initialisation.

/// The size of the 0.2 options struct; a caller compiled against a later header may pass a
/// longer one (its extra fields keep their defaults here), never a shorter one.
private let optionsSize = MemoryLayout<gpt_embedding_open_options>.size

extension gpt_embedding_open_options {
    /// The defaults, as the header documents them.
    static var defaults: gpt_embedding_open_options {
        var o = gpt_embedding_open_options()
        o.struct_size = UInt32(optionsSize)
        o.dtype = GPT_EMBEDDING_DTYPE_KEEP
        o.mmap = 0
        o.num_threads = 0
        o.seed = 0
        o.dropout = 0
        o.layer_norm_eps = 1e-5
        o.scale_embeddings = 0
        o.position_encoding = GPT_EMBEDDING_POSITION_FROM_FILE
        o.max_seq_len = 1024
        o.padding_idx = -1
        return o
    }

    /// The Swift options; rejects values only C can get wrong (sizes, enums, booleans).
    func swiftOptions() throws(GPTEmbeddingError) -> OpenOptions {
        guard Int(struct_size) >= optionsSize else {
            throw GPTEmbeddingError(.versionMismatch, "options.struct_size = \(struct_size), this library (\(GPT_EMBEDDING_VERSION_STRING)) needs at least \(optionsSize): fill the options with gpt_embedding_open_options_init")
        }
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
        o.seed = seed
        o.dropout = dropout
        o.layerNormEps = layer_norm_eps
        o.scaleEmbeddings = scale_embeddings == 1
        o.maxSeqLen = Int(max_seq_len)
        o.paddingIdx = padding_idx == -1 ? nil : Int(padding_idx)
        return o
    }
}

@c @implementation
public func gpt_embedding_open_options_init(_ options: UnsafeMutablePointer<gpt_embedding_open_options>?, _ size: Int) -> Int32 {
    api("gpt_embedding_open_options_init") { () throws(GPTEmbeddingError) in
        let out = try required(options, "options")
        guard size >= optionsSize else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size) is smaller than this library's options (\(optionsSize) bytes)")
        }
        // A longer struct from a later header: its tail is zeroed, our part filled.
        memset(out, 0, size)
        out.pointee = .defaults
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
            // struct_size first, so that a short struct is never read past its end.
            let size = UnsafeRawPointer(options).load(as: UInt32.self)
            guard Int(size) >= optionsSize else {
                throw GPTEmbeddingError(.versionMismatch, "options.struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) needs at least \(optionsSize): fill the options with gpt_embedding_open_options_init")
            }
            o = try options.pointee.swiftOptions()
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
