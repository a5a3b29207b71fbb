import CGPTEmbedding
import GPTEmbedding
#if canImport(Glibc)
import Glibc
#endif

// Parameters and gradients: counts, shapes, copies and zero-copy pointers.

/// The tensor selected by a C `param` value.
private func tensor(_ layer: GPTEmbedding, _ param: Int32) throws(GPTEmbeddingError) -> ParameterTensor {
    guard let p = GPTEmbedding.Parameter(rawValue: param) else {
        throw GPTEmbeddingError(.invalidArgument, "unknown parameter selector \(param): expected 0 (token), 1 (position), 2 (layer norm weight) or 3 (layer norm bias)")
    }
    return try layer.tensor(p)
}

/// A caller's buffer of `count` floats; negative counts are an error.
private func buffer(_ p: UnsafeMutablePointer<Float>, _ count: Int64, _ name: StaticString) throws(GPTEmbeddingError) -> UnsafeMutableBufferPointer<Float> {
    guard count >= 0 else { throw GPTEmbeddingError(.invalidArgument, "\(name) = \(count) must be >= 0") }
    return UnsafeMutableBufferPointer(start: p, count: Int(count))
}

@c @implementation
public func gpt_embedding_num_parameters(_ layer: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_num_parameters") { () throws(GPTEmbeddingError) in
        let layer = try HandleRegistry.layer(layer)
        try required(outCount, "out_count").pointee = Int64(layer.numParameters)
    }
}

@c @implementation
public func gpt_embedding_parameter_shape(_ layer: OpaquePointer?, _ param: Int32, _ outRows: UnsafeMutablePointer<Int64>?, _ outCols: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_parameter_shape") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        let rows = try required(outRows, "out_rows"), cols = try required(outCols, "out_cols")
        rows.pointee = Int64(t.rows)
        cols.pointee = Int64(t.cols)
    }
}

@c @implementation
public func gpt_embedding_get_parameter(_ layer: OpaquePointer?, _ param: Int32, _ dst: UnsafeMutablePointer<Float>?, _ dstLen: Int64) -> Int32 {
    api("gpt_embedding_get_parameter") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        try t.copyValues(into: buffer(required(dst, "dst"), dstLen, "dst_len"))
    }
}

@c @implementation
public func gpt_embedding_set_parameter(_ layer: OpaquePointer?, _ param: Int32, _ src: UnsafePointer<Float>?, _ srcLen: Int64) -> Int32 {
    api("gpt_embedding_set_parameter") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        let src = try required(src, "src")
        guard srcLen >= 0 else { throw GPTEmbeddingError(.invalidArgument, "src_len = \(srcLen) must be >= 0") }
        try t.setValues(UnsafeBufferPointer(start: src, count: Int(srcLen)))
    }
}

@c @implementation
public func gpt_embedding_get_gradient(_ layer: OpaquePointer?, _ param: Int32, _ dst: UnsafeMutablePointer<Float>?, _ dstLen: Int64) -> Int32 {
    api("gpt_embedding_get_gradient") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        try t.copyGradient(into: buffer(required(dst, "dst"), dstLen, "dst_len"))
    }
}

@c @implementation
public func gpt_embedding_parameter_data(_ layer: OpaquePointer?, _ param: Int32, _ outData: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, _ outLen: UnsafeMutablePointer<Int64>?) -> Int32 {
    outData?.pointee = nil
    return api("gpt_embedding_parameter_data") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        let data = try required(outData, "out_data"), len = try required(outLen, "out_len")
        guard t.dtype == .float32, t.blockType == nil else {
            throw GPTEmbeddingError(.invalidArgument, "\(t.name) is stored as \(t.blockType?.name ?? t.dtype.description), not float32: use gpt_embedding_parameter_data_typed")
        }
        data.pointee = t.data.baseAddress
        len.pointee = Int64(t.count)
    }
}

@c @implementation
public func gpt_embedding_parameter_data_typed(_ layer: OpaquePointer?, _ param: Int32, _ outData: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                               _ outDType: UnsafeMutablePointer<Int32>?, _ outRows: UnsafeMutablePointer<Int64>?,
                                               _ outCols: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_parameter_data_typed") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        let data = try required(outData, "out_data"), type = try required(outDType, "out_dtype")
        let rows = try required(outRows, "out_rows"), cols = try required(outCols, "out_cols")
        let raw = t.rawData
        data.pointee = raw.pointer
        type.pointee = storedDType(t)
        rows.pointee = Int64(t.rows)
        cols.pointee = Int64(t.cols)
    }
}

@c @implementation
public func gpt_embedding_parameter_dtype(_ layer: OpaquePointer?, _ param: Int32, _ outDType: UnsafeMutablePointer<Int32>?) -> Int32 {
    api("gpt_embedding_parameter_dtype") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        try required(outDType, "out_dtype").pointee = storedDType(t)
    }
}

@c @implementation
public func gpt_embedding_gradient_data(_ layer: OpaquePointer?, _ param: Int32, _ outData: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?, _ outLen: UnsafeMutablePointer<Int64>?) -> Int32 {
    api("gpt_embedding_gradient_data") { () throws(GPTEmbeddingError) in
        let t = try tensor(HandleRegistry.layer(layer), param)
        let data = try required(outData, "out_data"), len = try required(outLen, "out_len")
        let g = try t.gradientData()
        data.pointee = g.baseAddress
        len.pointee = Int64(t.count)
    }
}

@c @implementation
public func gpt_embedding_sinusoidal_table(_ startPosition: Int64, _ numPositions: Int64, _ embedDim: Int64, _ out: UnsafeMutablePointer<Float>?, _ outLen: Int64) -> Int32 {
    api("gpt_embedding_sinusoidal_table") { () throws(GPTEmbeddingError) in
        let out = try required(out, "out")
        try SinusoidalPositionalEmbedding.table(start: Int(startPosition), count: Int(numPositions), embedDim: Int(embedDim),
                                                into: buffer(out, outLen, "out_len"))
    }
}

/// The dtype code C callers see for a tensor: its `enum gpt_embedding_dtype`, or
/// `GPT_EMBEDDING_DTYPE_GGML` plus ggml's type id for a table in a block format.
func storedDType(_ t: ParameterTensor) -> Int32 {
    t.blockType.map { Int32(GPT_EMBEDDING_DTYPE_GGML) + Int32($0.rawValue) } ?? t.dtype.rawValue
}

@c @implementation
public func gpt_embedding_dtype_name(_ dtype: Int32) -> UnsafePointer<CChar>? {
    dtypeNames[dtype].map { UnsafePointer($0) }
}

/// Every name `gpt_embedding_dtype_name` returns, made once and never freed.
nonisolated(unsafe) private let dtypeNames: [Int32: UnsafeMutablePointer<CChar>] = {
    var names: [Int32: UnsafeMutablePointer<CChar>] = [:]
    for t in TensorDType.allCases { names[t.rawValue] = strdup(t.description) }
    for t in GGMLType.allCases where t.isQuantizedTableType {
        names[Int32(GPT_EMBEDDING_DTYPE_GGML) + Int32(t.rawValue)] = strdup(t.name)
    }
    return names
}()
