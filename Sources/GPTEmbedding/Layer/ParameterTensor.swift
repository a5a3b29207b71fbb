/// A trainable `[rows, cols]` float table and its gradient.
///
/// The gradient is allocated (zeroed) on first use, so inference never pays for it.
/// Both buffers keep their address for the life of the tensor, which is what makes
/// zero-copy access (`data`, `gradientData()`) safe to hand out.
public final class ParameterTensor: @unchecked Sendable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let cols: Int
    /// The name used in state dicts, e.g. `token_embedding.weight`.
    public let name: String
    let value: FloatBuffer
    private(set) var grad: FloatBuffer?

    /// A `[rows, cols]` tensor whose values start at zero, or, with `zeroed: false`,
    /// undefined: for a caller that writes every element next (an initialiser that fills
    /// the table), which then pays for touching the memory once instead of twice.
    init(name: String, rows: Int, cols: Int, zeroed: Bool = true) throws(GPTEmbeddingError) {
        self.name = name
        self.rows = rows
        self.cols = cols
        value = try FloatBuffer(count: Checked.multiply(rows, cols, "\(name) size"), zeroed: zeroed, what: name)
    }

    /// `rows * cols`.
    public var count: Int { value.count }

    /// The values, row-major. Valid while this tensor is alive; writing changes the parameter.
    public var data: UnsafeMutableBufferPointer<Float> { value.buffer }

    /// The gradient, allocated and zeroed on first use. Valid while this tensor is alive.
    /// Writing through it is allowed (a tied output head adds its gradient here); from then
    /// on `zeroGrad` clears the whole gradient rather than only the rows backward touched.
    public func gradientData() throws(GPTEmbeddingError) -> UnsafeMutableBufferPointer<Float> {
        let g = try gradientBuffer()
        gradientShared = true
        return g.buffer
    }

    /// Whether the gradient's address was handed out (or a component wrote it directly),
    /// so the rows written cannot be tracked.
    private(set) var gradientShared = false

    /// Notes a write to the gradient that the layer's row tracking does not see.
    func markUntrackedWrites() { gradientShared = true }

    /// Whether a gradient has been allocated.
    public var hasGradient: Bool { grad != nil }

    func gradientBuffer() throws(GPTEmbeddingError) -> FloatBuffer {
        if let grad { return grad }
        let g = try FloatBuffer(count: value.count, what: "\(name) gradient")
        grad = g
        return g
    }

    /// A copy of the values.
    public var values: [Float] { Array(value.buffer) }

    /// A copy of the gradient (zeros before the first backward).
    public var gradient: [Float] { grad.map { Array($0.buffer) } ?? [Float](repeating: 0, count: count) }

    /// Copies the values into `dst`, which must hold at least `count` floats.
    public func copyValues(into dst: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        try Self.copy(value.base, count: count, into: dst, what: name)
    }

    /// Copies the gradient into `dst` (zeros before the first backward).
    public func copyGradient(into dst: UnsafeMutableBufferPointer<Float>) throws(GPTEmbeddingError) {
        guard let grad else {
            try Self.checkCapacity(dst.count, count, name)
            dst.baseAddress?.update(repeating: 0, count: count)
            return
        }
        try Self.copy(grad.base, count: count, into: dst, what: name)
    }

    /// Replaces the values with `src`, which must hold exactly `count` floats.
    public func setValues(_ src: UnsafeBufferPointer<Float>) throws(GPTEmbeddingError) {
        guard src.count == count, let s = src.baseAddress else {
            throw GPTEmbeddingError(.invalidArgument, "\(name) has \(count) elements [\(rows), \(cols)], got \(src.count)")
        }
        value.base.update(from: s, count: count)
    }

    /// Replaces the values with `src`.
    public func setValues(_ src: [Float]) throws(GPTEmbeddingError) {
        try src.withUnsafeBufferPointer { (b) throws(GPTEmbeddingError) in try setValues(b) }
    }

    /// Sets the gradient to zero (no allocation if there is none).
    public func zeroGradient() { grad?.zero() }

    /// Bytes owned (values and gradient).
    var byteCount: Int { value.byteCount + (grad?.byteCount ?? 0) }

    static func checkCapacity(_ have: Int, _ need: Int, _ what: String) throws(GPTEmbeddingError) {
        guard have >= need else {
            throw GPTEmbeddingError(.bufferTooSmall, "buffer for \(what) holds \(have) floats, needs \(need)")
        }
    }

    private static func copy(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableBufferPointer<Float>, what: String) throws(GPTEmbeddingError) {
        try checkCapacity(dst.count, count, what)
        dst.baseAddress?.update(from: src, count: count)
    }
}
