import CGPTEmbedding
import GPTEmbedding

// Calls with explicit state (gpt_embedding_call, gpt_embedding_grads), and the NULL rules
// of empty calls shared by every forward and backward shim.

/// Sizes of `gpt_embedding_call` and `gpt_embedding_grads` this library knows (only the
/// current ones yet).
private let callSize = MemoryLayout<gpt_embedding_call>.size
private let gradsSize = MemoryLayout<gpt_embedding_grads>.size

/// Whether `batch` and `seq` describe an empty call (neither negative, one of them 0), whose
/// pointers may be NULL: it reads and writes nothing.
func isEmptyCall(_ batch: Int64, _ seq: Int64) -> Bool {
    batch >= 0 && seq >= 0 && (batch == 0 || seq == 0)
}

/// A non-null address standing for the missing array of an empty call; never read or written.
private var placeholderAddress: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 64).unsafelyUnwrapped }

/// `p`; for an empty call a NULL `p` becomes an address that is never used; otherwise NULL
/// is a `nullPointer` error naming the argument.
func required<T>(_ p: UnsafePointer<T>?, _ name: StaticString, empty: Bool) throws(GPTEmbeddingError) -> UnsafePointer<T> {
    if p == nil && empty { return UnsafePointer(placeholderAddress.assumingMemoryBound(to: T.self)) }
    return try required(p, name)
}

/// The same for a mutable typed pointer.
func required<T>(_ p: UnsafeMutablePointer<T>?, _ name: StaticString, empty: Bool) throws(GPTEmbeddingError) -> UnsafeMutablePointer<T> {
    if p == nil && empty { return placeholderAddress.assumingMemoryBound(to: T.self) }
    return try required(p, name)
}

/// The same for a raw pointer.
func requiredRaw(_ p: UnsafeRawPointer?, _ name: StaticString, empty: Bool) throws(GPTEmbeddingError) -> UnsafeRawPointer {
    if p == nil && empty { return UnsafeRawPointer(placeholderAddress) }
    return try required(p, name)
}

/// The same for a mutable raw pointer.
func requiredRaw(_ p: UnsafeMutableRawPointer?, _ name: StaticString, empty: Bool) throws(GPTEmbeddingError) -> UnsafeMutableRawPointer {
    if p == nil && empty { return placeholderAddress }
    return try required(p, name)
}

/// The caller's call struct, checked: its size first (before any other field is read), then
/// the fields only C can get wrong (reserved, index_dtype, flags) and, for a call that is
/// not empty, the pointers it must have.
private func readCall(_ p: UnsafePointer<gpt_embedding_call>?) throws(GPTEmbeddingError) -> gpt_embedding_call {
    let p = try required(p, "call")
    let size = Int(UnsafeRawPointer(p).load(as: UInt32.self))
    guard size == callSize else {
        throw GPTEmbeddingError(.versionMismatch, "call->struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(callSize): fill the call with gpt_embedding_call_init")
    }
    let c = p.pointee
    guard c.reserved == 0 else {
        throw GPTEmbeddingError(.invalidArgument, "call->reserved = \(c.reserved) must be 0")
    }
    guard c.index_dtype == GPT_EMBEDDING_INDEX_I32 || c.index_dtype == GPT_EMBEDDING_INDEX_I64 else {
        throw GPTEmbeddingError(.invalidArgument, "call->index_dtype = \(c.index_dtype): must be 0 (GPT_EMBEDDING_INDEX_I32) or 1 (GPT_EMBEDDING_INDEX_I64)")
    }
    _ = try forwardFlags(c.flags, "call->flags")
    if !isEmptyCall(c.batch, c.seq) { _ = try required(c.ids, "call->ids") }
    return c
}

/// A borrowed table's element count: `len` when it can be one (the core checks it against
/// the layer's table), else an error naming the field.
private func borrowedCount(_ len: Int64, _ name: StaticString) throws(GPTEmbeddingError) -> Int {
    guard len >= 0, len <= Int64(Int.max / MemoryLayout<Float>.stride) else {
        throw GPTEmbeddingError(.invalidArgument, "call->\(name) = \(len) is not an element count")
    }
    return Int(len)
}

/// The Swift call of a checked C call, with ids and positions of type `I`.
private func swiftCall<I: EmbeddingIndex>(_ c: gpt_embedding_call, _: I.Type) throws(GPTEmbeddingError) -> EmbeddingCall<I> {
    let (training, useLayerNorm) = try forwardFlags(c.flags, "call->flags")
    var call = EmbeddingCall(
        ids: c.ids?.assumingMemoryBound(to: I.self), batch: Int(c.batch), seq: Int(c.seq),
        positions: c.positions?.assumingMemoryBound(to: I.self), startPosition: Int(c.start_position),
        training: training, useLayerNorm: useLayerNorm, dropoutSeed: c.dropout_seed, dropoutOffset: c.dropout_offset,
        mean: c.mean, rstd: c.rstd)
    if let p = c.token_embedding {
        call.tokenEmbedding = BorrowedTable(p, count: try borrowedCount(c.token_embedding_len, "token_embedding_len"))
    }
    if let p = c.position_embedding {
        call.positionEmbedding = BorrowedTable(p, count: try borrowedCount(c.position_embedding_len, "position_embedding_len"))
    }
    if let p = c.layer_norm_weight {
        call.layerNormWeight = UnsafeBufferPointer(start: p, count: try borrowedCount(c.layer_norm_weight_len, "layer_norm_weight_len"))
    }
    if let p = c.layer_norm_bias {
        call.layerNormBias = UnsafeBufferPointer(start: p, count: try borrowedCount(c.layer_norm_bias_len, "layer_norm_bias_len"))
    }
    return call
}

