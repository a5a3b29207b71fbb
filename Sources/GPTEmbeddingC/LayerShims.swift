import CGPTEmbedding
import GPTEmbedding

// Layer lifetime, forward and backward.

@c @implementation
public func gpt_embedding_create(_ config: UnsafePointer<gpt_embedding_config>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return api("gpt_embedding_create") { () throws(GPTEmbeddingError) in
        let out = try required(out, "out")
        let config = try gpt_embedding_config.read(required(config, "config")).swiftConfig()
        out.pointee = HandleRegistry.register(try GPTEmbedding(config: config))
    }
}

@c @implementation
public func gpt_embedding_free(_ layer: OpaquePointer?) {
    HandleRegistry.remove(layer)
}

@c @implementation
public func gpt_embedding_layer_config(_ layer: OpaquePointer?, _ out: UnsafeMutablePointer<gpt_embedding_config>?, _ size: Int) -> Int32 {
    api("gpt_embedding_layer_config") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        var c = gpt_embedding_config(layer.config)
        // A table in a block format reports its block type (GPT_EMBEDDING_DTYPE_GGML + id).
        c.weight_dtype = storedDType(layer.tokenEmbedding.weight)
        try gpt_embedding_config.write(c, to: required(out, "out"), size: size)
    }
}

@c @implementation
public func gpt_embedding_sizeof(_ layer: OpaquePointer?, _ outBytes: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_sizeof") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try required(outBytes, "out_bytes").pointee = Int64(layer.memoryBytes)
    }
}

/// The flags a forward call accepts.
private let knownFlags = UInt32(GPT_EMBEDDING_TRAINING) | UInt32(GPT_EMBEDDING_LAYER_NORM) | UInt32(GPT_EMBEDDING_NO_LAYER_NORM)

/// The C `enum gpt_embedding_dtype` value `value`, or an error naming the argument.
func dtype(_ value: Int32, _ name: StaticString) throws(GPTEmbeddingError) -> TensorDType {
    guard let t = TensorDType(rawValue: value) else {
        throw GPTEmbeddingError(.invalidArgument, "\(name) = \(value) is not a dtype: expected 0 (F32), 1 (BF16) or 2 (F16)")
    }
    return t
}

/// A forward call's flags (the argument `name`, e.g. `call->flags`): training, and the layer
/// norm forced on (`true`), off (`false`) or left to the configuration (`nil`); unknown bits
/// and both norm flags are errors.
func forwardFlags(_ flags: UInt32, _ name: String = "flags") throws(GPTEmbeddingError) -> (training: Bool, useLayerNorm: Bool?) {
    guard flags & ~knownFlags == 0 else {
        throw GPTEmbeddingError(.invalidArgument, "unknown \(name) 0x\(String(flags & ~knownFlags, radix: 16)): expected GPT_EMBEDDING_TRAINING | GPT_EMBEDDING_LAYER_NORM or GPT_EMBEDDING_NO_LAYER_NORM")
    }
    let on = flags & UInt32(GPT_EMBEDDING_LAYER_NORM) != 0, off = flags & UInt32(GPT_EMBEDDING_NO_LAYER_NORM) != 0
    guard !(on && off) else {
        throw GPTEmbeddingError(.invalidArgument, "\(name): GPT_EMBEDDING_LAYER_NORM and GPT_EMBEDDING_NO_LAYER_NORM together")
    }
    return (flags & UInt32(GPT_EMBEDDING_TRAINING) != 0, on ? true : (off ? false : nil))
}

/// The shared body of the forward shims (int32 and int64 ids, float or typed output).
private func forward<I: EmbeddingIndex>(
    _ function: StaticString, _ layer: OpaquePointer?, _ ids: UnsafePointer<I>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<I>?, _ start: Int64, _ flags: UInt32, _ outDType: Int32, _ out: UnsafeMutableRawPointer?,
    _ outLen: Int64
) -> Int32 {
    api(function) { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        // An empty call (batch or seq 0) reads and writes nothing: its arrays may be NULL.
        let empty = isEmptyCall(batch, seq)
        let ids = try required(ids, "ids", empty: empty)
        let out = try requiredRaw(out, "out", empty: empty)
        let outType = try dtype(outDType, "out_dtype")
        let (training, useLayerNorm) = try forwardFlags(flags)
        try layer.forward(ids: ids, batch: Int(batch), seq: Int(seq), positions: positions,
                          startPosition: Int(start), training: training, useLayerNorm: useLayerNorm,
                          into: out, dtype: outType, capacity: Int(outLen))
    }
}

@c @implementation
public func gpt_embedding_forward(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int32>?, _ startPosition: Int64, _ flags: UInt32,
    _ out: UnsafeMutablePointer<Float>?, _ outLen: Int64
) -> Int32 {
    forward("gpt_embedding_forward", layer, ids, batch, seq, positions, startPosition, flags, 0,
            out.map(UnsafeMutableRawPointer.init), outLen)
}

@c @implementation
public func gpt_embedding_forward_i64(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int64>?, _ startPosition: Int64, _ flags: UInt32,
    _ out: UnsafeMutablePointer<Float>?, _ outLen: Int64
) -> Int32 {
    forward("gpt_embedding_forward_i64", layer, ids, batch, seq, positions, startPosition, flags, 0,
            out.map(UnsafeMutableRawPointer.init), outLen)
}

@c @implementation
public func gpt_embedding_forward_typed(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int32>?, _ startPosition: Int64, _ flags: UInt32,
    _ outDType: Int32, _ out: UnsafeMutableRawPointer?, _ outLen: Int64
) -> Int32 {
    forward("gpt_embedding_forward_typed", layer, ids, batch, seq, positions, startPosition, flags, outDType, out, outLen)
}

