import CGPTEmbedding
import GPTEmbedding

// The configuration struct: conversion between C and Swift, defaults, presets, checks.

extension gpt_embedding_config {
    /// The C mirror of a Swift configuration.
    init(_ c: GPTEmbeddingConfig) {
        self.init()
        struct_size = UInt32(MemoryLayout<gpt_embedding_config>.size)
        position_encoding = c.positionEncoding.rawValue
        vocab_size = Int64(c.vocabSize)
        embed_dim = Int64(c.embedDim)
        max_seq_len = Int64(c.maxSeqLen)
        padding_idx = Int64(c.paddingIdx ?? -1)
        seed = c.seed
        dropout = c.dropout
        layer_norm_eps = c.layerNormEps
        init_std = c.initStd
        scale_embeddings = c.scaleEmbeddings ? 1 : 0
        num_threads = Int32(clamping: c.numThreads)
        weight_dtype = c.weightDType.rawValue
        token_scale = c.tokenScale ?? 0
        layer_norm = c.layerNormByDefault ? 1 : 0
        position_offset = Int64(c.positionOffset)
        shard_start = Int64(c.vocabShard?.lowerBound ?? 0)
        shard_end = Int64(c.vocabShard?.upperBound ?? 0)
    }

    /// The struct sizes this library knows: 0.1 / 0.2 (72 bytes), 0.3 (88) and its own.
    static let knownSizes: Set<Int> = [Int(GPT_EMBEDDING_CONFIG_SIZE_0_2), Int(GPT_EMBEDDING_CONFIG_SIZE_0_3),
                                       MemoryLayout<gpt_embedding_config>.size]

    /// The caller's struct at `p`, reading only its `struct_size` bytes (a 0.2 caller's
    /// struct is shorter than ours); the fields it does not have keep their defaults.
    static func read(_ p: UnsafePointer<gpt_embedding_config>) throws(GPTEmbeddingError) -> gpt_embedding_config {
        let size = Int(UnsafeRawPointer(p).load(as: UInt32.self))
        guard knownSizes.contains(size) else {
            throw GPTEmbeddingError(.versionMismatch, "config.struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(knownSizes.sorted().map(String.init).joined(separator: " and ")): start from gpt_embedding_default_config()")
        }
        var c = gpt_embedding_config(GPTEmbeddingConfig())
        withUnsafeMutableBytes(of: &c) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: size))
        }
        c.struct_size = UInt32(MemoryLayout<gpt_embedding_config>.size)
        return c
    }

    /// Writes `value` into the caller's struct of `size` bytes (only those bytes), with
    /// struct_size = `size`.
    static func write(_ value: gpt_embedding_config, to out: UnsafeMutablePointer<gpt_embedding_config>, size: Int) throws(GPTEmbeddingError) {
        guard size >= Int(GPT_EMBEDDING_CONFIG_SIZE_0_2) else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size) is smaller than the smallest config this library knows (\(GPT_EMBEDDING_CONFIG_SIZE_0_2) bytes)")
        }
        var v = value
        let n = min(size, MemoryLayout<gpt_embedding_config>.size)
        v.struct_size = UInt32(n)
        withUnsafeBytes(of: &v) { src in
            UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: n)
        }
        if size > n { (UnsafeMutableRawPointer(out) + n).initializeMemory(as: UInt8.self, repeating: 0, count: size - n) }
    }

    /// The Swift configuration; rejects the fields only C can get wrong (struct size,
    /// enum and boolean encodings). Ranges are checked by `GPTEmbeddingConfig.validate()`.
    func swiftConfig() throws(GPTEmbeddingError) -> GPTEmbeddingConfig {
        guard let encoding = PositionEncoding(rawValue: position_encoding) else {
            throw GPTEmbeddingError(.invalidConfig, "invalid config: position_encoding = \(position_encoding): must be 0 (learned), 1 (sinusoidal) or 2 (none)")
        }
        guard scale_embeddings == 0 || scale_embeddings == 1 else {
            throw GPTEmbeddingError(.invalidConfig, "invalid config: scale_embeddings = \(scale_embeddings): must be 0 or 1")
        }
        guard let weightType = TensorDType(rawValue: weight_dtype) else {
            throw GPTEmbeddingError(.invalidConfig, "invalid config: weight_dtype = \(weight_dtype): must be 0 (F32), 1 (BF16) or 2 (F16)")
        }
        guard padding_idx >= -1 else {
            throw GPTEmbeddingError(.invalidConfig, "invalid config: padding_idx = \(padding_idx): must be in [0, \(vocab_size)) or -1 (none)")
        }
        var c = GPTEmbeddingConfig()
        c.vocabSize = Int(vocab_size)
        c.embedDim = Int(embed_dim)
        c.maxSeqLen = Int(max_seq_len)
        c.paddingIdx = padding_idx == -1 ? nil : Int(padding_idx)
        c.seed = seed
        c.dropout = dropout
        c.layerNormEps = layer_norm_eps
        c.initStd = init_std
        c.positionEncoding = encoding
        c.scaleEmbeddings = scale_embeddings == 1
        c.numThreads = Int(num_threads)
        c.weightDType = weightType
        c.tokenScale = token_scale == 0 ? nil : token_scale
        guard layer_norm == 0 || layer_norm == 1 else {
            throw GPTEmbeddingError(.invalidConfig, "invalid config: layer_norm = \(layer_norm): must be 0 or 1")
        }
        c.layerNormByDefault = layer_norm == 1
        c.positionOffset = Int(position_offset)
        // shard_end 0 is the whole vocabulary (the default, and what older structs mean);
        // then shard_start must be 0 too, or the range is out of order.
        if shard_end != 0 || shard_start != 0 {
            guard shard_start >= 0, shard_start < shard_end, shard_end <= vocab_size else {
                throw GPTEmbeddingError(.invalidConfig, "invalid config: shard [shard_start, shard_end) = [\(shard_start), \(shard_end)): must be a non-empty range of rows inside the vocabulary [0, \(vocab_size)) (shard_start < shard_end <= vocab_size), or 0 and 0 for the whole vocabulary")
            }
            c.vocabShard = Int(shard_start)..<Int(shard_end)
        }
        try c.validate()
        return c
    }
}