/// The caller's gradient buffers, checked: size, reserved, and every length (>= 0; that it
/// holds its parameter is checked by the core).
private func readGrads(_ p: UnsafePointer<gpt_embedding_grads>) throws(GPTEmbeddingError) -> CallGradients {
    let size = Int(UnsafeRawPointer(p).load(as: UInt32.self))
    guard size == gradsSize else {
        throw GPTEmbeddingError(.versionMismatch, "grads->struct_size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(gradsSize): fill the grads with gpt_embedding_grads_init")
    }
    let g = p.pointee
    guard g.reserved == 0 else {
        throw GPTEmbeddingError(.invalidArgument, "grads->reserved = \(g.reserved) must be 0")
    }
    func buffer(_ base: UnsafeMutablePointer<Float>?, _ len: Int64, _ name: StaticString) throws(GPTEmbeddingError) -> UnsafeMutableBufferPointer<Float>? {
        guard let base else { return nil }
        guard len >= 0, len <= Int64(Int.max / MemoryLayout<Float>.stride) else {
            throw GPTEmbeddingError(.invalidArgument, "grads->\(name) = \(len) is not a buffer length")
        }
        return UnsafeMutableBufferPointer(start: base, count: Int(len))
    }
    return CallGradients(
        tokenEmbedding: try buffer(g.token_embedding, g.token_embedding_len, "token_embedding_len"),
        positionEmbedding: try buffer(g.position_embedding, g.position_embedding_len, "position_embedding_len"),
        layerNormWeight: try buffer(g.layer_norm_weight, g.layer_norm_weight_len, "layer_norm_weight_len"),
        layerNormBias: try buffer(g.layer_norm_bias, g.layer_norm_bias_len, "layer_norm_bias_len"),
        tokenRows: try buffer(g.token_rows, g.token_rows_len, "token_rows_len"))
}

@c @implementation
public func gpt_embedding_call_init(_ call: UnsafeMutablePointer<gpt_embedding_call>?, _ size: Int) -> Int32 {
    api("gpt_embedding_call_init") { () throws(GPTEmbeddingError) in
        let out = try required(call, "call")
        guard size == callSize else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(callSize) (sizeof(gpt_embedding_call))")
        }
        var c = gpt_embedding_call()
        c.struct_size = UInt32(callSize)
        c.index_dtype = GPT_EMBEDDING_INDEX_I32
        out.pointee = c
    }
}

@c @implementation
public func gpt_embedding_grads_init(_ grads: UnsafeMutablePointer<gpt_embedding_grads>?, _ size: Int) -> Int32 {
    api("gpt_embedding_grads_init") { () throws(GPTEmbeddingError) in
        let out = try required(grads, "grads")
        guard size == gradsSize else {
            throw GPTEmbeddingError(.versionMismatch, "size = \(size), this library (\(GPT_EMBEDDING_VERSION_STRING)) knows \(gradsSize) (sizeof(gpt_embedding_grads))")
        }
        var g = gpt_embedding_grads()
        g.struct_size = UInt32(gradsSize)
        out.pointee = g
    }
}

@c @implementation
public func gpt_embedding_forward_call(_ layer: OpaquePointer?, _ call: UnsafePointer<gpt_embedding_call>?,
                                       _ outDType: Int32, _ out: UnsafeMutableRawPointer?, _ outLen: Int64) -> Int32 {
    api("gpt_embedding_forward_call") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let c = try readCall(call)
        let empty = isEmptyCall(c.batch, c.seq)
        let out = try requiredRaw(out, "out", empty: empty)
        let type = try dtype(outDType, "out_dtype")
        if c.index_dtype == GPT_EMBEDDING_INDEX_I64 {
            try layer.forward(swiftCall(c, Int64.self), into: out, dtype: type, capacity: Int(outLen))
        } else {
            try layer.forward(swiftCall(c, Int32.self), into: out, dtype: type, capacity: Int(outLen))
        }
    }
}

@c @implementation
public func gpt_embedding_backward_call(_ layer: OpaquePointer?, _ call: UnsafePointer<gpt_embedding_call>?,
                                        _ gradDType: Int32, _ gradOutput: UnsafeRawPointer?, _ gradLen: Int64,
                                        _ grads: UnsafePointer<gpt_embedding_grads>?) -> Int32 {
    api("gpt_embedding_backward_call") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        let c = try readCall(call)
        let empty = isEmptyCall(c.batch, c.seq)
        let gradOutput = try requiredRaw(gradOutput, "grad_output", empty: empty)
        let type = try dtype(gradDType, "grad_dtype")
        if !empty {
            // The core checks these too; here the message names the C fields.
            let (_, useLayerNorm) = try forwardFlags(c.flags, "call->flags")
            if useLayerNorm ?? layer.config.layerNormByDefault {
                _ = try required(c.mean, "call->mean")
                _ = try required(c.rstd, "call->rstd")
            }
        }
        let targets: GradientTargets = try grads.map { (g) throws(GPTEmbeddingError) in .buffers(try readGrads(g)) } ?? .layer
        guard gradLen >= 0, gradLen <= Int64(Int.max) else {
            throw GPTEmbeddingError(.invalidArgument, "grad_len = \(gradLen) must be >= 0")
        }
        if c.index_dtype == GPT_EMBEDDING_INDEX_I64 {
            try layer.backward(swiftCall(c, Int64.self), gradOutput: gradOutput, dtype: type, count: Int(gradLen), into: targets)
        } else {
            try layer.backward(swiftCall(c, Int32.self), gradOutput: gradOutput, dtype: type, count: Int(gradLen), into: targets)
        }
    }
}