@c @implementation
public func gpt_embedding_forward_typed_i64(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int64>?, _ startPosition: Int64, _ flags: UInt32,
    _ outDType: Int32, _ out: UnsafeMutableRawPointer?, _ outLen: Int64
) -> Int32 {
    forward("gpt_embedding_forward_typed_i64", layer, ids, batch, seq, positions, startPosition, flags, outDType, out, outLen)
}

@c @implementation
public func gpt_embedding_backward_typed(_ layer: OpaquePointer?, _ gradDType: Int32, _ gradOutput: UnsafeRawPointer?,
                                         _ batch: Int64, _ seq: Int64) -> Int32 {
    api("gpt_embedding_backward_typed") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let type = try dtype(gradDType, "grad_dtype")
        try layer.backward(gradOutput: try requiredRaw(gradOutput, "grad_output", empty: isEmptyCall(batch, seq)), dtype: type,
                           batch: Int(batch), seq: Int(seq))
    }
}

@c @implementation
public func gpt_embedding_backward(_ layer: OpaquePointer?, _ gradOutput: UnsafePointer<Float>?, _ batch: Int64, _ seq: Int64) -> Int32 {
    api("gpt_embedding_backward") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try layer.backward(gradOutput: try required(gradOutput, "grad_output", empty: isEmptyCall(batch, seq)),
                           batch: Int(batch), seq: Int(seq))
    }
}

@c @implementation
public func gpt_embedding_zero_grad(_ layer: OpaquePointer?) -> Int32 {
    api("gpt_embedding_zero_grad") { () throws(GPTEmbeddingError) in
        try HandleRegistry.layer(layer).zeroGrad()
    }
}

@c @implementation
public func gpt_embedding_touched_rows(_ layer: OpaquePointer?, _ rows: UnsafeMutablePointer<Int32>?, _ capacity: Int64, _ outCount: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_touched_rows") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let out = try required(outCount, "out_count")
        guard capacity >= 0 else { throw GPTEmbeddingError(.invalidArgument, "capacity = \(capacity) must be >= 0") }
        let touched = layer.touchedTokenRows
        out.pointee = Int64(touched.count)
        if capacity == 0 && rows == nil { return }
        let dst = try required(rows, "rows")
        guard capacity >= touched.count else {
            throw GPTEmbeddingError(.bufferTooSmall, "capacity \(capacity) is less than the \(touched.count) touched rows")
        }
        dst.update(from: touched, count: touched.count)
    }
}

// Vocabulary-parallel shards: the split rule and the two-phase forward.

@c @implementation
public func gpt_embedding_shard_range(_ vocabSize: Int64, _ rank: Int32, _ world: Int32, _ rule: Int32,
                                      _ outStart: UnsafeMutablePointer<Int64>?, _ outEnd: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_shard_range") { () throws(GPTEmbeddingError) in
        let start = try required(outStart, "out_start"), end = try required(outEnd, "out_end")
        guard let r = VocabShardRule(rawValue: rule) else {
            throw GPTEmbeddingError(.invalidArgument, "rule = \(rule): must be 0 (GPT_EMBEDDING_SHARD_BALANCED) or 1 (GPT_EMBEDDING_SHARD_MEGATRON)")
        }
        let range = try VocabShard.range(vocabSize: Int(vocabSize), rank: Int(rank), world: Int(world), rule: r)
        start.pointee = Int64(range.lowerBound)
        end.pointee = Int64(range.upperBound)
    }
}

/// The shared body of the phase-one shims (int32 and int64 ids).
private func forwardPartial<I: EmbeddingIndex>(
    _ function: StaticString, _ layer: OpaquePointer?, _ ids: UnsafePointer<I>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<I>?, _ start: Int64, _ flags: UInt32, _ partial: UnsafeMutablePointer<Float>?,
    _ partialLen: Int64
) -> Int32 {
    api(function) { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let empty = isEmptyCall(batch, seq)
        let ids = try required(ids, "ids", empty: empty)
        let partial = try required(partial, "partial", empty: empty)
        let (training, useLayerNorm) = try forwardFlags(flags)
        try layer.forwardPartial(ids: ids, batch: Int(batch), seq: Int(seq), positions: positions,
                                 startPosition: Int(start), training: training, useLayerNorm: useLayerNorm,
                                 into: partial, capacity: Int(partialLen))
    }
}

@c @implementation
public func gpt_embedding_forward_partial(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int32>?, _ startPosition: Int64, _ flags: UInt32,
    _ partial: UnsafeMutablePointer<Float>?, _ partialLen: Int64
) -> Int32 {
    forwardPartial("gpt_embedding_forward_partial", layer, ids, batch, seq, positions, startPosition, flags, partial, partialLen)
}

@c @implementation
public func gpt_embedding_forward_partial_i64(
    _ layer: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ batch: Int64, _ seq: Int64,
    _ positions: UnsafePointer<Int64>?, _ startPosition: Int64, _ flags: UInt32,
    _ partial: UnsafeMutablePointer<Float>?, _ partialLen: Int64
) -> Int32 {
    forwardPartial("gpt_embedding_forward_partial_i64", layer, ids, batch, seq, positions, startPosition, flags, partial, partialLen)
}

@c @implementation
public func gpt_embedding_forward_finish(_ layer: OpaquePointer?, _ batch: Int64, _ seq: Int64,
                                         _ x: UnsafeMutablePointer<Float>?, _ xLen: Int64) -> Int32 {
    api("gpt_embedding_forward_finish") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try layer.forwardFinish(batch: Int(batch), seq: Int(seq), summed: try required(x, "x", empty: isEmptyCall(batch, seq)),
                                capacity: Int(xLen))
    }
}