@c @implementation
public func gpt_embedding_config_size() -> Int {
    MemoryLayout<gpt_embedding_config>.size
}

@c @implementation
public func gpt_embedding_config_init(_ out: UnsafeMutablePointer<gpt_embedding_config>?, _ size: Int) -> Int32 {
    api("gpt_embedding_config_init") { () throws(GPTEmbeddingError) in
        try gpt_embedding_config.write(gpt_embedding_config(GPTEmbeddingConfig()), to: required(out, "out"), size: size)
    }
}

@c @implementation
public func gpt_embedding_preset(_ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<gpt_embedding_config>?, _ size: Int) -> Int32 {
    api("gpt_embedding_preset") { () throws(GPTEmbeddingError) in
        let name = String(cString: try required(name, "name"))
        let out = try required(out, "out")
        guard let preset = GPTEmbeddingConfig.preset(named: name) else {
            throw GPTEmbeddingError(.invalidArgument, "unknown preset \"\(name)\": expected one of gpt2, gpt2-small, gpt2-medium, gpt2-large, gpt2-xl")
        }
        try gpt_embedding_config.write(gpt_embedding_config(preset), to: out, size: size)
    }
}

@c @implementation
public func gpt_embedding_config_validate(_ config: UnsafePointer<gpt_embedding_config>?) -> Int32 {
    api("gpt_embedding_config_validate") { () throws(GPTEmbeddingError) in
        _ = try gpt_embedding_config.read(required(config, "config")).swiftConfig()
    }
}

@c @implementation
public func gpt_embedding_config_num_parameters(_ config: UnsafePointer<gpt_embedding_config>?, _ param: Int32, _ outCount: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_config_num_parameters") { () throws(GPTEmbeddingError) in
        let config = try gpt_embedding_config.read(required(config, "config")).swiftConfig()
        let out = try required(outCount, "out_count")
        let counts = try config.parameterCounts()
        let count: Int
        switch param {
        case -1: count = counts.total
        case 0: count = counts.tokenEmbedding
        case 1: count = counts.positionEmbedding
        case 2, 3: count = counts.layerNorm / 2
        default: throw GPTEmbeddingError(.invalidArgument, "unknown parameter selector \(param): expected -1 (all) or 0...3")
        }
        out.pointee = Int64(count)
    }
}
