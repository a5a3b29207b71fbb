/// Dequantization of rows of ggml's block formats (issue 19), through the dispatched
/// kernels (`dequantize_row` of `Sources/CKernelDispatch/include/kernel_interface.h`):
/// float32 bit for bit as ggml's `dequantize_row_*` and the `gguf` package's
/// `gguf.quants.dequantize`, the same bits on every CPU path.
extension GGMLType {
    /// Decodes one row of this block type: `row` holds `out.count / blockSize` blocks
    /// (exactly ``rowBytes(_:)`` of `out.count` bytes) and `out` receives the float32
    /// values. Throws `invalidArgument` naming the type for a type outside
    /// ``isQuantizedTableType``, and for a width that is not a whole number of blocks or a
    /// row of the wrong size.
    public func dequantize(row: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        try dequantize(row: row, into: out, kernels: Kernels.active())
    }

    /// The same with the kernels of one path (tests compare the paths).
    func dequantize(row: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>,
                    kernels: Kernels) throws(GPTEmbeddingError) {
        try checkDequantizable()
        guard out.count % blockSize == 0, let bytes = rowBytes(out.count) else {
            throw GPTEmbeddingError(.invalidArgument, "a \(name) row of \(out.count) elements is not a whole number of \(blockSize)-element blocks")
        }
        guard row.count == bytes else {
            throw GPTEmbeddingError(.invalidArgument, "a \(name) row of \(out.count) elements takes \(bytes) bytes, got \(row.count)")
        }
        guard out.count > 0 else { return }
        guard kernels.dequantizeRow(Int32(rawValue), row.baseAddress, Int64(out.count), out.baseAddress) != 0 else {
            throw GPTEmbeddingError(.invalidArgument, "the \(kernels.isa) kernels do not decode ggml type \(name)")
        }
    }

    /// `rows` rows of this type, `cols` elements each, one after another in `data`,
    /// dequantized into a new array of `rows * cols` floats.
    public func dequantize(_ data: [UInt8], cols: Int) throws(GPTEmbeddingError) -> [Float] {
        try dequantize(data, cols: cols, kernels: Kernels.active())
    }

    func dequantize(_ data: [UInt8], cols: Int, kernels: Kernels) throws(GPTEmbeddingError) -> [Float] {
        try checkDequantizable()
        guard cols > 0, let bytes = rowBytes(cols), data.count % bytes == 0 else {
            throw GPTEmbeddingError(.invalidArgument, "\(data.count) bytes are not whole \(name) rows of \(cols) elements")
        }
        let rows = data.count / bytes
        var out = [Float](repeating: 0, count: rows * cols)
        var decoded = true
        data.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows where decoded {
                    decoded = kernels.dequantizeRow(Int32(rawValue), src.baseAddress! + r * bytes, Int64(cols),
                                                    dst.baseAddress! + r * cols) != 0
                }
            }
        }
        guard decoded else {
            throw GPTEmbeddingError(.invalidArgument, "the \(kernels.isa) kernels do not decode ggml type \(name)")
        }
        return out
    }

    /// Throws `invalidArgument` naming the type unless its rows can be dequantized.
    func checkDequantizable() throws(GPTEmbeddingError) {
        guard isQuantizedTableType else {
            throw GPTEmbeddingError(.invalidArgument, "ggml type \(name) (id \(rawValue)) cannot be dequantized: supported are \(GGMLType.allCases.filter(\.isQuantizedTableType).map(\.name).joined(separator: ", "))")
        }
    }
}
